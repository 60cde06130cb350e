package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// preflight is the state the checks build up.
type preflight struct {
	job          *Job
	conn         *pgx.Conn
	id           pgdb.Identity
	env          string
	verdict      approval.Verdict
	matched      int64
	resuming     *ledger.Run
	resumeLanes  int // lanes of the run being resumed; 0: one lane
	purpose      string
	checksBefore []CheckResult // the manifest's checks before the first write
}

func refuse(reason bftype.StopReason, code bftype.ExitCode, next, format string, args ...any) *bftype.Refusal {
	return bftype.Refuse(reason, code, next, format, args...)
}

// resolve points the preflight, and returns, the job as it applies to the
// ledger's environment: with targets: in the manifest, its Target is that
// environment's entry. A job for another environment is kept as it is and
// checkEnvironment refuses it.
func (p *preflight) resolve() *Job {
	if m, ok := p.job.Manifest.Resolve(p.env); ok && m != p.job.Manifest {
		j := *p.job
		j.Manifest = m
		p.job = &j
	}
	return p.job
}

// checkEnvironment verifies the target: ledger environment, database name,
// host, cluster identity and canary value.
func (p *preflight) checkEnvironment(ctx context.Context) error {
	t := p.job.Manifest.Target
	next := "Connect to the database named in the manifest's target, or rebuild the backfill for this one."
	switch {
	case len(p.id.Hosts) > 1:
		return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment,
			"Connect with a connection string that names one host and port, the target's.",
			"The connection string names %d hosts (%s); --execute and revert connect to exactly one, so that the target check knows which server they reached.",
			len(p.id.Hosts), strings.Join(p.id.Hosts, ", "))
	case p.env != t.Environment:
		return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, next,
			"This database's ledger says it is environment %q, but the backfill targets %s.", p.env, p.job.Manifest.EnvironmentsText())
	case p.id.Database != t.Database:
		return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, next,
			"Connected to database %q, but the backfill targets %q.", p.id.Database, t.Database)
	case t.Host != "" && !p.id.Reached(pgdb.ParsePin(t.Host)):
		return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, next,
			"Connected to %s, but the backfill targets %q (%s; without a port, target.host means port %d).", p.id.Where(), t.Host, pgdb.ParsePin(t.Host), pgdb.DefaultPort)
	case t.SystemIdentifier != "" && t.SystemIdentifier != p.id.SystemIdentifier:
		return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, next,
			"This PostgreSQL cluster's system identifier is %s, but the backfill targets %s.", p.id.SystemIdentifier, t.SystemIdentifier)
	}
	if t.Canary != nil {
		got, err := singleValue(ctx, p.conn, t.Canary.Query)
		if err != nil {
			return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, "Fix target.canary.query or the database.",
				"The canary query failed: %v.", err)
		}
		if got != t.Canary.Equals {
			return refuse(bftype.ReasonEnvironment, bftype.ExitEnvironment, next,
				"The canary query returned %q, but the backfill expects %q.", got, t.Canary.Equals)
		}
	}
	return nil
}

// singleValue runs a one-value query read-only and returns it as text.
func singleValue(ctx context.Context, conn *pgx.Conn, query string) (string, error) {
	var out *string
	err := pgdb.ReadOnly(ctx, conn, 30*time.Second, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, valueSQL(query)).Scan(&out)
	})
	if err != nil {
		return "", err
	}
	if out == nil {
		return "NULL", nil
	}
	return *out, nil
}

// checkApprovals counts valid approvals of this binary's own digest.
func (p *preflight) checkApprovals(ctx context.Context, now time.Time) error {
	approvals, err := ledger.ApprovalsFor(ctx, p.conn, p.job.Digest)
	if err != nil {
		return err
	}
	approvers, err := ledger.Approvers(ctx, p.conn)
	if err != nil {
		return err
	}
	m := p.job.Manifest
	p.verdict = approval.Evaluate(approvals, approvers, approval.Want{
		Backfill: p.job.Name, Digest: p.job.Digest, RunSignature: p.job.RunSignature, Environment: p.env,
		Purpose: p.purpose, Params: p.job.params(), Required: approval.Required(m.Risk), NeedReason: m.Risk == "high",
		Operator: p.id.SessionUser, Now: now, EvidenceFrom: m.EvidenceFrom(p.env, p.purpose),
		Statements: approval.Hashes(p.job.Statements),
	})
	if !p.verdict.Enough() {
		next := fmt.Sprintf("Ask reviewers to approve digest sha256:%s (see docs/reviewing.md).", p.job.Digest)
		if values := p.job.Plan.Params(); len(values) > 0 {
			names := make([]string, 0, len(values))
			for n := range values {
				names = append(names, n)
			}
			sort.Strings(names)
			var flags []string
			for _, n := range names {
				flags = append(flags, "--param "+shellWord(n+"="+paramText(values[n])))
			}
			next = fmt.Sprintf("Ask reviewers to approve digest sha256:%s with these values: backfill approve BINARY %s (see docs/reviewing.md, section 6a).",
				p.job.Digest, strings.Join(flags, " "))
		}
		if from := m.EvidenceFrom(p.env, p.purpose); from != "" {
			next += fmt.Sprintf(" Its manifest promotes from %s: each approval here carries the archive of this binary's completed %s run (backfill archive RUN there; backfill approve BINARY --evidence ARCHIVE).", from, from)
		}
		return refuse(bftype.ReasonNotApproved, bftype.ExitNotApproved, next, "This binary is not approved: %s.", p.verdict.Summary())
	}
	return nil
}

// checkRunOnce refuses a signature that already completed and finds the
// unfinished run to resume.
func (p *preflight) checkRunOnce(ctx context.Context) error {
	done, err := ledger.Ended(ctx, p.conn, p.job.RunSignature, p.purpose, p.job.params())
	if err != nil {
		return err
	}
	if done != nil {
		when := done.UpdatedAt
		if done.FinishedAt != nil {
			when = *done.FinishedAt
		}
		how := map[string]string{
			ledger.StatusCompleted:        "already completed",
			ledger.StatusCancelled:        "was cancelled by an operator",
			ledger.StatusFailedValidation: "failed its checks after its last batch",
		}[done.Status]
		if values := p.job.Plan.Params(); len(values) > 0 {
			return refuse(bftype.ReasonAlreadyDone, bftype.ExitAlreadyDone,
				"A backfill runs once per parameter values; to change more rows, run it with new values that reviewers approve (--param).",
				"Run %d of this backfill (signature %s) with parameters %s %s at %s.", done.ID, p.job.RunSignature[:12], values, how, when.Format(time.RFC3339))
		}
		return refuse(bftype.ReasonAlreadyDone, bftype.ExitAlreadyDone,
			"A backfill runs once; to change more rows, write and approve a new one.",
			"Run %d of this backfill (signature %s) %s at %s.", done.ID, p.job.RunSignature[:12], how, when.Format(time.RFC3339))
	}
	p.resuming, err = ledger.Unfinished(ctx, p.conn, p.job.RunSignature, p.purpose, p.job.params())
	if err != nil || p.resuming == nil {
		return err
	}
	lanes, err := ledger.Lanes(ctx, p.conn, p.resuming.ID)
	p.resumeLanes = len(lanes)
	return err
}

// checkHeld refuses to resume a run that a live session still holds. The
// ledger holds a run for the sessions of the process that started or
// resumed it (backfill.sessions), which no login outside the run can take
// or block, unlike an advisory lock; backfill.start_run checks it again
// in the transaction that resumes the run.
func (p *preflight) checkHeld(ctx context.Context) error {
	if p.resuming == nil || p.resuming.Status != ledger.StatusRunning {
		return nil
	}
	held, err := ledger.Held(ctx, p.conn, p.resuming.ID)
	if err != nil || !held {
		return err
	}
	return refuse(bftype.ReasonLocked, bftype.ExitLocked, "Wait for it to finish, or stop it; never run two at once.",
		"Another execution of this backfill is running: run %d, held by a live session of login %s.", p.resuming.ID, p.resuming.DBUser)
}

// startRefusal turns the ledger's refusal of a start (backfill.start_run
// checks approvals, run once and liveness again, by the database's rules)
// into the operator's refusal; any other error is returned as it is.
func startRefusal(err error, digest string) error {
	var r *bftype.Refusal
	switch {
	case errors.Is(err, ledger.ErrCancelled):
		r = refuse(bftype.ReasonCancelled, bftype.ExitInterrupted, "The run was cancelled through the ledger; it will not resume.",
			"The run was cancelled while no process ran it; the ledger ended it as cancelled.")
	case ledger.IsCode(err, ledger.CodeNotApproved):
		r = refuse(bftype.ReasonNotApproved, bftype.ExitNotApproved,
			fmt.Sprintf("Ask reviewers to approve digest sha256:%s with this version of bin/backfill (see docs/reviewing.md).", digest),
			"The database refused to start the run: %s.", ledger.Message(err))
	case ledger.IsCode(err, ledger.CodeAlreadyDone):
		r = refuse(bftype.ReasonAlreadyDone, bftype.ExitAlreadyDone, "A backfill runs once; to change more rows, write and approve a new one.",
			"The database refused to start the run: %s.", ledger.Message(err))
	case ledger.IsCode(err, ledger.CodeHeld), ledger.IsCode(err, ledger.CodeConflict), pgdb.IsUniqueViolation(err):
		r = refuse(bftype.ReasonLocked, bftype.ExitLocked, "Wait for the other run to finish, or stop it; never run two at once.",
			"The database refused to start the run: %s.", ledger.Message(err))
	default:
		return err
	}
	r.Err = err
	return r
}

// checkSchema prepares every statement a run may execute against the live
// schema, in a read-only transaction, and refuses naming each one that does
// not prepare.
func (p *preflight) checkSchema(ctx context.Context) error {
	var bad []Unprepared
	err := pgdb.ReadOnly(ctx, p.conn, p.job.Manifest.Batch.StatementTimeoutDuration(), func(tx pgx.Tx) error {
		var err error
		bad, err = Prepare(ctx, tx, p.statements())
		return err
	})
	if err != nil || len(bad) == 0 {
		return err
	}
	return p.schemaRefusal(ctx, bad)
}

func (p *preflight) statements() []bftype.Statement {
	return Statements(p.job.Statements, p.job.Manifest)
}

func (p *preflight) schemaDetail() string {
	return fmt.Sprintf("%d statements prepared against the live schema", len(p.statements()))
}

// schemaRefusal tells a statement that prepared in the latest saved dry-run
// of this binary (the schema changed since) from one no saved dry-run
// prepared (the query is what to fix).
func (p *preflight) schemaRefusal(ctx context.Context, bad []Unprepared) error {
	d, err := ledger.LatestDryRun(ctx, p.conn, p.job.Digest, p.job.params())
	if err != nil {
		return err
	}
	var rep struct {
		Prepared []string `json:"prepared"`
	}
	if d != nil {
		_ = json.Unmarshal(d.Report, &rep) // a report that cannot be read prepared nothing
	}
	for _, u := range bad {
		if !slices.Contains(rep.Prepared, Label(u.Statement)) {
			return refuse(bftype.ReasonSchema, bftype.ExitSchema,
				fixNext(p.job.Name, bad, "; a dry-run saved with --save before approval catches this"),
				"%s against the live schema, and no saved dry-run of this binary prepared it: %s.", doNot(bad, "does not prepare"), joinUnprepared(bad))
		}
	}
	return refuse(bftype.ReasonSchema, bftype.ExitSchema,
		fmt.Sprintf("The schema changed since dry-run %d (saved %s): update the backfill to it, rebuild and have it approved again.",
			d.ID, d.CreatedAt.UTC().Format(time.RFC3339)),
		"%s against the live schema: %s.", doNot(bad, fmt.Sprintf("prepared in dry-run %d but no longer does", d.ID)), joinUnprepared(bad))
}

// checkCounts counts the scope and holds it to expect.matched.
func (p *preflight) checkCounts(ctx context.Context) error {
	err := pgdb.ReadOnly(ctx, p.conn, p.job.Manifest.Batch.StatementTimeoutDuration(), func(tx pgx.Tx) error {
		var err error
		p.matched, err = p.job.Plan.Count(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	b := p.job.Manifest.Expect.Matched
	if p.resuming == nil && !b.Contains(p.matched) {
		return refuse(bftype.ReasonExpectBounds, bftype.ExitExpectBounds,
			"Check the data and the scope, or correct expect in backfill.yaml and rebuild.",
			"The scope holds %d rows, outside expect.matched %s.", p.matched, b)
	}
	return nil
}

// paramText spells a parameter value as --param takes it (a text[] as
// comma-separated values).
func paramText(v any) string {
	if list, ok := v.([]string); ok {
		return strings.Join(list, ",")
	}
	return fmt.Sprint(v)
}

// shellWord quotes s for a shell when it holds anything but plain characters.
func shellWord(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r == '=' || r == ',' || r == '-' || r == '_' || r == '.' || r == ':' || r == '+' ||
			r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
