package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

const maxShownValues = 8

// render prints a dry-run report for a reviewer.
func render(w io.Writer, b Binary, m *bftype.Manifest, r *bftype.Report) {
	fmt.Fprintf(w, "DRY-RUN of %s: nothing was written (one READ ONLY transaction)\n\n", b.Name)
	if r.OffTarget {
		fmt.Fprintf(w, "%s\n  NOT THE TARGET: this dry-run read database %q, but target.database is %s.\n"+
			"  Its numbers describe %q; no run reconciles with this report or cuts lanes by it.\n%s\n\n",
			banner, r.Database, quoteTarget(m, r.TargetDatabase), r.Database, banner)
	}
	fmt.Fprintf(w, "  binary         sha256:%s\n", r.Digest)
	fmt.Fprintf(w, "  run signature  %s\n", r.RunSignature)
	if len(r.Params) > 0 {
		fmt.Fprintf(w, "  parameters     %s\n", r.Params)
	}
	fmt.Fprintf(w, "  source commit  %s\n", r.SourceCommit)
	fmt.Fprintf(w, "  database       %s on %s\n", r.Database, r.Server)
	if len(m.Targets) > 0 && !r.OffTarget {
		fmt.Fprintf(w, "  target         environment %s (targets: %s)\n", m.Target.Environment, strings.Join(m.Environments(), ", "))
	}
	fmt.Fprintf(w, "  scope          %s\n", m.Scope)
	if m.Supersedes != "" {
		fmt.Fprintf(w, "  supersedes     %s (a new version of that backfill, with its own runs)\n", m.Supersedes)
	}
	fmt.Fprintf(w, "  risk           %s\n", m.RiskText())
	fmt.Fprintf(w, "  writes         %s: a real run %s\n", r.Apply.Statement(), r.Apply.Will(r.Counts.WillChange))
	fmt.Fprintf(w, "  prepared       %s against the live schema: %s\n\n",
		plural(int64(len(r.Prepared)), "statement", "statements"), strings.Join(r.Prepared, ", "))
	renderCounts(w, r)
	renderTenants(w, m, r)
	if r.Counts.WillChange == 0 {
		fmt.Fprintf(w, "\n%s\n  0 CHANGES: a real run %s; nothing in scope needs it.\n%s\n", banner, r.Apply.Will(0), banner)
	}
	renderBreakdown(w, r)
	renderTransitions(w, r)
	renderSamples(w, r)
	renderSpots(w, r)
	renderETA(w, r)
	renderSQL(w, r)
	if len(r.Violations) > 0 {
		fmt.Fprintf(w, "\n%s\n  OUTSIDE EXPECTED BOUNDS: %s\n%s\n", banner, joinSentences(r.Violations), banner)
	}
}

var banner = strings.Repeat("=", 64)

// renderETA prints the ETA and how it was made: what this dry-run measured,
// what it estimated, and the rate limit, which holds the rows a run reads.
func renderETA(w io.Writer, r *bftype.Report) {
	e := r.Estimate
	if e == nil {
		fmt.Fprintf(w, "\nETA for --execute: about %s\n", roughly(r.ETA))
		return
	}
	fmt.Fprintf(w, "\nETA for --execute: about %s (how it was made: docs/performance.md)\n", roughly(e.Total))
	fmt.Fprintf(w, "  preflight   %8s  the scope count (%s in this dry-run) and %s to start, check approvals, lock and prepare\n",
		roughly(e.Preflight), roughly(e.Count), roughly(e.Preflight-e.Count))
	batches := fmt.Sprintf("%s: a canary of %s, then up to %s each", plural(e.Batches, "batch", "batches"),
		plural(int64(r.CanarySize), "row", "rows"), plural(int64(r.BatchSize), "row", "rows"))
	fmt.Fprintf(w, "  batches     %8s  the longer of the work and the rate limit below; %s\n", roughly(e.Batching), batches)
	fmt.Fprintf(w, "    work      %8s  reading %s and deciding %s (as long as in this dry-run), writing %s rows (%s) and\n"+
		"                        committing %s (%s; both estimated), shared by %s\n",
		roughly(e.Work), roughly(e.Read), roughly(e.Transform), bftype.Thousands(e.Changes), roughly(e.Write),
		plural(e.Batches, "batch", "batches"), roughly(e.Commit), plural(int64(e.Lanes), "lane", "lanes"))
	if e.MaxRowsPerSecond > 0 {
		fmt.Fprintf(w, "    rate limit %7s  %s rows read at batch.max_rows_per_second %d (it counts rows read, not written; lanes share it)\n",
			roughly(e.Throttle), bftype.Thousands(e.Scanned), e.MaxRowsPerSecond)
	} else {
		fmt.Fprintf(w, "    rate limit        -  none (batch.max_rows_per_second is 0)\n")
	}
	fmt.Fprintf(w, "  Not included: the manifest's checks before and after, and waits on locks, replicas or the health query.\n")
}

// roughly rounds d for a reader: milliseconds under a second, tenths of a
// second under a minute, seconds above.
func roughly(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// renderCounts prints the counts; the rows a run writes are labelled with
// what it does to them: will update, will insert, will DELETE.
func renderCounts(w io.Writer, r *bftype.Report) {
	c := r.Counts
	will := "will " + r.Apply.Verb()
	n := max(12, len(will))
	fmt.Fprintf(w, "  %-*s %10s\n", n, "scanned", bftype.Thousands(c.Scanned))
	fmt.Fprintf(w, "  %-*s %10s   expect %s %s\n", n, "matched", bftype.Thousands(c.Matched), r.Expect.Matched, okMark(r.Expect.Matched.Contains(c.Matched)))
	fmt.Fprintf(w, "  %-*s %10s   expect %s %s\n", n, will, bftype.Thousands(c.WillChange), r.Expect.Changed, okMark(r.Expect.Changed.Contains(c.WillChange)))
	fmt.Fprintf(w, "  %-*s %10s\n", n, "unchanged", bftype.Thousands(c.Unchanged))
	if c.Scanned != c.Matched {
		fmt.Fprintf(w, "  WARNING: the scope count (%d) and the rows the pages returned (%d) differ: CountScope and ScopePage must select\n"+
			"  the same rows, and no key may equal the start cursor (%s); see docs/authoring.md\n", c.Matched, c.Scanned, r.Start)
	}
}

// renderTenants shows every row in scope of a tenant outside the allowlist,
// which a real run refuses batch by batch.
func renderTenants(w io.Writer, m *bftype.Manifest, r *bftype.Report) {
	if len(r.OutsideTenants) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n  OUTSIDE target.tenants %v: %s\n", banner, m.Target.Tenants,
		plural(outsideRows(r.OutsideTenants), "row in scope", "rows in scope"))
	for _, o := range r.OutsideTenants {
		keys := make([]string, len(o.FirstKeys))
		for i, k := range o.FirstKeys {
			keys[i] = string(k)
		}
		more := ""
		if o.Rows > int64(len(keys)) {
			more = ", ..."
		}
		fmt.Fprintf(w, "    %-16s %s, first %s %s%s\n", o.Tenant, plural(o.Rows, "row", "rows"), r.KeyName, strings.Join(keys, ", "), more)
	}
	fmt.Fprintf(w, "  A real run stops (tenant_not_allowed) at the first batch that reads one of them.\n%s\n", banner)
}

func outsideRows(t []bftype.TenantRows) int64 {
	var n int64
	for _, o := range t {
		n += o.Rows
	}
	return n
}

// tenantList is "initech (333 rows), hooli (1 row)".
func tenantList(t []bftype.TenantRows) string {
	parts := make([]string, len(t))
	for i, o := range t {
		parts[i] = fmt.Sprintf("%s (%s)", o.Tenant, plural(o.Rows, "row", "rows"))
	}
	return strings.Join(parts, ", ")
}

func okMark(ok bool) string {
	if ok {
		return "ok"
	}
	return "OUTSIDE"
}

func renderSamples(w io.Writer, r *bftype.Report) {
	if len(r.Samples) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSamples (first %d of the %s it will %s, by key):\n", len(r.Samples), bftype.Count(r.Counts.WillChange, "row", "rows"), r.Apply.Verb())
	for _, s := range r.Samples {
		fmt.Fprintf(w, "  %s=%s\n", r.KeyName, s.Key)
		for _, d := range s.Diffs {
			before := string(d.Before)
			if d.Before == nil {
				before = "(not read)"
			}
			fmt.Fprintf(w, "      %-16s %s -> %s\n", d.Field, before, d.After)
		}
	}
}

func renderSQL(w io.Writer, r *bftype.Report) {
	fmt.Fprintf(w, "\nSQL a real run executes (the count once, then page and apply per batch):\n")
	for _, s := range r.Statements {
		fmt.Fprintf(w, "\n  -- %s (%s)\n%s\n", s.Name, s.Role, indent(strings.TrimSpace(s.SQL), "    "))
	}
	fmt.Fprintf(w, "\n  Page parameters: %s = %s for the first page, then the last %s of the previous page; %s = %s\n",
		r.CursorName, r.Start, r.KeyName, r.LimitName, pageLimits(r))
	if len(r.FirstApply) > 0 {
		fmt.Fprintf(w, "\n  Parameters of the first Apply batch (%s):\n", firstApplyBatch(r))
		for _, p := range r.FirstApply {
			fmt.Fprintf(w, "    %-*s %s\n", width(r.FirstApply), p.Name, shortValue(p.Value))
		}
	}
}

// pageLimits is the LIMIT of a real run's pages: the canary's, then the
// batches'.
func pageLimits(r *bftype.Report) string {
	if r.CanarySize > 0 && r.CanarySize < r.BatchSize {
		return fmt.Sprintf("%d for the canary batch, then %d", r.CanarySize, r.BatchSize)
	}
	return fmt.Sprint(r.BatchSize)
}

// firstApplyBatch names the batch whose Apply parameters are shown.
func firstApplyBatch(r *bftype.Report) string {
	switch {
	case r.FirstApplyBatch == 1 && r.CanarySize > 0 && r.CanarySize < r.BatchSize:
		return fmt.Sprintf("batch 1, the canary batch of %s, which runs first and alone", plural(int64(r.CanarySize), "row", "rows"))
	case r.FirstApplyBatch == 1:
		return "batch 1, which runs first and alone"
	case r.FirstApplyBatch > 1:
		return fmt.Sprintf("batch %d; the batches before it %s nothing", r.FirstApplyBatch, r.Apply.Verb())
	}
	return "the first batch with changes"
}

// shortValue shows at most maxShownValues elements of an array parameter.
func shortValue(v json.RawMessage) string {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil || len(items) <= maxShownValues {
		return string(v)
	}
	parts := make([]string, maxShownValues)
	for i := range parts {
		parts[i] = string(items[i])
	}
	return fmt.Sprintf("[%s, ...] (%d values)", strings.Join(parts, ", "), len(items))
}

func width(params []bftype.Param) int {
	w := 10
	for _, p := range params {
		w = max(w, len(p.Name))
	}
	return w
}

func plural(n int64, one, many string) string { return bftype.Count(n, one, many) }

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// quoteTarget quotes the target database; a manifest with targets: names
// several, as targetDatabases lists them.
func quoteTarget(m *bftype.Manifest, db string) string {
	if len(m.Targets) > 0 {
		return db
	}
	return fmt.Sprintf("%q", db)
}
