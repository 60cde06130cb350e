package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

func statusCommand(ctx context.Context, b Binary, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "Usage: "+b.Name+" status [--database-url URL] [--output text|json]\n\nShows this backfill's runs from the ledger: status, purpose (an execution, or\nthe revert of one), counts (scanned of the scope count of the run's first\npreflight), checkpoint and resumes.", stdout)
	url := fs.String("database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then PG* variables)")
	output := OutputFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	u, src := pgdb.Resolve(*url)
	conn, err := pgdb.Connect(ctx, u, src, b.Name+" status")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := ledger.Check(ctx, conn); err != nil {
		return err
	}
	runs, err := ledger.RunsOf(ctx, conn, b.RunSignature)
	if err != nil {
		return err
	}
	if len(runs) == 0 && !asJSON {
		fmt.Fprintf(stdout, "%s has not run in this database (run signature %s).\n", b.Name, b.RunSignature[:12])
		return nil
	}
	purposes, err := Purposes(ctx, conn, runs)
	if err != nil {
		return err
	}
	if asJSON {
		type statusRun struct {
			ledger.Run
			Purpose string `json:"purpose"`
		}
		out := struct {
			Backfill     string      `json:"backfill"`
			RunSignature string      `json:"run_signature"`
			Runs         []statusRun `json:"runs"`
		}{Backfill: b.Name, RunSignature: b.RunSignature, Runs: []statusRun{}}
		for _, r := range runs {
			out.Runs = append(out.Runs, statusRun{Run: r, Purpose: purposes[r.ID]})
		}
		return WriteJSON(stdout, out)
	}
	var running []int64
	for _, r := range runs {
		if r.Status == ledger.StatusRunning {
			running = append(running, r.ID)
		}
	}
	live, err := ledger.LiveOf(ctx, conn, running)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Status == ledger.StatusRefused {
			fmt.Fprintf(stdout, "run %d  refused (%s) at %s by %s; purpose %s\n", r.ID, deref(r.StopReason), r.StartedAt.Format(time.RFC3339), r.DBUser, purposes[r.ID])
			continue
		}
		fmt.Fprintf(stdout, "run %d  %s", r.ID, ledger.StatusText(r.Status, live[r.ID].Control))
		if r.StopReason != nil {
			fmt.Fprintf(stdout, " (%s: %s)", *r.StopReason, deref(r.Message))
		}
		matched := "?"
		if r.Matched != nil {
			matched = fmt.Sprint(*r.Matched)
		}
		fmt.Fprintf(stdout, "\n  purpose %s\n", purposes[r.ID])
		if p := compactParams(r.Params); p != "" {
			fmt.Fprintf(stdout, "  parameters %s\n", p)
		}
		fmt.Fprintf(stdout, "  scanned %d of %s, changed %d, %d batches, checkpoint %s, resumes %d\n",
			r.Scanned, matched, r.Changed, r.Batches, string(r.Cursor), r.Resumes)
		fmt.Fprintf(stdout, "  started %s by %s@%s (%s), last update %s\n", r.StartedAt.Format(time.RFC3339), r.OSUser, r.ClientHost,
			r.DBUser, r.UpdatedAt.Format(time.RFC3339))
	}
	return nil
}

func verifyCommand(ctx context.Context, b Binary, m *bftype.Manifest, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "Usage: "+b.Name+" verify [--database-url URL]\n\nAfter a completed run: runs the manifest's checks again and reconciles the rows\n"+
		"changed with the last dry-run of the run's digest saved (--save) before the run\nstarted. Exits "+fmt.Sprint(bftype.ExitValidation)+
		" if either fails, unless an operator acknowledged that very\ndifference with: backfill ack RUN --reason \"...\".", stdout)
	url := fs.String("database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then PG* variables)")
	var pf paramFlags
	pf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	values, err := pf.resolve(m)
	if err != nil {
		return err
	}
	u, src := pgdb.Resolve(*url)
	conn, err := pgdb.Connect(ctx, u, src, b.Name+" verify")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := ledger.Check(ctx, conn); err != nil {
		return err
	}
	run, err := ledger.Completed(ctx, conn, b.RunSignature, "execute", values.JSON())
	if err != nil {
		return err
	}
	if run == nil {
		with := ""
		if len(values) > 0 {
			with = " with parameters " + values.String()
		}
		return bftype.Refuse(bftype.ReasonValidation, bftype.ExitValidation, "Run it with --execute first.",
			"%s has no completed run%s to verify in this database.", b.Name, with)
	}
	if err := engine.Validate(ctx, conn, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checks: all %d hold\n", len(m.Checks))
	rec, err := engine.Reconcile(ctx, conn, run)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, reconcileSentence(b.Apply, rec))
	renderGroupReconcile(stdout, rec.Groups)
	spots, err := engine.SpotCheck(ctx, conn, b.Plan, rec.PlannedSpots)
	if err != nil {
		return err
	}
	renderSpotResults(stdout, b.Plan.Names().Key, spots)
	if rec.DryRunID != 0 && !rec.Match && rec.Ack == nil {
		return bftype.Refuse(bftype.ReasonValidation, bftype.ExitValidation,
			fmt.Sprintf("Find out what changed the data between the dry-run and the run; once it is explained, record why with: backfill ack %d --reason \"...\" (as a runner login).", run.ID),
			"Run %d %s %s but dry-run %d planned %s%s.", run.ID, b.Apply.Past(), plural(rec.Changed, "row", "rows"), rec.DryRunID, bftype.Thousands(rec.WillChange),
			groupsText(rec))
	}
	return nil
}

// reconcileSentence compares the rows a run wrote with its dry-run's, in
// the words of what the binary writes: "reconcile: updated 333 rows, as
// dry-run 4 planned".
func reconcileSentence(a bftype.Apply, r engine.Reconciliation) string {
	done := a.Past() + " " + plural(r.Changed, "row", "rows")
	switch {
	case r.DryRunID == 0:
		return "reconcile: no dry-run of this digest was saved (--save) before the run started, so there is nothing to compare with"
	case r.Match:
		return fmt.Sprintf("reconcile: %s, as dry-run %d planned", done, r.DryRunID)
	case r.Changed == r.WillChange && r.Ack != nil:
		return fmt.Sprintf("reconcile: %s, as dry-run %d planned, but not in the same groups; acknowledged by %s at %s: %s",
			done, r.DryRunID, r.Ack.By, r.Ack.At.Format(time.RFC3339), r.Ack.Reason)
	case r.Changed == r.WillChange:
		return fmt.Sprintf("reconcile: %s, as dry-run %d planned, but not in the same groups (MISMATCH below)", done, r.DryRunID)
	case r.Ack != nil:
		return fmt.Sprintf("reconcile: %s but dry-run %d planned %s; acknowledged by %s at %s: %s",
			done, r.DryRunID, bftype.Thousands(r.WillChange), r.Ack.By, r.Ack.At.Format(time.RFC3339), r.Ack.Reason)
	}
	return fmt.Sprintf("reconcile: %s but dry-run %d planned %s", done, r.DryRunID, bftype.Thousands(r.WillChange))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// compactParams is a run's parameter values as compact JSON, or "" when the
// backfill declares none.
func compactParams(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil || b.String() == "{}" || b.String() == "null" {
		return ""
	}
	return b.String()
}
