package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/plan"
)

// runBatches applies the batches in key order from the run's checkpoint,
// each batch committing its write, checkpoint and audit event together.
func runBatches(ctx context.Context, conn *pgx.Conn, job *Job, run *ledger.Run, resumed bool, matched int64, hooks Hooks) (*Result, error) {
	m := job.Manifest
	cursor := run.Cursor
	scanned, changed, batches := run.Scanned, run.Changed, run.Batches
	for {
		if ctx.Err() != nil {
			return stop(conn, run, ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
				"Stopped by a signal between batches; rerun the same binary to resume.", "interrupted after %d batches", batches)
		}
		size := m.Batch.Size
		canary := batches == 0
		if canary {
			size = m.Batch.Canary
		}
		var b *plan.Batch
		var n int64
		err := pgdb.WithTx(ctx, conn, func(tx pgx.Tx) error {
			var err error
			if b, n, err = applyBatch(ctx, tx, job, run.ID, cursor, size, canary); err != nil || b == nil {
				return err
			}
			return ledger.Append(ctx, tx, run.ID, "batch", map[string]any{"batch": batches + 1, "cursor": b.Cursor,
				"scanned": b.Scanned, "intended": b.Changes, "changed": n, "canary": canary})
		})
		if err != nil {
			return stopOnError(ctx, conn, run, err, batches)
		}
		if b == nil {
			break
		}
		cursor, scanned, changed, batches = b.Cursor, scanned+int64(b.Scanned), changed+n, batches+1
		if hooks.Progress != nil {
			hooks.Progress(Progress{RunID: run.ID, Batch: batches, Scanned: scanned, Changed: changed, Matched: matched})
		}
		if b.Last {
			break
		}
	}
	if err := validate(ctx, conn, m); err != nil {
		var r *bftype.Refusal
		if errors.As(err, &r) {
			return stop(conn, run, ledger.StatusFailedValidation, r.Reason, r.Code, r.Next, "%s", r.Msg)
		}
		return nil, err
	}
	if err := ledger.Finish(context.WithoutCancel(ctx), conn, run.ID, ledger.StatusCompleted, "", ""); err != nil {
		return nil, err
	}
	final, err := ledger.GetRun(context.WithoutCancel(ctx), conn, run.ID)
	return &Result{Run: final, Resumed: resumed}, err
}

// applyBatch reads one page, checks it, writes it and records the checkpoint.
func applyBatch(ctx context.Context, tx pgx.Tx, job *Job, runID int64, cursor json.RawMessage, size int, canary bool) (*plan.Batch, int64, error) {
	m := job.Manifest
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d",
		m.Batch.LockTimeoutDuration().Milliseconds(), m.Batch.StatementTimeoutDuration().Milliseconds())); err != nil {
		return nil, 0, fmt.Errorf("error setting batch timeouts: %w", err)
	}
	b, err := job.Plan.Next(ctx, tx, cursor, size)
	if err != nil || b == nil {
		return nil, 0, err
	}
	if len(m.Target.Tenants) > 0 {
		if err := tenantsAllowed(b.Tenants, b.Cursor, m.Target.Tenants); err != nil {
			return nil, 0, err
		}
	}
	n, err := b.Apply(ctx, tx)
	if err != nil {
		return nil, 0, fmt.Errorf("error applying the batch after key %s: %w", string(cursor), err)
	}
	if n > int64(b.Changes) || (canary && n != int64(b.Changes)) {
		return nil, 0, refuse(bftype.ReasonFailed, bftype.ExitPartial,
			"The Apply query does not do what the transform intends; fix it and rebuild.",
			"The batch ending at key %s changed %d rows but the transform meant to change %d; it was rolled back.", b.Cursor, n, b.Changes)
	}
	if err := ledger.Progress(ctx, tx, runID, b.Cursor, int64(b.Scanned), n); err != nil {
		return nil, 0, err
	}
	return b, n, nil
}

// validate runs the manifest's checks after the last batch.
func validate(ctx context.Context, conn *pgx.Conn, m *bftype.Manifest) error {
	for _, c := range m.Checks {
		got, err := singleValue(ctx, conn, c.Query)
		if err != nil {
			return refuse(bftype.ReasonValidation, bftype.ExitValidation, "Fix the check's query in backfill.yaml.",
				"Check %s failed to run: %v.", c.Name, err)
		}
		if got != c.Equals {
			return refuse(bftype.ReasonValidation, bftype.ExitValidation, "Investigate the data before anything else runs.",
				"Check %s returned %q after the run, not %q.", c.Name, got, c.Equals)
		}
	}
	return nil
}

func stopOnError(ctx context.Context, conn *pgx.Conn, run *ledger.Run, err error, batches int64) (*Result, error) {
	var r *bftype.Refusal
	if errors.As(err, &r) {
		return stop(conn, run, ledger.StatusFailed, r.Reason, r.Code, r.Next, "%s", r.Msg)
	}
	if ctx.Err() != nil {
		return stop(conn, run, ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
			"Rerun the same binary to resume from the last committed batch.", "Interrupted during batch %d; it was rolled back", batches+1)
	}
	return stop(conn, run, ledger.StatusFailed, bftype.ReasonFailed, bftype.ExitPartial,
		"Fix the cause, then rerun the same binary: it resumes after the last committed batch.",
		"Batch %d failed and was rolled back: %s", batches+1, pgdb.ErrorSentence(err))
}

// stop records how a run ended and returns the matching refusal.
func stop(conn *pgx.Conn, run *ledger.Run, status string, reason bftype.StopReason, code bftype.ExitCode, next, format string, args ...any) (*Result, error) {
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := refuse(reason, code, next, "Run %d stopped (%s): %s", run.ID, status, msg)
	if err := ledger.Finish(ctx, conn, run.ID, status, string(reason), msg); err != nil {
		r.Msg += fmt.Sprintf(" (The stop could not be recorded in the ledger: %v.)", err)
	}
	final, _ := ledger.GetRun(ctx, conn, run.ID)
	return &Result{Run: final}, r
}
