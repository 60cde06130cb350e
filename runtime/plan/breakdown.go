package plan

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/runonce/backfill/runtime/bftype"
)

// groups counts a scan per report.group_by group in at most
// bftype.MaxGroups counters: rows of a group first seen after that many are
// summed in other, so memory is bounded whatever the number of groups.
type groups struct {
	by    []string
	index map[string]int
	list  []bftype.GroupCounts
	other *bftype.GroupCounts
}

func newGroups(by []string) *groups {
	return &groups{by: by, index: map[string]int{}}
}

// add counts one scanned row of group g.
func (gs *groups) add(g string, changed bool) {
	var c *bftype.GroupCounts
	if i, ok := gs.index[g]; ok {
		c = &gs.list[i]
	} else if len(gs.list) < bftype.MaxGroups {
		gs.index[g] = len(gs.list)
		gs.list = append(gs.list, bftype.GroupCounts{Group: g})
		c = &gs.list[len(gs.list)-1]
	} else {
		if gs.other == nil {
			gs.other = &bftype.GroupCounts{Group: "(other groups)"}
		}
		c = gs.other
	}
	c.Matched++
	if changed {
		c.WillChange++
	} else {
		c.Unchanged++
	}
}

// breakdown is the report's Breakdown: groups by will change, most first.
func (gs *groups) breakdown() *bftype.Breakdown {
	list := slices.Clone(gs.list)
	slices.SortStableFunc(list, func(a, b bftype.GroupCounts) int {
		return cmp.Or(cmp.Compare(b.WillChange, a.WillChange), cmp.Compare(b.Matched, a.Matched), cmp.Compare(a.Group, b.Group))
	})
	return &bftype.Breakdown{GroupBy: gs.by, Groups: list, Other: gs.other}
}

// transitions tallies the from -> to pairs of every field the changes set,
// in bounded memory per field: at most 2*bftype.MaxTransitions counters.
// When they are full, the MaxTransitions most counted pairs are kept and
// the others dropped; a pair seen after that starts from the largest count
// dropped (its Error), as in the space-saving top-k (Metwally, Agrawal and
// El Abbadi, 2005), so no kept count is under its true value and a pair
// making more than 1/MaxTransitions of a field's changes is never lost.
// Pruning in halves costs O(log MaxTransitions) per row, amortized, however
// many distinct values the scope holds. Up to MaxTransitions distinct pairs
// the counts are exact.
type transitions struct {
	order  []string // fields in the order first seen
	fields map[string]*fieldTally
}

type pair struct{ from, to string }

type fieldTally struct {
	changes  int64
	distinct int64 // pairs added while no pair had been dropped
	floor    int64 // the largest count dropped; 0 while exact
	pruned   bool
	counts   map[pair]*bftype.Transition
	classes  map[string]int64
}

func newTransitions() *transitions { return &transitions{fields: map[string]*fieldTally{}} }

// add tallies the diffs of one changed row.
func (ts *transitions) add(diffs []bftype.FieldDiff) {
	for _, d := range diffs {
		f := ts.fields[d.Field]
		if f == nil {
			f = &fieldTally{counts: map[pair]*bftype.Transition{}, classes: map[string]int64{}}
			ts.fields[d.Field] = f
			ts.order = append(ts.order, d.Field)
		}
		from := ""
		if d.Before != nil {
			from = bftype.TruncValue(d.Before)
		}
		f.add(pair{from, bftype.TruncValue(d.After)})
	}
}

func (f *fieldTally) add(p pair) {
	f.changes++
	f.classes[bftype.ClassOf(p.from, p.to)]++
	if t, ok := f.counts[p]; ok {
		t.Rows++
		return
	}
	if !f.pruned {
		f.distinct++
	}
	f.counts[p] = &bftype.Transition{From: p.from, To: p.to, Rows: f.floor + 1, Error: f.floor}
	if len(f.counts) >= 2*bftype.MaxTransitions {
		f.prune()
	}
}

// prune keeps the MaxTransitions most counted pairs.
func (f *fieldTally) prune() {
	all := f.sorted()
	for _, t := range all[bftype.MaxTransitions:] {
		f.floor = max(f.floor, t.Rows)
		delete(f.counts, pair{t.From, t.To})
	}
	f.pruned = true
}

// sorted is every tracked pair, most counted first, then by pair.
func (f *fieldTally) sorted() []bftype.Transition {
	all := make([]bftype.Transition, 0, len(f.counts))
	for _, t := range f.counts {
		all = append(all, *t)
	}
	slices.SortFunc(all, func(a, b bftype.Transition) int {
		return cmp.Or(cmp.Compare(b.Rows, a.Rows), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return all
}

// tables are the report's Transitions, given the changed rows: a field a
// change leaves as it was counts that row as Same.
func (ts *transitions) tables(changed int64) []bftype.FieldTransitions {
	out := make([]bftype.FieldTransitions, 0, len(ts.order))
	for _, name := range ts.order {
		f := ts.fields[name]
		all := f.sorted()
		top := all[:min(len(all), bftype.TopTransitions)]
		var shown int64
		for _, t := range top {
			shown += t.Rows
		}
		ft := bftype.FieldTransitions{Field: name, Changes: f.changes, Same: changed - f.changes,
			Distinct: f.distinct, DistinctExact: !f.pruned, Top: top, Other: max(0, f.changes-shown), Classes: f.classes}
		if f.changes < changed {
			ft.Classes[bftype.ClassSame] = changed - f.changes
		}
		out = append(out, ft)
	}
	return out
}

// spotKeys matches rows against the spot-check keys.
type spotKeys[K Key] struct {
	keys  []K
	spots []bftype.Spot
}

func newSpotKeys[K Key](raw []json.RawMessage) (*spotKeys[K], error) {
	s := &spotKeys[K]{}
	for _, r := range raw {
		var k K
		if err := json.Unmarshal(r, &k); err != nil {
			return nil, &BadSpotKey{Key: string(r), Err: err}
		}
		if slices.Contains(s.keys, k) {
			continue
		}
		s.keys = append(s.keys, k)
		s.spots = append(s.spots, bftype.Spot{Key: bftype.JSON(k)})
	}
	return s, nil
}

// BadSpotKey is a spot-check key that is not a value of the backfill's key.
type BadSpotKey struct {
	Key string
	Err error
}

func (e *BadSpotKey) Error() string {
	return "spot-check key " + e.Key + " is not a value of the key: " + e.Err.Error()
}

func (e *BadSpotKey) Unwrap() error { return e.Err }

// ErrNoRead is returned by Read when the backfill has no RevertRead query
// to read the fields it sets by key.
var ErrNoRead = errors.New("this backfill has no RevertRead query to read the fields it sets by key")

// Read reads the fields the backfill sets of the rows with the given keys
// (JSON), through RevertRead, keyed by the key's JSON text; a key without
// a row is absent.
func (p *typed[R, C, K]) Read(ctx context.Context, db DBTX, raw []json.RawMessage) (map[string]map[string]json.RawMessage, error) {
	if p.s.Current == nil {
		return nil, ErrNoRead
	}
	s, err := newSpotKeys[K](raw)
	if err != nil {
		return nil, err
	}
	current, err := p.s.Current(ctx, db, s.keys)
	if err != nil {
		return nil, fmt.Errorf("error reading the current values of spot-check keys: %w", err)
	}
	out := make(map[string]map[string]json.RawMessage, len(current))
	for k, image := range current {
		out[string(bftype.JSON(k))] = image
	}
	return out, nil
}
