package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/plan"
)

// GroupReconciliation and SpotResult are the ledger's types of the
// reconciled event's parts.
type (
	GroupReconciliation = ledger.GroupReconciliation
	SpotResult          = ledger.SpotResult
)

// MarkNotReached marks the spot checks whose key a run has not reached:
// after its checkpoint (cursor, with one lane) or after the checkpoint of
// the lane whose range holds the key.
func MarkNotReached(res []SpotResult, cursor json.RawMessage, lanes []ledger.Lane) {
	for i := range res {
		k := res[i].Key
		if len(lanes) == 0 {
			res[i].NotReached = keyAfter(k, cursor)
			continue
		}
		for _, l := range lanes {
			if keyAfter(k, l.After) && (isNull(l.Until) || !keyAfter(k, l.Until)) {
				res[i].NotReached = !l.Done && keyAfter(k, l.Cursor)
			}
		}
	}
}

func isNull(k json.RawMessage) bool { return len(k) == 0 || string(k) == "null" }

// keyAfter reports whether key a comes after key b (null: before every
// key) in key order: numbers by value, strings byte by byte.
func keyAfter(a, b json.RawMessage) bool {
	if isNull(b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	switch x := x.(type) {
	case float64:
		var m, n json.Number
		if y, ok := y.(float64); ok && x != y {
			return x > y
		}
		_ = json.Unmarshal(a, &m)
		_ = json.Unmarshal(b, &n)
		ma, _ := new(big.Int).SetString(m.String(), 10)
		nb, _ := new(big.Int).SetString(n.String(), 10)
		return ma != nil && nb != nil && ma.Cmp(nb) > 0
	case string:
		y, ok := y.(string)
		return ok && x > y
	}
	return false
}

// batchGroups is the part of a batch audit event that counts its changes by
// group.
type batchGroups struct {
	Groups map[string]int64 `json:"groups"`
}

// groupsChanged sums the per-group changes of a run's batch events.
func groupsChanged(ctx context.Context, q ledger.Querier, runID int64) (map[string]int64, error) {
	events, err := ledger.Events(ctx, q, runID)
	if err != nil {
		return nil, err
	}
	sum := map[string]int64{}
	for _, e := range events {
		if e.Kind != "batch" {
			continue
		}
		var b batchGroups
		if err := json.Unmarshal([]byte(e.Payload), &b); err != nil {
			return nil, fmt.Errorf("error reading batch event %d of run %d: %w", e.Seq, runID, err)
		}
		for g, n := range b.Groups {
			sum[g] += n
		}
	}
	return sum, nil
}

// reconcileGroups compares the dry-run's per-group will change with the
// run's per-group changes. Groups the dry-run summed as other are compared
// as one; groups of the run the dry-run never saw planned 0. At most
// bftype.MaxGroups groups are listed one by one.
func reconcileGroups(b *bftype.Breakdown, changed map[string]int64) []GroupReconciliation {
	var out []GroupReconciliation
	for _, g := range b.Groups {
		out = append(out, GroupReconciliation{Group: g.Group, Planned: g.WillChange, Changed: changed[g.Group]})
		delete(changed, g.Group)
	}
	var other *GroupReconciliation
	if b.Other != nil {
		other = &GroupReconciliation{Group: b.Other.Group, Planned: b.Other.WillChange}
	}
	for _, g := range slices.Sorted(maps.Keys(changed)) {
		if other == nil && len(out) < bftype.MaxGroups {
			out = append(out, GroupReconciliation{Group: g, Changed: changed[g]})
			continue
		}
		if other == nil {
			other = &GroupReconciliation{Group: "(other groups)"}
		}
		other.Changed += changed[g]
	}
	if other != nil {
		out = append(out, *other)
	}
	for i := range out {
		out[i].Match = out[i].Planned == out[i].Changed
	}
	return out
}

// SpotCheck reads the current values of the dry-run's spot-check keys and
// sets each beside its prediction. It reads through the approved RevertRead,
// which locks its rows: the ledger's backfill.peek runs it (this login holds
// no write privilege), one statement, so the locks last no longer.
func SpotCheck(ctx context.Context, conn *pgx.Conn, p plan.Plan, spots []bftype.Spot) ([]SpotResult, error) {
	if len(spots) == 0 {
		return nil, nil
	}
	q := ledger.NewPeek(conn, nil)
	keys := make([]json.RawMessage, len(spots))
	for i, s := range spots {
		keys[i] = s.Key
	}
	current, err := p.Read(ctx, q, keys)
	out := make([]SpotResult, len(spots))
	for i, s := range spots {
		out[i] = SpotResult{Key: s.Key, Predicted: s}
		if errors.Is(err, plan.ErrNoRead) {
			out[i].Unread = err.Error()
			continue
		}
		out[i].Current = current[string(s.Key)]
		out[i].Match = spotMatch(s, out[i].Current)
	}
	if errors.Is(err, plan.ErrNoRead) {
		err = nil
	}
	return out, err
}

// spotMatch reports whether the row holds what the dry-run predicted: the
// after-value of every field it would set. A key the dry-run did not change
// matches whenever the row exists (nothing was predicted of its values).
func spotMatch(s bftype.Spot, current map[string]json.RawMessage) bool {
	if !s.Change {
		return current != nil || !s.InScope
	}
	if current == nil {
		return false
	}
	for _, d := range s.Diffs {
		if v, ok := current[d.Field]; !ok || !bftype.SameJSON(v, d.After) {
			return false
		}
	}
	return true
}
