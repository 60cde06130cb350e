package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// ScanOpts says how Scan reads the scope.
type ScanOpts struct {
	// Page is the LIMIT of each page query. A read-only walk writes nothing
	// and locks nothing, so its pages need not be as small as the batches
	// that protect a real run's writers: larger pages cost fewer round trips.
	// Only one page of rows is held at a time, so memory grows with Page,
	// never with the scope.
	Page int
	// Batch is the size of a real run's batches: Tally.Batches and
	// Tally.FirstApply are counted in batches of this many rows.
	Batch int
	// Canary is the size of a real run's first batch (batch.canary), which
	// runs alone before the others; 0 or more than Batch: a batch like the
	// others.
	Canary int
	// Samples is how many changes, the first in key order, to keep with
	// their diffs.
	Samples int
	// Tenants is the manifest's target.tenants: rows of any other tenant
	// are tallied in Tally.OutsideTenants. Empty: no allowlist.
	Tenants []string
	// GroupBy names the report.group_by columns; with them (and a Spec
	// with Group) Tally.Breakdown counts the scope per group.
	GroupBy []string
	// Spots are spot-check keys, as JSON: Tally.Spots says what the scan
	// found for each, whether or not it is among the samples.
	Spots []json.RawMessage
}

// Tally is what Scan found: what a real run over the same snapshot would do.
type Tally struct {
	Scanned    int64           // rows the pages returned
	Changes    int64           // rows the transform would change
	Batches    int64           // batches a real run would read: the canary, then ScanOpts.Batch rows each
	Pages      int64           // page queries Scan ran
	Samples    []bftype.Sample // the first changes, by key, with their diffs
	FirstApply []bftype.Param  // Apply's parameters for the first batch with changes
	// FirstApplyBatch is the number of that batch in a real run: 1 is the
	// canary; 0 when nothing changes.
	FirstApplyBatch int64
	ReadTime        time.Duration // time spent in page queries
	// SplitKeys are keys spread evenly through the scope by row count, at
	// most MaxSplitKeys of them in ascending order, for a real run to cut
	// its lanes at; empty when the key is not an integer (see Splittable).
	SplitKeys []json.RawMessage
	// OutsideTenants are the rows of tenants outside ScanOpts.Tenants, by
	// tenant in the order they first appear, with their first keys.
	OutsideTenants []bftype.TenantRows
	// Breakdown are the counts per ScanOpts.GroupBy group (nil without),
	// Transitions the from -> to tables of the fields the changes set, and
	// Spots what the scan found for each ScanOpts.Spots key. All three are
	// bounded whatever the size of the scope (see breakdown.go).
	Breakdown   *bftype.Breakdown
	Transitions []bftype.FieldTransitions
	Spots       []bftype.Spot
}

// MaxSplitKeys bounds Tally.SplitKeys.
const MaxSplitKeys = 64

// Scan reads the whole scope from the start in pages of opts.Page rows and
// decides every row exactly as a real run's batches do. It cuts the rows
// into a canary batch of opts.Canary rows and then batches of opts.Batch, in
// key order, the way a real run's keyset pages would fall (with one lane and
// batches at their full size), so the batch count and the first Apply
// batch's parameters are those of a real run whatever the page size.
func (p *typed[R, C, K]) Scan(ctx context.Context, db DBTX, opts ScanOpts) (*Tally, error) {
	if opts.Page < 1 || opts.Batch < 1 {
		return nil, fmt.Errorf("error scanning scope: page (%d) and batch (%d) sizes must be positive", opts.Page, opts.Batch)
	}
	s := scanner[R, C, K]{p: p, opts: opts, t: &Tally{}, moves: newTransitions()}
	spots, err := newSpotKeys[K](opts.Spots)
	if err != nil {
		return nil, err
	}
	s.spots = spots
	if p.s.Group != nil && len(opts.GroupBy) > 0 {
		s.groups = newGroups(opts.GroupBy)
	}
	cursor := p.s.Start
	for {
		rows, read, err := p.page(ctx, db, cursor, opts.Page)
		if err != nil {
			return nil, err
		}
		s.t.Pages++
		s.t.ReadTime += read
		for _, row := range rows {
			s.add(row)
		}
		if len(rows) < opts.Page {
			break
		}
		cursor = p.s.Key(rows[len(rows)-1])
	}
	s.endBatch()
	s.t.Transitions = s.moves.tables(s.t.Changes)
	s.t.Spots = s.spots.spots
	if s.groups != nil {
		s.t.Breakdown = s.groups.breakdown()
	}
	for _, k := range s.splits {
		b, _ := json.Marshal(k) // an integer always marshals
		s.t.SplitKeys = append(s.t.SplitKeys, b)
	}
	return s.t, nil
}

// scanner is the state of one Scan between rows.
type scanner[R, C any, K Key] struct {
	p       *typed[R, C, K]
	opts    ScanOpts
	t       *Tally
	pending []C // the current batch's changes, until FirstApply is known
	splits  []K // every every-th key, thinned to at most MaxSplitKeys
	every   int64
	end     int64 // the row count at which the current batch ends
	groups  *groups
	moves   *transitions
	spots   *spotKeys[K]
}

func (s *scanner[R, C, K]) add(row R) {
	if s.t.Scanned == s.end {
		s.endBatch()
		s.t.Batches++
		s.end += int64(s.opts.Batch)
		if s.t.Batches == 1 && s.opts.Canary > 0 && s.opts.Canary < s.opts.Batch {
			s.end = int64(s.opts.Canary)
		}
	}
	s.t.Scanned++
	if s.p.Splittable() {
		s.split(row)
	}
	if len(s.opts.Tenants) > 0 && s.p.s.Tenant != nil {
		s.tenant(row)
	}
	change, diffs, ok := s.p.decide(row)
	group := ""
	if s.groups != nil {
		group = bftype.GroupLabel(s.p.s.Group(row))
		s.groups.add(group, ok)
	}
	if len(s.spots.keys) > 0 {
		s.spot(row, group, ok, diffs)
	}
	if !ok {
		return
	}
	s.t.Changes++
	s.moves.add(diffs)
	if len(s.t.Samples) < s.opts.Samples {
		s.t.Samples = append(s.t.Samples, bftype.SampleOf(s.p.s.Key(row), diffs))
	}
	if s.t.FirstApply == nil {
		s.pending = append(s.pending, change)
	}
}

// split keeps the key of every every-th row; when that gives more than
// MaxSplitKeys keys it drops every other one and doubles every, so the keys
// stay evenly spread by row count whatever the size of the scope.
func (s *scanner[R, C, K]) split(row R) {
	if s.every == 0 {
		s.every = 1
	}
	if s.t.Scanned%s.every != 0 {
		return
	}
	s.splits = append(s.splits, s.p.s.Key(row))
	if len(s.splits) > MaxSplitKeys {
		kept := s.splits[:0]
		for i := 1; i < len(s.splits); i += 2 {
			kept = append(kept, s.splits[i])
		}
		s.splits, s.every = kept, 2*s.every
	}
}

// spot records what the scan found for a row with a spot-check key.
func (s *scanner[R, C, K]) spot(row R, group string, change bool, diffs []bftype.FieldDiff) {
	i := slices.Index(s.spots.keys, s.p.s.Key(row))
	if i < 0 {
		return
	}
	sp := &s.spots.spots[i]
	sp.InScope, sp.Change, sp.Group = true, change, group
	if change {
		sp.Diffs = diffs
	}
}

// tenant tallies a row whose tenant is outside the allowlist.
func (s *scanner[R, C, K]) tenant(row R) {
	t := s.p.s.Tenant(row)
	if slices.Contains(s.opts.Tenants, t) {
		return
	}
	i := slices.IndexFunc(s.t.OutsideTenants, func(o bftype.TenantRows) bool { return o.Tenant == t })
	if i < 0 {
		i = len(s.t.OutsideTenants)
		s.t.OutsideTenants = append(s.t.OutsideTenants, bftype.TenantRows{Tenant: t})
	}
	o := &s.t.OutsideTenants[i]
	o.Rows++
	if len(o.FirstKeys) < bftype.MaxTenantKeys {
		o.FirstKeys = append(o.FirstKeys, bftype.JSON(s.p.s.Key(row)))
	}
}

// endBatch closes a batch: the first one with changes gives FirstApply.
func (s *scanner[R, C, K]) endBatch() {
	if s.t.FirstApply == nil && len(s.pending) > 0 {
		s.t.FirstApply, s.t.FirstApplyBatch = s.p.s.ApplyParams(s.pending), s.t.Batches
	}
	s.pending = nil
}
