// How a run ends: the checks and the reconciliation after its last batch,
// and the record of a stop.

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

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
	if err := ledger.Append(bg, r.conn, r.run.ID, ledger.EventValidated, ledger.Validated{When: "after", Checks: results, Hold: Hold(results)}); err != nil {
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
	return ledger.Append(ctx, r.conn, r.run.ID, ledger.EventReconciled, rec)
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

// Reconciliation is the ledger's type of a reconciled event.
type Reconciliation = ledger.Reconciliation
