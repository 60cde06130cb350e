package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/plan"
)

// RevertResult is a finished revert, or a preview of one. A finished
// revert's counts are those of the whole revert run, across resumes.
type RevertResult struct {
	Run        *ledger.Run // the revert run; nil for a preview
	Target     int64       // the run reverted
	Images     int64       // rows with before-images
	Restorable int64       // rows that still held what the run wrote
	Restored   int64       // rows written back
	Skipped    []ledger.Skipped
}

// PreviewRevert counts, without writing, which rows a revert of run target
// would restore and which it would leave alone. It reads through the
// ledger's backfill.peek (RevertRead locks its rows), each page of images
// in a transaction of its own that is rolled back, so no lock outlives it.
func PreviewRevert(ctx context.Context, conn *pgx.Conn, job *Job, target int64) (*RevertResult, error) {
	if _, err := ledger.Check(ctx, conn); err != nil {
		return nil, err
	}
	if _, err := revertTarget(ctx, conn, job, target); err != nil {
		return nil, err
	}
	res := &RevertResult{Target: target}
	var after int64
	for {
		var page *ledger.UndoBatch
		var r *plan.RevertResult
		err := func() error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return fmt.Errorf("error beginning the preview: %w", err)
			}
			defer tx.Rollback(context.WithoutCancel(ctx))
			if page, err = ledger.NextUndo(ctx, tx, target, after); err != nil || page == nil {
				return err
			}
			r, err = job.Plan.Revert(ctx, ledger.NewPeek(conn, tx), undoItems(page.Items), false)
			return err
		}()
		if err != nil || page == nil {
			if err != nil {
				return nil, err
			}
			return res, nil
		}
		res.add(int64(len(page.Items)), r)
		after = page.Batch
	}
}

func (res *RevertResult) add(images int64, r *plan.RevertResult) {
	res.Images += images
	res.Restorable += int64(r.Restorable)
	res.Restored += r.Restored
	for _, s := range r.Skipped {
		cur, _ := json.Marshal(s.Current)
		if s.Current == nil {
			cur = nil
		}
		res.Skipped = append(res.Skipped, ledger.Skipped{Key: s.Key, Why: s.Why, Current: cur})
	}
}

func undoItems(page []ledger.Undo) []plan.UndoItem {
	items := make([]plan.UndoItem, len(page))
	for i, u := range page {
		items[i] = plan.UndoItem{Key: u.Key, Before: u.Before, After: u.After}
	}
	return items
}

// revertTarget checks that run target is a run of this binary's backfill
// that can be reverted.
func revertTarget(ctx context.Context, conn *pgx.Conn, job *Job, target int64) (*ledger.Run, error) {
	next := "Pass --run with a run of this backfill that wrote rows (backfill runs lists them)."
	if !job.Plan.Reversible() || !job.Manifest.Reversible {
		return nil, refuse(bftype.ReasonNotReversible, bftype.ExitUsage,
			"Only a backfill built with reversible: true and a RevertRead query keeps before-images.",
			"%s cannot be reverted: it keeps no before-images.", job.Name)
	}
	run, err := ledger.GetRun(ctx, conn, target)
	if ledger.IsNotFound(err) {
		return nil, refuse(bftype.ReasonNotReversible, bftype.ExitUsage, next, "There is no run %d in this ledger.", target)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case run.RunSignature != job.RunSignature || run.Purpose != approval.PurposeExecute:
		return nil, refuse(bftype.ReasonNotReversible, bftype.ExitUsage, next, "Run %d is not an execution of this backfill.", target)
	case run.Status == ledger.StatusRunning:
		return nil, refuse(bftype.ReasonNotReversible, bftype.ExitUsage, "Let it finish, or cancel it first.", "Run %d is still running.", target)
	case run.Status == ledger.StatusRefused:
		return nil, refuse(bftype.ReasonNotReversible, bftype.ExitUsage, next, "Run %d was refused before it wrote anything; there is nothing to revert.", target)
	}
	return run, nil
}

// Revert writes back the before-images of run target, in batches, gated
// like an execution: the approvals must name the revert of that run.
func Revert(ctx context.Context, conn *pgx.Conn, job *Job, target int64, op Operator, hooks Hooks, opts Options) (*RevertResult, error) {
	opts = opts.withDefaults()
	p, err := newPreflight(ctx, conn, job, approval.RevertPurpose(target))
	if err != nil {
		return nil, err
	}
	job = p.job
	base := p.runRecord(op)
	var images int64
	steps := []step{
		{"environment", p.checkEnvironment, func() string { return fmt.Sprintf("database %s, environment %s", p.id.Database, p.env) }},
		{"target_run", func(ctx context.Context) error {
			if _, err := revertTarget(ctx, conn, job, target); err != nil {
				return err
			}
			images, err = ledger.CountUndo(ctx, conn, target)
			return err
		}, func() string { return fmt.Sprintf("run %d kept the images of %d rows it wrote", target, images) }},
		{"approval", func(ctx context.Context) error { return p.checkApprovals(ctx, time.Now()) }, p.approvalDetail},
		{"run_once", p.checkRunOnce, p.runOnceDetail},
		{"lock", p.checkHeld, func() string { return "no live session holds the revert of run " + strconv.FormatInt(target, 10) }},
		{"schema", p.checkSchema, p.schemaDetail},
	}
	if err := p.check(ctx, base, hooks, steps); err != nil {
		return nil, err
	}
	p.matched = images
	base.ApprovalIDs, base.Matched = p.verdict.IDs(), &images
	run, resumed, err := startRun(ctx, conn, base, p)
	if err != nil {
		return nil, err
	}
	if hooks.Started != nil {
		hooks.Started(run.ID, resumed)
	}
	matched := images
	if run.Matched != nil {
		matched = *run.Matched // the images the revert started with, kept across resumes
	}
	r := &runner{job: job, conn: conn, run: run, hooks: hooks, opts: opts, log: opts.Logger.With("run_id", run.ID), matched: matched,
		cursor: run.Cursor, scanned: run.Scanned, changed: run.Changed, batches: run.Batches, meter: newMeter(time.Now(), run.Scanned, meterWindow)}
	r.log.Info("run started", "event", "start", "resumed", resumed, "purpose", run.Purpose, "cursor", string(run.Cursor), "matched", matched)
	if r.prepared, err = ledger.PrepareRun(ctx, conn, run.ID, job.Statements); err != nil {
		return nil, err
	}
	return r.revertBatches(ctx, target)
}

// revertBatches writes back the before-images of run target one batch of
// images at a time, after the last batch a previous process of this revert
// committed, held to max_rows_per_second like a run (the rows it reads are
// the images). Its result counts the whole revert run, every process's
// batches.
func (r *runner) revertBatches(ctx context.Context, target int64) (*RevertResult, error) {
	res := &RevertResult{Target: target}
	var after int64
	if len(r.cursor) > 0 {
		_ = json.Unmarshal(r.cursor, &after)
	}
	for {
		if stopped(r.opts.Graceful) || ctx.Err() != nil {
			return nil, r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
				"Rerun the same revert to resume from the last committed batch.", "stopped by a signal after %d batches", r.batches)
		}
		began := time.Now()
		var page *ledger.UndoBatch
		var out *plan.RevertResult
		try := func() error {
			return pgdb.WithTx(ctx, r.conn, func(tx pgx.Tx) error {
				m := r.job.Manifest
				if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d",
					m.Batch.LockTimeoutDuration().Milliseconds(), m.Batch.StatementTimeoutDuration().Milliseconds())); err != nil {
					return err
				}
				var err error
				// The ledger gives the images after the revert's checkpoint,
				// and lets the batch write only their keys.
				if page, err = ledger.NextRevertUndo(ctx, tx, r.run.ID); err != nil || page == nil {
					return err
				}
				gate := ledger.Gate{Tx: tx, RunID: r.run.ID, Prepared: r.prepared}
				if out, err = r.job.Plan.Revert(ctx, gate, undoItems(page.Items), true); err != nil {
					return err
				}
				var skipped RevertResult
				skipped.add(0, out)
				if err := ledger.RecordSkipped(ctx, tx, r.run.ID, skipped.Skipped); err != nil {
					return err
				}
				var from json.RawMessage
				if after > 0 {
					from = json.RawMessage(strconv.FormatInt(after, 10))
				}
				_, changed, err := ledger.RecordBatch(ctx, tx, ledger.BatchRecord{RunID: r.run.ID, From: from,
					Cursor: json.RawMessage(strconv.FormatInt(page.Batch, 10)), Scanned: len(page.Items), Intended: out.Restorable,
					Size: len(page.Items), Attempts: 1, DurationMS: ms(time.Since(began)), Kind: "revert_batch",
					Event: map[string]any{"reverted_run": target, "of_batch": page.Batch, "images": len(page.Items),
						"restored": out.Restored, "skipped": skipped.Skipped}})
				if err == nil && changed != out.Restored {
					err = fmt.Errorf("the database counted %d rows written by the revert batch of image batch %d, but the revert reported %d", changed, page.Batch, out.Restored)
				}
				return err
			})
		}
		if err := r.retryRevert(ctx, after, try); err != nil {
			return nil, err
		}
		if page == nil {
			break
		}
		res.add(int64(len(page.Items)), out)
		after, r.batches = page.Batch, r.batches+1
		r.scanned, r.changed = r.scanned+int64(len(page.Items)), r.changed+out.Restored
		p := r.progressed()
		took := time.Since(began)
		r.log.Info("batch committed", "event", "batch", "batch", r.batches, "of_batch", page.Batch, "scanned", len(page.Items),
			"intended", out.Restorable, "changed", out.Restored, "duration_ms", ms(took),
			"run_scanned", p.Scanned, "matched", p.Matched, "rows_per_second", math.Round(p.Rate), "eta_s", math.Round(p.ETA.Seconds()))
		r.throttle(ctx, len(page.Items), took)
		r.meter.add(time.Now(), r.scanned)
	}
	return r.finishRevert(context.WithoutCancel(ctx), res)
}

// retryRevert runs one revert batch, retrying it like a run's batch: a lock
// or statement timeout, a deadlock or a serialization failure backs off and
// tries again, a lost connection reconnects (taking the lock again), for up
// to MaxRetryTime; anything else stops the revert, which a rerun resumes.
func (r *runner) retryRevert(ctx context.Context, after int64, try func() error) error {
	var first time.Time
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return nil
		}
		if first.IsZero() {
			first = time.Now()
		}
		var refusal *bftype.Refusal
		if errors.As(err, &refusal) {
			return err
		}
		where := fmt.Sprintf("the revert batch after image batch %d", after)
		class := pgdb.Classify(err)
		if ctx.Err() != nil || class == pgdb.Stop || class == pgdb.Permission {
			return r.failed(ctx, &lane{cursor: r.cursor}, err, class)
		}
		if time.Since(first) > r.opts.MaxRetryTime {
			return r.stop(ledger.StatusPartial, bftype.ReasonFailed, bftype.ExitPartial,
				"Fix the cause, then rerun the same revert: it resumes after the last committed batch.",
				"%s kept failing for %s (%d attempts); last error: %s", where, r.opts.MaxRetryTime, attempt, pgdb.ErrorSentence(err))
		}
		wait := backoff(attempt - 1)
		r.log.Warn("batch failed, retrying", "event", "backoff", "cursor", after, "attempt", attempt, "class", class.String(),
			"error", pgdb.ErrorSentence(err), "wait_ms", ms(wait))
		if !sleep(ctx, r.opts.Graceful, wait) {
			return r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
				"Rerun the same revert to resume from the last committed batch.", "stopped by a signal while retrying %s", where)
		}
		if class == pgdb.Reconnect {
			if err := r.reconnect(ctx); err != nil {
				r.log.Warn("reconnect failed", "event", "backoff", "error", pgdb.ErrorSentence(err))
			}
		}
	}
}

// finishRevert records the revert as completed and counts it whole: the
// images read, rows restored and rows left alone by every process that ran
// it, not only this one.
func (r *runner) finishRevert(ctx context.Context, res *RevertResult) (*RevertResult, error) {
	if err := ledger.Finish(ctx, r.conn, r.run.ID, ledger.StatusCompleted, "", ""); err != nil {
		return nil, err
	}
	r.log.Info("run completed", "event", "finish", "status", ledger.StatusCompleted, "scanned", r.scanned, "changed", r.changed, "batches", r.batches)
	var err error
	if res.Skipped, err = ledger.SkippedOf(ctx, r.conn, r.run.ID); err != nil {
		return nil, err
	}
	batches, err := ledger.Batches(ctx, r.conn, r.run.ID)
	if err != nil {
		return nil, err
	}
	res.Restorable = 0
	for _, b := range batches {
		res.Restorable += int64(b.Intended)
	}
	if res.Run, err = ledger.GetRun(ctx, r.conn, r.run.ID); err != nil {
		return nil, err
	}
	res.Images, res.Restored = res.Run.Scanned, res.Run.Changed
	return res, nil
}
