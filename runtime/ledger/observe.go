package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Live is what an observer needs beside a Run to follow it: whether it was
// asked to pause, its lanes, and its pace over its most recent batches.
type Live struct {
	RunID     int64
	Control   string
	Lanes     int
	LanesDone int
	// The window of recent batches the pace is measured over: rows scanned by
	// all of them but the first, and the time from the first's commit to the
	// last's.
	WindowRows    int64
	WindowSeconds float64
	LastBatchAt   *time.Time
}

// RatePerSecond is the rows scanned per second over the recent window, or 0
// when fewer than two batches committed.
func (l Live) RatePerSecond() float64 {
	if l.WindowSeconds <= 0 {
		return 0
	}
	return float64(l.WindowRows) / l.WindowSeconds
}

// recentBatches is how many of a run's last batches its pace is measured
// over: enough to smooth out one slow batch, few enough to follow a change
// of rate within seconds.
const recentBatches = 20

// LiveOf reads the Live state of runs, keyed by run id.
func LiveOf(ctx context.Context, q Querier, ids []int64) (map[int64]Live, error) {
	rows, err := q.Query(ctx, `SELECT r.id, r.control,
		(SELECT count(*) FROM backfill.lanes l WHERE l.run_id = r.id),
		(SELECT count(*) FILTER (WHERE l.done) FROM backfill.lanes l WHERE l.run_id = r.id),
		coalesce(sum(w.scanned) FILTER (WHERE w.rn > 1), 0),
		coalesce(extract(epoch FROM max(w.committed_at) - min(w.committed_at)), 0)::float8,
		max(w.committed_at)
		FROM backfill.runs r
		LEFT JOIN LATERAL (SELECT b.scanned, b.committed_at, row_number() OVER (ORDER BY b.batch) AS rn
			FROM (SELECT * FROM backfill.batches b WHERE b.run_id = r.id ORDER BY b.batch DESC LIMIT $2) b) w ON true
		WHERE r.id = ANY($1) GROUP BY r.id`, ids, recentBatches)
	if err != nil {
		return nil, fmt.Errorf("error reading the progress of runs: %w", err)
	}
	lives, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Live, error) {
		var l Live
		err := r.Scan(&l.RunID, &l.Control, &l.Lanes, &l.LanesDone, &l.WindowRows, &l.WindowSeconds, &l.LastBatchAt)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("error reading the progress of runs: %w", err)
	}
	out := make(map[int64]Live, len(lives))
	for _, l := range lives {
		out[l.RunID] = l
	}
	return out, nil
}

// AllApprovals lists the newest approvals first, at most limit.
func AllApprovals(ctx context.Context, q Querier, limit int) ([]Approval, error) {
	list, err := approvals(ctx, q, "WHERE id IN (SELECT id FROM backfill.approvals ORDER BY id DESC LIMIT $1)", limit)
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list, err
}

// DryRunsFor lists the dry-run reports saved for a digest, newest first.
func DryRunsFor(ctx context.Context, q Querier, digest string) ([]DryRun, error) {
	rows, err := q.Query(ctx, `SELECT id, digest, report, created_by, created_at FROM backfill.dry_runs
		WHERE digest = $1 ORDER BY id DESC`, digest)
	if err != nil {
		return nil, fmt.Errorf("error reading the dry-run reports of sha256:%s: %w", digest, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DryRun, error) {
		var d DryRun
		err := r.Scan(&d.ID, &d.Digest, &d.Report, &d.CreatedBy, &d.CreatedAt)
		return d, err
	})
}

// Gauges are the ledger's figures a metrics scrape reports, read at once.
type Gauges struct {
	RunsByStatus map[string]int64
	Running      []Run
	Batches      []BatchStats
}

// BatchStats sums up every committed batch of one backfill: how many, the
// attempts they took, and their durations bucketed at DurationBucketsMS
// (cumulative: Buckets[i] counts batches of at most DurationBucketsMS[i]).
type BatchStats struct {
	Backfill   string
	Count      int64
	Attempts   int64
	DurationMS float64
	Buckets    []int64
}

// DurationBucketsMS are the upper bounds, in milliseconds, of the batch
// duration histogram: from a trivial batch to one near a statement timeout.
var DurationBucketsMS = []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// ReadGauges reads the figures of a metrics scrape.
func ReadGauges(ctx context.Context, q Querier) (*Gauges, error) {
	g := &Gauges{RunsByStatus: map[string]int64{}}
	rows, err := q.Query(ctx, "SELECT status, count(*) FROM backfill.runs GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("error counting runs by status: %w", err)
	}
	var status string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error { g.RunsByStatus[status] = n; return nil }); err != nil {
		return nil, fmt.Errorf("error counting runs by status: %w", err)
	}
	if g.Running, err = queryRuns(ctx, q, "WHERE status = 'running' ORDER BY id"); err != nil {
		return nil, err
	}
	g.Batches, err = batchStats(ctx, q)
	return g, err
}

func batchStats(ctx context.Context, q Querier) ([]BatchStats, error) {
	buckets := make([]string, len(DurationBucketsMS))
	for i, b := range DurationBucketsMS {
		buckets[i] = "count(*) FILTER (WHERE b.duration_ms <= " + strconv.FormatFloat(b, 'f', -1, 64) + ")"
	}
	rows, err := q.Query(ctx, `SELECT r.backfill, count(*), coalesce(sum(b.attempts), 0), coalesce(sum(b.duration_ms), 0)::float8,
		ARRAY[`+strings.Join(buckets, ", ")+`]::bigint[]
		FROM backfill.batches b JOIN backfill.runs r ON r.id = b.run_id GROUP BY r.backfill ORDER BY r.backfill`)
	if err != nil {
		return nil, fmt.Errorf("error summing up batches: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (BatchStats, error) {
		var s BatchStats
		err := r.Scan(&s.Backfill, &s.Count, &s.Attempts, &s.DurationMS, &s.Buckets)
		return s, err
	})
}
