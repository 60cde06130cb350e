package engine

import (
	"encoding/json"
	"testing"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// The hand-written encoding decodes to exactly what marshalling ledger.Undo
// values row by row gives, for every shape a diff can take.
func TestEncodeUndoMatchesMarshal(t *testing.T) {
	samples := []bftype.Sample{
		bftype.SampleOf(int64(7), []bftype.FieldDiff{bftype.Diff("role", "member", "admin")}),
		bftype.SampleOf("k\"ey\u00e9\n", []bftype.FieldDiff{
			bftype.Diff("note", nil, "x\u2028y"),
			bftype.SetOnly("updated", 3.5),
			bftype.Diff("weird \"name\"", []int{1, 2}, map[string]any{"a": nil}),
		}),
		bftype.SampleOf(int64(9), nil),
	}
	got := encodeUndo(samples)
	if !json.Valid(got) {
		t.Fatalf("not valid JSON: %s", got)
	}
	want := make([]ledger.Undo, len(samples))
	for i, s := range samples {
		want[i] = ledger.Undo{Key: s.Key, Before: map[string]json.RawMessage{}, After: map[string]json.RawMessage{}}
		for _, d := range s.Diffs {
			want[i].Before[d.Field], want[i].After[d.Field] = d.Before, d.After
		}
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var a, b []ledger.Undo
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wantJSON, &b); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("encodeUndo decodes to\n%s\nwant\n%s", ja, jb)
	}
	if string(encodeUndo(nil)) != "[]" {
		t.Fatalf("no samples: %s", encodeUndo(nil))
	}
}
