package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/plan"
)

const dryRunUsage = `Usage: %[1]s [flags]
       %[1]s --execute [--database-url URL]

Dry-run (the default): prepares every statement a run may execute (the
queries and the manifest's canary, checks and health query) against the
live schema, then runs the same selection and transform as a real run in
one READ ONLY snapshot (the scope count reads it on a second connection),
so nothing is written, and reports scanned, matched, will-change and
unchanged totals, rows of tenants outside target.tenants, sample diffs, an
ETA and the SQL a real run would execute. Exits %[3]d when a statement does
not prepare, %[4]d when rows of other tenants are in scope, %[2]d when a
count is outside the manifest's expect bounds.

With --execute it writes: a preflight checks the target, the approvals of
this binary's own digest, that this run has not completed, the lock, the
schema and the expected counts, refusing with its own exit code unless all
hold; then it applies the batches. docs/operating.md lists the exit codes.

A backfill that declares parameters (see info) needs their values, for the
dry-run and --execute alike: --param NAME=VALUE (repeatable) or
--params-file FILE; a missing or bad value exits %[5]d naming it. An
execution needs approvals of exactly those values, and runs once per values.

The connection comes from --database-url, else DATABASE_URL, else the libpq
PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ...).`

type dryRunFlags struct {
	url     string
	report  string
	samples int
	spots   []string
	save    bool
	execute bool
	exec    execFlags
	params  paramFlags
}

func dryRunCommand(ctx context.Context, b Binary, m *bftype.Manifest, args []string, stdout, stderr io.Writer) error {
	var top strings.Builder
	topUsage(b, &top)
	fs := newFlags(b.Name, top.String()+"\n"+strings.SplitN(fmt.Sprintf(dryRunUsage, b.Name, bftype.ExitExpectBounds, bftype.ExitSchema, bftype.ExitTenant, bftype.ExitUsage), "\n\n", 2)[1], stdout)
	var f dryRunFlags
	fs.StringVar(&f.url, "database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then PG* variables)")
	fs.StringVar(&f.report, "report", "", "also write the report as JSON to this file (-: to stdout, and the human report to stderr)")
	fs.IntVar(&f.samples, "samples", 5, "how many before/after samples to show")
	fs.StringArrayVar(&f.spots, "spot", nil, "also show the before/after of the row with this key, whether or not it is a sample (repeatable; adds to the manifest's report.spot_check)")
	fs.BoolVar(&f.save, "save", false, "also save the report in the ledger (needs the backfill_runner role)")
	fs.BoolVar(&f.execute, "execute", false, "write: run the preflight, then the batches (needs approvals; see docs/operating.md)")
	f.exec.register(fs, b.Name)
	f.params.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	values, err := f.params.resolve(m)
	if err != nil {
		return err
	}
	b.Plan = b.Plan.WithParams(values)
	if f.exec.lanes < 0 {
		return usageError{"--lanes must not be negative"}
	}
	if f.execute {
		if f.report != "" || f.save {
			return usageError{"--report and --save belong to the dry-run; run the dry-run without --execute"}
		}
		return execute(ctx, b, m, f, args, stdout, stderr)
	}
	if f.samples < 0 {
		return usageError{"--samples must not be negative"}
	}
	soft, cancel := softContext(ctx)
	defer cancel()
	rep, err := dryRun(soft, b, m, f)
	if bad := (*plan.BadSpotKey)(nil); errors.As(err, &bad) {
		return usageError{bad.Error()}
	}
	if err != nil {
		return err
	}
	m, _ = m.ResolveDatabase(rep.Database) // the target it read, for render and the tenants
	if f.report == "-" {                   // stdout carries the JSON alone, for a pipe
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			return fmt.Errorf("error writing report to stdout: %w", err)
		}
		stdout, f.report = stderr, ""
	}
	render(stdout, b, m, rep)
	if f.save {
		id, err := saveReport(ctx, f, b, rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nReport saved in the ledger as dry-run %d\n", id)
	}
	if f.report != "" {
		if err := writeJSON(f.report, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nReport written to %s\n", f.report)
	}
	if len(rep.OutsideTenants) > 0 {
		return bftype.Refuse(bftype.ReasonTenant, bftype.ExitTenant,
			"Move those rows out of the scope, or narrow the scope (or allow the tenant in target.tenants) and rebuild: a real run stops at the first batch that reads one.",
			"%s to tenants outside target.tenants %v: %s.", plural(outsideRows(rep.OutsideTenants), "row in scope belongs", "rows in scope belong"),
			m.Target.Tenants, tenantList(rep.OutsideTenants))
	}
	if len(rep.Violations) > 0 {
		return bftype.Refuse(bftype.ReasonExpectBounds, bftype.ExitExpectBounds,
			"Check the scope and the data, or correct expect in backfill.yaml and rebuild.",
			"%s.", joinSentences(rep.Violations))
	}
	return nil
}

// dryRunPageRows caps the LIMIT of a dry-run's page query; see dryRunPage.
const dryRunPageRows = 5000

// dryRunPage is the LIMIT a dry-run asks of the page query. A real run keeps
// its batches small to protect concurrent writers; a read-only walk locks
// nothing, so it reads larger pages, which saves the server a plan and a
// round trip per batch. It stays within ten batches, because the batch size
// is also the author's word on how wide a row is: memory follows the page.
func dryRunPage(batch int) int { return max(batch, min(dryRunPageRows, 10*batch)) }

// dryRun walks the whole scope in one read-only snapshot. The scope count
// reads the same snapshot on a second connection at the same time, so it no
// longer adds a pass of its own to the dry-run's time.
func dryRun(ctx context.Context, b Binary, m *bftype.Manifest, f dryRunFlags) (*bftype.Report, error) {
	digest, err := Digest()
	if err != nil {
		return nil, err
	}
	url, src := pgdb.Resolve(f.url)
	conn, err := pgdb.Connect(ctx, url, src, b.Name+" dry-run")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	server, err := pgdb.Describe(ctx, conn)
	if err != nil {
		return nil, err
	}
	all := m
	m, onTarget := m.ResolveDatabase(server.Database)
	rep := &bftype.Report{
		Backfill: b.Name, Apply: b.Apply, Digest: digest, RunSignature: b.RunSignature, Params: b.Plan.Params(), SourceCommit: b.SourceCommit,
		Database: server.Database, Server: server.Address + " (PostgreSQL " + server.Version + ")",
		StartedAt: time.Now().UTC(), Expect: m.Expect, BatchSize: m.Batch.Size, Statements: b.Statements,
		KeyName: b.Plan.Names().Key, CursorName: b.Plan.Names().Cursor, LimitName: b.Plan.Names().Limit, Start: b.Plan.Start(),
		TargetDatabase: targetDatabases(all), OffTarget: !onTarget,
	}
	timeout := m.Batch.StatementTimeoutDuration()
	var t *plan.Tally
	var walk, counting time.Duration // how long the walk and the scope count took
	err = pgdb.ReadOnly(ctx, conn, timeout, func(tx pgx.Tx) error {
		// JIT compiles each page query anew once a large page's estimated
		// cost crosses jit_above_cost; for a few thousand rows that costs
		// more than it saves.
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return fmt.Errorf("error turning off jit: %w", err)
		}
		if err := prepare(ctx, tx, b, m, rep); err != nil {
			return err
		}
		count, err := startCount(ctx, tx, b, url, src, timeout)
		if err != nil {
			return err
		}
		began := time.Now()
		t, err = b.Plan.Scan(ctx, tx, plan.ScanOpts{Page: dryRunPage(m.Batch.Size), Batch: m.Batch.Size, Canary: canarySize(m), Samples: f.samples,
			Tenants: m.Target.Tenants, GroupBy: groupBy(m), Spots: spotKeys(m, f.spots)})
		if err != nil {
			count.abandon()
			return err
		}
		walk = time.Since(began)
		rep.Counts.Matched, counting, err = count.wait(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("error during dry-run of %s: %w", b.Name, err)
	}
	tally(rep, t)
	rep.CanarySize = canarySize(m)
	rep.Duration = time.Since(rep.StartedAt)
	est := engine.EstimateRun(engine.EstimateInput{Scanned: t.Scanned, Changes: t.Changes, Batches: t.Batches,
		Lanes: engine.PlannedLanes(t.SplitKeys, engine.WantLanes(m.Batch.Lanes, f.exec.lanes)), Reversible: m.Reversible,
		MaxRowsPerSecond: m.Batch.MaxRowsPerSecond, Count: counting, Read: t.ReadTime, Transform: max(0, walk-t.ReadTime)})
	rep.Estimate, rep.ETA = &est, est.Total
	rep.Violations = violations(rep)
	return rep, nil
}

// prepare prepares every statement a run may execute against the live
// schema before anything is read, so a mistake in any of them (a column
// misspelt in Apply, a check on a table that is not there) stops the
// dry-run, before review and approval, instead of the --execute after them.
func prepare(ctx context.Context, tx pgx.Tx, b Binary, m *bftype.Manifest, rep *bftype.Report) error {
	statements := engine.Statements(b.Statements, m)
	bad, err := engine.Prepare(ctx, tx, statements)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return engine.UnpreparedRefusal(b.Name, bad)
	}
	for _, s := range statements {
		rep.Prepared = append(rep.Prepared, engine.Label(s))
	}
	return nil
}

// canarySize is the size of a real run's first batch.
func canarySize(m *bftype.Manifest) int {
	if m.Batch.Canary > 0 {
		return min(m.Batch.Size, m.Batch.Canary)
	}
	return m.Batch.Size
}

// scopeCount is the scope count of a dry-run, running on its own connection
// in a transaction that imported the walk's snapshot: it counts exactly the
// rows the walk sees, while the walk runs.
type scopeCount struct {
	plan   plan.Plan
	cancel context.CancelFunc
	done   chan countResult // nil: no second connection; count in the walk's transaction
}

type countResult struct {
	n    int64
	took time.Duration
	err  error
}

// startCount exports tx's snapshot and starts the count on a second
// connection that imports it. When the server refuses a second connection
// (too many connections, say) the count runs in tx after the walk instead:
// slower, but the same snapshot and the same number.
func startCount(ctx context.Context, tx pgx.Tx, b Binary, url string, src pgdb.Source, timeout time.Duration) (*scopeCount, error) {
	c := &scopeCount{plan: b.Plan, cancel: func() {}}
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("error exporting the dry-run's snapshot: %w", err)
	}
	conn, err := pgdb.Connect(ctx, url, src, b.Name+" dry-run count")
	if err != nil {
		return c, nil // the fallback: count in tx after the walk
	}
	cctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan countResult, 1)
	go func() {
		defer conn.Close(context.WithoutCancel(ctx))
		var r countResult
		r.err = pgdb.ReadOnly(cctx, conn, timeout, func(counting pgx.Tx) error {
			if _, err := counting.Exec(cctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
				return fmt.Errorf("error importing the dry-run's snapshot %q: %w", snapshot, err)
			}
			began := time.Now()
			var err error
			r.n, err = b.Plan.Count(cctx, counting)
			r.took = time.Since(began)
			return err
		})
		c.done <- r
	}()
	return c, nil
}

// wait returns the count and how long it took, counting in tx when no
// second connection was had.
func (c *scopeCount) wait(ctx context.Context, tx pgx.Tx) (int64, time.Duration, error) {
	defer c.cancel()
	if c.done == nil {
		began := time.Now()
		n, err := c.plan.Count(ctx, tx)
		return n, time.Since(began), err
	}
	r := <-c.done
	return r.n, r.took, r.err
}

// abandon stops the count and waits until its connection is closed.
func (c *scopeCount) abandon() {
	c.cancel()
	if c.done != nil {
		<-c.done
	}
}

// quoteLiteral quotes s as an SQL string literal. SET TRANSACTION SNAPSHOT
// takes no bind parameters.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// saveReport stores the report in the ledger on its own connection, so the
// dry-run's transaction stays read-only.
func saveReport(ctx context.Context, f dryRunFlags, b Binary, rep *bftype.Report) (int64, error) {
	url, src := pgdb.Resolve(f.url)
	conn, err := pgdb.Connect(ctx, url, src, b.Name+" dry-run")
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := ledger.Check(ctx, conn); err != nil {
		return 0, err
	}
	return ledger.SaveDryRun(ctx, conn, b.Name, rep.Digest, b.RunSignature, rep)
}

func tally(rep *bftype.Report, t *plan.Tally) {
	rep.Batches = t.Batches
	rep.Counts.Scanned = t.Scanned
	rep.Counts.WillChange = t.Changes
	rep.Counts.Unchanged = t.Scanned - t.Changes
	rep.Samples = t.Samples
	rep.FirstApply = t.FirstApply
	rep.FirstApplyBatch = t.FirstApplyBatch
	rep.SplitKeys = t.SplitKeys
	rep.OutsideTenants = t.OutsideTenants
	rep.Breakdown = t.Breakdown
	rep.Transitions = t.Transitions
	rep.Spots = t.Spots
}

// groupBy is the manifest's report.group_by.
func groupBy(m *bftype.Manifest) []string {
	if m.Report == nil {
		return nil
	}
	return m.Report.GroupBy
}

// spotKeys are the manifest's report.spot_check keys and then the --spot
// ones. A --spot value that is not JSON (abc rather than "abc") is a string.
func spotKeys(m *bftype.Manifest, flags []string) []json.RawMessage {
	var keys []json.RawMessage
	if m.Report != nil {
		keys = append(keys, m.Report.SpotCheck...)
	}
	for _, f := range flags {
		if json.Valid([]byte(f)) {
			keys = append(keys, json.RawMessage(f))
		} else {
			keys = append(keys, bftype.JSON(f))
		}
	}
	return keys
}

func violations(rep *bftype.Report) []string {
	var out []string
	if !rep.Expect.Matched.Contains(rep.Counts.Matched) {
		out = append(out, fmt.Sprintf("matched %s is outside expect.matched %s", bftype.Thousands(rep.Counts.Matched), rep.Expect.Matched))
	}
	if !rep.Expect.Changed.Contains(rep.Counts.WillChange) {
		out = append(out, fmt.Sprintf("will %s %s is outside expect.changed %s", rep.Apply.Verb(), bftype.Thousands(rep.Counts.WillChange), rep.Expect.Changed))
	}
	return out
}

func joinSentences(parts []string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += "; "
		}
		out += p
	}
	return out
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("error encoding report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("error writing report %q: %w", path, err)
	}
	return nil
}

// targetDatabases is the target database, or for a manifest with targets:
// each environment's, as the off-target banner names them.
func targetDatabases(m *bftype.Manifest) string {
	if len(m.Targets) == 0 {
		return m.Target.Database
	}
	var dbs []string
	for _, env := range m.Environments() {
		dbs = append(dbs, m.Targets[env].Database+" ("+env+")")
	}
	return strings.Join(dbs, " or ")
}
