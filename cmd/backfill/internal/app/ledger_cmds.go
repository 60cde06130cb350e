package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/cli"
	"github.com/runonce/backfill/runtime/ledger"
)

func ledgerCommand(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "check" {
		return ledgerCheckCommand(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] != "init" {
		return usageError{"usage: backfill ledger init --environment NAME [--database-url URL] | backfill ledger check [--database-url URL]"}
	}
	fs := flags(e, "ledger init", "--environment NAME", "Creates or migrates the ledger (schema backfill) in the target database, with the\n"+
		"roles backfill_runner, backfill_approver, backfill_observer and backfill_admin.\n"+
		"Idempotent. --environment names what this database is (e.g. production); it is\nset once and every backfill's target.environment must match it. Run as a\nsuperuser: the ledger is given to the NOLOGIN role backfill_owner, and the\ntarget tables' writes to backfill_writer; init refuses to finish while a login\ncan act as either (ledger check lists them).")
	url := dbFlag(fs)
	envName := fs.String("environment", "", "the environment this database is (required the first time)")
	if err := parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res, err := ledger.Init(ctx, conn, *envName)
	if err != nil {
		return err
	}
	if res.From == res.To {
		fmt.Fprintf(e.stdout, "ledger is up to date (version %d, environment %s)\n", res.To, res.Environment)
	} else {
		fmt.Fprintf(e.stdout, "ledger migrated from version %d to %d (environment %s)\n", res.From, res.To, res.Environment)
	}
	return nil
}

func runsCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "runs", "", "Lists the runs recorded in the ledger, newest first (needs any backfill_* role).")
	url := dbFlag(fs)
	limit := fs.Int("limit", 50, "how many runs to list")
	output := cli.OutputFlag(fs)
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	runs, err := ledger.Runs(ctx, conn, *limit)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(e, runs)
	}
	purposes, err := cli.Purposes(ctx, conn, runs)
	if err != nil {
		return err
	}
	// Runs of a backfill with parameters differ by their values: show them
	// when any run has some.
	withParams := false
	for _, r := range runs {
		withParams = withParams || paramsText(r.Params) != "-"
	}
	status, err := statusTexts(ctx, conn, runs)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 2, 2, ' ', 0)
	header := "RUN\tBACKFILL\tPURPOSE\tSTATUS\tSTOP REASON\tMATCHED\tCHANGED\tBATCHES\tOPERATOR\tSTARTED"
	if withParams {
		header += "\tPARAMS"
	}
	fmt.Fprintln(w, header)
	for _, r := range runs {
		matched := "-"
		if r.Matched != nil {
			matched = strconv.FormatInt(*r.Matched, 10)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s@%s (%s)\t%s", r.ID, r.Backfill, purposes[r.ID], status[r.ID], deref(r.StopReason),
			matched, r.Changed, r.Batches, r.OSUser, r.ClientHost, r.DBUser, r.StartedAt.Format(time.RFC3339))
		if withParams {
			fmt.Fprintf(w, "\t%s", paramsText(r.Params))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

func showCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "show", "RUN", "Shows one run: its record and its audit events.")
	url := dbFlag(fs)
	output := cli.OutputFlag(fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return usageError{fmt.Sprintf("run id %q is not a number", fs.Arg(0))}
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	run, err := ledger.GetRun(ctx, conn, id)
	if err != nil {
		return err
	}
	events, err := ledger.Events(ctx, conn, id)
	if err != nil {
		return err
	}
	purposes, err := cli.Purposes(ctx, conn, []ledger.Run{*run})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(e, map[string]any{"run": run, "events": events})
	}
	status, err := statusTexts(ctx, conn, []ledger.Run{*run})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 2, 2, ' ', 0)
	rows := [][2]string{
		{"run", strconv.FormatInt(run.ID, 10)}, {"backfill", run.Backfill}, {"status", status[run.ID]},
		{"stop reason", deref(run.StopReason)}, {"message", deref(run.Message)}, {"digest", "sha256:" + run.Digest},
		{"run signature", run.RunSignature}, {"purpose", purposes[run.ID]}, {"environment", deref(run.Environment)},
		{"operator", run.OSUser + "@" + run.ClientHost}, {"database login", run.DBUser},
		{"code version", run.CodeVersion}, {"source commit", run.SourceCommit},
		{"approvals", fmt.Sprint(run.ApprovalIDs)}, {"parameters", paramsText(run.Params)}, {"matched", fmtPtr(run.Matched)},
		{"scanned", strconv.FormatInt(run.Scanned, 10)}, {"changed", strconv.FormatInt(run.Changed, 10)},
		{"batches", strconv.FormatInt(run.Batches, 10)}, {"checkpoint", string(run.Cursor)},
		{"resumes", strconv.Itoa(run.Resumes)}, {"started", run.StartedAt.Format(time.RFC3339)},
		{"finished", fmtTime(run.FinishedAt)},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\n", r[0], r[1])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\naudit events:\n")
	for _, ev := range events {
		fmt.Fprintf(e.stdout, "  #%d %s %-10s by %s %s\n", ev.Seq, time.UnixMicro(ev.AtMicros).UTC().Format(time.RFC3339), ev.Kind, ev.Actor, ev.Payload)
	}
	return nil
}

// controlCommand sets a running run's control in the ledger.
func controlCommand(control string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		verb := map[string]string{"pause": "pause", "run": "resume", "cancel": "cancel"}[control]
		fs := flags(e, verb, "RUN", "Asks running run RUN to "+verb+"; it obeys between batches. Needs backfill_runner.")
		url := dbFlag(fs)
		if err := parse(fs, args, 1, 1); err != nil {
			return err
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return usageError{fmt.Sprintf("run id %q is not a number", fs.Arg(0))}
		}
		if err := withConn(ctx, *url, func(conn *pgx.Conn) error { return ledger.SetControl(ctx, conn, id, control) }); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "run %d asked to %s\n", id, verb)
		return nil
	}
}

func auditCommand(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError{"usage: backfill audit verify [--database-url URL]"}
	}
	fs := flags(e, "audit verify", "", "Recomputes the hash chain of the audit log and names the first broken link.")
	url := dbFlag(fs)
	output := cli.OutputFlag(fs)
	if err := parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	events, err := ledger.Events(ctx, conn, 0)
	if err != nil {
		return err
	}
	broken := ledger.VerifyChain(events, ledger.GenesisHash)
	head := ledger.GenesisHash
	if len(events) > 0 {
		head = events[len(events)-1].Hash
	}
	if asJSON {
		out := map[string]any{"verified": broken == nil, "events": len(events), "head": head}
		if broken != nil {
			out["error"] = broken.Error()
		}
		if err := writeJSONTo(e, out); err != nil {
			return err
		}
	}
	if broken != nil {
		return broken
	}
	if asJSON {
		return nil
	}
	fmt.Fprintf(e.stdout, "audit chain verified: %d events, head %s\n", len(events), head)
	return nil
}

func writeJSONTo(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func fmtPtr(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// ledgerCheckCommand reports whether the ledger is what this bin/backfill
// expects and whether any login can write around it.
func ledgerCheckCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "ledger check", "", "Checks the ledger: its version and environment, and that no login (superusers\n"+
		"aside) can act as backfill_owner or backfill_writer. Exits 1 naming each login that can.")
	url := dbFlag(fs)
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	env, err := ledger.Check(ctx, conn)
	if err != nil {
		return err
	}
	var owner string
	if err := conn.QueryRow(ctx, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'backfill'").Scan(&owner); err != nil {
		return fmt.Errorf("error reading the ledger's owner: %w", err)
	}
	var supers []string
	if err := conn.QueryRow(ctx, "SELECT coalesce(array_agg(rolname ORDER BY rolname), '{}') FROM pg_roles WHERE rolsuper AND rolcanlogin").Scan(&supers); err != nil {
		return fmt.Errorf("error listing superusers: %w", err)
	}
	fmt.Fprintf(e.stdout, "ledger version %d, environment %s, owned by %s\n", ledger.Version(), env, owner)
	fmt.Fprintf(e.stdout, "superusers (PostgreSQL lets them do anything, this ledger included): %s\n", strings.Join(supers, ", "))
	exposed, err := ledger.Exposures(ctx, conn)
	if err != nil {
		return err
	}
	if owner != "backfill_owner" {
		return fmt.Errorf("schema backfill is owned by %s, not backfill_owner; run bin/backfill ledger init as a superuser", owner)
	}
	if len(exposed) > 0 {
		return &ledger.ExposureError{Exposures: exposed}
	}
	fmt.Fprintln(e.stdout, "no other login can act as backfill_owner or backfill_writer")
	return nil
}

// statusTexts are the runs' statuses as the lists show them: a running run
// asked to pause or cancel says so ("running, paused"), since its status
// stays running until it stops.
func statusTexts(ctx context.Context, conn *pgx.Conn, runs []ledger.Run) (map[int64]string, error) {
	out := make(map[int64]string, len(runs))
	var running []int64
	for _, r := range runs {
		out[r.ID] = r.Status
		if r.Status == ledger.StatusRunning {
			running = append(running, r.ID)
		}
	}
	if len(running) == 0 {
		return out, nil
	}
	live, err := ledger.LiveOf(ctx, conn, running)
	if err != nil {
		return nil, err
	}
	for id, l := range live {
		out[id] = ledger.StatusText(ledger.StatusRunning, l.Control)
	}
	return out, nil
}
