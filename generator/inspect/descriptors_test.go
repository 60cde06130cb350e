package inspect

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/model"
)

// callsDB is a sqlc-like package whose methods call pgx as sqlc's do, with
// the key nowhere first: ScopePage binds the limit before the cursor and
// scans the role before the id, and Apply binds the roles before the ids.
const callsDB = `package db
import "context"
type Result struct{}
func (Result) RowsAffected() int64 { return 0 }
type Rows interface { Next() bool; Scan(dest ...any) error; Close() }
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (Result, error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}
type Queries struct{ db DBTX }
type ScopePageParams struct { Limit int32; AfterID int64 }
type ScopePageRow struct { Role string; ID int64 }
type ApplyParams struct { Role []string; ID []int64 }
type RevertReadParams struct { ID []int64 }
type RevertReadRow struct { ID int64; Role string }
const countScope = "SELECT count(*) FROM users"
const scopePage = "SELECT role, id FROM users WHERE id > $2 ORDER BY id LIMIT $1"
const apply = "UPDATE users AS u SET role = v.role FROM ROWS FROM (unnest($1::text[]), unnest($2::bigint[])) AS v (role, id) WHERE u.id = v.id"
const revertRead = "SELECT id, role FROM users WHERE id = ANY($1::bigint[]) FOR UPDATE"
func (q *Queries) CountScope(ctx context.Context) (int64, error) { return 0, nil }
func (q *Queries) ScopePage(ctx context.Context, arg ScopePageParams) ([]ScopePageRow, error) {
	rows, err := q.db.Query(ctx, scopePage, arg.Limit, arg.AfterID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []ScopePageRow
	for rows.Next() {
		var i ScopePageRow
		if err := rows.Scan(&i.Role, &i.ID); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	return items, nil
}
func (q *Queries) Apply(ctx context.Context, arg ApplyParams) (int64, error) {
	result, err := q.db.Exec(ctx, apply, arg.Role, arg.ID)
	return result.RowsAffected(), err
}
func (q *Queries) RevertRead(ctx context.Context, arg RevertReadParams) ([]RevertReadRow, error) {
	_, err := q.db.Query(ctx, revertRead, arg.ID)
	return nil, err
}
`

const callsTransform = `package fix
import "example.com/x/db"
type Change struct { Role string; ID int64 }
func Transform(row db.ScopePageRow) (Change, bool) { return Change{ID: row.ID, Role: row.Role}, true }
`

// described shapes dbSrc and fills the descriptors from its method bodies,
// as Load does from the sqlc package it loaded.
func described(t *testing.T, dbSrc string) (*model.Backfill, error) {
	t.Helper()
	b, err := check(t, dbSrc, callsTransform)
	require.NoError(t, err)
	f, err := parser.ParseFile(token.NewFileSet(), "db.go", dbSrc, 0)
	require.NoError(t, err)
	return b, describe("fix", []*ast.File{f}, b)
}

func TestDescribeReadsPositionsFromSqlcCalls(t *testing.T) {
	t.Parallel()
	b, err := described(t, callsDB)
	require.NoError(t, err)
	byRole := map[string]model.Statement{}
	for _, s := range b.Statements {
		byRole[s.Role] = s
	}
	require.Equal(t, [3]int{0, 0, 0}, descriptors(byRole["count"]), "a count has no key")
	require.Equal(t, [3]int{0, 2, 2}, descriptors(byRole["page"]), "the cursor is $2 and the id the second column")
	require.Equal(t, [3]int{2, 0, 0}, descriptors(byRole["apply"]), "the ids are $2, after the roles")
	require.Equal(t, [3]int{1, 0, 0}, descriptors(byRole["revert_read"]))
}

func descriptors(s model.Statement) [3]int { return [3]int{s.KeyParam, s.CursorParam, s.KeyColumn} }

func TestDescribeRefusesWhatItCannotTell(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"cursor not in the SQL", "WHERE id > $2 ORDER", "WHERE id > 7 ORDER", "query ScopePage (page): sqlc binds the cursor (AfterID) as $2, which its SQL does not use"},
		{"cursor only in a comment", "WHERE id > $2 ORDER", "WHERE id > 7 /* $2 */ ORDER", "query ScopePage (page): sqlc binds the cursor (AfterID) as $2"},
		{"cursor not bound", "arg.Limit, arg.AfterID)", "arg.Limit, 7)", "query ScopePage (page): cannot tell which parameter binds the cursor (AfterID): sqlc's ScopePage binds (Limit, 7)"},
		{"key not scanned", "rows.Scan(&i.Role, &i.ID)", "rows.Scan(&i.Role)", "query ScopePage (page): cannot tell which result column is the key ID: sqlc's ScopePage scans (Role)"},
		{"apply keys not in the SQL", "unnest($2::bigint[])", "unnest(array[1]::bigint[])", "query Apply (apply): sqlc binds the keys (ID) as $2, which its SQL does not use"},
		{"revert read calls nothing", "_, err := q.db.Query(ctx, revertRead, arg.ID)\n\treturn nil, err", "return nil, nil", "query RevertRead (revert_read): cannot tell which parameter binds the keys (ID)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(callsDB, tc.from, tc.to, 1)
			require.NotEqual(t, callsDB, src, "the fixture did not change")
			_, err := described(t, src)
			var serr *ShapeError
			require.ErrorAs(t, err, &serr)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDescribeRefusesAnUnknownRole(t *testing.T) {
	t.Parallel()
	b := &model.Backfill{Statements: []model.Statement{{Role: "archive", Method: "Archive"}}}
	err := describe("fix", nil, b)
	require.ErrorContains(t, err, "query Archive (archive): the generator does not know where the keys of role archive are")
}

func TestParamNumbersSkipCommentsAndStrings(t *testing.T) {
	t.Parallel()
	got, err := paramNumbers("-- $1\nSELECT '$2', $$ $3 $$, a$4, $5::bigint[], $12 /* $6 */ FROM t WHERE x = E'\\'$7'")
	require.NoError(t, err)
	require.Equal(t, map[int]bool{5: true, 12: true}, got)
}
