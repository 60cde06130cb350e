package engine

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// controlPeriod is how often the controller decides: long enough for a few
// probes and batches, short enough to back off within a second.
const controlPeriod = 500 * time.Millisecond

// baselineBatches is how many batches after the canary set the commit and
// per-row baselines.
const baselineBatches = 5

// adaptive is the adaptive mode of one run: the monitor, the controller and
// what the batches of the current period measured.
type adaptive struct {
	ctrl    *controller
	mon     *monitor
	since   time.Time // the current period began
	scanned int64     // the run's rows read when it began
	commits []time.Duration
	perRow  []time.Duration
	slowest time.Duration   // the slowest batch COMMIT of the period
	first   []time.Duration // commits of the first batches, for the baseline
	firstPR []time.Duration
	waiting bool
	// Counts of this process's decisions, in every batch's audit event.
	SlowDowns int64 `json:"slow_downs"`
	SpeedUps  int64 `json:"speed_ups"`
	Waits     int64 `json:"waits"`
}

// startAdaptive opens the monitor's connection, takes the probe's
// baseline before the first batch and starts sampling. Without a
// connection the run goes on without the adaptive mode, and says so.
func (r *runner) startAdaptive(ctx context.Context) error {
	if r.opts.NoAdaptive || r.opts.Connect == nil {
		return nil
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		r.log.Warn("adaptive mode off: could not open the probe's connection", "event", "adaptive", "error", pgdb.ErrorSentence(err))
		r.note("adaptive mode off: could not open the probe's connection: " + pgdb.ErrorSentence(err))
		return nil
	}
	mon := newMonitor(conn, r.opts.Connect)
	probe, err := mon.baseline(ctx, 20)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		r.log.Warn("adaptive mode off: the probe failed", "event", "adaptive", "error", pgdb.ErrorSentence(err))
		r.note("adaptive mode off: the probe failed: " + pgdb.ErrorSentence(err))
		return nil
	}
	m := r.job.Manifest
	bounds := m.Batch.AppImpact()
	ctrl := newController(bounds, m.Batch.MaxRowsPerSecond, m.Batch.Size, m.Batch.Canary)
	ctrl.base.Probe = probe
	r.adapt = &adaptive{ctrl: ctrl, mon: mon, since: time.Now(), scanned: r.scanned}
	mon.pids.Store(r.pids())
	go mon.run(ctx)
	r.log.Info("adaptive mode on", "event", "adaptive", "baseline_probe_ms", ms(probe), "probe_ratio", bounds.ProbeRatio,
		"lock_wait_ms", ms(ctrl.lockWait), "commit_ratio", bounds.CommitRatio, "commit_stall_ms", ms(ctrl.stall), "batch_ratio", bounds.BatchRatio,
		"min_rows_per_second", bounds.MinRowsPerSecond)
	return ledger.Append(ctx, r.conn, r.run.ID, ledger.EventAdaptive, ledger.Adaptive{BaselineProbeMS: ms(probe), MaxAppImpact: bounds})
}

func (r *runner) note(msg string) {
	if r.hooks.Note != nil {
		r.hooks.Note(msg)
	}
}

func (r *runner) stopAdaptive() {
	if r.adapt != nil {
		r.adapt.mon.close()
	}
}

// pids are the backend pids of the run's sessions: the run's and its lanes'.
func (r *runner) pids() *[]int32 {
	pids := []int32{int32(r.conn.PgConn().PID())}
	for _, l := range r.lanes {
		if l.conn != nil {
			pids = append(pids, int32(l.conn.PgConn().PID()))
		}
	}
	return &pids
}

// observe keeps what a round's committed batches measured: commit latency
// and time per row read.
func (a *adaptive) observe(outs []outcome) {
	for _, o := range outs {
		if o.b == nil {
			continue
		}
		a.slowest = max(a.slowest, o.commit)
		if o.b.Scanned == 0 {
			continue
		}
		perRow := o.took / time.Duration(o.b.Scanned)
		if len(a.first) < baselineBatches {
			a.first, a.firstPR = append(a.first, o.commit), append(a.firstPR, perRow)
			if len(a.first) == baselineBatches {
				a.ctrl.base.Commit, a.ctrl.base.PerRow = median(a.first), median(a.firstPR)
			}
			continue
		}
		a.commits, a.perRow = append(a.commits, o.commit), append(a.perRow, perRow)
	}
}

// adjust decides once a control period: it takes the period's signals,
// applies the controller's decision to the lanes' batch sizes and the rate,
// and logs and counts every slow-down, speed-up and wait with its reason.
func (r *runner) adjust() {
	a := r.adapt
	now := time.Now()
	if a == nil || now.Sub(a.since) < controlPeriod {
		return
	}
	s, err := a.mon.take()
	if err != nil {
		r.log.Warn("the adaptive mode's probe failed", "event", "adaptive", "error", pgdb.ErrorSentence(err))
	}
	s.Commit, s.PerRow = median(a.commits), median(a.perRow)
	s.Stall = max(s.Stall, a.slowest)
	s.Rate = float64(r.scanned-a.scanned) / now.Sub(a.since).Seconds()
	a.since, a.scanned, a.commits, a.perRow, a.slowest = now, r.scanned, a.commits[:0], a.perRow[:0], 0
	a.mon.pids.Store(r.pids())
	d := a.ctrl.decide(s)
	r.apply(d, s)
}

func (r *runner) apply(d Decision, s Signals) {
	a := r.adapt
	for _, l := range r.lanes {
		l.size.max = d.Size
		l.size.size = min(l.size.size, d.Size)
	}
	attrs := []any{"event", string(d.Action), "reason", d.Reason, "detail", d.Detail, "rows_per_second", math.Round(d.Rate), "size", d.Size,
		"probe_ms", ms(s.Probe), "baseline_probe_ms", ms(a.ctrl.base.Probe), "lock_waiters", s.LockWaiters, "lock_wait_ms", ms(s.LockWait),
		"commit_ms", ms(s.Commit), "baseline_commit_ms", ms(a.ctrl.base.Commit), "slowest_commit_ms", ms(s.Stall),
		"other_sessions", s.Others, "measured_rows_per_second", math.Round(s.Rate)}
	switch d.Action {
	case ActionSlowDown:
		a.SlowDowns++
		a.waiting = false
		r.log.Warn("slowing down to protect the application", attrs...)
	case ActionSpeedUp:
		a.SpeedUps++
		if a.waiting {
			r.hooks.wait("resumed", "")
		}
		a.waiting = false
		r.log.Info("speeding up", attrs...)
	case ActionWait:
		if !a.waiting {
			a.Waits++
			r.log.Warn("waiting: the application is affected even at the slowest rate", attrs...)
			r.hooks.wait("app_impact", fmt.Sprintf("%s: %s", d.Reason, d.Detail))
		}
		a.waiting = true
	}
}

// waitForApp holds the batches while the controller waits, re-reading the
// signals once a control period until they are within bounds again.
func (r *runner) waitForApp(ctx context.Context) {
	for r.adapt != nil && r.adapt.waiting {
		if !sleep(ctx, r.opts.Graceful, controlPeriod) {
			return // the next step sees the signal
		}
		r.adjust()
	}
}

// rateLimit is the rows per second the run is held to: the manifest's
// max_rows_per_second, lowered by the controller (0: none).
func (r *runner) rateLimit() float64 {
	limit := float64(r.job.Manifest.Batch.MaxRowsPerSecond)
	if r.adapt != nil && r.adapt.ctrl.rate > 0 && (limit == 0 || r.adapt.ctrl.rate < limit) {
		limit = r.adapt.ctrl.rate
	}
	return limit
}

// auditAdaptive is what a batch's audit event records of the adaptive mode.
func (r *runner) auditAdaptive() map[string]any {
	a := r.adapt
	return map[string]any{"rate_limit": math.Round(a.ctrl.rate), "size_limit": a.ctrl.size,
		"slow_downs": a.SlowDowns, "speed_ups": a.SpeedUps, "waits": a.Waits}
}
