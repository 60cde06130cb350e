package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
)

// renderBreakdown prints the counts per report.group_by group.
func renderBreakdown(w io.Writer, r *bftype.Report) {
	b := r.Breakdown
	if b == nil {
		return
	}
	fmt.Fprintf(w, "\nPer %s (report.group_by; %s):\n", strings.Join(b.GroupBy, ", "), plural(int64(len(b.Groups)), "group", "groups"))
	rows := slices.Clone(b.Groups)
	if b.Other != nil {
		rows = append(rows, *b.Other)
	}
	width := len(strings.Join(b.GroupBy, ", "))
	for _, g := range rows {
		width = max(width, len(g.Group))
	}
	will := "will " + r.Apply.Verb()
	fmt.Fprintf(w, "  %-*s %10s %12s %10s\n", width, strings.Join(b.GroupBy, ", "), "matched", will, "unchanged")
	for _, g := range rows {
		fmt.Fprintf(w, "  %-*s %10s %12s %10s\n", width, g.Group, bftype.Thousands(g.Matched), bftype.Thousands(g.WillChange), bftype.Thousands(g.Unchanged))
	}
	if b.Other != nil {
		fmt.Fprintf(w, "  (groups after the first %d seen are summed as %s)\n", bftype.MaxGroups, b.Other.Group)
	}
}

// renderTransitions prints, for every field the changes set, its most
// frequent from -> to pairs, or for a high-cardinality field its classes
// first.
func renderTransitions(w io.Writer, r *bftype.Report) {
	for _, f := range r.Transitions {
		distinct := fmt.Sprint(f.Distinct)
		if !f.DistinctExact {
			distinct = fmt.Sprintf("more than %d", bftype.MaxTransitions)
		}
		fmt.Fprintf(w, "\n%s: from -> to (%s changed, %s distinct):\n", f.Field, plural(f.Changes, "row", "rows"), distinct)
		if f.Many() {
			fmt.Fprintf(w, "  by class (more than %d distinct pairs):\n", bftype.ManyTransitions)
			for _, c := range bftype.Classes {
				if n := f.Classes[c]; n > 0 {
					fmt.Fprintf(w, "    %-22s %10s\n", c, bftype.Thousands(n))
				}
			}
			fmt.Fprintf(w, "  most frequent pairs:\n")
		}
		for _, t := range f.Top {
			approx := ""
			if t.Error > 0 {
				approx = fmt.Sprintf(" (at most; at least %s)", bftype.Thousands(t.Rows-t.Error))
			}
			fmt.Fprintf(w, "    %s -> %s  %s%s\n", fromText(t.From), t.To, bftype.Thousands(t.Rows), approx)
		}
		if f.Other > 0 {
			fmt.Fprintf(w, "    other pairs  %s\n", bftype.Thousands(f.Other))
		}
		if f.Same > 0 {
			fmt.Fprintf(w, "    (same)  %s changed rows keep this field\n", bftype.Thousands(f.Same))
		}
	}
}

func fromText(from string) string {
	if from == "" {
		return "(not read)"
	}
	return from
}

// renderSpots prints the spot-check keys: their diffs, or why there are none.
func renderSpots(w io.Writer, r *bftype.Report) {
	if len(r.Spots) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSpot checks (report.spot_check and --spot):\n")
	for _, s := range r.Spots {
		group := ""
		if s.Group != "" {
			group = "  (" + s.Group + ")"
		}
		switch {
		case !s.InScope:
			fmt.Fprintf(w, "  %s=%s  not in scope: a real run does not touch it\n", r.KeyName, s.Key)
		case !s.Change:
			fmt.Fprintf(w, "  %s=%s  in scope, unchanged: a real run leaves it as it is%s\n", r.KeyName, s.Key, group)
		default:
			fmt.Fprintf(w, "  %s=%s  will %s%s\n", r.KeyName, s.Key, r.Apply.Verb(), group)
			for _, d := range s.Diffs {
				before := string(d.Before)
				if d.Before == nil {
					before = "(not read)"
				}
				fmt.Fprintf(w, "      %-16s %s -> %s\n", d.Field, before, d.After)
			}
		}
	}
}

// groupsText adds the groups that differ to verify's refusal.
func groupsText(rec engine.Reconciliation) string {
	var bad []string
	for _, g := range rec.Groups {
		if !g.Match {
			bad = append(bad, fmt.Sprintf("%s planned %s, changed %s", g.Group, bftype.Thousands(g.Planned), bftype.Thousands(g.Changed)))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "; per group: " + strings.Join(bad, "; ")
}

// renderGroupReconcile prints, per report.group_by group, the dry-run's
// will change beside the rows the run changed.
func renderGroupReconcile(w io.Writer, groups []engine.GroupReconciliation) {
	if len(groups) == 0 {
		return
	}
	width := len("group")
	for _, g := range groups {
		width = max(width, len(g.Group))
	}
	fmt.Fprintf(w, "reconcile per group:\n  %-*s %10s %10s\n", width, "group", "planned", "changed")
	for _, g := range groups {
		mark := "match"
		if !g.Match {
			mark = "MISMATCH"
		}
		fmt.Fprintf(w, "  %-*s %10s %10s  %s\n", width, g.Group, bftype.Thousands(g.Planned), bftype.Thousands(g.Changed), mark)
	}
}

// renderSpotResults prints the spot-check keys as the dry-run predicted
// them beside what the rows hold now.
func renderSpotResults(w io.Writer, key string, spots []engine.SpotResult) {
	if len(spots) == 0 {
		return
	}
	fmt.Fprintf(w, "spot checks (dry-run prediction, then the row now):\n")
	for _, s := range spots {
		fmt.Fprintf(w, "  %s=%s  %s\n", key, s.Key, s.Verdict())
		for _, line := range s.Lines() {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
}
