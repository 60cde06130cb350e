package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/plan"
)

const dryRunUsage = `Usage: %[1]s [flags]
       %[1]s --execute [--database-url URL]

Dry-run (the default): runs the same selection and transform as a real run
inside a READ ONLY transaction, so nothing is written, and reports scanned,
matched, will-change and unchanged totals, sample diffs, an ETA and the SQL
a real run would execute. Exits %[2]d when a count is outside the manifest's
expect bounds.

With --execute it writes: a preflight checks the target, the approvals of
this binary's own digest, that this run has not completed, the lock, the
schema and the expected counts, refusing with its own exit code unless all
hold; then it applies the batches. docs/operating.md lists the exit codes.

The connection comes from --database-url, else DATABASE_URL, else the libpq
PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ...).`

type dryRunFlags struct {
	url     string
	report  string
	samples int
	save    bool
	execute bool
	exec    execFlags
}

func dryRunCommand(ctx context.Context, b Binary, m *bftype.Manifest, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(b.Name, fmt.Sprintf(dryRunUsage, b.Name, bftype.ExitExpectBounds), stderr)
	var f dryRunFlags
	fs.StringVar(&f.url, "database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then PG* variables)")
	fs.StringVar(&f.report, "report", "", "also write the report as JSON to this file")
	fs.IntVar(&f.samples, "samples", 5, "how many before/after samples to show")
	fs.BoolVar(&f.save, "save", false, "also save the report in the ledger (needs the backfill_runner role)")
	fs.BoolVar(&f.execute, "execute", false, "write: run the preflight, then the batches (needs approvals; see docs/operating.md)")
	f.exec.register(fs, b.Name)
	if err := parse(fs, args); err != nil {
		return err
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
	if err != nil {
		return err
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
	if len(rep.Violations) > 0 {
		return bftype.Refuse(bftype.ReasonExpectBounds, bftype.ExitExpectBounds,
			"Check the scope and the data, or correct expect in backfill.yaml and rebuild.",
			"%s.", joinSentences(rep.Violations))
	}
	return nil
}

// dryRun walks the whole scope in one read-only snapshot.
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
	rep := &bftype.Report{
		Backfill: b.Name, Digest: digest, RunSignature: b.RunSignature, SourceCommit: b.SourceCommit,
		Database: server.Database, Server: server.Address + " (PostgreSQL " + server.Version + ")",
		StartedAt: time.Now().UTC(), Expect: m.Expect, BatchSize: m.Batch.Size, Statements: b.Statements,
		KeyName: b.Plan.Names().Key, CursorName: b.Plan.Names().Cursor, LimitName: b.Plan.Names().Limit, Start: b.Plan.Start(),
	}
	var read time.Duration
	err = pgdb.ReadOnly(ctx, conn, m.Batch.StatementTimeoutDuration(), func(tx pgx.Tx) error {
		if rep.Counts.Matched, err = b.Plan.Count(ctx, tx); err != nil {
			return err
		}
		return b.Plan.Walk(ctx, tx, nil, m.Batch.Size, func(batch *plan.Batch) error {
			read += batch.ReadTime
			tally(rep, batch, f.samples)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("error during dry-run of %s: %w", b.Name, err)
	}
	rep.Duration = time.Since(rep.StartedAt)
	rep.ETA = eta(rep, read, m.Batch.MaxRowsPerSecond)
	rep.Violations = violations(rep)
	return rep, nil
}

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

func tally(rep *bftype.Report, batch *plan.Batch, samples int) {
	rep.Batches++
	rep.Counts.Scanned += int64(batch.Scanned)
	rep.Counts.WillChange += int64(batch.Changes)
	rep.Counts.Unchanged += int64(batch.Scanned - batch.Changes)
	if room := samples - len(rep.Samples); room > 0 {
		rep.Samples = append(rep.Samples, batch.Samples[:min(room, len(batch.Samples))]...)
	}
	if rep.FirstApply == nil && batch.Changes > 0 {
		rep.FirstApply = batch.Params()
	}
}

// eta estimates a real run: reading again plus writing (taken as long as the
// read), and no faster than the manifest's rate limit allows.
func eta(rep *bftype.Report, read time.Duration, maxRowsPerSecond int) time.Duration {
	est := 2 * read
	if maxRowsPerSecond > 0 {
		limited := time.Duration(float64(rep.Counts.WillChange) / float64(maxRowsPerSecond) * float64(time.Second))
		est = max(est, limited)
	}
	return est
}

func violations(rep *bftype.Report) []string {
	var out []string
	if !rep.Expect.Matched.Contains(rep.Counts.Matched) {
		out = append(out, fmt.Sprintf("matched %d is outside expect.matched %s", rep.Counts.Matched, rep.Expect.Matched))
	}
	if !rep.Expect.Changed.Contains(rep.Counts.WillChange) {
		out = append(out, fmt.Sprintf("will change %d is outside expect.changed %s", rep.Counts.WillChange, rep.Expect.Changed))
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
