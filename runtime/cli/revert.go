package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

const revertUsage = `Usage: %[1]s revert --run RUN [--execute] [--database-url URL]

Reverts a run of this (reversible) backfill: writes each row's before-image
back, but only where the row still holds exactly what the run wrote. Rows
changed since are listed and left alone. Without --execute it previews, in a
transaction that is rolled back. With --execute it needs approvals of this
digest for the revert of that run (backfill approve BINARY --revert-run RUN)
and passes the same preflight as an execution.`

func revertCommand(ctx context.Context, b Binary, m *bftype.Manifest, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("revert", fmt.Sprintf(revertUsage, b.Name), stdout)
	url := fs.String("database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then PG* variables)")
	target := fs.Int64("run", 0, "the run to revert (required)")
	write := fs.Bool("execute", false, "write the before-images back (needs approvals of the revert)")
	var ef execFlags
	ef.register(fs, b.Name+"-revert")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *target <= 0 {
		return usageError{"revert needs --run RUN"}
	}
	digestOf := Digest // a preview writes nothing
	if *write {
		digestOf = executingDigest
	}
	digest, err := digestOf()
	if err != nil {
		return err
	}
	u, src := pgdb.Resolve(*url)
	conn, err := pgdb.Connect(ctx, u, src, sessionName(b.Name, 0))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	job := &engine.Job{Name: b.Name, Manifest: m, Digest: digest, RunSignature: b.RunSignature,
		SourceCommit: b.SourceCommit, CodeVersion: b.CodeVersion, Statements: b.Statements, Plan: b.Plan}
	if !*write {
		res, err := engine.PreviewRevert(ctx, conn, job, *target)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "PREVIEW of the revert of run %d: nothing was written.\n\n", *target)
		fmt.Fprintf(stdout, "  rows the run wrote (images kept) %d\n  would be restored                %d\n  changed since, left alone        %d\n",
			res.Images, res.Restorable, len(res.Skipped))
		listSkipped(stdout, res.Skipped)
		return nil
	}
	op := operator(append([]string{"revert"}, args...))
	logger, con, closeLog, err := openLog(ef, stderr, b, digest, op)
	if err != nil {
		return err
	}
	defer closeLog()
	sayWith(ctx, con.note)
	fmt.Fprintf(stdout, "REVERT run %d of %s (sha256:%s)\n\nPreflight:\n", *target, b.Name, digest)
	var runID int64
	hooks := engine.Hooks{
		Check: func(c engine.Check) { fmt.Fprintf(stdout, "  ok  %-16s %s\n", c.Name, c.Detail) },
		Started: func(id int64, resumed bool) {
			runID = id
			con.runID.Store(id)
			verb := "Started"
			if resumed {
				verb = "Resumed"
			}
			fmt.Fprintf(stdout, "\n%s revert run %d of run %d. Ctrl-C once stops after the current batch; twice stops at once.\n", verb, id, *target)
		},
		Progress: con.progress,
		Note:     con.note,
		Wait:     con.wait,
		Paused:   con.paused,
		Stopped:  func(int64, string, string) { con.done() },
	}
	res, err := engine.Revert(ctx, conn, job, *target, op, hooks, engine.Options{Logger: logger, Graceful: graceful(ctx)})
	con.done()
	if err != nil {
		var refusal *bftype.Refusal
		if errors.As(err, &refusal) && runID == 0 {
			runID = refusal.RunID
		}
		return con.ended(err, runID)
	}
	fmt.Fprintf(stdout, "\nCompleted revert run %d of run %d: restored %d of %d rows; %d changed since and left alone.\n",
		res.Run.ID, *target, res.Restored, res.Images, len(res.Skipped))
	listSkipped(stdout, res.Skipped)
	if missed := res.Restorable - res.Restored; missed > 0 {
		// The statement matched fewer rows than the images it was given:
		// never a silent success.
		msg := fmt.Sprintf("WARNING: %d of the %d rows this revert was to restore were not written: its statement's WHERE did not match them, "+
			"so they still hold what run %d wrote. An Apply that restates the scope cannot write before-images back (docs/authoring.md, section 5.4); "+
			"restore those rows from run %d's images (backfill show %d, or its archive).", missed, res.Restorable, *target, *target, *target)
		fmt.Fprintln(stdout, msg)
		fmt.Fprintln(stderr, msg)
	}
	return nil
}

func listSkipped(w io.Writer, skipped []ledger.Skipped) {
	for i, s := range skipped {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more (backfill show RUN lists them all)\n", len(skipped)-20)
			return
		}
		fmt.Fprintf(w, "  key %s: %s", s.Key, s.Why)
		if len(s.Current) > 0 {
			fmt.Fprintf(w, ", now %s", s.Current)
		}
		fmt.Fprintln(w)
	}
}
