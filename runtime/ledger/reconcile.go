package ledger

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/runonce/backfill/runtime/bftype"
)

// The payload of a run's reconciled audit event: how the run's changes
// compare with the dry-run it reconciles with, per group and at the spot
// checks. The engine writes it and the archive reads it back.

// Reconciliation compares a run's changed rows with its dry-run. It is the
// payload of the run's "reconciled" audit event.
type Reconciliation struct {
	DryRunID   int64 `json:"dry_run_id"`
	WillChange int64 `json:"will_change"`
	Changed    int64 `json:"changed"`
	Match      bool  `json:"match"`
	// Groups compare, per report.group_by group, the dry-run's will change
	// with the rows the run's batches changed; GroupsMatch says all agree.
	// Spots are the dry-run's spot-check keys beside their values after the
	// run (recorded when the run ends; verify reads them again).
	Groups       []GroupReconciliation `json:"groups,omitempty"`
	GroupsMatch  bool                  `json:"groups_match,omitempty"`
	Spots        []SpotResult          `json:"spot_checks,omitempty"`
	PlannedSpots []bftype.Spot         `json:"-"` // the dry-run's spot checks, for a spot check
	// Ack is the operator's acknowledgement of this very difference (same
	// dry-run, same counts), if one was recorded after the run.
	Ack *Ack `json:"-"`
}

// Explains reports whether an acknowledgement is of this comparison.
func (rec Reconciliation) Explains(a Ack) bool {
	return a.DryRunID == rec.DryRunID && a.WillChange == rec.WillChange && a.Changed == rec.Changed
}

// GroupReconciliation compares one report.group_by group's changes in a run
// with its dry-run's will change.
type GroupReconciliation struct {
	Group   string `json:"group"`
	Planned int64  `json:"planned"` // the dry-run's will change
	// Changed are the rows of the group the run's batches changed: each
	// batch's audit event counts its changes by group.
	Changed int64 `json:"changed"`
	Match   bool  `json:"match"`
}

// SpotResult is a spot-check key after a run: what the dry-run predicted and
// what the row holds.
type SpotResult struct {
	Key json.RawMessage `json:"key"`
	// Predicted is the dry-run's finding for the key.
	Predicted bftype.Spot `json:"predicted"`
	// Current are the fields the backfill sets, as the row holds them now
	// (nil: no row has the key); Match says each predicted after-value is
	// what the row holds (for a key the dry-run changed).
	Current map[string]json.RawMessage `json:"current"`
	Match   bool                       `json:"match"`
	// Unread says why the values could not be read, when they could not.
	Unread string `json:"unread,omitempty"`
	// NotReached says the run has not reached the key yet: it is after the
	// checkpoint of its lane (a canary paused for a person, a running or
	// stopped run), so its row still holds the value from before.
	NotReached bool `json:"not_reached,omitempty"`
}

// Verdict is one word on a spot check after a run.
func (s SpotResult) Verdict() string {
	switch {
	case s.Unread != "":
		return "cannot read: " + s.Unread
	case s.NotReached && !s.Match && s.Predicted.InScope:
		return "not reached yet (after the run's checkpoint)"
	case !s.Predicted.InScope && s.Current == nil:
		return "not in scope, no such row"
	case !s.Predicted.InScope:
		return "not in scope (the run did not touch it)"
	case !s.Predicted.Change:
		return "in scope, predicted unchanged"
	case s.Match:
		return "as predicted"
	}
	return "MISMATCH"
}

// Lines are a spot check's fields: predicted before -> after, and now.
func (s SpotResult) Lines() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range s.Predicted.Diffs {
		seen[d.Field] = true
		before := string(d.Before)
		if d.Before == nil {
			before = "(not read)"
		}
		out = append(out, fmt.Sprintf("%-16s predicted %s -> %s, now %s", d.Field, before, d.After, nowText(s, d.Field)))
	}
	for _, f := range slices.Sorted(maps.Keys(s.Current)) {
		if !seen[f] {
			out = append(out, fmt.Sprintf("%-16s now %s", f, s.Current[f]))
		}
	}
	return out
}

func nowText(s SpotResult, field string) string {
	if s.Current == nil {
		return "(no row)"
	}
	v, ok := s.Current[field]
	if !ok {
		return "(not read)"
	}
	return string(v)
}
