package app

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/runonce/backfill/runtime/cli"
	"github.com/runonce/backfill/runtime/ledger"
)

// approvalsCommand lists the signed approvals, so that an observer sees
// who approved which digest, for what and until when, without SQL.
func approvalsCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approvals", "", "Lists the approvals in the ledger, newest first (needs any backfill_* role).")
	url := dbFlag(fs)
	var f ledger.ListFilter
	fs.StringVar(&f.Digest, "digest", "", "only approvals of this digest (sha256:HEX, or the start of its hex)")
	fs.StringVar(&f.Backfill, "backfill", "", "only approvals of this backfill")
	fs.IntVar(&f.Limit, "limit", 50, "how many approvals to list")
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
	list, err := ledger.ListApprovals(ctx, conn, f)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(e, emptyList(list))
	}
	w := tabwriter.NewWriter(e.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tBACKFILL\tDIGEST\tAPPROVER\tBY\tPURPOSE\tENVIRONMENT\tPARAMS\tEXPIRES\tSUBMITTED\tREASON")
	now := time.Now()
	for _, a := range list {
		expires := a.ExpiresAt.UTC().Format(time.RFC3339)
		if a.ExpiresAt.Before(now) {
			expires += " (expired)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Backfill, short(a.Digest), a.Approver, a.SubmittedBy,
			a.Purpose, a.Environment, paramsText(a.Params), expires, a.SubmittedAt.UTC().Format(time.RFC3339), a.Reason)
	}
	return w.Flush()
}

// dryRunsCommand lists the saved dry-run reports with their counts: the
// ones a run reconciles with and reviewers read.
func dryRunsCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "dry-runs", "[NAME]", "Lists the dry-run reports saved with --save, newest first, of backfill NAME if given (needs any backfill_* role).")
	url := dbFlag(fs)
	var f ledger.ListFilter
	fs.StringVar(&f.Digest, "digest", "", "only reports of this digest (sha256:HEX, or the start of its hex)")
	fs.IntVar(&f.Limit, "limit", 50, "how many reports to list")
	output := cli.OutputFlag(fs)
	if err := parse(fs, args, 0, 1); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	f.Backfill = fs.Arg(0)
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	list, err := ledger.ListDryRuns(ctx, conn, f)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(e, emptyList(list))
	}
	w := tabwriter.NewWriter(e.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tBACKFILL\tDIGEST\tPARAMS\tDATABASE\tMATCHED\tWILL CHANGE\tVIOLATIONS\tBY\tSAVED")
	for _, d := range list {
		database := d.Database
		if d.OffTarget {
			database += " (off target)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", d.ID, d.Backfill, short(d.Digest), paramsText(d.Params), database,
			d.Matched, d.WillChange, d.Violations, d.CreatedBy, d.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

// short is the first 16 hex characters of a digest, as approvers list
// shows key ids; --digest takes it back.
func short(digest string) string { return digest[:min(16, len(digest))] }

// paramsText shows pinned parameter values, or "-" for none.
func paramsText(p []byte) string {
	if s := string(p); s != "" && s != "{}" && s != "null" {
		return s
	}
	return "-"
}

// emptyList makes an empty result print as [] rather than null.
func emptyList[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
