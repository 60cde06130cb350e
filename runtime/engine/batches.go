package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

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
		if o.control {
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
	// control: the ledger refused the batch because the run was paused or
	// cancelled while it was in flight; nothing committed, and the next
	// step obeys the control.
	control bool
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
		if r.controlled(ctx, l, err) {
			return outcome{control: true}
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

// controlled reports whether err is the ledger refusing a batch of a run
// paused or cancelled while the batch was in flight (a page read after the
// pause, or a record after the cancel): the batch rolled back, and the run
// obeys the control at its next step instead of failing.
func (r *runner) controlled(ctx context.Context, l *lane, err error) bool {
	if !ledger.IsCode(err, ledger.CodePaused) && !ledger.IsCode(err, ledger.CodeFinal) {
		return false
	}
	conn, cerr := r.laneConn(ctx, l)
	if cerr != nil {
		return false
	}
	c, cerr := ledger.Control(ctx, conn, r.run.ID)
	return cerr == nil && c != ledger.ControlRun
}
