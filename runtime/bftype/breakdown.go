package bftype

import (
	"encoding/json"
	"reflect"
	"strings"
)

// ReportSpec is the manifest's report section: how a dry-run breaks its
// counts down and which rows it shows whatever the samples are.
type ReportSpec struct {
	// GroupBy names ScopePage columns; the dry-run counts matched, will
	// change and unchanged per distinct combination of their values, and a
	// run records its changed rows per group so verify can reconcile them.
	GroupBy []string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	// SpotCheck are keys whose before and after the dry-run always shows,
	// and whose current values verify shows after the run.
	SpotCheck SpotKeys `yaml:"spot_check,omitempty" json:"spot_check,omitempty"`
}

// Bounds of the breakdown, so that a dry-run's memory does not grow with the
// number of distinct values in scope (docs/reviewing.md).
const (
	// MaxGroups is how many groups a dry-run counts one by one; rows of
	// further groups are counted together in Breakdown.Other.
	MaxGroups = 1000
	// MaxTransitions is how many distinct from -> to pairs a dry-run
	// tracks per field (a space-saving top-k: once full, a new pair takes
	// the place of the least counted one, inheriting its count as error).
	MaxTransitions = 1000
	// TopTransitions is how many from -> to pairs a report lists per field;
	// the rest are summed as "other".
	TopTransitions = 10
	// ManyTransitions is the number of distinct pairs above which a field
	// is high-cardinality: the report leads with its classes.
	ManyTransitions = 50
	// MaxValueText truncates a value's JSON in a transition, so that a
	// long text column cannot make a tracked pair large.
	MaxValueText = 120
)

// GroupCounts are the counts of one group: the rows of the scope whose
// group_by columns hold Group.
type GroupCounts struct {
	// Group is the group_by values, each as exact JSON (NULL is null),
	// joined by ", ": e.g. "acme" in quotes, or "acme", null.
	Group      string `json:"group"`
	Matched    int64  `json:"matched"` // rows of the scope in the group
	WillChange int64  `json:"will_change"`
	Unchanged  int64  `json:"unchanged"`
}

// Breakdown is a dry-run's counts per group.
type Breakdown struct {
	GroupBy []string      `json:"group_by"`
	Groups  []GroupCounts `json:"groups"` // by will change, most first, then by group
	// Other sums the groups after the first MaxGroups seen; nil when all
	// groups are counted one by one.
	Other *GroupCounts `json:"other,omitempty"`
}

// GroupLabel is the label of a row's group_by values.
func GroupLabel(values []any) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = string(exact(v))
	}
	return strings.Join(parts, ", ")
}

// Transition is one from -> to pair of a field and how many changed rows
// make it. From and To are the values as JSON text, NULL as null,
// truncated to MaxValueText; From is empty when the scope row does not
// read the field.
type Transition struct {
	From string `json:"from"`
	To   string `json:"to"`
	Rows int64  `json:"rows"`
	// Error bounds how much Rows may overcount, once more pairs were seen
	// than MaxTransitions (0: exact).
	Error int64 `json:"error,omitempty"`
}

// The classes of a transition, for high-cardinality fields.
const (
	ClassNullToValue  = "NULL -> value"
	ClassValueToNull  = "value -> NULL"
	ClassValueToValue = "value -> other value"
	ClassSame         = "value -> same"
	ClassSetOnly      = "(not read) -> value"
)

// Classes are the classes in the order reports print them.
var Classes = []string{ClassNullToValue, ClassValueToNull, ClassValueToValue, ClassSetOnly, ClassSame}

// ClassOf is the class of a transition from -> to (JSON texts; from empty:
// not read).
func ClassOf(from, to string) string {
	switch {
	case from == "":
		return ClassSetOnly
	case from == to:
		return ClassSame
	case from == "null":
		return ClassNullToValue
	case to == "null":
		return ClassValueToNull
	}
	return ClassValueToValue
}

// FieldTransitions is the from -> to table of one field a change sets.
type FieldTransitions struct {
	Field string `json:"field"`
	// Changes are the rows whose change sets this field to a new value;
	// Same are the changed rows whose change leaves it as it was.
	Changes int64 `json:"changes"`
	Same    int64 `json:"same"`
	// Distinct is how many distinct pairs were seen, exactly when
	// DistinctExact, else at least (more than MaxTransitions).
	Distinct      int64 `json:"distinct"`
	DistinctExact bool  `json:"distinct_exact"`
	// Top are the most frequent pairs, at most TopTransitions; Other sums
	// the rows of all other pairs.
	Top   []Transition `json:"top"`
	Other int64        `json:"other"`
	// Classes count every change of the field by class (ClassOf), always
	// exact whatever the number of pairs.
	Classes map[string]int64 `json:"classes"`
}

// Many reports whether the field is high-cardinality: the report leads with
// its classes rather than its pairs.
func (f FieldTransitions) Many() bool { return !f.DistinctExact || f.Distinct > ManyTransitions }

// Spot is a spot-check key in a dry-run: what the dry-run found for it.
type Spot struct {
	Key json.RawMessage `json:"key"`
	// InScope: the scope returned the key. Change: the transform changes
	// it, with Diffs the fields it sets.
	InScope bool        `json:"in_scope"`
	Change  bool        `json:"change"`
	Diffs   []FieldDiff `json:"diffs,omitempty"`
	Group   string      `json:"group,omitempty"`
}

// TruncValue is the JSON text of a value, cut at MaxValueText bytes.
func TruncValue(v json.RawMessage) string {
	s := string(v)
	if len(s) > MaxValueText {
		return s[:MaxValueText] + "..."
	}
	return s
}

// SameJSON reports whether two JSON texts are the same value, whatever their
// spacing (a value read back from jsonb is re-spaced).
func SameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}
