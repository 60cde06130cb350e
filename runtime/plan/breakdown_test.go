package plan

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

func diffOf(from, to any) []bftype.FieldDiff { return []bftype.FieldDiff{bftype.Diff("v", from, to)} }

func TestTransitionsAreExactWhileFewAndCountNullApart(t *testing.T) {
	t.Parallel()
	ts := newTransitions()
	for range 5 {
		ts.add(diffOf(nil, "a"))
	}
	for range 3 {
		ts.add(diffOf("a", nil))
	}
	ts.add(diffOf("a", "b"))
	ts.add([]bftype.FieldDiff{bftype.SetOnly("v", "c")})
	f := ts.tables(12)[0]
	require.Equal(t, int64(10), f.Changes)
	require.Equal(t, int64(2), f.Same)
	require.True(t, f.DistinctExact)
	require.Equal(t, int64(4), f.Distinct)
	require.False(t, f.Many())
	require.Equal(t, []bftype.Transition{
		{From: "null", To: `"a"`, Rows: 5}, {From: `"a"`, To: "null", Rows: 3}, {From: "", To: `"c"`, Rows: 1}, {From: `"a"`, To: `"b"`, Rows: 1},
	}, f.Top)
	require.Equal(t, int64(0), f.Other)
	require.Equal(t, map[string]int64{bftype.ClassNullToValue: 5, bftype.ClassValueToNull: 3, bftype.ClassValueToValue: 1,
		bftype.ClassSetOnly: 1, bftype.ClassSame: 2}, f.Classes)
}

// TestTransitionsStayBoundedWithManyDistinctValues feeds 200,000 changes of
// all-distinct values plus two frequent pairs: the tally never holds more
// than 2*MaxTransitions pairs, still finds the frequent pairs with counts no
// lower than the truth, and counts the classes exactly.
func TestTransitionsStayBoundedWithManyDistinctValues(t *testing.T) {
	t.Parallel()
	ts := newTransitions()
	const n = 200_000
	var frequent int64
	for i := range n {
		switch {
		case i%10 == 0:
			ts.add(diffOf(nil, "hot"))
			frequent++
		case i%20 == 1:
			ts.add(diffOf("x", "y"))
		default:
			ts.add(diffOf(fmt.Sprint(i), fmt.Sprint(i+1)))
		}
		if len(ts.fields["v"].counts) > 2*bftype.MaxTransitions {
			t.Fatalf("%d pairs tracked after %d changes", len(ts.fields["v"].counts), i+1)
		}
	}
	f := ts.tables(n)[0]
	require.False(t, f.DistinctExact)
	require.True(t, f.Many())
	require.Len(t, f.Top, bftype.TopTransitions)
	require.Equal(t, "null", f.Top[0].From)
	require.Equal(t, `"hot"`, f.Top[0].To)
	require.GreaterOrEqual(t, f.Top[0].Rows, frequent)
	require.LessOrEqual(t, f.Top[0].Rows-f.Top[0].Error, frequent)
	require.Equal(t, `"x"`, f.Top[1].From)
	require.Equal(t, int64(n/10), f.Classes[bftype.ClassNullToValue])
	require.Equal(t, int64(n-n/10), f.Classes[bftype.ClassValueToValue])
	data, err := json.Marshal(f)
	require.NoError(t, err)
	require.Less(t, len(data), 4096, "the report's table must not grow with the scope")
}

func TestGroupsSumGroupsBeyondTheCapAsOther(t *testing.T) {
	t.Parallel()
	gs := newGroups([]string{"tenant"})
	for i := range bftype.MaxGroups + 10 {
		gs.add(bftype.GroupLabel([]any{fmt.Sprint(i)}), i%2 == 0)
	}
	gs.add(bftype.GroupLabel([]any{nil}), true)
	b := gs.breakdown()
	require.Len(t, b.Groups, bftype.MaxGroups)
	require.NotNil(t, b.Other)
	require.Equal(t, int64(11), b.Other.Matched)
	require.Equal(t, "null", bftype.GroupLabel([]any{nil}))
}
