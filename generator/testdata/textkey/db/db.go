// Package db is written by hand in the shape sqlc gives a query package, so
// that the generator's golden test needs no sqlc run.
package db

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DBTX is what sqlc's generated code calls.
type DBTX interface {
	Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error)
	Query(context.Context, string, ...interface{}) (pgx.Rows, error)
	QueryRow(context.Context, string, ...interface{}) pgx.Row
}

// New wraps a DBTX.
func New(db DBTX) *Queries { return &Queries{db: db} }

// Queries holds the queries.
type Queries struct{ db DBTX }

const countScope = `SELECT count(*) FROM accounts`

// CountScope counts the accounts.
func (q *Queries) CountScope(ctx context.Context) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countScope).Scan(&n)
	return n, err
}

const scopePage = `SELECT email, plan, note FROM accounts WHERE email > $1::text ORDER BY email LIMIT $2::bigint`

// ScopePageParams are the page parameters.
type ScopePageParams struct {
	AfterEmail string
	Limit      int64
}

// ScopePageRow is one account.
type ScopePageRow struct {
	Email string
	Plan  string
	Note  pgtype.Text
}

// ScopePage reads a page of accounts.
func (q *Queries) ScopePage(ctx context.Context, arg ScopePageParams) ([]ScopePageRow, error) {
	rows, err := q.db.Query(ctx, scopePage, arg.AfterEmail, arg.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ScopePageRow, error) {
		var i ScopePageRow
		err := r.Scan(&i.Email, &i.Plan, &i.Note)
		return i, err
	})
}

const apply = `UPDATE accounts AS a SET note = v.note
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[])) AS v (email, note)
WHERE a.email = v.email AND a.note IS DISTINCT FROM v.note`

// ApplyParams are the apply arrays.
type ApplyParams struct {
	Email []string
	Note  []string
}

// Apply sets notes.
func (q *Queries) Apply(ctx context.Context, arg ApplyParams) (int64, error) {
	tag, err := q.db.Exec(ctx, apply, arg.Email, arg.Note)
	return tag.RowsAffected(), err
}
