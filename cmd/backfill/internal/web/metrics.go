package web

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/runonce/backfill/runtime/ledger"
)

// scrapeTimeout bounds one scrape's reads of the ledger.
const scrapeTimeout = 10 * time.Second

// statuses are every run status, so that each has a series from the first
// scrape on (a rate() over a series that appears late misses its start).
var statuses = []string{ledger.StatusRunning, ledger.StatusCompleted, ledger.StatusFailed, ledger.StatusRefused,
	ledger.StatusInterrupted, ledger.StatusPartial, ledger.StatusCancelled, ledger.StatusFailedValidation}

var (
	runLabels = []string{"run_id", "backfill"}
	descUp    = prometheus.NewDesc("backfill_ledger_up",
		"1 when the last scrape read the ledger, 0 when it could not.", nil, nil)
	descRuns = prometheus.NewDesc("backfill_runs",
		"Runs recorded in the ledger, by status (refused attempts included).", []string{"status"}, nil)
	descScanned = prometheus.NewDesc("backfill_run_rows_scanned",
		"Rows a running run has read so far, resumes included.", runLabels, nil)
	descChanged = prometheus.NewDesc("backfill_run_rows_changed",
		"Rows a running run has changed so far, resumes included.", runLabels, nil)
	descMatched = prometheus.NewDesc("backfill_run_rows_matched",
		"The scope count of a running run's preflight.", runLabels, nil)
	descRunBatches = prometheus.NewDesc("backfill_run_batches",
		"Batches a running run has committed.", runLabels, nil)
	descRate = prometheus.NewDesc("backfill_run_rows_per_second",
		"Rows scanned per second by a running run over its last batches.", runLabels, nil)
	descPaused = prometheus.NewDesc("backfill_run_paused",
		"1 when a running run was asked to pause (backfill pause), else 0.", runLabels, nil)
	descProgress = prometheus.NewDesc("backfill_run_last_progress_timestamp_seconds",
		"Unix time of a running run's last committed batch (its start before the first).", runLabels, nil)
	descDuration = prometheus.NewDesc("backfill_batch_duration_seconds",
		"Duration of the attempt that committed each batch, over every run of a backfill.", []string{"backfill"}, nil)
	descAttempts = prometheus.NewDesc("backfill_batch_attempts_total",
		"Attempts the committed batches of a backfill took, first tries included.", []string{"backfill"}, nil)
	descRetries = prometheus.NewDesc("backfill_batch_retries_total",
		"Attempts beyond the first that the committed batches of a backfill took.", []string{"backfill"}, nil)
)

// collector reads the ledger at scrape time: the figures are the ledger's,
// never counters kept by this process, so a restart of backfill serve or a
// second copy of it reports the same values.
type collector struct {
	db  *reader
	log *slog.Logger
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRuns, descScanned, descChanged, descMatched, descRunBatches,
		descRate, descPaused, descProgress, descDuration, descAttempts, descRetries} {
		ch <- d
	}
}

// Collect reads the ledger in one read-only transaction and sends its figures.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var g *ledger.Gauges
	var live map[int64]ledger.Live
	err := c.db.read(ctx, func(tx pgx.Tx) error {
		var err error
		if g, err = ledger.ReadGauges(ctx, tx); err != nil {
			return err
		}
		ids := make([]int64, len(g.Running))
		for i, r := range g.Running {
			ids[i] = r.ID
		}
		live, err = ledger.LiveOf(ctx, tx, ids)
		return err
	})
	if err != nil {
		c.log.Error("metrics scrape could not read the ledger", "error", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, s := range statuses {
		ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(g.RunsByStatus[s]), s)
	}
	for _, r := range g.Running {
		sendRun(ch, r, live[r.ID])
	}
	for _, b := range g.Batches {
		sendBatches(ch, b)
	}
}

func sendRun(ch chan<- prometheus.Metric, r ledger.Run, l ledger.Live) {
	labels := []string{strconv.FormatInt(r.ID, 10), r.Backfill}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descScanned, float64(r.Scanned))
	gauge(descChanged, float64(r.Changed))
	if r.Matched != nil {
		gauge(descMatched, float64(*r.Matched))
	}
	gauge(descRunBatches, float64(r.Batches))
	gauge(descRate, l.RatePerSecond())
	paused := 0.0
	if l.Control == ledger.ControlPause {
		paused = 1
	}
	gauge(descPaused, paused)
	last := r.StartedAt
	if l.LastBatchAt != nil {
		last = *l.LastBatchAt
	}
	gauge(descProgress, float64(last.UnixNano())/1e9)
}

func sendBatches(ch chan<- prometheus.Metric, b ledger.BatchStats) {
	buckets := make(map[float64]uint64, len(ledger.DurationBucketsMS))
	for i, ms := range ledger.DurationBucketsMS {
		buckets[ms/1000] = uint64(b.Buckets[i])
	}
	ch <- prometheus.MustNewConstHistogram(descDuration, uint64(b.Count), b.DurationMS/1000, buckets, b.Backfill)
	ch <- prometheus.MustNewConstMetric(descAttempts, prometheus.CounterValue, float64(b.Attempts), b.Backfill)
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(b.Attempts-b.Count), b.Backfill)
}
