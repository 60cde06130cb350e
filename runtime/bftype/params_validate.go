package bftype

import (
	"fmt"
	"slices"
	"strings"
)

// ParamNames lists the declared parameters in name order.
func (m *Manifest) ParamNames() []string { return sortedSpecs(m.Params) }

func (m *Manifest) validateParams() error {
	for _, name := range m.ParamNames() {
		path := "params." + name
		if !backfillName.MatchString(name) { // the same rule as sqlc.arg(name)
			return refuse(path, "a parameter name is lower case letters, digits and underscores, starting with a letter (as in sqlc.arg(%s))", name)
		}
		if err := m.Params[name].validate(); err != nil {
			return refuse(path, "%v", err)
		}
	}
	return nil
}

// validate checks a declaration the way the runtime will use it: min, max
// and default parse as the type (by the parser --param values go through),
// and the default is a value ResolveParams accepts.
func (s ParamSpec) validate() error {
	switch {
	case !slices.Contains(ParamTypes, s.Type):
		return fmt.Errorf("type must be one of %s, not %q", strings.Join(ParamTypes, ", "), s.Type)
	case strings.TrimSpace(s.Doc) == "":
		return fmt.Errorf("doc is required: what the value means, for the operator and the reviewers")
	case s.Required && s.Default != nil:
		return fmt.Errorf("a parameter with a default is not required; drop one of them")
	case !s.Required && s.Default == nil:
		return fmt.Errorf("required: false needs a default")
	case (s.Min != "" || s.Max != "") && !ordered(s.Type):
		return fmt.Errorf("min and max apply to date, timestamptz, bigint and integer, not %s", s.Type)
	case len(s.Allowed) > 0 && s.Type != ParamText && s.Type != ParamTextArray:
		return fmt.Errorf("allowed applies to text and text[], not %s", s.Type)
	}
	bounds := map[string]any{}
	for _, b := range []struct{ key, v string }{{"min", s.Min}, {"max", s.Max}} {
		if b.v == "" {
			continue
		}
		v, err := parseScalar(s.Type, b.v)
		if err != nil {
			return fmt.Errorf("%s: %v", b.key, err)
		}
		bounds[b.key] = v
	}
	if lo, hi := bounds["min"], bounds["max"]; lo != nil && hi != nil {
		if c, _ := compare(lo, hi); c > 0 {
			return fmt.Errorf("min (%s) is after max (%s)", s.Min, s.Max)
		}
	}
	if s.Default != nil {
		return s.checkDefault(*s.Default)
	}
	return nil
}

// checkDefault words a bad default as the author reads it: which element,
// and against which rule.
func (s ParamSpec) checkDefault(d string) error {
	values := []string{d}
	if s.Type == ParamTextArray {
		values = strings.Split(d, ",")
	}
	for _, v := range values {
		typ := strings.TrimSuffix(s.Type, "[]")
		c, err := parseScalar(typ, v)
		if err != nil {
			return fmt.Errorf("default: %v", err)
		}
		if len(s.Allowed) > 0 && !contains(s.Allowed, strings.TrimSpace(v)) {
			return fmt.Errorf("default: %q is not in allowed", v)
		}
		if s.inRange(c) != nil {
			return fmt.Errorf("default: %s is outside min and max", v)
		}
	}
	return nil
}

func ordered(typ string) bool {
	return typ == ParamDate || typ == ParamTimestamptz || typ == ParamBigint || typ == ParamInteger
}
