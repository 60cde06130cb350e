package bftype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Parameter types a manifest may declare. Their names are PostgreSQL's, so
// the manifest says what the query's sqlc.arg binds.
const (
	ParamDate        = "date"
	ParamTimestamptz = "timestamptz"
	ParamText        = "text"
	ParamBigint      = "bigint"
	ParamInteger     = "integer"
	ParamBoolean     = "boolean"
	ParamTextArray   = "text[]"
)

// ParamTypes are the declarable parameter types, in the order docs list them.
var ParamTypes = []string{ParamDate, ParamTimestamptz, ParamText, ParamBigint, ParamInteger, ParamBoolean, ParamTextArray}

// ParamSpec is one declared parameter of a backfill: a value the operator
// passes (--param NAME=VALUE), the approvals pin and the run-once key
// includes. A parameter is required unless it has a default; Default, Min
// and Max are written as on the command line.
type ParamSpec struct {
	Type     string   `yaml:"type" json:"type"`
	Doc      string   `yaml:"doc" json:"doc"`
	Required bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Default  *string  `yaml:"default,omitempty" json:"default,omitempty"`
	Min      string   `yaml:"min,omitempty" json:"min,omitempty"`
	Max      string   `yaml:"max,omitempty" json:"max,omitempty"`
	Allowed  []string `yaml:"allowed,omitempty" json:"allowed,omitempty"`
}

// ParamError is a parameter value that is missing, malformed or outside what
// the manifest allows; the CLI reports it as a usage error.
type ParamError struct {
	Name string
	Msg  string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Name, e.Msg) }

// ParamValues are a run's parameter values in canonical form: a date as
// YYYY-MM-DD, a timestamptz as RFC 3339 in UTC, an integer as int64, a
// boolean as bool, a text[] as its distinct elements sorted. Equal values
// have equal canonical JSON, which is what approvals pin and the ledger's
// run-once key compares.
type ParamValues map[string]any

// JSON is the canonical encoding: keys sorted, no spaces; {} when empty.
func (v ParamValues) JSON() json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("{}")
	}
	out, err := json.Marshal(map[string]any(v))
	if err != nil { // strings, int64, bool and []string only
		panic(fmt.Sprintf("error encoding parameter values: %v", err))
	}
	return out
}

// String is the values as an operator writes them: cutoff=2026-08-01 tenants=acme,globex.
func (v ParamValues) String() string {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + FormatParam(v[n])
	}
	return strings.Join(parts, " ")
}

// FormatParam writes one canonical value as on the command line.
func FormatParam(x any) string {
	if list, ok := x.([]string); ok {
		return strings.Join(list, ",")
	}
	return fmt.Sprint(x)
}

// DiffParams names the first parameter (in name order) whose canonical value
// differs between two canonical encodings, with both values; "" when equal.
// A parameter missing on one side shows as (none).
func DiffParams(want, got json.RawMessage) string {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(orEmpty(want), &a)
	_ = json.Unmarshal(orEmpty(got), &b)
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	show := func(m map[string]json.RawMessage, n string) string {
		if raw, ok := m[n]; ok {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) != nil {
				return string(raw)
			}
			return buf.String()
		}
		return "(none)"
	}
	for _, n := range sorted {
		if show(a, n) != show(b, n) {
			return fmt.Sprintf("%s is %s here but %s there", n, show(a, n), show(b, n))
		}
	}
	return ""
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	return raw
}

// ResolveParams checks given values (strings, or lists of strings for a
// text[]) against the declared parameters, fills defaults and returns the
// canonical values. Every problem is a *ParamError naming the parameter.
func ResolveParams(specs map[string]ParamSpec, given map[string]any) (ParamValues, error) {
	names := make([]string, 0, len(given))
	for n := range given {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := specs[n]; !ok {
			return nil, &ParamError{Name: n, Msg: "is not declared by this backfill (" + declared(specs) + ")"}
		}
	}
	out := ParamValues{}
	for _, n := range sortedSpecs(specs) {
		s := specs[n]
		raw, ok := given[n]
		if !ok && s.Default != nil {
			raw, ok = *s.Default, true
		}
		if !ok {
			return nil, &ParamError{Name: n, Msg: fmt.Sprintf("is required (%s): pass --param %s=VALUE", s.Doc, n)}
		}
		v, err := s.Canonical(raw)
		if err != nil {
			return nil, &ParamError{Name: n, Msg: err.Error()}
		}
		out[n] = v
	}
	return out, nil
}

func declared(specs map[string]ParamSpec) string {
	if len(specs) == 0 {
		return "it declares no parameters"
	}
	return "it declares " + strings.Join(sortedSpecs(specs), ", ")
}

func sortedSpecs(specs map[string]ParamSpec) []string {
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Canonical parses one value of the parameter and checks it against min,
// max and allowed. A text[] takes a list or a comma-separated string.
func (s ParamSpec) Canonical(raw any) (any, error) {
	if s.Type == ParamTextArray {
		return s.textArray(raw)
	}
	str, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("must be one %s value, not a list", s.Type)
	}
	v, err := parseScalar(s.Type, str)
	if err != nil {
		return nil, err
	}
	if err := s.inRange(v); err != nil {
		return nil, err
	}
	if s.Type == ParamText && len(s.Allowed) > 0 && !contains(s.Allowed, v.(string)) {
		return nil, fmt.Errorf("%q is not allowed (allowed: %s)", str, strings.Join(s.Allowed, ", "))
	}
	return v, nil
}

func (s ParamSpec) textArray(raw any) (any, error) {
	var list []string
	switch x := raw.(type) {
	case string:
		if strings.TrimSpace(x) != "" {
			list = strings.Split(x, ",")
		}
	case []string:
		list = x
	default:
		return nil, fmt.Errorf("must be a list of text values")
	}
	seen := map[string]bool{}
	out := []string{}
	for _, e := range list {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("has an empty element")
		case len(s.Allowed) > 0 && !contains(s.Allowed, e):
			return nil, fmt.Errorf("element %q is not allowed (allowed: %s)", e, strings.Join(s.Allowed, ", "))
		case !seen[e]:
			seen[e] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("must name at least one element")
	}
	sort.Strings(out)
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inRange checks a canonical scalar against Min and Max, which parse as the
// same type (the generator checked that they do).
func (s ParamSpec) inRange(v any) error {
	for _, b := range []struct {
		bound string
		bad   func(c int) bool
		word  string
	}{{s.Min, func(c int) bool { return c < 0 }, "before the minimum"}, {s.Max, func(c int) bool { return c > 0 }, "after the maximum"}} {
		if b.bound == "" {
			continue
		}
		lim, err := parseScalar(s.Type, b.bound)
		if err != nil {
			return fmt.Errorf("the manifest's bound %q does not parse: %v", b.bound, err)
		}
		if c, ok := compare(v, lim); ok && b.bad(c) {
			word := b.word
			if s.Type == ParamBigint || s.Type == ParamInteger {
				word = map[string]string{"before the minimum": "below the minimum", "after the maximum": "above the maximum"}[word]
			}
			return fmt.Errorf("%s is %s %s", FormatParam(v), word, FormatParam(lim))
		}
	}
	return nil
}

func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case int64:
		y := b.(int64)
		return cmpOrder(x < y, x > y), true
	case string: // dates in canonical form order as text; timestamps by time
		y := b.(string)
		tx, errx := time.Parse(time.RFC3339Nano, x)
		ty, erry := time.Parse(time.RFC3339Nano, y)
		if errx == nil && erry == nil { // a fraction makes the text longer: 00.5Z sorts before 00Z
			return tx.Compare(ty), true
		}
		return strings.Compare(x, y), true
	}
	return 0, false
}

func cmpOrder(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// parseScalar parses one scalar value into its canonical form.
func parseScalar(typ, s string) (any, error) {
	s = strings.TrimSpace(s)
	switch typ {
	case ParamDate:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date; write YYYY-MM-DD", s)
		}
		return t.Format(time.DateOnly), nil
	case ParamTimestamptz:
		return parseTimestamptz(s)
	case ParamText:
		if s == "" {
			return nil, fmt.Errorf("must not be empty")
		}
		return s, nil
	case ParamBigint, ParamInteger:
		bits := 64
		if typ == ParamInteger {
			bits = 32
		}
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %d-bit integer", s, bits)
		}
		return n, nil
	case ParamBoolean:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	}
	return nil, fmt.Errorf("has unknown type %q", typ)
}

// parseTimestamptz accepts RFC 3339 or a bare date (midnight UTC) and
// returns RFC 3339 in UTC, seconds fraction only when not zero.
func parseTimestamptz(s string) (any, error) {
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano), nil
		}
	}
	return nil, fmt.Errorf("%q is not a timestamp; write RFC 3339 (2026-08-01T00:00:00Z) or YYYY-MM-DD", s)
}

// The accessors below give generated wiring a parameter as the Go type the
// sqlc params struct holds. The values were resolved before any query runs,
// so a missing or mistyped one is a bug in the wiring and panics.

func (v ParamValues) str(name string) string {
	s, ok := v[name].(string)
	if !ok {
		panic(fmt.Sprintf("parameter %s is not resolved (have %v)", name, v[name]))
	}
	return s
}

// Date is a date parameter as pgtype.Date.
func (v ParamValues) Date(name string) pgtype.Date {
	t, err := time.Parse(time.DateOnly, v.str(name))
	if err != nil {
		panic(err)
	}
	return pgtype.Date{Time: t, Valid: true}
}

// Timestamptz is a timestamptz parameter as pgtype.Timestamptz.
func (v ParamValues) Timestamptz(name string) pgtype.Timestamptz {
	t, err := time.Parse(time.RFC3339Nano, v.str(name))
	if err != nil {
		panic(err)
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// Text is a text parameter as string.
func (v ParamValues) Text(name string) string { return v.str(name) }

// PgText is a text parameter as pgtype.Text.
func (v ParamValues) PgText(name string) pgtype.Text {
	return pgtype.Text{String: v.str(name), Valid: true}
}

// Int64 is a bigint parameter as int64.
func (v ParamValues) Int64(name string) int64 { return v[name].(int64) }

// PgInt8 is a bigint parameter as pgtype.Int8.
func (v ParamValues) PgInt8(name string) pgtype.Int8 {
	return pgtype.Int8{Int64: v.Int64(name), Valid: true}
}

// Int32 is an integer parameter as int32.
func (v ParamValues) Int32(name string) int32 { return int32(v[name].(int64)) }

// PgInt4 is an integer parameter as pgtype.Int4.
func (v ParamValues) PgInt4(name string) pgtype.Int4 {
	return pgtype.Int4{Int32: v.Int32(name), Valid: true}
}

// Bool is a boolean parameter as bool.
func (v ParamValues) Bool(name string) bool { return v[name].(bool) }

// PgBool is a boolean parameter as pgtype.Bool.
func (v ParamValues) PgBool(name string) pgtype.Bool {
	return pgtype.Bool{Bool: v.Bool(name), Valid: true}
}

// TextArray is a text[] parameter as []string, sorted.
func (v ParamValues) TextArray(name string) []string { return v[name].([]string) }
