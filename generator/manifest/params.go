package manifest

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Param declares one parameter of a backfill: a value the operator passes to
// the binary (--param NAME=VALUE), that queries bind as sqlc.arg(NAME), that
// approvals pin and that the run-once key includes. It is required unless
// it has a default; default, min and max are written as on the command line
// (a text[] default as a comma-separated list). The runtime's
// bftype.ParamSpec decodes the same JSON.
type Param struct {
	Type     string   `yaml:"type" json:"type"`
	Doc      string   `yaml:"doc" json:"doc"`
	Required bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Default  *string  `yaml:"default,omitempty" json:"default,omitempty"`
	Min      string   `yaml:"min,omitempty" json:"min,omitempty"`
	Max      string   `yaml:"max,omitempty" json:"max,omitempty"`
	Allowed  []string `yaml:"allowed,omitempty" json:"allowed,omitempty"`
}

// ParamTypes are the declarable parameter types, PostgreSQL's names.
var ParamTypes = []string{"date", "timestamptz", "text", "bigint", "integer", "boolean", "text[]"}

var paramName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ParamNames lists the declared parameters in name order.
func (m *Manifest) ParamNames() []string {
	names := make([]string, 0, len(m.Params))
	for n := range m.Params {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (m *Manifest) validateParams(l lines) error {
	for _, name := range m.ParamNames() {
		p := m.Params[name]
		path := "params." + name
		if !paramName.MatchString(name) {
			return l.errorf(path, "a parameter name is lower case letters, digits and underscores, starting with a letter (as in sqlc.arg(%s))", name)
		}
		if err := p.validate(); err != nil {
			return l.errorf(path, "%s", err)
		}
		if l.node(path+".required") != nil && !p.Required && p.Default == nil {
			return l.errorf(path, "required: false needs a default")
		}
		p.Required = p.Default == nil // one spelling in the embedded JSON
		m.Params[name] = p
	}
	return nil
}

func (p Param) validate() error {
	known := false
	for _, t := range ParamTypes {
		known = known || p.Type == t
	}
	switch {
	case !known:
		return fmt.Errorf("type must be one of %s, not %q", strings.Join(ParamTypes, ", "), p.Type)
	case strings.TrimSpace(p.Doc) == "":
		return fmt.Errorf("doc is required: what the value means, for the operator and the reviewers")
	case p.Required && p.Default != nil:
		return fmt.Errorf("a parameter with a default is not required; drop one of them")
	case (p.Min != "" || p.Max != "") && !ordered(p.Type):
		return fmt.Errorf("min and max apply to date, timestamptz, bigint and integer, not %s", p.Type)
	case len(p.Allowed) > 0 && p.Type != "text" && p.Type != "text[]":
		return fmt.Errorf("allowed applies to text and text[], not %s", p.Type)
	}
	for _, b := range []struct{ key, v string }{{"min", p.Min}, {"max", p.Max}} {
		if b.v == "" {
			continue
		}
		if _, err := parseScalar(p.Type, b.v); err != nil {
			return fmt.Errorf("%s: %v", b.key, err)
		}
	}
	if p.Min != "" && p.Max != "" && less(p.Type, p.Max, p.Min) {
		return fmt.Errorf("min (%s) is after max (%s)", p.Min, p.Max)
	}
	if p.Default != nil {
		return p.checkDefault(*p.Default)
	}
	return nil
}

func (p Param) checkDefault(d string) error {
	values := []string{d}
	if p.Type == "text[]" {
		values = strings.Split(d, ",")
	}
	for _, v := range values {
		typ := strings.TrimSuffix(p.Type, "[]")
		if _, err := parseScalar(typ, v); err != nil {
			return fmt.Errorf("default: %v", err)
		}
		if len(p.Allowed) > 0 && !contains(p.Allowed, strings.TrimSpace(v)) {
			return fmt.Errorf("default: %q is not in allowed", v)
		}
		if (p.Min != "" && less(p.Type, v, p.Min)) || (p.Max != "" && less(p.Type, p.Max, v)) {
			return fmt.Errorf("default: %s is outside min and max", v)
		}
	}
	return nil
}

func ordered(typ string) bool {
	return typ == "date" || typ == "timestamptz" || typ == "bigint" || typ == "integer"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// less compares two values that parse as typ.
func less(typ, a, b string) bool {
	x, _ := parseScalar(typ, a)
	y, _ := parseScalar(typ, b)
	switch x := x.(type) {
	case int64:
		return x < y.(int64)
	case time.Time:
		return x.Before(y.(time.Time))
	}
	return false
}

// parseScalar checks one value as the runtime will parse it.
func parseScalar(typ, s string) (any, error) {
	s = strings.TrimSpace(s)
	switch typ {
	case "date":
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date; write YYYY-MM-DD", s)
		}
		return t, nil
	case "timestamptz":
		for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
		return nil, fmt.Errorf("%q is not a timestamp; write RFC 3339 or YYYY-MM-DD", s)
	case "bigint", "integer":
		bits := 64
		if typ == "integer" {
			bits = 32
		}
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %d-bit integer", s, bits)
		}
		return n, nil
	case "boolean":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case "text":
		if s == "" {
			return nil, fmt.Errorf("must not be empty")
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}
