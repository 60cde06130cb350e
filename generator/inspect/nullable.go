package inspect

import (
	"fmt"
	"go/types"
	"regexp"
	"strings"

	"golang.org/x/tools/go/packages"

	"github.com/runonce/backfill/generator/model"
)

// unwrap returns the value type behind a nullable type (*T, or a pgx
// wrapper such as pgtype.Text around string) and whether t was nullable.
func unwrap(t types.Type) (types.Type, bool) {
	if p, ok := t.(*types.Pointer); ok {
		return p.Elem(), true
	}
	st, ok := t.Underlying().(*types.Struct)
	if !ok {
		return t, false
	}
	for i := range st.NumFields() {
		f := st.Field(i)
		if f.Name() != "Valid" && f.Name() != "InfinityModifier" && nullableValue(t, f.Type()) == f.Name() {
			return f.Type(), true
		}
	}
	return t, false
}

// sameValue reports whether a and b hold the same kind of value, one or
// both maybe nullable: string, *string and pgtype.Text all hold text.
func sameValue(a, b types.Type) bool {
	if sameType(a, b) {
		return true
	}
	va, _ := unwrap(a)
	vb, _ := unwrap(b)
	return sameType(va, vb)
}

// canHoldNull reports whether a change field of type t can carry NULL.
func canHoldNull(t types.Type) bool {
	_, null := unwrap(t)
	return null
}

// zeroText is how the zero value of a plain type reads in SQL, for the
// message that explains why it cannot stand in for NULL.
func zeroText(t types.Type) string {
	if b, ok := t.Underlying().(*types.Basic); ok {
		switch {
		case b.Info()&types.IsString != 0:
			return "''"
		case b.Info()&types.IsNumeric != 0:
			return "0"
		case b.Info()&types.IsBoolean != 0:
			return "false"
		}
	}
	return "its zero value"
}

// goType describes t for the emitter: a basic or named type, maybe behind
// one pointer or in one slice.
func goType(t types.Type) (model.GoType, bool) {
	var g model.GoType
	switch x := t.(type) {
	case *types.Pointer:
		g.Pointer, t = true, x.Elem()
	case *types.Slice:
		g.Slice, t = true, x.Elem()
	}
	switch x := t.(type) {
	case *types.Basic:
		g.Name = x.Name()
		return g, true
	case *types.Named:
		if x.TypeArgs().Len() > 0 || x.Obj().Pkg() == nil {
			return g, false
		}
		g.Path, g.Name = x.Obj().Pkg().Path(), x.Obj().Name()
		return g, true
	}
	return g, false
}

var (
	selectList = regexp.MustCompile(`(?is)^\s*select\s+(.*?)\s+from\s`)
	plainItem  = regexp.MustCompile(`(?i)^("?[a-z_][a-z0-9_$]*"?\.)?"?[a-z_][a-z0-9_$]*"?(\s+(as\s+)?"?[a-z_][a-z0-9_$]*"?)?$`)
)

// plainColumns checks that a SELECT's list is only column references
// (maybe qualified, maybe renamed): no coalesce, cast or expression that
// would read a NULL as something else and hide the column's nullability
// from sqlc.
func plainColumns(sql string) error {
	m := selectList.FindStringSubmatch(stripComments(sql))
	if m == nil {
		return fmt.Errorf("it is not a SELECT ... FROM")
	}
	for _, item := range splitTop(m[1]) {
		if item = strings.TrimSpace(item); !plainItem.MatchString(item) {
			return fmt.Errorf("%q is not a plain column", item)
		}
	}
	return nil
}

// stripComments removes -- line comments.
func stripComments(sql string) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// splitTop splits a select list at the commas outside parentheses.
func splitTop(list string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range list {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, list[start:i])
				start = i + 1
			}
		}
	}
	return append(out, list[start:])
}

// bindOrder checks that the Apply parameters, in the order of sqlc's Params
// struct, are the order in which sqlc's own Apply binds them ($1, $2, ...):
// the wiring binds the arrays itself, so that a nullable change field can
// write NULL, and two text arrays swapped would write one column's values
// into another.
func bindOrder(name string, db *packages.Package, method string, fields []model.ApplyField) error {
	call, _ := readCall(db.Syntax, method)
	args := call.args
	var want []string
	for _, f := range fields {
		want = append(want, f.Name)
	}
	if strings.Join(args, ",") != strings.Join(want, ",") {
		return &ShapeError{Backfill: name, Hint: "regenerate it with make sqlc",
			Msg: fmt.Sprintf("sqlc's %s binds its parameters as (%s), not in the order of its Params struct (%s)", method, strings.Join(args, ", "), strings.Join(want, ", "))}
	}
	return nil
}
