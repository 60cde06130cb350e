package engine

import (
	"encoding/json"
	"fmt"
	"testing"
)

func keys(ks ...int64) []json.RawMessage {
	out := make([]json.RawMessage, len(ks))
	for i, k := range ks {
		out[i] = json.RawMessage(fmt.Sprint(k))
	}
	return out
}

func TestPickBounds(t *testing.T) {
	even := make([]int64, 64)
	for i := range even {
		even[i] = int64(i+1) * 100
	}
	for _, c := range []struct {
		splits []json.RawMessage
		want   int
		bounds string
	}{
		{keys(even...), 2, "[3200]"},
		{keys(even...), 4, "[1600,3200,4800]"},
		{keys(10, 20, 30), 2, "[10]"},
		{keys(10, 20, 30), 8, "[10,20]"}, // no more lanes than the keys allow
		{keys(10, 10, 10), 3, "[10]"},
		{keys(30, 20, 10), 4, "[30]"}, // not ascending: only the first
		{keys(), 4, "null"},
		{[]json.RawMessage{json.RawMessage(`"a"`)}, 2, "null"},
	} {
		b, _ := json.Marshal(pickBounds(c.splits, c.want))
		if string(b) != c.bounds {
			t.Errorf("pickBounds(%s, %d) = %s, want %s", c.splits, c.want, b, c.bounds)
		}
	}
}
