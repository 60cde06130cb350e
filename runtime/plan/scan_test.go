package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

type row struct {
	ID   int64
	Role string
}

type change struct {
	ID   int64
	Role string
}

// memSpec is a Spec over rows held in memory, sorted by key. Every third
// row already holds its change, every seventh is left alone by the
// transform, the rest change. limits records the LIMIT of every page read.
func memSpec(rows []row, limits *[]int) Spec[row, change, int64] {
	return Spec[row, change, int64]{
		Count: func(context.Context, DBTX, bftype.ParamValues) (int64, error) { return int64(len(rows)), nil },
		Page: func(_ context.Context, _ DBTX, _ bftype.ParamValues, after int64, limit int) ([]row, error) {
			*limits = append(*limits, limit)
			i := sort.Search(len(rows), func(i int) bool { return rows[i].ID > after })
			return append([]row(nil), rows[i:min(len(rows), i+limit)]...), nil
		},
		Key:   func(r row) int64 { return r.ID },
		Start: 0,
		Transform: func(r row) (change, bool) {
			if r.ID%7 == 0 {
				return change{}, false
			}
			return change{ID: r.ID, Role: "admin"}, true
		},
		Diff: func(r row, c change) []bftype.FieldDiff {
			if r.Role == c.Role {
				return nil
			}
			return []bftype.FieldDiff{bftype.Diff("role", r.Role, c.Role)}
		},
		ApplyParams: func(cs []change) []bftype.Param {
			ids := make([]int64, len(cs))
			for i, c := range cs {
				ids[i] = c.ID
			}
			return []bftype.Param{bftype.ParamOf("id", ids)}
		},
	}
}

func memRows(n int) []row {
	rows := make([]row, n)
	for i := range rows {
		id := int64(i + 1)
		rows[i] = row{ID: id, Role: "member"}
		if id%3 == 0 {
			rows[i].Role = "admin"
		}
	}
	return rows
}

// walkTally is what a real run's batches see: the canary batch of canary
// rows (Next), then Walk in pages of batch rows after it.
func walkTally(t *testing.T, p Plan, canary, batch, samples int) *Tally {
	t.Helper()
	want := &Tally{}
	visit := func(b *Batch) error {
		want.Batches++
		want.Scanned += int64(b.Scanned)
		want.Changes += int64(b.Changes)
		if room := samples - len(want.Samples); room > 0 {
			want.Samples = append(want.Samples, b.Samples[:min(room, len(b.Samples))]...)
		}
		if want.FirstApply == nil && b.Changes > 0 {
			want.FirstApply, want.FirstApplyBatch = b.Params(), want.Batches
		}
		return nil
	}
	first, err := p.Next(context.Background(), nil, nil, canary)
	require.NoError(t, err)
	if first == nil {
		return want
	}
	require.NoError(t, visit(first))
	if !first.Last {
		require.NoError(t, p.Walk(context.Background(), nil, first.Cursor, batch, visit))
	}
	return want
}

// Scan must count exactly what a real run's batches would, its canary batch
// first, whatever the page size: larger pages only save round trips.
func TestScanMatchesTheRunsBatchesAtAnyPageSize(t *testing.T) {
	t.Parallel()
	const batch = 10
	for _, n := range []int{0, 1, 9, 10, 100, 103} {
		for _, canary := range []int{0, 1, 3, batch} {
			var limits []int
			p := New(memSpec(memRows(n), &limits))
			run := canary
			if run == 0 {
				run = batch // no canary: the first batch is a batch like the others
			}
			want := walkTally(t, p, run, batch, 4)
			for _, page := range []int{1, 3, batch, 25, 100, 103, 104, 5000} {
				t.Run(fmt.Sprintf("rows=%d/canary=%d/page=%d", n, canary, page), func(t *testing.T) {
					limits = nil
					got, err := p.Scan(context.Background(), nil, ScanOpts{Page: page, Batch: batch, Canary: canary, Samples: 4})
					require.NoError(t, err)
					require.Equal(t, want.Scanned, got.Scanned)
					require.Equal(t, want.Changes, got.Changes)
					require.Equal(t, want.Batches, got.Batches, "a canary of %d rows, then batches of %d rows a real run reads", canary, batch)
					require.Equal(t, want.Samples, got.Samples)
					require.Equal(t, want.FirstApply, got.FirstApply, "the first Apply batch is the real run's")
					require.Equal(t, want.FirstApplyBatch, got.FirstApplyBatch)
					require.Equal(t, int64(len(limits)), got.Pages)
					for _, l := range limits {
						require.Equal(t, page, l, "every page query asks for the page size, not the batch size")
					}
					require.Equal(t, n/page+1, len(limits), "a short page ends the scan")
				})
			}
		}
	}
}

// The first Apply batch a dry-run shows is the canary's: with a canary of 3
// rows, rows 1 and 2 (3 already holds its change).
func TestScanFirstApplyIsTheCanaryBatch(t *testing.T) {
	t.Parallel()
	var limits []int
	p := New(memSpec(memRows(100), &limits))
	got, err := p.Scan(context.Background(), nil, ScanOpts{Page: 50, Batch: 10, Canary: 3})
	require.NoError(t, err)
	require.Equal(t, []bftype.Param{bftype.ParamOf("id", []int64{1, 2})}, got.FirstApply)
	require.Equal(t, int64(1), got.FirstApplyBatch)
	require.Equal(t, int64(1+10), got.Batches, "the canary of 3 rows, then 97 rows in batches of 10")
}

func TestScanKeepsOnlyTheSamplesAskedFor(t *testing.T) {
	t.Parallel()
	var limits []int
	p := New(memSpec(memRows(1000), &limits))
	got, err := p.Scan(context.Background(), nil, ScanOpts{Page: 300, Batch: 50, Samples: 3})
	require.NoError(t, err)
	require.Len(t, got.Samples, 3)
	require.JSONEq(t, `1`, string(got.Samples[0].Key))
	require.JSONEq(t, `2`, string(got.Samples[1].Key))
	require.JSONEq(t, `4`, string(got.Samples[2].Key), "3 already holds its change")
	require.JSONEq(t, `"member"`, string(got.Samples[0].Diffs[0].Before))
	require.JSONEq(t, `"admin"`, string(got.Samples[0].Diffs[0].After))

	none, err := p.Scan(context.Background(), nil, ScanOpts{Page: 300, Batch: 50})
	require.NoError(t, err)
	require.Empty(t, none.Samples)
	require.Equal(t, got.Changes, none.Changes)
}

func TestScanRefusesNonPositiveSizes(t *testing.T) {
	t.Parallel()
	var limits []int
	p := New(memSpec(memRows(5), &limits))
	_, err := p.Scan(context.Background(), nil, ScanOpts{Page: 0, Batch: 10})
	require.Error(t, err)
	_, err = p.Scan(context.Background(), nil, ScanOpts{Page: 10, Batch: 0})
	require.Error(t, err)
	require.Empty(t, limits)
}

// Scan tallies every row of a tenant outside the allowlist, by tenant in
// the order they first appear, with the first keys of each, and the batch
// of a real run names the key of each row it read.
func TestScanTalliesRowsOfTenantsOutsideTheAllowlist(t *testing.T) {
	t.Parallel()
	var limits []int
	s := memSpec(memRows(100), &limits)
	// Row 40 and every row from 90 belong to initech, row 95 to hooli; the rest to acme.
	s.Tenant = func(r row) string {
		switch {
		case r.ID == 95:
			return "hooli"
		case r.ID == 40, r.ID >= 90:
			return "initech"
		}
		return "acme"
	}
	p := New(s)
	got, err := p.Scan(context.Background(), nil, ScanOpts{Page: 7, Batch: 10, Tenants: []string{"acme", "globex"}})
	require.NoError(t, err)
	keys := func(ks ...string) []json.RawMessage {
		out := make([]json.RawMessage, len(ks))
		for i, k := range ks {
			out[i] = json.RawMessage(k)
		}
		return out
	}
	require.Equal(t, []bftype.TenantRows{
		{Tenant: "initech", Rows: 11, FirstKeys: keys("40", "90", "91", "92", "93", "94", "96", "97", "98", "99")},
		{Tenant: "hooli", Rows: 1, FirstKeys: keys("95")},
	}, got.OutsideTenants)

	none, err := p.Scan(context.Background(), nil, ScanOpts{Page: 7, Batch: 10})
	require.NoError(t, err)
	require.Empty(t, none.OutsideTenants, "no allowlist, nothing outside it")

	b, err := p.Next(context.Background(), nil, json.RawMessage("35"), 10)
	require.NoError(t, err)
	require.Equal(t, "initech", b.Tenants[4])
	require.JSONEq(t, "40", string(b.Key(4)))
}
