package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// Report renders REPORT.md: who ran what, when, where and why, and what
// changed, in words. It is rendered from the archive's files only, so that
// Verify can render it again and compare. Counts are worded with what the
// binary writes (its Apply in manifest.json); an archive made before that
// was recorded reads as an update, the only kind there was.
func Report(a *Archive) []byte {
	var w strings.Builder
	var info bftype.Info
	_ = json.Unmarshal(a.Manifest, &info)
	m := info.Manifest
	if m == nil {
		m = &bftype.Manifest{}
	}
	run := a.run(a.Index.RunID)
	if run == nil {
		run = &ledger.Run{ID: a.Index.RunID, Backfill: a.Index.Backfill}
	}
	fmt.Fprintf(&w, "# Backfill %s, run %d\n\n", a.Index.Backfill, run.ID)
	ap := info.Apply
	target, isRevert := revertOf(run.Purpose)
	writes := ap.Statement()
	if isRevert {
		// A revert writes the run's before-images back: its counts are rows restored.
		writes = fmt.Sprintf("the before-images of run %d back (it wrote %s)", target, ap.Statement())
		ap = bftype.Apply{Kind: bftype.KindRevert, Table: ap.Table}
	}
	fmt.Fprintf(&w, "**Outcome: %s**\n\n", a.outcome(run, ap))
	fmt.Fprintf(&w, "## What and why\n\n> %s\n\n", m.Scope)
	fmt.Fprintf(&w, "- writes: `%s`\n", writes)
	fmt.Fprintf(&w, "- owner: %s; risk: %s (%d distinct approver(s) required); reversible: %s\n", m.Owner, m.RiskText(),
		approval.Required(m.Risk), yesNo(m.Reversible))
	reportSupersedes(&w, m)
	fmt.Fprintf(&w, "- binary: `%s`, sha256:%s\n", BinaryFile(a.Index.Backfill), a.Index.Digest)
	fmt.Fprintf(&w, "- run signature: %s; code version %s; built with %s\n", info.RunSignature, info.CodeVersion, info.GoVersion)
	fmt.Fprintf(&w, "- source: `%s` (%s), commit %s\n\n", SourceFile, a.Index.SourceDigest, info.SourceCommit)
	a.reportApprovals(&w, run)
	a.reportWho(&w, run)
	a.reportCounts(&w, run, m, ap)
	a.reportChecks(&w, run)
	a.reportOtherRuns(&w, run)
	a.reportAudit(&w)
	fmt.Fprintf(&w, "## Checking this archive\n\n```sh\nbackfill verify-archive ARCHIVE --rebuild\n```\n\n")
	fmt.Fprintf(&w, "checks every file against `%s`, every signature against the archived keys, the digests of the binary,\n", SumsFile)
	fmt.Fprintf(&w, "approvals and runs, the audit chain, this report, and rebuilds the binary from `%s` with `%s`.\n", SourceFile, RecipeFile)
	fmt.Fprintf(&w, "docs/auditing.md explains each check.\n")
	return []byte(w.String())
}

// Run is the record of the run the archive is about, or nil.
func (a *Archive) Run() *ledger.Run { return a.run(a.Index.RunID) }

func (a *Archive) run(id int64) *ledger.Run {
	for i := range a.Runs {
		if a.Runs[i].ID == id {
			return &a.Runs[i]
		}
	}
	return nil
}

// reverts are the revert runs of run id.
func (a *Archive) reverts(id int64) []ledger.Run {
	var out []ledger.Run
	for _, r := range a.Runs {
		if r.Purpose == approval.RevertPurpose(id) {
			out = append(out, r)
		}
	}
	return out
}

func (a *Archive) outcome(run *ledger.Run, ap bftype.Apply) string {
	s := describeStatus(run, ap)
	for _, r := range a.reverts(run.ID) {
		switch r.Status {
		case ledger.StatusCompleted:
			s += fmt.Sprintf("; REVERTED by run %d at %s (%d rows restored, %d left alone)", r.ID, stamp(r.FinishedAt), r.Changed, a.skippedOf(r.ID))
		case ledger.StatusRefused:
			s += fmt.Sprintf("; a revert (run %d) was refused: %s", r.ID, deref(r.StopReason))
		default:
			s += fmt.Sprintf("; a revert (run %d) is %s after %d rows", r.ID, r.Status, r.Changed)
		}
	}
	return s
}

// describeStatus says how the run ended and how many rows it wrote, in
// the words of what it writes: "completed: 333 rows updated in 3 batches".
func describeStatus(r *ledger.Run, ap bftype.Apply) string {
	rows := bftype.Count(r.Changed, "row", "rows") + " " + ap.Past()
	switch r.Status {
	case ledger.StatusCompleted:
		return fmt.Sprintf("completed: %s in %d batches", rows, r.Batches)
	case ledger.StatusRefused:
		return fmt.Sprintf("REFUSED before any write (%s): %s", deref(r.StopReason), deref(r.Message))
	case ledger.StatusInterrupted:
		return fmt.Sprintf("INTERRUPTED after %d batches (%s); rerunning the same binary resumes after key %s",
			r.Batches, rows, string(r.Cursor))
	case ledger.StatusRunning:
		return fmt.Sprintf("STOPPED WITHOUT A RECORD after %d batches (%s): the process ended without finishing (a crash or a kill); rerunning resumes after key %s",
			r.Batches, rows, string(r.Cursor))
	default:
		return fmt.Sprintf("%s after %d batches (%s) (%s): %s", strings.ToUpper(strings.ReplaceAll(r.Status, "_", " ")),
			r.Batches, rows, deref(r.StopReason), deref(r.Message))
	}
}

func (a *Archive) reportApprovals(w *strings.Builder, run *ledger.Run) {
	fmt.Fprintf(w, "## Who approved it, and why\n\n")
	if len(a.Approvals) == 0 {
		fmt.Fprintf(w, "No approval of this binary was ever submitted.\n\n")
		return
	}
	keys := map[string]ApproverRow{}
	for _, k := range a.Approvers {
		keys[k.Name] = k
	}
	fmt.Fprintf(w, "| approval | approver (login) | purpose | environment | reason | submitted | expires | counted by run %d |\n", run.ID)
	fmt.Fprintf(w, "| ---: | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, x := range a.Approvals {
		counted := yesNo(contains(run.ApprovalIDs, x.ID))
		if x.SubmittedAt.After(run.StartedAt) {
			counted = "no (submitted after the run started)"
		}
		fmt.Fprintf(w, "| %d | %s (%s) | %s | %s | %s | %s | %s | %s |\n", x.ID, x.Approver, keys[x.Approver].Login, x.Purpose, x.Environment,
			cell(x.Reason), stamp(&x.SubmittedAt), stamp(&x.ExpiresAt), counted)
	}
	fmt.Fprintf(w, "\nEach statement is `approvals/ID.json`, its signature `approvals/ID.sig`, the key `keys/APPROVER.pub`.\n")
	fmt.Fprintf(w, "Check these key ids against your own record of the approvers' keys (an archive cannot vouch for its own keys):\n\n")
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k := keys[n]
		revoked := ""
		if k.RevokedAt != nil {
			revoked = ", revoked " + stamp(k.RevokedAt)
		}
		fmt.Fprintf(w, "- %s (login %s): key id %s, registered %s by %s%s\n", n, k.Login, k.KeyID, stamp(&k.AddedAt), k.AddedBy, revoked)
	}
	fmt.Fprintln(w)
}

func (a *Archive) reportWho(w *strings.Builder, run *ledger.Run) {
	fmt.Fprintf(w, "## Who ran it, when and where\n\n")
	fmt.Fprintf(w, "- operator: OS user %s on host %s, database login %s\n", run.OSUser, run.ClientHost, run.DBUser)
	fmt.Fprintf(w, "- database: %s on %s (cluster %s), ledger environment %s\n", a.Index.Ledger.Database, a.Index.Ledger.Server,
		a.Index.Ledger.SystemIdentifier, a.Index.Ledger.Environment)
	fmt.Fprintf(w, "- started %s; finished %s; last update %s\n", stamp(&run.StartedAt), stamp(run.FinishedAt), stamp(&run.UpdatedAt))
	resumes := a.eventsOf(run.ID, "resumed")
	fmt.Fprintf(w, "- resumed %d time(s)", len(resumes))
	for i, e := range resumes {
		sep := ": "
		if i > 0 {
			sep = ", "
		}
		fmt.Fprintf(w, "%s%s", sep, micros(e.AtMicros))
	}
	var params bytes.Buffer
	if json.Compact(&params, run.Parameters) != nil {
		params.Reset()
		params.Write(run.Parameters)
	}
	fmt.Fprintf(w, "\n- launch parameters: `%s`\n", params.String())
	var values bytes.Buffer
	if len(run.Params) > 0 && json.Compact(&values, run.Params) == nil && values.String() != "{}" {
		fmt.Fprintf(w, "- parameter values (approved, and part of the run-once key): `%s`\n", values.String())
	}
	fmt.Fprintln(w)
}

// revertOf reads a revert run's purpose ("revert:N") as the run it reverts.
func revertOf(purpose string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(purpose, "revert:"), 10, 64)
	return n, err == nil && strings.HasPrefix(purpose, "revert:")
}

// reportSupersedes names the backfill this one is a new version of, if any.
func reportSupersedes(w *strings.Builder, m *bftype.Manifest) {
	if m.Supersedes != "" {
		fmt.Fprintf(w, "- supersedes: %s (this backfill is a new version of it; that backfill's runs are archived on their own)\n", m.Supersedes)
	}
}

func (a *Archive) reportCounts(w *strings.Builder, run *ledger.Run, m *bftype.Manifest, ap bftype.Apply) {
	if target, ok := revertOf(run.Purpose); ok {
		fmt.Fprintf(w, "## Restored\n\n| | run %d's before-images | this revert |\n| --- | --- | --- |\n", target)
		fmt.Fprintf(w, "| rows with before-images | %s | %d read |\n", optional(run.Matched), run.Scanned)
		fmt.Fprintf(w, "| rows restored | | %d |\n", run.Changed)
		fmt.Fprintf(w, "| rows left alone (changed since run %d) | | %d |\n\n", target, a.skippedOf(run.ID))
		return
	}
	fmt.Fprintf(w, "## Planned and %s\n\n", ap.Past())
	// The dry-run the run planned with is the one verify and the run's own
	// reconciliation use (ledger.DryRunBefore): the last saved before the
	// run started; one saved later describes what the run left behind.
	var planned *bftype.Report
	var plannedID int64
	var plannedAt time.Time
	for _, d := range a.DryRuns {
		if d.CreatedAt.Before(run.StartedAt) && (planned == nil || !d.CreatedAt.Before(plannedAt)) {
			var rep bftype.Report
			// A dry-run of another database than the target says nothing of this run.
			if json.Unmarshal(a.Reports[d.ID], &rep) == nil && !rep.OffTarget {
				planned, plannedID, plannedAt = &rep, d.ID, d.CreatedAt
			}
		}
	}
	fmt.Fprintf(w, "| | expected (manifest) | planned (dry-run) | this run |\n| --- | --- | --- | --- |\n")
	p := func(f func(*bftype.Report) int64) string {
		if planned == nil {
			return "no dry-run saved before the run"
		}
		return fmt.Sprintf("%d (dry-run %d)", f(planned), plannedID)
	}
	fmt.Fprintf(w, "| rows in scope | %s | %s | %s |\n", m.Expect.Matched, p(func(r *bftype.Report) int64 { return r.Counts.Matched }), optional(run.Matched))
	fmt.Fprintf(w, "| rows %s | %s | %s | %d |\n", ap.Past(), m.Expect.Changed, p(func(r *bftype.Report) int64 { return r.Counts.WillChange }), run.Changed)
	fmt.Fprintf(w, "| rows scanned | | %s | %d |\n\n", p(func(r *bftype.Report) int64 { return r.Counts.Scanned }), run.Scanned)
	var n, changed int64
	var slowest float64
	for _, b := range a.Batches {
		if b.RunID == run.ID {
			n, changed = n+1, changed+b.Changed
			slowest = max(slowest, b.DurationMS)
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "No batch was committed. ")
	} else {
		fmt.Fprintf(w, "%d batch rows in `%s` (%s %s, slowest %.1f ms). ", n, BatchesFile, bftype.Count(changed, "row", "rows"), ap.Past(), slowest)
	}
	fmt.Fprintf(w, "%d dry-run report(s) of this binary in `dry_runs/`.\n", len(a.DryRuns))
	for _, e := range a.eventsOf(run.ID, "reconciled") {
		var rec ledger.Reconciliation
		if json.Unmarshal([]byte(e.Payload), &rec) == nil {
			fmt.Fprintf(w, "Reconciled with dry-run %d (it planned %s %s): %s.\n", rec.DryRunID, bftype.Count(rec.WillChange, "row", "rows"), ap.Past(),
				map[bool]string{true: "match", false: "MISMATCH"}[rec.Match])
			reportGroupReconcile(w, rec, ap)
			reportSpots(w, rec, planned)
		}
	}
	reportBreakdown(w, planned, plannedID, ap)
	for _, e := range a.eventsOf(run.ID, ledger.EventAcknowledged) {
		if ack, ok := ledger.AckOf(e); ok {
			fmt.Fprintf(w, "Difference acknowledged by %s at %s (audit event %d): %s %s, dry-run %d planned %s, because: %s\n",
				ack.By, ack.At.Format(time.RFC3339), ack.Seq, ap.Past(), bftype.Count(ack.Changed, "row", "rows"), ack.DryRunID,
				bftype.Thousands(ack.WillChange), cell(ack.Reason))
		}
	}
	fmt.Fprintln(w)
}

func (a *Archive) reportChecks(w *strings.Builder, run *ledger.Run) {
	fmt.Fprintf(w, "## Validation\n\n")
	found := false
	for _, c := range a.Checks {
		if c.RunID != run.ID {
			continue
		}
		found = true
		label := "Before the first write"
		if c.When == "after" {
			label = "After the last write"
		}
		fmt.Fprintf(w, "%s (audit event %d):\n\n| check | expected | got | holds |\n| --- | --- | --- | --- |\n", label, c.Seq)
		for _, raw := range c.Results {
			var r struct {
				Name, Equals, Got string
				Holds             bool
			}
			_ = json.Unmarshal(raw, &r)
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", cell(r.Name), cell(r.Equals), cell(r.Got), yesNo(r.Holds))
		}
		fmt.Fprintln(w)
	}
	if !found {
		fmt.Fprintf(w, "No check results were recorded for this run (it stopped before its checks ran).\n\n")
	}
}

func (a *Archive) reportOtherRuns(w *strings.Builder, run *ledger.Run) {
	fmt.Fprintf(w, "## Every run of this binary\n\n| run | purpose | status | stop reason | started | finished | changed |\n| ---: | --- | --- | --- | --- | --- | ---: |\n")
	for _, r := range a.Runs {
		mark := ""
		if r.ID == run.ID {
			mark = " (this run)"
		}
		fmt.Fprintf(w, "| %d%s | %s | %s | %s | %s | %s | %d |\n", r.ID, mark, r.Purpose, r.Status, deref(r.StopReason),
			stamp(&r.StartedAt), stamp(r.FinishedAt), r.Changed)
	}
	fmt.Fprintln(w)
	for _, r := range a.reverts(run.ID) {
		n := a.skippedOf(r.ID)
		if n > 0 {
			fmt.Fprintf(w, "Revert run %d left %d row(s) alone because they changed after run %d wrote them; they are listed in `%s`.\n\n", r.ID, n, run.ID, SkippedFile)
		}
	}
}

func (a *Archive) reportAudit(w *strings.Builder) {
	s := a.Index.Audit
	fmt.Fprintf(w, "## Audit trail\n\n")
	fmt.Fprintf(w, "Audit events %d to %d of the ledger's chain are in `%s` (the chain's head was event %d, hash %s, when this archive was made on %s by %s as %s).\n\n",
		s.FirstSeq, s.LastSeq, EventsFile, s.HeadSeq, s.HeadHash, a.Index.CreatedAt.Format(time.RFC3339), a.Index.CreatedBy.OSUser, a.Index.CreatedBy.DBUser)
	runs := map[int64]bool{}
	for _, r := range a.Runs {
		runs[r.ID] = true
	}
	kinds := map[string]int{}
	for _, e := range a.Events {
		if e.RunID != nil && runs[*e.RunID] {
			kinds[e.Kind]++
		}
	}
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, kinds[k])
	}
	fmt.Fprintf(w, "Events of this binary's runs, by kind: %s.\n\n", strings.Join(parts, ", "))
}

func (a *Archive) eventsOf(run int64, kind string) []ledger.Event {
	var out []ledger.Event
	for _, e := range a.Events {
		if e.RunID != nil && *e.RunID == run && e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (a *Archive) skippedOf(run int64) int {
	n := 0
	for _, s := range a.Skipped {
		if s.RunID == run {
			n++
		}
	}
	return n
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func micros(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339) }

func deref(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func optional(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func contains(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
