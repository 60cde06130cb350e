package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// Result is a finished (or stopped) execution.
type Result struct {
	Run        *ledger.Run
	Resumed    bool
	Reconciled Reconciliation
}

// Execute runs the preflight and, if every check holds, the batches. A
// refusal is recorded in the ledger and returned as a *bftype.Refusal; the
// target tables are untouched.
func Execute(ctx context.Context, conn *pgx.Conn, job *Job, op Operator, hooks Hooks, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	p, err := newPreflight(ctx, conn, job, approval.PurposeExecute)
	if err != nil {
		return nil, err
	}
	job = p.job
	base := p.runRecord(op)
	steps := []step{
		{"environment", p.checkEnvironment, func() string {
			return fmt.Sprintf("database %s, environment %s, cluster %s", p.id.Database, p.env, p.id.SystemIdentifier)
		}},
		{"approval", func(ctx context.Context) error { return p.checkApprovals(ctx, time.Now()) }, p.approvalDetail},
		{"run_once", p.checkRunOnce, p.runOnceDetail},
		{"lock", p.checkHeld, func() string { return "no live session holds this run signature" }},
		{"schema", p.checkSchema, p.schemaDetail},
		{"expected_counts", p.checkCounts, func() string {
			return fmt.Sprintf("%d rows in scope, expect.matched %s", p.matched, job.Manifest.Expect.Matched)
		}},
		{"checks", p.runChecksBefore, p.checksDetail},
	}
	if err := p.check(ctx, base, hooks, steps); err != nil {
		return nil, err
	}
	base.ApprovalIDs, base.Matched = p.verdict.IDs(), &p.matched
	run, resumed, err := startRun(ctx, conn, base, p)
	if err != nil {
		return nil, err
	}
	if hooks.Started != nil {
		hooks.Started(run.ID, resumed)
	}
	matched := p.matched
	if run.Matched != nil {
		matched = *run.Matched // the count of the run's first preflight, kept across resumes
	}
	return runBatches(ctx, conn, job, run, resumed, matched, hooks, opts)
}

// runChecksBefore runs the manifest's checks before the first write (or the
// first write of a resume), so that their values before and after are both
// on record; a check that cannot run refuses before anything is written.
func (p *preflight) runChecksBefore(ctx context.Context) error {
	var err error
	p.checksBefore, err = RunChecks(ctx, p.conn, p.job.Manifest)
	return err
}

func (p *preflight) checksDetail() string {
	held := 0
	for _, c := range p.checksBefore {
		if c.Holds {
			held++
		}
	}
	return fmt.Sprintf("%d of %d checks hold before the first write (they must hold after the last)", held, len(p.checksBefore))
}

func (p *preflight) approvalDetail() string {
	var names []string
	for _, c := range p.verdict.Counted {
		names = append(names, c.Approver)
	}
	return fmt.Sprintf("%d distinct approvers (%s; %d required) for sha256:%s", p.verdict.Distinct, strings.Join(names, ", "), p.verdict.Required, p.job.Digest[:16])
}

func (p *preflight) runOnceDetail() string {
	if p.resuming != nil && p.resumeLanes > 0 {
		return fmt.Sprintf("resuming run %d (%s), each of its %d lanes after its own checkpoint", p.resuming.ID, p.resuming.Status, p.resumeLanes)
	}
	if p.resuming != nil {
		return fmt.Sprintf("resuming run %d (%s) after key %s", p.resuming.ID, p.resuming.Status, string(p.resuming.Cursor))
	}
	if len(p.job.Plan.Params()) > 0 {
		return "no earlier run of this signature with these parameter values"
	}
	return "no earlier run of this signature"
}

func (p *preflight) runRecord(op Operator) ledger.Run {
	params, _ := json.Marshal(op.Parameters)
	env := p.env
	return ledger.Run{Backfill: p.job.Name, Digest: p.job.Digest, RunSignature: p.job.RunSignature, Purpose: p.purpose,
		OSUser: op.OSUser, ClientHost: op.ClientHost, CodeVersion: p.job.CodeVersion, SourceCommit: p.job.SourceCommit,
		Environment: &env, Parameters: params, Params: p.job.params()}
}

// refused records a refusal in the ledger and returns it. A permission error
// becomes a refusal of its own.
func (p *preflight) refused(ctx context.Context, base ledger.Run, err error) error {
	var r *bftype.Refusal
	if !errors.As(err, &r) {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			return err
		}
		r = refuse(bftype.ReasonPermission, bftype.ExitPermission,
			"Grant this login the backfill_runner role (and the privileges the backfill's queries need).",
			"Login %s may not do what the run needs: %s.", p.id.SessionUser, pgErr.Message)
		r.Err = err
	}
	id, recErr := ledger.Refused(context.WithoutCancel(ctx), p.conn, base, string(r.Reason), r.Msg)
	if recErr != nil {
		r.Msg += fmt.Sprintf(" (The refusal could not be recorded in the ledger: %v.)", recErr)
	}
	r.RunID = id
	return r
}

// startRun records the run as started, or resumed, with its preflight. A new
// run records the scope count as matched; a resume keeps the count of the
// run's first preflight, so that matched, and the progress measured against
// it, never move under an operator (the count of this preflight is in the
// preflight event).
func startRun(ctx context.Context, conn *pgx.Conn, base ledger.Run, p *preflight) (*ledger.Run, bool, error) {
	var run *ledger.Run
	var resumed bool
	err := pgdb.WithTx(ctx, conn, func(tx pgx.Tx) error {
		var err error
		if run, resumed, err = ledger.Start(ctx, tx, base, p.job.Statements, approval.Required(p.job.Manifest.Risk)); err != nil {
			return err
		}
		return ledger.Append(ctx, tx, run.ID, ledger.EventPreflight, ledger.Preflight{Result: "passed", Database: p.id.Database,
			Environment: p.env, SystemIdentifier: p.id.SystemIdentifier, DBUser: p.id.SessionUser,
			ApprovalIDs: p.verdict.IDs(), Matched: p.matched, ChecksBefore: p.checksBefore})
	})
	if r := startRefusal(err, p.job.Digest); r != err {
		return nil, false, p.refused(ctx, base, r)
	}
	if err != nil {
		return nil, false, fmt.Errorf("error starting the run: %w", err)
	}
	// The session says which run it serves in pg_stat_activity, after
	// whatever name the operator gave it (PGAPPNAME).
	if _, err := conn.Exec(ctx, "SELECT set_config('application_name', current_setting('application_name') || ' run ' || $1::bigint, false)", run.ID); err != nil {
		return nil, false, fmt.Errorf("error naming the session after run %d: %w", run.ID, err)
	}
	return run, resumed, nil
}

// step is one check of a preflight, reported as it passes.
type step struct {
	name   string
	run    func(context.Context) error
	detail func() string
}

// newPreflight reads what every preflight starts from: the session's
// identity and the ledger's environment, and the job as it applies there.
// Execute and Revert share it, and check.
func newPreflight(ctx context.Context, conn *pgx.Conn, job *Job, purpose string) (*preflight, error) {
	p := &preflight{job: job, conn: conn, purpose: purpose}
	var err error
	if p.id, err = pgdb.ReadIdentity(ctx, conn); err != nil {
		return nil, err
	}
	if p.env, err = ledger.Check(ctx, conn); err != nil {
		return nil, err
	}
	p.resolve()
	return p, nil
}

// check runs the steps in order; the first that fails is recorded in the
// ledger as a refusal and returned, and nothing is written.
func (p *preflight) check(ctx context.Context, base ledger.Run, hooks Hooks, steps []step) error {
	for _, s := range steps {
		if err := s.run(ctx); err != nil {
			return p.refused(ctx, base, err)
		}
		hooks.check(s.name, s.detail())
	}
	return nil
}
