package inspect

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/model"
)

// deleteDB is a sqlc-like package of a reversible delete: Apply deletes by
// key, RevertRead reads the whole row (the table's own struct, Session) and
// RevertDelete inserts it back, one array per column.
const deleteDB = `package db
import "context"
type Queries struct{}
type NullText struct { String string; Valid bool }
type ScopePageParams struct { AfterID int64; Limit int32 }
type ScopePageRow struct { ID int64; Tenant string }
type ApplyParams struct { ID []int64 }
type Session struct { ID int64; Tenant string; Token NullText }
type RevertReadParams struct { ID []int64 }
type RevertDeleteParams struct { ID []int64; Tenant []string; Token []string }
const countScope = "SELECT count(*) FROM sessions"
const scopePage = "SELECT id, tenant FROM sessions WHERE id > $1 ORDER BY id LIMIT $2"
const apply = "DELETE FROM sessions WHERE id = ANY($1::bigint[])"
const revertRead = "SELECT id, tenant, token FROM sessions WHERE id = ANY($1::bigint[]) FOR UPDATE"
const revertDelete = "INSERT INTO sessions (id, tenant, token) SELECT * FROM ROWS FROM (unnest($1::bigint[]), unnest($2::text[]), unnest($3::text[])) AS v (id, tenant, token)"
func (q *Queries) CountScope(ctx context.Context) (int64, error) { return 0, nil }
func (q *Queries) ScopePage(ctx context.Context, arg ScopePageParams) ([]ScopePageRow, error) { return nil, nil }
func (q *Queries) Apply(ctx context.Context, arg ApplyParams) (int64, error) { return 0, nil }
func (q *Queries) RevertRead(ctx context.Context, arg RevertReadParams) ([]Session, error) { return nil, nil }
func (q *Queries) RevertDelete(ctx context.Context, arg RevertDeleteParams) (int64, error) { return 0, nil }
`

const deleteTransform = `package fix
import "example.com/x/db"
type Change struct { ID int64 }
func Transform(row db.ScopePageRow) (Change, bool) { return Change{ID: row.ID}, true }
`

// A delete's Change holds only the key; its images are whole rows, and the
// revert binds each column as the row's own (nullable) type.
func TestShapeOfAReversibleDelete(t *testing.T) {
	t.Parallel()
	b, err := check(t, deleteDB, deleteTransform)
	require.NoError(t, err)
	require.Equal(t, model.Apply{Kind: model.KindDelete, Table: "sessions"}, b.Apply)
	require.Empty(t, b.DiffFields)
	require.Len(t, b.Revert.Fields, 3, "the image is the whole row")
	require.NotNil(t, b.Revert.Reinsert)
	require.Equal(t, model.GoType{Path: "example.com/x/db", Name: "NullText"}, b.Revert.Reinsert.Fields[2].Type, "a nullable column binds NULLs")
	require.Equal(t, "revert_delete", b.Statements[len(b.Statements)-1].Role, "reviewers see the statement a revert runs")
}

func TestShapeRefusesADeleteThatCannotBeReverted(t *testing.T) {
	t.Parallel()
	partial := strings.NewReplacer("type Session struct", "type RevertReadRow struct",
		"([]Session, error)", "([]RevertReadRow, error)").Replace(deleteDB)
	_, err := check(t, partial, deleteTransform)
	require.ErrorContains(t, err, "Apply deletes from sessions, so RevertRead must read the whole row for a revert to insert it back")

	noReinsert := strings.Replace(deleteDB, "func (q *Queries) RevertDelete(", "func (q *Queries) revertDeleteGone(", 1)
	_, err = check(t, noReinsert, deleteTransform)
	require.ErrorContains(t, err, "the query set has no RevertDelete")

	missingColumn := strings.Replace(deleteDB, "RevertDeleteParams struct { ID []int64; Tenant []string; Token []string }", "RevertDeleteParams struct { ID []int64; Tenant []string }", 1)
	_, err = check(t, missingColumn, deleteTransform)
	require.ErrorContains(t, err, "RevertDelete must insert every column of Session (3), not 2")

	otherTable := strings.Replace(deleteDB, "INSERT INTO sessions (id", "INSERT INTO sessions_archive (id", 1)
	_, err = check(t, otherTable, deleteTransform)
	require.ErrorContains(t, err, "query RevertDelete must be an INSERT into sessions, the table Apply deletes from")
}

// An update still needs a field besides the key; only a delete does not.
func TestShapeRefusesAKeyOnlyUpdate(t *testing.T) {
	t.Parallel()
	update := strings.NewReplacer(`DELETE FROM sessions WHERE id = ANY($1::bigint[])`, `UPDATE sessions SET seen = now() WHERE id = ANY($1::bigint[])`,
		"func (q *Queries) RevertRead(", "func (q *Queries) revertRead_(", "func (q *Queries) RevertDelete(", "func (q *Queries) revertDelete_(").Replace(deleteDB)
	_, err := check(t, update, deleteTransform)
	require.ErrorContains(t, err, "Change has only the key field ID; it must set at least one other field")
}

// A reversible insert needs RevertInsert, a DELETE from the table it inserts into.
func TestShapeOfAReversibleInsert(t *testing.T) {
	t.Parallel()
	insertDB := strings.NewReplacer(
		`const apply = "UPDATE users SET role = v.role"`, `const apply = "INSERT INTO roles (id, role) SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT (id) DO UPDATE SET role = excluded.role"`,
	).Replace(baseDB) + `type RevertReadParams struct { ID []int64 }
type RevertReadRow struct { ID int64; Role string }
const revertRead = "SELECT r.id, r.role FROM roles AS r WHERE r.id = ANY($1::bigint[]) FOR UPDATE"
func (q *Queries) RevertRead(ctx context.Context, arg RevertReadParams) ([]RevertReadRow, error) { return nil, nil }
`
	_, err := check(t, insertDB, baseTransform)
	require.ErrorContains(t, err, "Apply inserts into roles and the query set has RevertRead, so a revert must delete the rows a run inserted; the query set has no RevertInsert")

	withUninsert := insertDB + `type RevertInsertParams struct { ID []int64 }
const revertInsert = "DELETE FROM roles WHERE id = ANY($1::bigint[])"
func (q *Queries) RevertInsert(ctx context.Context, arg RevertInsertParams) (int64, error) { return 0, nil }
`
	b, err := check(t, withUninsert, baseTransform)
	require.NoError(t, err)
	require.Equal(t, model.Apply{Kind: model.KindInsert, Upsert: true, Table: "roles"}, b.Apply)
	require.Equal(t, "DELETE FROM roles WHERE id = ANY($1::bigint[])", b.Revert.Uninsert)

	wrongTable := strings.Replace(withUninsert, "DELETE FROM roles WHERE", "DELETE FROM users WHERE", 1)
	_, err = check(t, wrongTable, baseTransform)
	require.ErrorContains(t, err, "query RevertInsert must be a DELETE from roles, the table Apply inserts into")
}

// RevertRead must lock what it reads: otherwise a row another session
// changes between the image and the write is restored stale.
func TestShapeRefusesARevertReadThatDoesNotLock(t *testing.T) {
	t.Parallel()
	for _, tail := range []string{"", " FOR KEY SHARE", " -- FOR UPDATE", " FOR UPDATE SKIP LOCKED"} {
		db := strings.Replace(deleteDB, "bigint[]) FOR UPDATE\"", "bigint[])"+tail+"\"", 1)
		_, err := check(t, db, deleteTransform)
		require.ErrorContains(t, err, "query RevertRead must lock the rows it reads (FOR UPDATE)", tail)
	}
	for _, tail := range []string{" FOR UPDATE", " for no key update of sessions", " FOR SHARE NOWAIT"} {
		db := strings.Replace(deleteDB, "bigint[]) FOR UPDATE\"", "bigint[])"+tail+"\"", 1)
		_, err := check(t, db, deleteTransform)
		require.NoError(t, err, tail)
	}
}
