package engine

import (
	"encoding/json"
	"testing"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/plan"
)

// The hand-written encoding decodes to exactly what marshalling ledger.Undo
// values row by row gives, for every shape an image can take, and keeps a
// NULL (null) apart from an empty string and zero.
func TestEncodeUndoMatchesMarshal(t *testing.T) {
	t.Parallel()
	img := func(kv ...any) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = bftype.JSON(kv[i+1])
		}
		return m
	}
	items := []plan.UndoItem{
		{Key: bftype.JSON(int64(7)), Before: img("role", "member"), After: img("role", "admin")},
		{Key: bftype.JSON("k\"ey\u00e9\n"), Before: img("note", nil, "n", 0, "weird \"name\"", []int{1, 2}),
			After: img("note", "x\u2028y", "n", nil, "weird \"name\"", map[string]any{"a": nil})},
		{Key: bftype.JSON(int64(9)), Before: img("note", ""), After: img("note", nil)},
		{Key: bftype.JSON(int64(10)), Before: map[string]json.RawMessage{}, After: map[string]json.RawMessage{}},
	}
	got := encodeUndo(items)
	if !json.Valid(got) {
		t.Fatalf("not valid JSON: %s", got)
	}
	want := make([]ledger.Undo, len(items))
	for i, it := range items {
		want[i] = ledger.Undo{Key: it.Key, Before: it.Before, After: it.After}
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
	if string(a[2].Before["note"]) != `""` || string(a[2].After["note"]) != "null" || string(a[1].Before["n"]) != "0" {
		t.Fatalf("NULL, '' and 0 must stay apart: %s", got)
	}
	if string(encodeUndo(nil)) != "[]" {
		t.Fatalf("no items: %s", encodeUndo(nil))
	}
}
