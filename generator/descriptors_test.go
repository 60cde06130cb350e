package generator_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator"
	"github.com/runonce/backfill/runtime/bftype"
)

// The ledger trusts the descriptors to find a batch's keys inside the
// database, so each example backfill's are checked against what they claim
// to point at: the SQL as sqlc wrote it, and sqlc's own Params and Row
// structs (whose field order is the $n order and the SELECT list order).
func TestDescriptorsOfTheExamplesPointAtTheKey(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, tc := range []struct {
		name  string
		roles string // the roles the backfill's statements play
	}{
		{"fix_roles", "count page apply revert_read"},
		{"fill_nicknames", "count page apply revert_read"},
		{"grant_quotas", "count page apply revert_read revert_insert"},
		{"purge_sessions", "count page apply revert_read revert_delete"},
		{"sync_roles", "count page apply revert_read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files, err := generator.Generate(root, tc.name)
			require.NoError(t, err)
			stmts := emittedStatements(t, files[filepath.ToSlash(generator.Standard(root, tc.name).MainFile())])
			db := parseSqlc(t, filepath.Join(root, "backfills", tc.name, "db"))
			var roles []string
			for _, s := range stmts {
				roles = append(roles, s.Role)
				checkDescriptors(t, db, s, exampleKey)
			}
			require.Equal(t, tc.roles, strings.Join(roles, " "))
		})
	}
}

// key is a backfill's key: its column, its field in sqlc's structs and its
// SQL type. Every example is keyed by a bigint id.
type key struct{ column, field, sqlType string }

var exampleKey = key{column: "id", field: "ID", sqlType: "bigint"}

func checkDescriptors(t *testing.T, db sqlcPackage, s bftype.Statement, k key) {
	t.Helper()
	switch s.Role {
	case "count":
		require.Zero(t, s.KeyParam+s.CursorParam+s.KeyColumn, "a count has no key: %+v", s)
	case "page":
		require.Zero(t, s.KeyParam, s.Name)
		require.Positive(t, s.CursorParam, s.Name)
		compare := regexp.MustCompile(`(?:\b[a-z_]+\.)?\b` + k.column + `\s*>\s*\$` + strconv.Itoa(s.CursorParam) + `\b`)
		require.Regexp(t, compare, s.SQL, "%s's $%d is the cursor the key column %s is compared with", s.Name, s.CursorParam, k.column)
		row := db.fields(t, db.result(t, s.Name))
		require.Positive(t, s.KeyColumn, s.Name)
		require.LessOrEqual(t, s.KeyColumn, len(row))
		require.Equal(t, k.field, row[s.KeyColumn-1], "column %d of %s is the key, in sqlc's row %v", s.KeyColumn, s.Name, row)
		items := selectList(t, s.SQL)
		require.Len(t, items, len(row), "sqlc's row has a field per column of the SELECT list")
		require.Regexp(t, `(^|\.)`+k.column+`$`, items[s.KeyColumn-1], "column %d of the SELECT list %v is the key", s.KeyColumn, items)
	default: // apply and the revert statements bind the batch's keys
		require.Zero(t, s.CursorParam+s.KeyColumn, s.Name)
		require.Positive(t, s.KeyParam, s.Name)
		cast := regexp.MustCompile(`\$` + strconv.Itoa(s.KeyParam) + `::([a-z ]+)\[\]`).FindStringSubmatch(s.SQL)
		require.NotNil(t, cast, "%s binds $%d as an array: %s", s.Name, s.KeyParam, s.SQL)
		require.Equal(t, k.sqlType, cast[1], "%s's $%d is an array of the key's type", s.Name, s.KeyParam)
		params := db.fields(t, db.params(t, s.Name))
		require.LessOrEqual(t, s.KeyParam, len(params))
		require.Equal(t, k.field, params[s.KeyParam-1], "parameter %d of %s is the keys, in sqlc's params %v", s.KeyParam, s.Name, params)
	}
}

// emittedStatements reads the statements variable of generated wiring, with
// the SQL constants it names (applySQL, ...) resolved.
func emittedStatements(t *testing.T, src []byte) []bftype.Statement {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	require.NoError(t, err)
	consts := map[string]string{}
	var list *ast.CompositeLit
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range g.Specs {
			v, ok := spec.(*ast.ValueSpec)
			if !ok || len(v.Values) != 1 {
				continue
			}
			if lit, ok := v.Values[0].(*ast.BasicLit); ok && g.Tok == token.CONST && lit.Kind == token.STRING {
				consts[v.Names[0].Name] = unquote(t, lit)
			}
			if v.Names[0].Name == "statements" {
				list = v.Values[0].(*ast.CompositeLit)
			}
		}
	}
	require.NotNil(t, list, "the wiring has no statements variable")
	var out []bftype.Statement
	for _, elt := range list.Elts {
		var s bftype.Statement
		for _, kv := range elt.(*ast.CompositeLit).Elts {
			kv := kv.(*ast.KeyValueExpr)
			text := ""
			switch v := kv.Value.(type) {
			case *ast.BasicLit:
				text = unquote(t, v)
			case *ast.Ident:
				text = consts[v.Name]
			}
			switch kv.Key.(*ast.Ident).Name {
			case "Role":
				s.Role = text
			case "Name":
				s.Name = text
			case "SQL":
				s.SQL = text
			case "KeyParam":
				s.KeyParam = atoi(t, text)
			case "CursorParam":
				s.CursorParam = atoi(t, text)
			case "KeyColumn":
				s.KeyColumn = atoi(t, text)
			}
		}
		require.NotEmpty(t, s.SQL, "statement %s has no SQL", s.Name)
		out = append(out, s)
	}
	return out
}

func unquote(t *testing.T, lit *ast.BasicLit) string {
	t.Helper()
	if lit.Kind == token.INT {
		return lit.Value
	}
	s, err := strconv.Unquote(lit.Value)
	require.NoError(t, err)
	return s
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// sqlcPackage is the syntax of a sqlc-generated package.
type sqlcPackage struct{ files []*ast.File }

func parseSqlc(t *testing.T, dir string) sqlcPackage {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var p sqlcPackage
	for _, path := range paths {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		require.NoError(t, err)
		p.files = append(p.files, f)
	}
	return p
}

// method is the Queries method sqlc wrote for a query.
func (p sqlcPackage) method(t *testing.T, name string) *ast.FuncDecl {
	t.Helper()
	for _, f := range p.files {
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Name.Name == name {
				return fn
			}
		}
	}
	require.Failf(t, "no method", "sqlc wrote no method %s", name)
	return nil
}

// params is the name of a method's Params struct type.
func (p sqlcPackage) params(t *testing.T, method string) string {
	t.Helper()
	fn := p.method(t, method)
	require.Len(t, fn.Type.Params.List, 2, "%s takes ctx and a Params struct", method)
	return fn.Type.Params.List[1].Type.(*ast.Ident).Name
}

// result is the name of the row type of a :many method.
func (p sqlcPackage) result(t *testing.T, method string) string {
	t.Helper()
	return p.method(t, method).Type.Results.List[0].Type.(*ast.ArrayType).Elt.(*ast.Ident).Name
}

// fields are a struct type's field names, in order.
func (p sqlcPackage) fields(t *testing.T, typ string) []string {
	t.Helper()
	for _, f := range p.files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				if ts := spec.(*ast.TypeSpec); ts.Name.Name == typ {
					var out []string
					for _, fl := range ts.Type.(*ast.StructType).Fields.List {
						for _, n := range fl.Names {
							out = append(out, n.Name)
						}
					}
					return out
				}
			}
		}
	}
	require.Failf(t, "no type", "sqlc wrote no type %s", typ)
	return nil
}

var (
	lineComment = regexp.MustCompile(`--[^\n]*`)
	selectItems = regexp.MustCompile(`(?is)^\s*select\s+(.*?)\s+from\s`)
)

// selectList is the items of a SELECT's list, split at top-level commas,
// each without its alias keyword (a.b AS c reads c).
func selectList(t *testing.T, sql string) []string {
	t.Helper()
	m := selectItems.FindStringSubmatch(lineComment.ReplaceAllString(sql, ""))
	require.NotNil(t, m, "not a SELECT ... FROM: %s", sql)
	var out []string
	depth, start := 0, 0
	list := m[1] + ","
	for i, r := range list {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			item := strings.Fields(list[start:i])
			out = append(out, item[len(item)-1])
			start = i + 1
		}
	}
	return out
}
