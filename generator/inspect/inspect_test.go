package inspect

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/model"
)

// baseDB mimics the shape of a sqlc-generated package.
const baseDB = `package db
import "context"
type Queries struct{}
type ScopePageParams struct { AfterID int64; Limit int32 }
type ScopePageRow struct { ID int64; Role string; Tenant string; GrantedRole string }
type ApplyParams struct { ID []int64; Role []string }
const countScope = "SELECT count(*) FROM users"
const scopePage = "SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT $2"
const apply = "UPDATE users SET role = v.role"
func (q *Queries) CountScope(ctx context.Context) (int64, error) { return 0, nil }
func (q *Queries) ScopePage(ctx context.Context, arg ScopePageParams) ([]ScopePageRow, error) { return nil, nil }
func (q *Queries) Apply(ctx context.Context, arg ApplyParams) (int64, error) { return 0, nil }
`

const baseTransform = `package fix
import "example.com/x/db"
type Change struct { ID int64; Role string }
func Transform(row db.ScopePageRow) (Change, bool) { return Change{ID: row.ID, Role: row.GrantedRole}, true }
`

// check type-checks the two sources in memory and runs Shape on them.
func check(t *testing.T, dbSrc, pkgSrc string, params ...model.Param) (*model.Backfill, error) {
	t.Helper()
	fset := token.NewFileSet()
	std := importer.ForCompiler(fset, "gc", nil)
	db := typecheck(t, fset, "example.com/x/db", dbSrc, std)
	pkg := typecheck(t, fset, "example.com/x", pkgSrc, importerFunc(func(path string) (*types.Package, error) {
		if path == db.Path() {
			return db, nil
		}
		return std.Import(path)
	}))
	return Shape("fix", db, pkg, params...)
}

type importerFunc func(string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

func typecheck(t *testing.T, fset *token.FileSet, path, src string, imp types.Importer) *types.Package {
	t.Helper()
	f, err := parser.ParseFile(fset, path+".go", src, 0)
	require.NoError(t, err)
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check(path, fset, []*ast.File{f}, nil)
	require.NoError(t, err, "fixture does not compile")
	return pkg
}

func TestShapeOfAWellFormedBackfill(t *testing.T) {
	t.Parallel()
	b, err := check(t, baseDB, baseTransform)
	require.NoError(t, err)
	require.Equal(t, model.Cursor{RowField: "ID", ParamField: "AfterID", Type: "int64", Display: "id", ParamName: "after_id"}, b.Cursor)
	require.Equal(t, "ScopePageRow", b.Row)
	require.Equal(t, "Change", b.Change)
	require.Equal(t, "Limit", b.LimitField)
	require.Equal(t, "int32", b.LimitType)
	require.Equal(t, []model.ApplyField{{Name: "ID", Display: "id", Type: model.GoType{Name: "int64"}}, {Name: "Role", Display: "role", Type: model.GoType{Name: "string"}}}, b.ApplyFields)
	require.Equal(t, []model.DiffField{{Name: "Role", Display: "role", InRow: true}}, b.DiffFields)
	require.Equal(t, []model.Statement{
		{Role: "count", Method: "CountScope", SQL: "SELECT count(*) FROM users"},
		{Role: "page", Method: "ScopePage", SQL: "SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT $2"},
		{Role: "apply", Method: "Apply", SQL: "UPDATE users SET role = v.role"},
	}, b.Statements)
}

func TestShapeAcceptsTextKeysAndFieldsTheRowDoesNotRead(t *testing.T) {
	t.Parallel()
	db := strings.NewReplacer(
		"AfterID int64; Limit int32", "AfterEmail string; Limit int64",
		"ScopePageRow struct { ID int64;", "ScopePageRow struct { Email string; ID int64;",
		"ApplyParams struct { ID []int64; Role []string }", "ApplyParams struct { Email []string; Note []string }",
	).Replace(baseDB)
	pkg := strings.NewReplacer(
		"Change struct { ID int64; Role string }", "Change struct { Email string; Note string }",
		"Change{ID: row.ID, Role: row.GrantedRole}", "Change{Email: row.Email, Note: row.Role}",
	).Replace(baseTransform)
	b, err := check(t, db, pkg)
	require.NoError(t, err)
	require.Equal(t, "string", b.Cursor.Type)
	require.Equal(t, "int64", b.LimitType)
	require.Equal(t, []model.DiffField{{Name: "Note", Display: "note", InRow: false}}, b.DiffFields)
}

func TestShapeComparesNullableColumnsWithPlainChanges(t *testing.T) {
	t.Parallel()
	db := strings.NewReplacer(
		"type Queries struct{}", "type Queries struct{}\ntype NullText struct { String string; Valid bool }",
		"ScopePageRow struct { ID int64; Role string;", "ScopePageRow struct { ID int64; Role NullText;",
	).Replace(baseDB)
	b, err := check(t, db, baseTransform)
	require.NoError(t, err)
	require.Equal(t, []model.DiffField{{Name: "Role", Display: "role", InRow: true, Nullable: "String"}}, b.DiffFields)
}

func TestShapeErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		db, pkg  [][2]string // replacements in baseDB and baseTransform
		params   []model.Param
		wantErrs []string
	}{
		{name: "no count query", db: [][2]string{{"func (q *Queries) CountScope", "func (q *Queries) CountAll"}},
			wantErrs: []string{`the query set has no query named CountScope; it needs "-- name: CountScope :one"`}},
		{name: "count with a parameter", db: [][2]string{{"CountScope(ctx context.Context)", "CountScope(ctx context.Context, since int64)"}},
			wantErrs: []string{"query CountScope must take its parameters as a params struct"}},
		{name: "count binds an undeclared parameter", db: [][2]string{{"CountScope(ctx context.Context)", "CountScope(ctx context.Context, arg CountScopeParams)"}, {"type Queries struct{}", "type Queries struct{}; type CountScopeParams struct { Cutoff string }"}},
			wantErrs: []string{"query CountScope binds parameter cutoff, which backfill.yaml does not declare"}},
		{name: "page binds an undeclared parameter", db: [][2]string{{"AfterID int64; Limit int32", "AfterID int64; Cutoff string; Limit int32"}},
			wantErrs: []string{"parameter cutoff of ScopePage is neither the cursor After<Key>, Limit, nor a declared parameter"}},
		{name: "parameter of another type", db: [][2]string{{"AfterID int64; Limit int32", "AfterID int64; Cutoff string; Limit int32"}},
			params:   []model.Param{{Name: "cutoff", Type: "date"}},
			wantErrs: []string{"parameter cutoff of ScopePage is declared date, but sqlc typed it string", "sqlc.arg(cutoff)::date"}},
		{name: "declared parameter unused", params: []model.Param{{Name: "cutoff", Type: "date"}},
			wantErrs: []string{"parameter cutoff is declared in backfill.yaml but query CountScope does not use it"}},
		{name: "count not a number", db: [][2]string{{"CountScope(ctx context.Context) (int64, error) { return 0, nil }", "CountScope(ctx context.Context) (string, error) { return \"\", nil }"}},
			wantErrs: []string{"query CountScope must return one bigint count"}},
		{name: "no page query", db: [][2]string{{"func (q *Queries) ScopePage", "func (q *Queries) ListPage"}},
			wantErrs: []string{"no query named ScopePage", ":many"}},
		{name: "page without limit", db: [][2]string{{"AfterID int64; Limit int32", "AfterID int64; Size int32"}},
			wantErrs: []string{"parameter size of ScopePage is neither the cursor After<Key>, Limit"}},
		{name: "page with offset", db: [][2]string{{"AfterID int64; Limit int32", "AfterID int64; Limit int32; Offset int32"}},
			wantErrs: []string{"parameter offset of ScopePage is neither the cursor After<Key>, Limit"}},
		{name: "cursor without a key column", db: [][2]string{{"ScopePageRow struct { ID int64;", "ScopePageRow struct { UserID int64;"}}, pkg: [][2]string{{"Change{ID: row.ID", "Change{ID: row.UserID"}},
			wantErrs: []string{"the rows of ScopePage must have a field ID of type int64 to match the cursor AfterID"}},
		{name: "cursor of another type", db: [][2]string{{"AfterID int64", "AfterID int32"}},
			wantErrs: []string{"must have a field ID of type int32"}},
		{name: "cursor of an unsupported type", db: [][2]string{{"AfterID int64", "AfterID float64"}},
			wantErrs: []string{"the cursor AfterID must be bigint, integer, smallint or text, not float64"}},
		{name: "apply returns nothing", db: [][2]string{{"Apply(ctx context.Context, arg ApplyParams) (int64, error) { return 0, nil }", "Apply(ctx context.Context, arg ApplyParams) error { return nil }"}},
			wantErrs: []string{"query Apply must be :execrows"}},
		{name: "apply scalar parameter", db: [][2]string{{"ApplyParams struct { ID []int64; Role []string }", "ApplyParams struct { ID []int64; Role string }"}},
			wantErrs: []string{"parameter Role of Apply must be an array (one element per row), not string"}},
		{name: "no transform", pkg: [][2]string{{"func Transform(", "func Decide("}},
			wantErrs: []string{"has no function Transform; it needs func Transform(row db.ScopePageRow) (Change, bool)"}},
		{name: "transform of another row", pkg: [][2]string{{"Transform(row db.ScopePageRow)", "Transform(row db.ScopePageParams)"}, {"Change{ID: row.ID, Role: row.GrantedRole}", "Change{}"}},
			wantErrs: []string{"Transform has type func(row example.com/x/db.ScopePageParams) (example.com/x.Change, bool); it must be func Transform(row db.ScopePageRow) (Change, bool)"}},
		{name: "transform without bool", pkg: [][2]string{{"(Change, bool) { return Change{ID: row.ID, Role: row.GrantedRole}, true }", "(Change, error) { return Change{}, nil }"}},
			wantErrs: []string{"it must be func Transform(row db.ScopePageRow) (Change, bool)"}},
		{name: "change not a struct", pkg: [][2]string{{"type Change struct { ID int64; Role string }", "type Change string"}, {"Change{ID: row.ID, Role: row.GrantedRole}", "Change(row.Role)"}},
			wantErrs: []string{"Transform must return a struct type declared in package fix"}},
		{name: "change misses a parameter", pkg: [][2]string{{"Change struct { ID int64; Role string }", "Change struct { ID int64; Name string }"}, {"Role: row.GrantedRole", "Name: row.GrantedRole"}},
			wantErrs: []string{"Change has no field Role for the Apply parameter Role"}},
		{name: "change field of another type", pkg: [][2]string{{"Change struct { ID int64; Role string }", "Change struct { ID int64; Role int }"}, {"Role: row.GrantedRole", "Role: 1"}},
			wantErrs: []string{"Change.Role is int but the Apply parameter Role holds string"}},
		{name: "change with an extra field", pkg: [][2]string{{"Change struct { ID int64; Role string }", "Change struct { ID int64; Role string; Why string }"}},
			wantErrs: []string{"Change.Why has no Apply parameter to go to"}},
		{name: "change sets only the key", db: [][2]string{{"ApplyParams struct { ID []int64; Role []string }", "ApplyParams struct { ID []int64 }"}}, pkg: [][2]string{{"Change struct { ID int64; Role string }", "Change struct { ID int64 }"}, {", Role: row.GrantedRole", ""}},
			wantErrs: []string{"Change has only the key field ID; it must set at least one other field"}},
		{name: "change without the key", db: [][2]string{{"ApplyParams struct { ID []int64; Role []string }", "ApplyParams struct { Role []string }"}}, pkg: [][2]string{{"Change struct { ID int64; Role string }", "Change struct { Role string }"}, {"ID: row.ID, ", ""}},
			wantErrs: []string{"Change must have the key field ID (int64), and Apply a parameter ID of type []int64"}},
		{name: "missing SQL constant", db: [][2]string{{`const apply = "UPDATE users SET role = v.role"`, ""}},
			wantErrs: []string{"the sqlc package has no SQL text constant apply for Apply"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := check(t, replace(t, baseDB, c.db), replace(t, baseTransform, c.pkg), c.params...)
			require.Error(t, err)
			var shape *ShapeError
			require.ErrorAs(t, err, &shape)
			for _, want := range c.wantErrs {
				require.Contains(t, err.Error(), want)
			}
			require.True(t, strings.HasPrefix(err.Error(), `backfill "fix": `), err.Error())
		})
	}
}

func replace(t *testing.T, s string, pairs [][2]string) string {
	t.Helper()
	for _, p := range pairs {
		require.Contains(t, s, p[0], "fixture replacement does not apply")
		s = strings.Replace(s, p[0], p[1], 1)
	}
	return s
}

func TestSnake(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"ID": "id", "GrantedRole": "granted_role", "UserID": "user_id", "AfterID": "after_id", "HTTPStatus": "http_status", "Limit": "limit"} {
		require.Equal(t, want, Snake(in), in)
	}
}

// nullableDB is baseDB with a nullable role column and a RevertRead query
// that reads it as the table holds it.
var nullableDB = strings.NewReplacer(
	"type Queries struct{}", "type Queries struct{}\ntype NullText struct { String string; Valid bool }\n"+
		"type RevertReadParams struct { ID []int64 }\ntype RevertReadRow struct { ID int64; Role NullText }\n"+
		"const revertRead = \"SELECT u.id, u.role FROM users AS u WHERE u.id = ANY($1::bigint[]) ORDER BY u.id FOR UPDATE\"\n"+
		"func (q *Queries) RevertRead(ctx context.Context, arg RevertReadParams) ([]RevertReadRow, error) { return nil, nil }",
	"ScopePageRow struct { ID int64; Role string;", "ScopePageRow struct { ID int64; Role NullText;",
).Replace(baseDB)

// A nullable change field (a pgtype-like wrapper or a pointer) fills a plain
// array parameter: the wiring binds the field's own type, so NULL is written.
func TestShapeAcceptsNullableChangeFields(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"db.NullText", "*string"} {
		pkg := strings.NewReplacer("Change struct { ID int64; Role string }", "Change struct { ID int64; Role "+typ+" }",
			"Change{ID: row.ID, Role: row.GrantedRole}", "Change{ID: row.ID}").Replace(baseTransform)
		b, err := check(t, nullableDB, pkg)
		require.NoError(t, err, typ)
		want := model.GoType{Path: "example.com/x/db", Name: "NullText"}
		if typ == "*string" {
			want = model.GoType{Pointer: true, Name: "string"}
		}
		require.Equal(t, want, b.ApplyFields[1].Type, typ)
		require.NotNil(t, b.Revert, typ)
		require.True(t, b.DiffFields[0].InRow, typ)
		require.Equal(t, typ == "*string", b.DiffFields[0].ByValue, "a *string compared with a NullText goes by value")
	}
}

// A plain change field for a column RevertRead reads as nullable cannot
// carry NULL back; the generator refuses it and says what to declare, and
// it refuses a RevertRead that hides NULL behind coalesce.
func TestShapeRefusesShapesThatCannotRoundTripNull(t *testing.T) {
	t.Parallel()
	_, err := check(t, nullableDB, baseTransform)
	require.ErrorContains(t, err, "the column role can be NULL (RevertRead reads it as example.com/x/db.NullText) but Change.Role is a plain string, so a revert would write '' where the row held NULL")
	require.ErrorContains(t, err, "declare Change.Role as example.com/x/db.NullText (or *string)")

	coalesced := strings.NewReplacer("SELECT u.id, u.role FROM", "SELECT u.id, coalesce(u.role, '') AS role FROM",
		"RevertReadRow struct { ID int64; Role NullText }", "RevertReadRow struct { ID int64; Role string }").Replace(nullableDB)
	_, err = check(t, coalesced, baseTransform)
	require.ErrorContains(t, err, `query RevertRead must select plain columns, so that a NULL reads as NULL: "coalesce(u.role, '') AS role" is not a plain column`)
}

func TestPlainColumns(t *testing.T) {
	t.Parallel()
	require.NoError(t, plainColumns("-- name: RevertRead :many\n-- the columns\nSELECT u.id, u.role AS r, \"Name\" FROM users u"))
	require.NoError(t, plainColumns("select id,nickname\nfrom profiles where id = any($1)"))
	for _, bad := range []string{"SELECT u.id, u.role::text FROM users u", "SELECT id, upper(role) FROM users", "SELECT id, role || '' FROM users", "SELECT * FROM users", "DELETE FROM users"} {
		require.Error(t, plainColumns(bad), bad)
	}
}

func TestShapeParams(t *testing.T) {
	t.Parallel()
	db := replace(t, baseDB, [][2]string{
		{"AfterID int64; Limit int32", "AfterID int64; Since int64; Tenants []string; Limit int32"},
		{"CountScope(ctx context.Context)", "CountScope(ctx context.Context, arg CountScopeParams)"},
		{"type Queries struct{}", "type Queries struct{}; type CountScopeParams struct { Since int64; Tenants []string }"},
	})
	b, err := check(t, db, baseTransform, model.Param{Name: "since", Type: "bigint"}, model.Param{Name: "tenants", Type: "text[]"})
	require.NoError(t, err)
	require.Equal(t, "CountScopeParams", b.CountParams)
	want := []model.ParamField{{Field: "Since", Param: "since", Accessor: "Int64"}, {Field: "Tenants", Param: "tenants", Accessor: "TextArray"}}
	require.Equal(t, want, b.CountFields)
	require.Equal(t, want, b.PageFields)
}
