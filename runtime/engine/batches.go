package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/plan"
)

// runner applies the batches of one run in key order from its checkpoint.
// Each batch commits its writes, checkpoint, progress row and audit event
// in one transaction, so a crash at any instant loses or repeats nothing.
// A run with lanes (batch.lanes) writes disjoint key ranges side by side,
// one batch per lane in each round, each lane on its own connection with
// its own checkpoint; the first lane uses the run's connection, which holds
// the run's lock.
type runner struct {
	job     *Job
	conn    *pgx.Conn
	run     *ledger.Run
	hooks   Hooks
	opts    Options
	log     *slog.Logger
	matched int64
	lanes   []*lane
	multi   bool // the run has lanes (rows in backfill.lanes)
	cursor  json.RawMessage
	scanned int64
	changed int64
	batches int64
	meter   *meter // this process's recent rate
	// prepared are the ledger's functions for the run's statements, made
	// when the run starts (backfill.prepare), which every batch runs them by.
	prepared *ledger.Prepared
	adapt    *adaptive // the adaptive mode; nil when off
	// reconciled is the comparison with the dry-run, set when the run completes.
	reconciled Reconciliation
}

// lane is one key range of a run: keys after after up to until.
type lane struct {
	n      int
	conn   *pgx.Conn // nil for lane 0 (the run's connection) and before a lane connects
	after  json.RawMessage
	until  json.RawMessage
	cursor json.RawMessage
	done   bool
	size   sizer
}

func runBatches(ctx context.Context, conn *pgx.Conn, job *Job, run *ledger.Run, resumed bool, matched int64, hooks Hooks, opts Options) (*Result, error) {
	r := &runner{job: job, conn: conn, run: run, hooks: hooks, opts: opts, log: opts.Logger.With("run_id", run.ID),
		matched: matched, cursor: run.Cursor, scanned: run.Scanned, changed: run.Changed, batches: run.Batches,
		meter: newMeter(time.Now(), run.Scanned, meterWindow)}
	defer r.closeLanes()
	var err error
	if r.prepared, err = ledger.PrepareRun(ctx, conn, run.ID, job.Statements); err != nil {
		return nil, err
	}
	if err := r.setupLanes(ctx); err != nil {
		return nil, err
	}
	if err := r.startAdaptive(ctx); err != nil {
		return nil, err
	}
	defer r.stopAdaptive()
	r.log.Info("run started", "event", "start", "resumed", resumed, "cursor", string(run.Cursor), "matched", matched, "lanes", len(r.lanes))
	for {
		done, res, err := r.step(ctx)
		if err != nil || res != nil {
			return res, err
		}
		if done {
			break
		}
	}
	return r.finish(ctx, resumed)
}

// step runs one round, a batch in every lane not yet done (only the canary
// batch in the first round), or stops the run; done means the scope is exhausted.
func (r *runner) step(ctx context.Context) (bool, *Result, error) {
	if stopped(r.opts.Graceful) || ctx.Err() != nil {
		return false, nil, r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
			"Rerun the same binary to resume from the last committed batch.", "stopped by a signal after %d batches", r.batches)
	}
	if res, err := r.obeyControl(ctx); res != nil || err != nil {
		return false, res, r.recover(ctx, err)
	}
	if err := r.waitForReplicas(ctx); err != nil {
		return false, nil, r.recover(ctx, err)
	}
	if err := r.waitForHealth(ctx); err != nil {
		return false, nil, r.recover(ctx, err)
	}
	r.waitForApp(ctx)
	if stopped(r.opts.Graceful) || ctx.Err() != nil {
		return false, nil, nil // the next step records the stop
	}
	var active []*lane
	for _, l := range r.lanes {
		if !l.done {
			active = append(active, l)
		}
	}
	if len(active) == 0 {
		return true, nil, nil
	}
	canary := r.batches == 0
	if canary {
		active = active[:1]
	}
	began := time.Now()
	if r.adapt != nil {
		r.adapt.mon.inFlight.Store(true)
	}
	outs := make([]outcome, len(active))
	if len(active) == 1 {
		outs[0] = r.attempt(ctx, active[0], canary)
	} else {
		var wg sync.WaitGroup
		for i, l := range active {
			wg.Go(func() { outs[i] = r.attempt(ctx, l, canary) })
		}
		wg.Wait()
	}
	took := time.Since(began)
	if r.adapt != nil {
		r.adapt.mon.inFlight.Store(false)
	}
	var fail func() error
	rows := 0
	for i, o := range outs {
		l := active[i]
		if o.fail != nil {
			if fail == nil {
				fail = o.fail
			}
			continue
		}
		if o.b == nil {
			l.done = true
			if fail == nil {
				if err := ledger.LaneDone(ctx, r.conn, r.run.ID, l.n); err != nil {
					fail = func() error { return r.recover(ctx, err) }
				}
			}
			continue
		}
		b := o.b
		l.cursor, l.done = b.Cursor, b.Last
		r.cursor, r.scanned, r.changed, r.batches = b.Cursor, r.scanned+int64(b.Scanned), r.changed+o.n, r.batches+1
		rows += b.Scanned
		p := r.progressed()
		r.log.Info("batch committed", "event", "batch", "batch", o.number, "lane", l.n, "cursor", string(b.Cursor), "scanned", b.Scanned,
			"intended", b.Changes, "changed", o.n, "size", o.size, "attempts", o.attempts, "duration_ms", ms(o.took), "canary", canary,
			"run_scanned", p.Scanned, "matched", p.Matched, "rows_per_second", math.Round(p.Rate), "eta_s", math.Round(p.ETA.Seconds()))
		if !canary {
			l.size.after(o.took)
		}
	}
	if fail != nil {
		return false, nil, fail()
	}
	if canary && r.opts.PauseAfterCanary && outs[0].b != nil {
		if err := r.showCanary(ctx, outs[0]); err != nil {
			return false, nil, r.recover(ctx, err)
		}
	}
	if r.adapt != nil && !canary {
		r.adapt.observe(outs)
		r.adjust()
	}
	r.throttle(ctx, rows, took)
	r.meter.add(time.Now(), r.scanned) // the round is over, its wait included
	return false, nil, nil
}

// progressed reports the run's progress after a committed batch to the
// Progress hook, with the rate of this process's rounds of batches so far:
// the meter takes a mark when a round ends, after its throttle wait, so the
// rate is never above the limit the run is held to.
func (r *runner) progressed() Progress {
	p := Progress{RunID: r.run.ID, Batch: r.batches, Scanned: r.scanned, Changed: r.changed, Matched: r.matched,
		Rate: r.meter.rate(), ETA: r.meter.eta(r.matched, r.scanned)}
	if r.hooks.Progress != nil {
		r.hooks.Progress(p)
	}
	return p
}

// recover turns a lost connection between batches into a reconnect (the
// step then runs again) and returns every other error as it is.
func (r *runner) recover(ctx context.Context, err error) error {
	var refusal *bftype.Refusal
	if err == nil || errors.As(err, &refusal) || pgdb.Classify(err) != pgdb.Reconnect {
		return err
	}
	r.log.Warn("connection lost between batches, reconnecting", "event", "backoff", "error", pgdb.ErrorSentence(err))
	r.hooks.wait("reconnect", "connection lost; reconnecting")
	for attempt := 0; ; attempt++ {
		if !sleep(ctx, r.opts.Graceful, backoff(attempt)) {
			return nil // the next step sees the signal
		}
		rerr := r.reconnect(ctx)
		if rerr == nil {
			return nil
		}
		if attempt > 20 {
			return r.stop(ledger.StatusPartial, bftype.ReasonFailed, bftype.ExitPartial,
				"Check the database, then rerun the same binary: it resumes after the last committed batch.",
				"could not reconnect after losing the connection: %s", pgdb.ErrorSentence(rerr))
		}
	}
}

func stopped(graceful <-chan struct{}) bool {
	select {
	case <-graceful:
		return true
	default:
		return false
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// outcome is what one lane's batch came to in a round: a committed batch
// (b nil when the lane had no rows left), or fail, which records the run's
// stop; it runs after the round, on the coordinator.
type outcome struct {
	b        *plan.Batch
	n        int64 // rows changed
	number   int64 // the batch's number in the run
	attempts int
	took     time.Duration
	commit   time.Duration // the COMMIT's latency
	size     int
	fail     func() error
}

// attempt runs one batch of a lane, retrying by error class until
// MaxRetryTime. It runs beside the other lanes' attempts, so it changes only
// its own lane and leaves recording a stop to the coordinator.
func (r *runner) attempt(ctx context.Context, l *lane, canary bool) outcome {
	size := l.size.size
	if canary {
		size = min(size, r.job.Manifest.Batch.Canary)
	}
	var first time.Time
	for attempt := 1; ; attempt++ {
		began := time.Now()
		b, n, number, commit, err := r.commitBatch(ctx, l, size, canary, attempt, began)
		if err == nil {
			return outcome{b: b, n: n, number: number, attempts: attempt, took: time.Since(began), commit: commit, size: size}
		}
		if first.IsZero() {
			first = began
		}
		class := pgdb.Classify(err)
		var refusal *bftype.Refusal
		if errors.As(err, &refusal) || ctx.Err() != nil || class == pgdb.Stop || class == pgdb.Permission || errors.Is(err, ledger.ErrLaneMoved) {
			return outcome{fail: func() error { return r.failed(ctx, l, err, class) }}
		}
		if time.Since(first) > r.opts.MaxRetryTime {
			return outcome{fail: func() error {
				return r.stop(ledger.StatusPartial, bftype.ReasonFailed, bftype.ExitPartial,
					"Fix the cause, then rerun the same binary: it resumes after the last committed batch.",
					"%s kept failing for %s (%d attempts); last error: %s", r.where(l), r.opts.MaxRetryTime, attempt, pgdb.ErrorSentence(err))
			}}
		}
		if pgdb.IsTimeout(err) {
			l.size.timedOut()
			size = max(1, min(size, l.size.size))
		}
		wait := backoff(attempt - 1)
		r.log.Warn("batch failed, retrying", "event", "backoff", "lane", l.n, "cursor", string(l.cursor), "attempt", attempt, "class", class.String(),
			"error", pgdb.ErrorSentence(err), "wait_ms", ms(wait), "size", size)
		r.hooks.wait(waitKind(err, class), fmt.Sprintf("attempt %d: %s", attempt, pgdb.ErrorSentence(err)))
		if !sleep(ctx, r.opts.Graceful, wait) {
			return outcome{fail: func() error {
				return r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
					"Rerun the same binary to resume from the last committed batch.", "stopped by a signal while retrying %s", r.where(l))
			}}
		}
		if class == pgdb.Reconnect {
			if err := r.reconnectLane(ctx, l); err != nil {
				r.log.Warn("reconnect failed", "event", "backoff", "lane", l.n, "error", pgdb.ErrorSentence(err))
			}
		}
	}
}

// where names the batch a lane is on for messages: "batch 7 (keys after
// 600)" in a run with one lane; with lanes, whose batches are numbered in
// commit order, "the batch of lane 1 (keys after 600)".
func (r *runner) where(l *lane) string {
	if r.multi {
		return fmt.Sprintf("the batch of lane %d (keys after %s)", l.n, cursorText(l.cursor))
	}
	return fmt.Sprintf("batch %d (keys after %s)", r.batches+1, cursorText(l.cursor))
}

func cursorText(c json.RawMessage) string {
	if len(c) == 0 {
		return "the start"
	}
	return string(c)
}

// commitBatch reads, checks, writes and records one batch of a lane in one
// transaction: the rows, the run's progress (which numbers the batch), the
// batch row, the lane's checkpoint, the before-images and the audit event.
func (r *runner) commitBatch(ctx context.Context, l *lane, size int, canary bool, attempt int, began time.Time) (*plan.Batch, int64, int64, time.Duration, error) {
	conn, err := r.laneConn(ctx, l)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	var b *plan.Batch
	var n, number int64
	var written time.Time // the batch's statements are done; its COMMIT follows
	err = pgdb.WithTx(ctx, conn, func(tx pgx.Tx) error {
		defer func() { written = time.Now() }()
		var err error
		var undo []byte
		var undoKeys []string
		gate := ledger.Gate{Tx: tx, RunID: r.run.ID, Lane: l.n, Prepared: r.prepared}
		if b, n, undo, undoKeys, err = applyBatch(ctx, tx, gate, r.job, l.cursor, l.until, size, canary); err != nil || b == nil {
			return err
		}
		event := batchEvent(b, canary)
		if r.adapt != nil {
			event["adaptive"] = r.auditAdaptive()
		}
		var changed int64
		number, changed, err = ledger.RecordBatch(ctx, tx, ledger.BatchRecord{RunID: r.run.ID, Lane: l.n, From: l.cursor,
			Cursor: b.Cursor, Last: b.Last, Scanned: b.Scanned, Intended: b.Changes, Size: size, Attempts: attempt,
			DurationMS: ms(time.Since(began)), Undo: undo, UndoKeys: undoKeys, Kind: "batch", Event: event})
		if err != nil {
			return err
		}
		if changed != n {
			return fmt.Errorf("the database counted %d rows written by batch %d, but Apply reported %d", changed, number, n)
		}
		if !canary || !r.opts.PauseAfterCanary {
			return nil
		}
		return ledger.PauseAfterCanary(ctx, tx, r.run.ID, number)
	})
	if err != nil || b == nil {
		return b, n, number, 0, err
	}
	return b, n, number, time.Since(written), nil
}

// batchEvent is what a batch's audit event says beside its number, lane,
// cursor and counts, which the database sets. With report.group_by it
// counts the batch's changes by group ("groups"), which verify and the
// archive's report sum and reconcile with the dry-run's per-group counts.
func batchEvent(b *plan.Batch, canary bool) map[string]any {
	e := map[string]any{"canary": canary}
	if b.Groups != nil {
		e["groups"] = b.Groups
	}
	return e
}

// reconnectForRecord opens a fresh connection to record how the run ended,
// joined to the run (the old session is gone).
func (r *runner) reconnectForRecord(ctx context.Context) error {
	if r.opts.Connect == nil {
		return errors.New("no way to reconnect")
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		return err
	}
	// The new session records the end as one of the run's: a lane's
	// session may still be alive.
	if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
		r.log.Warn("could not join the run from the new connection", "event", "reconnect", "error", pgdb.ErrorSentence(err))
	}
	r.conn.Close(ctx)
	r.conn = conn
	return nil
}

// reconnect replaces a lost connection and joins the new session to the run.
func (r *runner) reconnect(ctx context.Context) error {
	if r.opts.Connect == nil {
		return errors.New("no way to reconnect")
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		return err
	}
	if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("could not join run %d again after reconnecting: %w", r.run.ID, err)
	}
	r.conn.Close(context.WithoutCancel(ctx))
	r.conn = conn
	r.log.Info("reconnected", "event", "reconnect")
	return nil
}

// showCanary hands the committed canary batch of a run paused after it to
// the Canary hook, with the report.spot_check keys read now; the pause
// itself committed with the batch, and the next step waits in obeyControl.
func (r *runner) showCanary(ctx context.Context, o outcome) error {
	r.log.Info("paused after the canary batch", "event", "pause", "canary", true, "batch", o.number)
	if r.hooks.Canary == nil {
		return nil
	}
	c := Canary{RunID: r.run.ID, Batch: o.number, Cursor: o.b.Cursor, Scanned: o.b.Scanned, Changed: o.n, Samples: o.b.Samples}
	var err error
	if c.Spots, c.DryRunID, err = r.canarySpots(ctx); err != nil {
		return err
	}
	r.hooks.Canary(c)
	return nil
}

// canarySpots reads the spot-check keys: those of the dry-run the run
// reconciles with, predictions included, or else the manifest's alone.
func (r *runner) canarySpots(ctx context.Context) ([]SpotResult, int64, error) {
	rec, err := Reconcile(ctx, r.conn, r.run)
	if err != nil {
		return nil, 0, err
	}
	spots := rec.PlannedSpots
	if rec.DryRunID == 0 && r.job.Manifest.Report != nil {
		for _, k := range r.job.Manifest.Report.SpotCheck {
			spots = append(spots, bftype.Spot{Key: k})
		}
	}
	res, err := SpotCheck(ctx, r.conn, r.job.Plan, spots)
	if err != nil {
		return nil, 0, err
	}
	// Only the canary's keys are written yet.
	// Only the canary's keys are written yet: it is the first batch of the
	// first lane, and every other lane's keys come after it.
	MarkNotReached(res, r.lanes[0].cursor, nil)
	return res, rec.DryRunID, nil
}

// obeyControl honours pause and cancel requests from the ledger.
func (r *runner) obeyControl(ctx context.Context) (*Result, error) {
	announced := false
	for {
		c, err := ledger.Control(ctx, r.conn, r.run.ID)
		if err != nil {
			return nil, err
		}
		switch c {
		case ledger.ControlRun:
			if announced {
				r.log.Info("run resumed", "event", "resume")
				r.hooks.wait("resumed", "")
			}
			return nil, nil
		case ledger.ControlCancel:
			return nil, r.stop(ledger.StatusCancelled, bftype.ReasonCancelled, bftype.ExitInterrupted,
				"The run was cancelled through the ledger; it will not resume.", "cancelled by an operator after %d batches", r.batches)
		}
		if !announced {
			r.log.Info("run paused", "event", "pause", "batches", r.batches)
			if r.hooks.Paused != nil {
				r.hooks.Paused(r.run.ID)
			}
			announced = true
		}
		if !sleep(ctx, r.opts.Graceful, r.opts.ControlPoll) {
			return nil, r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
				"Rerun the same binary to resume from the last committed batch.", "stopped by a signal while paused")
		}
	}
}

// waitForReplicas pauses while any replica lags more than allowed.
func (r *runner) waitForReplicas(ctx context.Context) error {
	if r.opts.MaxReplicationLag <= 0 {
		return nil
	}
	for {
		var lag float64
		err := r.conn.QueryRow(ctx, "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication").Scan(&lag)
		if err != nil {
			return fmt.Errorf("error reading replication lag: %w", err)
		}
		d := time.Duration(lag * float64(time.Second))
		if d <= r.opts.MaxReplicationLag {
			return nil
		}
		r.log.Warn("replica lagging, waiting", "event", "throttle", "lag_ms", ms(d), "max_ms", ms(r.opts.MaxReplicationLag))
		r.hooks.wait("replica_lag", "replica lag "+d.Round(time.Second).String())
		if !sleep(ctx, r.opts.Graceful, time.Second) {
			return nil // the next step sees the signal
		}
	}
}

// waitForHealth pauses while the manifest's health query is above its max;
// the query runs in a read-only transaction.
func (r *runner) waitForHealth(ctx context.Context) error {
	h := r.job.Manifest.Health
	if h == nil {
		return nil
	}
	for {
		// Read-only, like the canary and the checks: a health query that
		// writes fails instead of writing.
		var v float64
		err := pgdb.ReadOnly(ctx, r.conn, r.job.Manifest.Batch.StatementTimeoutDuration(), func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, healthSQL(h.Query)).Scan(&v)
		})
		if err != nil {
			var refusal *bftype.Refusal
			if pgdb.Classify(err) == pgdb.Reconnect || errors.As(err, &refusal) {
				return err
			}
			return r.stop(ledger.StatusFailed, bftype.ReasonFailed, bftype.ExitPartial, "Fix health.query in backfill.yaml, rebuild and have it approved.",
				"the health query failed: %s", pgdb.ErrorSentence(err))
		}
		if v <= h.Max {
			return nil
		}
		r.log.Warn("database unhealthy, waiting", "event", "throttle", "health", v, "max", h.Max)
		r.hooks.wait("unhealthy", fmt.Sprintf("health %g > %g", v, h.Max))
		if !sleep(ctx, r.opts.Graceful, time.Second) {
			return nil // the next step sees the signal
		}
	}
}

// throttle keeps the run under the manifest's rows per second, or the
// adaptive mode's lower rate.
func (r *runner) throttle(ctx context.Context, rows int, took time.Duration) {
	limit := r.rateLimit()
	if limit <= 0 {
		return
	}
	wait := time.Duration(float64(rows)/limit*float64(time.Second)) - took
	if wait > 10*time.Millisecond {
		r.log.Debug("throttling", "event", "throttle", "wait_ms", ms(wait), "max_rows_per_second", math.Round(limit))
	}
	sleep(ctx, r.opts.Graceful, wait)
}

func (r *runner) finish(ctx context.Context, resumed bool) (*Result, error) {
	bg := context.WithoutCancel(ctx)
	results, err := RunChecks(ctx, r.conn, r.job.Manifest)
	if err != nil {
		var refusal *bftype.Refusal
		if errors.As(err, &refusal) {
			return nil, r.stop(ledger.StatusFailedValidation, refusal.Reason, refusal.Code, refusal.Next, "%s", refusal.Msg)
		}
		return nil, err
	}
	if err := ledger.Append(bg, r.conn, r.run.ID, "validated", map[string]any{"when": "after", "checks": results, "hold": Hold(results)}); err != nil {
		return nil, err
	}
	if err := failing(results); err != nil {
		return nil, r.stop(ledger.StatusFailedValidation, err.Reason, err.Code, err.Next, "%s", err.Msg)
	}
	if err := r.reconcile(bg); err != nil {
		return nil, err
	}
	if err := ledger.Finish(bg, r.conn, r.run.ID, ledger.StatusCompleted, "", ""); err != nil {
		return nil, err
	}
	attrs := []any{"event", "finish", "status", ledger.StatusCompleted, "scanned", r.scanned, "changed", r.changed, "batches", r.batches}
	if a := r.adapt; a != nil {
		attrs = append(attrs, "slow_downs", a.SlowDowns, "speed_ups", a.SpeedUps, "waits", a.Waits)
	}
	r.log.Info("run completed", attrs...)
	final, err := ledger.GetRun(bg, r.conn, r.run.ID)
	return &Result{Run: final, Resumed: resumed, Reconciled: r.reconciled}, err
}

// reconcile compares the rows changed with the dry-run the run planned
// with (the last of its digest saved before it started) and records the
// comparison in the audit log.
func (r *runner) reconcile(ctx context.Context) error {
	run := *r.run
	run.Changed = r.changed
	rec, err := Reconcile(ctx, r.conn, &run)
	if err != nil {
		return err
	}
	if rec.Spots, err = SpotCheck(ctx, r.conn, r.job.Plan, rec.PlannedSpots); err != nil {
		return err
	}
	if rec.DryRunID == 0 {
		r.log.Warn("no dry-run of this digest was saved before the run to reconcile with", "event", "reconcile")
	} else if !rec.Match {
		r.log.Warn("changed rows differ from the dry-run", "event", "reconcile", "dry_run_id", rec.DryRunID, "will_change", rec.WillChange, "changed", r.changed)
	}
	r.reconciled = rec
	return ledger.Append(ctx, r.conn, r.run.ID, "reconciled", rec)
}

// Reconciliation compares a run's changed rows with its dry-run. It is the
// payload of the run's "reconciled" audit event.
type Reconciliation struct {
	DryRunID   int64 `json:"dry_run_id"`
	WillChange int64 `json:"will_change"`
	Changed    int64 `json:"changed"`
	Match      bool  `json:"match"`
	// Groups compare, per report.group_by group, the dry-run's will change
	// with the rows the run's batches changed; GroupsMatch says all agree.
	// Spots are the dry-run's spot-check keys beside their values after the
	// run (recorded when the run ends; verify reads them again).
	Groups       []GroupReconciliation `json:"groups,omitempty"`
	GroupsMatch  bool                  `json:"groups_match,omitempty"`
	Spots        []SpotResult          `json:"spot_checks,omitempty"`
	PlannedSpots []bftype.Spot         `json:"-"` // the dry-run's spot checks, for SpotCheck
	// Ack is the operator's acknowledgement of this very difference (same
	// dry-run, same counts), if one was recorded after the run.
	Ack *ledger.Ack `json:"-"`
}

// Reconcile compares the rows a run changed with the last dry-run of its
// digest saved before it started, and finds an acknowledgement of the
// difference. verify, the run's own end and the archive's report all
// compare with that same dry-run.
func Reconcile(ctx context.Context, q ledger.Querier, run *ledger.Run) (Reconciliation, error) {
	rec := Reconciliation{Changed: run.Changed}
	d, err := ledger.DryRunBefore(ctx, q, run.Digest, run.StartedAt, run.Params)
	if err != nil || d == nil {
		return rec, err
	}
	var rep bftype.Report
	if err := json.Unmarshal(d.Report, &rep); err != nil {
		return rec, fmt.Errorf("error reading dry-run report %d: %w", d.ID, err)
	}
	rec.DryRunID, rec.WillChange, rec.Match = d.ID, rep.Counts.WillChange, rep.Counts.WillChange == run.Changed
	rec.PlannedSpots = rep.Spots
	if rep.Breakdown != nil {
		changed, err := groupsChanged(ctx, q, run.ID)
		if err != nil {
			return rec, err
		}
		rec.Groups = reconcileGroups(rep.Breakdown, changed)
		rec.GroupsMatch = !slices.ContainsFunc(rec.Groups, func(g GroupReconciliation) bool { return !g.Match })
		rec.Match = rec.Match && rec.GroupsMatch
	}
	if rec.Match {
		return rec, nil
	}
	acks, err := ledger.Acks(ctx, q, run.ID)
	if err != nil {
		return rec, err
	}
	for i := range acks {
		if rec.Explains(acks[i]) {
			rec.Ack = &acks[i]
		}
	}
	return rec, nil
}

// Explains reports whether an acknowledgement is of this comparison.
func (rec Reconciliation) Explains(a ledger.Ack) bool {
	return a.DryRunID == rec.DryRunID && a.WillChange == rec.WillChange && a.Changed == rec.Changed
}

// applyBatch reads one page, checks it, writes it and records the checkpoint.
//
// A reversible backfill's batch reads its before-images through RevertRead
// in the same transaction, just before Apply writes, and returns them encoded
// for backfill.undo.
func applyBatch(ctx context.Context, tx pgx.Tx, gate ledger.Gate, job *Job, cursor, until json.RawMessage, size int, canary bool) (*plan.Batch, int64, []byte, []string, error) {
	m := job.Manifest
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d",
		m.Batch.LockTimeoutDuration().Milliseconds(), m.Batch.StatementTimeoutDuration().Milliseconds())); err != nil {
		return nil, 0, nil, nil, fmt.Errorf("error setting batch timeouts: %w", err)
	}
	// The page goes through the ledger too: it records the keys the batch
	// may write, and refuses a page that does not start at the checkpoint.
	b, err := job.Plan.NextIn(ctx, gate, cursor, until, size)
	if err != nil || b == nil {
		return nil, 0, nil, nil, err
	}
	if err := tenantsAllowed(job, b, cursor); err != nil {
		return nil, 0, nil, nil, err
	}
	var undo []byte
	var keys []string
	var items []plan.UndoItem
	if m.Reversible && b.Changes > 0 {
		if items, err = b.Images(ctx, gate); err != nil {
			return nil, 0, nil, nil, fmt.Errorf("error reading the before-images of the batch after key %s: %w", cursorText(cursor), err)
		}
		undo, keys = encodeUndo(items), undoKeys(items)
	}
	n, err := b.Apply(ctx, gate)
	if err != nil {
		return nil, 0, nil, nil, fmt.Errorf("error applying the batch after key %s up to key %s: %w", cursorText(cursor), string(b.Cursor), err)
	}
	if m.Reversible && b.Changes > 0 {
		if err := b.Settle(ctx, gate, items, n); errors.Is(err, plan.ErrUnaccounted) {
			return nil, 0, nil, nil, &pgdb.Conflict{What: fmt.Sprintf("the batch after key %s was rolled back to be retried: %v", cursorText(cursor), err)}
		} else if err != nil {
			return nil, 0, nil, nil, err
		}
	}
	if n > int64(b.Changes) || (canary && n != int64(b.Changes)) {
		return nil, 0, nil, nil, refuse(bftype.ReasonFailed, bftype.ExitPartial,
			"The Apply query does not do what the transform intends; fix it and rebuild.",
			"The batch ending at key %s changed %d rows but the transform meant to change %d; it was rolled back.", b.Cursor, n, b.Changes)
	}
	return b, n, undo, keys, nil
}

// Validate runs the manifest's checks; each must return its expected value.
func Validate(ctx context.Context, conn *pgx.Conn, m *bftype.Manifest) error {
	results, err := RunChecks(ctx, conn, m)
	if err != nil {
		return err
	}
	if r := failing(results); r != nil {
		return r
	}
	return nil
}

// CheckResult is what one of the manifest's checks returned. The results
// before the first write and after the last are kept in the audit log.
type CheckResult struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Equals string `json:"equals"`
	Got    string `json:"got"`
	Holds  bool   `json:"holds"`
}

// RunChecks runs the manifest's checks and returns what each returned. A
// check that cannot run is a refusal; one that returns another value is a
// result that does not hold.
func RunChecks(ctx context.Context, conn *pgx.Conn, m *bftype.Manifest) ([]CheckResult, error) {
	results := make([]CheckResult, 0, len(m.Checks))
	for _, c := range m.Checks {
		got, err := singleValue(ctx, conn, c.Query)
		if err != nil && pgdb.Classify(err) == pgdb.Permission {
			return nil, refuse(bftype.ReasonPermission, bftype.ExitPermission, "Use a login that may read the tables the checks read (the runner).",
				"Check %s may not run as this login: %s.", c.Name, pgdb.ErrorSentence(err))
		}
		if err != nil {
			return nil, refuse(bftype.ReasonValidation, bftype.ExitValidation, "Fix the check's query in backfill.yaml.",
				"Check %s failed to run: %s.", c.Name, pgdb.ErrorSentence(err))
		}
		results = append(results, CheckResult{Name: c.Name, Query: c.Query, Equals: c.Equals, Got: got, Holds: got == c.Equals})
	}
	return results, nil
}

// Hold reports whether every check holds.
func Hold(results []CheckResult) bool { return failing(results) == nil }

// failing is the refusal for the first check that does not hold, or nil.
func failing(results []CheckResult) *bftype.Refusal {
	for _, c := range results {
		if !c.Holds {
			return refuse(bftype.ReasonValidation, bftype.ExitValidation, "Investigate the data before anything else runs.",
				"Check %s returned %q after the run, not %q.", c.Name, c.Got, c.Equals)
		}
	}
	return nil
}

// failed stops the run after a batch error that retrying cannot fix.
func (r *runner) failed(ctx context.Context, l *lane, err error, class pgdb.Class) error {
	var refusal *bftype.Refusal
	where := r.where(l)
	switch {
	case errors.As(err, &refusal):
		return r.stop(ledger.StatusFailed, refusal.Reason, refusal.Code, refusal.Next, "%s", refusal.Msg)
	case ctx.Err() != nil:
		return r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
			"Rerun the same binary to resume from the last committed batch.", "interrupted during %s; it was rolled back", where)
	case class == pgdb.Permission:
		return r.stop(ledger.StatusFailed, bftype.ReasonPermission, bftype.ExitPermission,
			"Grant the runner login what the backfill's queries need, then rerun to resume.",
			"%s was refused a privilege and rolled back: %s", where, pgdb.ErrorSentence(err))
	case errors.Is(err, ledger.ErrLaneMoved):
		return r.stop(ledger.StatusFailed, bftype.ReasonFailed, bftype.ExitPartial,
			"Make sure only one copy of the binary runs, then rerun it: it resumes after the last committed batch.",
			"%s was rolled back: %s", where, err)
	}
	msg := fmt.Sprintf("%s failed and was rolled back: %s", where, pgdb.ErrorSentence(err))
	if d := pgdb.Detail(err); d != "" {
		msg += " (" + d + ")"
	}
	return r.stop(ledger.StatusFailed, bftype.ReasonFailed, bftype.ExitPartial,
		"Fix the data or the backfill, then rerun the same binary: it resumes after the last committed batch.", "%s", msg)
}

// stop records how a run ended and returns the matching refusal.
func (r *runner) stop(status string, reason bftype.StopReason, code bftype.ExitCode, next, format string, args ...any) error {
	msg := strings.TrimSuffix(fmt.Sprintf(format, args...), ".")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	refusal := refuse(reason, code, next, "Run %d stopped (%s): %s.", r.run.ID, status, msg)
	if err := ledger.Finish(ctx, r.conn, r.run.ID, status, string(reason), msg); err != nil {
		// A second Ctrl-C or a lost connection leaves r.conn unusable:
		// record the stop on a fresh connection.
		if rerr := r.reconnectForRecord(ctx); rerr != nil {
			refusal.Msg += fmt.Sprintf(" (The stop could not be recorded in the ledger: %v.)", err)
		} else if err := ledger.Finish(ctx, r.conn, r.run.ID, status, string(reason), msg); err != nil {
			refusal.Msg += fmt.Sprintf(" (The stop could not be recorded in the ledger: %v.)", err)
		}
	}
	r.log.Error("run stopped", "event", "stop", "status", status, "stop_reason", string(reason), "message", msg,
		"scanned", r.scanned, "changed", r.changed, "batches", r.batches)
	if r.hooks.Stopped != nil {
		r.hooks.Stopped(r.run.ID, status, msg)
	}
	return refusal
}

// waitKind names a failed batch's wait: a lock wait when the batch timed
// out waiting for a lock (55P03), a reconnect when the connection was lost,
// a retry otherwise.
func waitKind(err error, class pgdb.Class) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "55P03":
		return "lock_wait"
	case class == pgdb.Reconnect:
		return "reconnect"
	}
	return "retry"
}
