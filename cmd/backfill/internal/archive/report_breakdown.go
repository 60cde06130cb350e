package archive

import (
	"fmt"
	"strings"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// reportGroupReconcile writes, per report.group_by group, the dry-run's
// will change beside the rows the run changed, as the run recorded them
// when it ended (its "reconciled" audit event).
func reportGroupReconcile(w *strings.Builder, rec ledger.Reconciliation, ap bftype.Apply) {
	if len(rec.Groups) == 0 {
		return
	}
	fmt.Fprintf(w, "\n| group | planned (dry-run %d) | %s | |\n| --- | --- | --- | --- |\n", rec.DryRunID, ap.Past())
	for _, g := range rec.Groups {
		fmt.Fprintf(w, "| %s | %d | %d | %s |\n", cell(g.Group), g.Planned, g.Changed, map[bool]string{true: "match", false: "MISMATCH"}[g.Match])
	}
	fmt.Fprintln(w)
}

// reportSpots writes the spot-check keys: the dry-run's prediction beside
// the values the rows held when the run ended.
func reportSpots(w *strings.Builder, rec ledger.Reconciliation, planned *bftype.Report) {
	if len(rec.Spots) == 0 {
		return
	}
	key := "key"
	if planned != nil {
		key = planned.KeyName
	}
	fmt.Fprintf(w, "\nSpot checks (the dry-run's prediction, and the row when the run ended):\n\n")
	for _, s := range rec.Spots {
		fmt.Fprintf(w, "- `%s=%s`: %s\n", key, s.Key, s.Verdict())
		for _, line := range s.Lines() {
			fmt.Fprintf(w, "  - `%s`\n", strings.Join(strings.Fields(line), " "))
		}
	}
	fmt.Fprintln(w)
}

// reportBreakdown writes the planning dry-run's per-group counts and from ->
// to tables.
func reportBreakdown(w *strings.Builder, planned *bftype.Report, id int64, ap bftype.Apply) {
	if planned == nil {
		return
	}
	if b := planned.Breakdown; b != nil {
		fmt.Fprintf(w, "\nDry-run %d per %s:\n\n| %s | matched | will %s | unchanged |\n| --- | --- | --- | --- |\n",
			id, strings.Join(b.GroupBy, ", "), cell(strings.Join(b.GroupBy, ", ")), ap.Verb())
		rows := b.Groups
		if b.Other != nil {
			rows = append(rows[:len(rows):len(rows)], *b.Other)
		}
		for _, g := range rows {
			fmt.Fprintf(w, "| %s | %d | %d | %d |\n", cell(g.Group), g.Matched, g.WillChange, g.Unchanged)
		}
	}
	for _, f := range planned.Transitions {
		fmt.Fprintf(w, "\nDry-run %d, `%s` from -> to (%s):\n\n| from | to | rows |\n| --- | --- | --- |\n", id, f.Field, bftype.Count(f.Changes, "row", "rows"))
		for _, t := range f.Top {
			from := t.From
			if from == "" {
				from = "(not read)"
			}
			fmt.Fprintf(w, "| %s | %s | %d |\n", cell(from), cell(t.To), t.Rows)
		}
		if f.Other > 0 {
			fmt.Fprintf(w, "| other pairs | | %d |\n", f.Other)
		}
		if f.Many() {
			fmt.Fprintf(w, "\nBy class: %s.\n", classes(f))
		}
	}
	fmt.Fprintln(w)
}

// classes is "NULL -> value 3, value -> other value 9000" in a fixed order.
func classes(f bftype.FieldTransitions) string {
	var parts []string
	for _, c := range bftype.Classes {
		if n := f.Classes[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return strings.Join(parts, ", ")
}
