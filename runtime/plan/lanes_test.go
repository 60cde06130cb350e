package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

// gappyRows are n rows with keys that skip, so bounds fall between keys too.
func gappyRows(n int) []row {
	rows := make([]row, n)
	id := int64(0)
	for i := range rows {
		id += 1 + int64(i%5)
		rows[i] = row{ID: id, Role: "member"}
	}
	return rows
}

// walkLane reads one lane the way the engine does, from after to until.
func walkLane(t *testing.T, p Plan, after, until json.RawMessage, size int) []int64 {
	t.Helper()
	var keys []int64
	cursor := after
	for {
		b, err := p.NextIn(context.Background(), nil, cursor, until, size)
		require.NoError(t, err)
		if b == nil {
			return keys
		}
		require.LessOrEqual(t, b.Scanned, size)
		for _, s := range b.Samples {
			var k int64
			require.NoError(t, json.Unmarshal(s.Key, &k))
			keys = append(keys, k)
		}
		cursor = b.Cursor
		if b.Last {
			return keys
		}
	}
}

func raw(k int64) json.RawMessage { return json.RawMessage(fmt.Sprint(k)) }

// Lanes cut at any ascending keys, the dry-run's split keys or random
// ones, inside or outside the scope, read every row exactly once between
// them: the property exactly-once writing with lanes rests on.
func TestLanesReadEveryRowExactlyOnce(t *testing.T) {
	t.Parallel()
	rows := gappyRows(2000)
	var all []int64
	for _, r := range rows {
		all = append(all, r.ID)
	}
	var limits []int
	p := New(memSpec(rows, &limits))
	require.True(t, p.Splittable())
	tally, err := p.Scan(context.Background(), nil, ScanOpts{Page: 300, Batch: 50})
	require.NoError(t, err)
	cuts := [][]int64{nil, {all[999]}, {-5}, {all[len(all)-1] + 10}, {all[0], all[1]}}
	for _, s := range tally.SplitKeys {
		var k int64
		require.NoError(t, json.Unmarshal(s, &k))
		cuts[0] = append(cuts[0], k)
	}
	for range 20 {
		var c []int64
		for range 1 + rand.IntN(7) {
			c = append(c, rand.Int64N(all[len(all)-1]+20)-10)
		}
		sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
		c = dedupe(c)
		cuts = append(cuts, c)
	}
	for _, c := range cuts {
		for _, size := range []int{1, 7, 50, 5000} {
			var got []int64
			for i := 0; i <= len(c); i++ {
				var after, until json.RawMessage
				if i > 0 {
					after = raw(c[i-1])
				}
				if i < len(c) {
					until = raw(c[i])
				}
				got = append(got, walkLane(t, p, after, until, size)...)
			}
			// memSpec's transform leaves every seventh row alone and every third
			// already holds its change; samples list the others.
			var want []int64
			for _, r := range rows {
				if r.ID%7 != 0 && r.Role != "admin" {
					want = append(want, r.ID)
				}
			}
			require.Equal(t, want, got, "cuts %v, size %d", c, size)
		}
	}
}

func dedupe(s []int64) []int64 {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Split keys are at most MaxSplitKeys, ascending and evenly spread by row
// count, whatever the size of the scope.
func TestSplitKeysAreEvenlySpread(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 12345} {
		rows := gappyRows(n)
		var limits []int
		tally, err := New(memSpec(rows, &limits)).Scan(context.Background(), nil, ScanOpts{Page: 500, Batch: 10})
		require.NoError(t, err)
		require.LessOrEqual(t, len(tally.SplitKeys), MaxSplitKeys)
		if n >= MaxSplitKeys {
			require.GreaterOrEqual(t, len(tally.SplitKeys), MaxSplitKeys/2, "n=%d", n)
		}
		pos := map[int64]int{}
		for i, r := range rows {
			pos[r.ID] = i + 1
		}
		prev, gap := 0, 0
		for i, s := range tally.SplitKeys {
			var k int64
			require.NoError(t, json.Unmarshal(s, &k))
			p, ok := pos[k]
			require.True(t, ok, "split key %d is a key of the scope", k)
			require.Greater(t, p, prev)
			if i == 0 {
				gap = p
			}
			require.Equal(t, gap, p-prev, "n=%d: split keys every %d rows", n, gap)
			prev = p
		}
	}
}

// A page that does not ascend from the cursor is refused, not cut into lanes.
func TestNextInRefusesPagesOutOfKeyOrder(t *testing.T) {
	t.Parallel()
	rows := []row{{ID: 5}, {ID: 3}, {ID: 9}}
	p := New(Spec[row, change, int64]{
		Page: func(_ context.Context, _ DBTX, _ bftype.ParamValues, after int64, limit int) ([]row, error) {
			return rows, nil
		},
		Key: func(r row) int64 { return r.ID },
		Transform: func(r row) (change, bool) {
			return change{}, false
		},
	})
	_, err := p.NextIn(context.Background(), nil, raw(1), raw(100), 10)
	require.ErrorContains(t, err, "ascending key order")
	_, err = p.NextIn(context.Background(), nil, raw(5), nil, 10)
	require.ErrorContains(t, err, "ascending key order", "a first key not after the cursor")
}

// Text keys are never split: Go and the server's collation may order them differently.
func TestTextKeysAreNotSplittable(t *testing.T) {
	t.Parallel()
	p := New(Spec[row, change, string]{
		Page: func(context.Context, DBTX, bftype.ParamValues, string, int) ([]row, error) {
			return []row{{ID: 1}}, nil
		},
		Key: func(r row) string { return fmt.Sprint(r.ID) },
		Transform: func(r row) (change, bool) {
			return change{}, false
		},
	})
	require.False(t, p.Splittable())
	tally, err := p.Scan(context.Background(), nil, ScanOpts{Page: 10, Batch: 10})
	require.NoError(t, err)
	require.Empty(t, tally.SplitKeys)
}
