package bftype

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// The direct encodings give the bytes encoding/json gives, for values on
// both sides of every shortcut.
func TestExactMatchesMarshal(t *testing.T) {
	values := []any{nil, "", "member", "a b~!", "quote\"d", `back\slash`, "<html>", "a&b", "tab\t", "é", "\u2028", "\x7f",
		int64(0), int64(-42), int64(math.MaxInt64), int32(math.MinInt32), 7, true, false,
		3.5, []int{1}, map[string]any{"a": nil}, json.RawMessage(`{"x":1}`)}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := exact(v); string(got) != string(want) {
			t.Errorf("exact(%#v) = %s, want %s", v, got, want)
		}
	}
}

// The direct comparisons agree with reflect.DeepEqual, types included.
func TestEqual(t *testing.T) {
	for _, c := range []struct {
		a, b any
		want bool
	}{
		{"x", "x", true}, {"x", "y", false}, {"1", int64(1), false},
		{int64(1), int64(1), true}, {int64(1), int32(1), false}, {int32(2), int32(2), true},
		{true, true, true}, {true, false, false}, {nil, nil, true}, {[]int{1}, []int{1}, true},
		{math.NaN(), math.NaN(), false},
	} {
		if got := Equal(c.a, c.b); got != c.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// A NULL in an image decodes into a nullable field as NULL and is refused
// for a plain one, never turned into ” or 0.
func TestFieldKeepsNull(t *testing.T) {
	t.Parallel()
	image := map[string]json.RawMessage{"nick": json.RawMessage("null"), "n": json.RawMessage("0"), "s": json.RawMessage(`""`)}
	var plain string
	err := Field(image, "nick", &plain)
	if err == nil || !strings.Contains(err.Error(), `the image of field "nick" is NULL, which a *string cannot hold`) {
		t.Fatalf("NULL into a plain string: %v", err)
	}
	var ptr *string = new(string)
	if err := Field(image, "nick", &ptr); err != nil || ptr != nil {
		t.Fatalf("NULL into *string: %v %v", ptr, err)
	}
	if err := Field(image, "s", &ptr); err != nil || ptr == nil || *ptr != "" {
		t.Fatalf("'' into *string: %v %v", ptr, err)
	}
	var n *int64
	if err := Field(image, "n", &n); err != nil || n == nil || *n != 0 {
		t.Fatalf("0 into *int64: %v %v", n, err)
	}
	s := "x"
	if !SameValue("x", &s) || SameValue("", (*string)(nil)) || !SameValue(nil, (*string)(nil)) {
		t.Fatal("SameValue must compare values, NULL apart from ''")
	}
}
