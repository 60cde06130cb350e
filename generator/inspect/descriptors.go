package inspect

import (
	"fmt"
	"go/ast"
	"go/types"
	"slices"
	"strings"

	"github.com/runonce/backfill/generator/model"
)

// The statement roles, as the binary names them.
const (
	roleCount        = "count"
	rolePage         = "page"
	roleApply        = "apply"
	roleRevertRead   = "revert_read"
	roleRevertInsert = "revert_insert"
	roleRevertDelete = "revert_delete"
)

// sqlcCall is how one sqlc method calls pgx: the Params fields it passes
// after the SQL text, in the order they bind $1, $2, ..., and the row
// fields it scans, in the order of the result's columns. Reading them from
// sqlc's own code, not from the SQL, gives the numbering the binary runs.
type sqlcCall struct {
	args  []string // arg.X passes X; anything else is spelt as written
	scans []string // &i.X scans X
}

// readCall finds method on a sqlc package's Queries and reads its first
// Exec, Query or QueryRow call and its Scan; found is false without one.
func readCall(files []*ast.File, method string) (c sqlcCall, found bool) {
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != method || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				sel, isSel := callSel(call)
				switch {
				case !ok || !isSel:
				case !found && (sel == "Exec" || sel == "Query" || sel == "QueryRow") && len(call.Args) >= 2:
					found = true
					for _, a := range call.Args[2:] {
						c.args = append(c.args, argName(a))
					}
				case sel == "Scan" && c.scans == nil:
					for _, a := range call.Args {
						c.scans = append(c.scans, scanName(a))
					}
				}
				return true
			})
		}
	}
	return c, found
}

// callSel is the name of the method a call calls (x.Name(...)).
func callSel(call *ast.CallExpr) (string, bool) {
	if call == nil {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	return sel.Sel.Name, true
}

// argName is the Params field an argument passes (arg.X), or the
// argument as written when it is not one.
func argName(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		return s.Sel.Name
	}
	return types.ExprString(e)
}

// scanName is the row field a Scan argument fills (&i.X), or "" when it
// is not one.
func scanName(e ast.Expr) string {
	if u, ok := e.(*ast.UnaryExpr); ok {
		if s, ok := u.X.(*ast.SelectorExpr); ok {
			return s.Sel.Name
		}
	}
	return ""
}

// describe fills the positional descriptors of b's statements from sqlc's
// code in files: the $n of the keys' array in Apply and the revert
// statements, the $n of ScopePage's cursor and the column of its rows that
// is the key. It refuses a backfill where one cannot be told, naming the
// query, rather than leave a 0 the ledger would read as "none".
func describe(name string, files []*ast.File, b *model.Backfill) error {
	d := describer{name: name, files: files, b: b}
	for i := range b.Statements {
		if err := d.statement(&b.Statements[i]); err != nil {
			return err
		}
	}
	return nil
}

type describer struct {
	name  string
	files []*ast.File
	b     *model.Backfill
}

func (d describer) statement(s *model.Statement) error {
	key := d.b.Cursor.RowField
	var err error
	switch s.Role {
	case rolePage:
		if s.CursorParam, err = d.param(s, d.b.Cursor.ParamField); err != nil {
			return err
		}
		s.KeyColumn, err = d.column(s, key)
	case roleApply, roleRevertDelete:
		s.KeyParam, err = d.param(s, key)
	case roleRevertRead:
		field := ""
		if d.b.Revert != nil {
			field = d.b.Revert.ParamField
		}
		s.KeyParam, err = d.param(s, field)
	case roleRevertInsert:
		s.KeyParam, err = d.only(s)
	case roleCount:
	default:
		err = d.fail(s, "the generator does not know where the keys of role %s are", s.Role)
	}
	return err
}

// param is the $n at which sqlc's method for s binds the Params field
// field, checked to stand in the statement's SQL.
func (d describer) param(s *model.Statement, field string) (int, error) {
	c, found := readCall(d.files, s.Method)
	n := slices.Index(c.args, field) + 1
	if !found || field == "" || n == 0 {
		return 0, d.fail(s, "cannot tell which parameter binds %s: sqlc's %s binds (%s)", keyOrCursor(s, field), s.Method, strings.Join(c.args, ", "))
	}
	return n, d.inSQL(s, keyOrCursor(s, field), n)
}

// only is the $n of a statement whose one parameter is the keys.
func (d describer) only(s *model.Statement) (int, error) {
	c, found := readCall(d.files, s.Method)
	if !found || len(c.args) != 1 {
		return 0, d.fail(s, "cannot tell which parameter binds the keys: sqlc's %s binds (%s), not the keys alone", s.Method, strings.Join(c.args, ", "))
	}
	return 1, d.inSQL(s, "the keys", 1)
}

// column is the result column (1-based) of the page whose row field is
// field, in the order sqlc scans them.
func (d describer) column(s *model.Statement, field string) (int, error) {
	c, _ := readCall(d.files, s.Method)
	n := slices.Index(c.scans, field) + 1
	if n == 0 {
		return 0, d.fail(s, "cannot tell which result column is the key %s: sqlc's %s scans (%s)", field, s.Method, strings.Join(c.scans, ", "))
	}
	return n, nil
}

// inSQL checks that $n stands in the statement's SQL as sqlc wrote it, so
// that the descriptor names a parameter the database will see.
func (d describer) inSQL(s *model.Statement, what string, n int) error {
	params, err := paramNumbers(s.SQL)
	if err != nil || !params[n] {
		return d.fail(s, "sqlc binds %s as $%d, which its SQL does not use", what, n)
	}
	return nil
}

func (d describer) fail(s *model.Statement, format string, args ...any) error {
	return &ShapeError{Backfill: d.name, Hint: "regenerate it with make sqlc, and bind the key as one sqlc.arg named after its column (docs/authoring.md)",
		Msg: fmt.Sprintf("query %s (%s): ", s.Method, s.Role) + fmt.Sprintf(format, args...)}
}

// keyOrCursor names what a descriptor looks for, for a message.
func keyOrCursor(s *model.Statement, field string) string {
	what := "the keys"
	if s.Role == rolePage {
		what = "the cursor"
	}
	if field == "" {
		return what
	}
	return what + " (" + field + ")"
}
