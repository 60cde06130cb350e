package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Gate is the DBTX a batch writes through. The runner login holds no write
// privilege on the target tables: every statement sent through a Gate goes
// to the ledger's backfill.exec (writes) or backfill.query (RevertRead,
// which locks its rows), owned by the NOLOGIN role backfill_writer. They run
// it only when its text is one the run's approvals name, for this run's
// purpose, while this session holds the run and it is not paused or
// cancelled, and backfill.exec counts the rows it changed for RecordBatch.
//
// The sqlc-generated code the transform sees is unchanged: it calls Exec,
// Query and QueryRow with the approved SQL and its typed arguments, which
// the Gate sends as text in the types PostgreSQL gives the statement's
// parameters.
type Gate struct {
	Tx    pgx.Tx
	RunID int64
	Lane  int
	// Peek makes the Gate one for reads outside a batch (a spot check, a
	// revert's preview): its Query runs an approved RevertRead through
	// backfill.peek, and it never writes. Tx may then be nil and Conn set.
	Peek bool
	Conn *pgx.Conn
}

// NewPeek is a Gate for reading approved RevertRead statements outside a
// batch, on conn (and in tx when not nil).
func NewPeek(conn *pgx.Conn, tx pgx.Tx) Gate { return Gate{Tx: tx, Conn: conn, Peek: true} }

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (g Gate) conn() *pgx.Conn {
	if g.Tx != nil {
		return g.Tx.Conn()
	}
	return g.Conn
}

func (g Gate) q() queryer {
	if g.Tx != nil {
		return g.Tx
	}
	return g.Conn
}

// described is what the Gate learns of a statement once: its parameter
// types and, for a query, the column definition list of its rows.
type described struct {
	params []uint32
	cols   string   // the column definition list: c1 bigint, c2 text
	types  []string // the column types, as format_type names them
}

// descriptions caches them by connection and SQL text: type OIDs of
// user-defined types differ between databases.
var descriptions sync.Map // descKey -> *described

type descKey struct {
	conn *pgconn.PgConn
	sql  string
}

func (g Gate) describe(ctx context.Context, sql string, rows bool) (*described, error) {
	key := descKey{g.conn().PgConn(), sql}
	if d, ok := descriptions.Load(key); ok && (!rows || d.(*described).cols != "") {
		return d.(*described), nil
	}
	sd, err := g.conn().PgConn().Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, fmt.Errorf("error describing a statement of the run: %w", err)
	}
	d := &described{params: sd.ParamOIDs}
	if rows {
		oids := make([]uint32, len(sd.Fields))
		for i, f := range sd.Fields {
			oids[i] = f.DataTypeOID
		}
		var types []string
		if err := g.q().QueryRow(ctx, "SELECT array_agg(format_type(o, NULL) ORDER BY i) FROM unnest($1::oid[]) WITH ORDINALITY AS u(o, i)", oids).Scan(&types); err != nil {
			return nil, fmt.Errorf("error naming the column types of a statement of the run: %w", err)
		}
		defs := make([]string, len(types))
		for i, t := range types {
			defs[i] = fmt.Sprintf("c%d %s", i+1, t)
		}
		d.cols = strings.Join(defs, ", ")
		d.types = types
	}
	descriptions.Store(key, d)
	return d, nil
}

// texts are args as PostgreSQL's text input of the statement's parameter
// types; nil is NULL.
func (g Gate) texts(d *described, args []any) ([]*string, error) {
	if len(args) != len(d.params) {
		return nil, fmt.Errorf("the statement takes %d parameters, not %d", len(d.params), len(args))
	}
	m := g.conn().TypeMap()
	out := make([]*string, len(args))
	for i, a := range args {
		if a == nil {
			continue
		}
		buf, err := m.Encode(d.params[i], pgtype.TextFormatCode, a, nil)
		if err != nil {
			return nil, fmt.Errorf("error encoding parameter $%d: %w", i+1, err)
		}
		if buf != nil {
			s := string(buf)
			out[i] = &s
		}
	}
	return out, nil
}

// Exec runs an approved write of the run through backfill.exec.
func (g Gate) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if g.Peek {
		return pgconn.CommandTag{}, fmt.Errorf("a read outside a batch does not write")
	}
	d, err := g.describe(ctx, sql, false)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	texts, err := g.texts(d, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	var n int64
	if err := g.Tx.QueryRow(ctx, "SELECT backfill.exec($1, $2, $3, $4)", g.RunID, g.Lane, sql, texts).Scan(&n); err != nil {
		return pgconn.CommandTag{}, err
	}
	return pgconn.NewCommandTag(fmt.Sprintf("UPDATE %d", n)), nil
}

// Query runs a read of the batch through backfill.query: the approved
// ScopePage (from the lane's checkpoint; the keys it returns are the only
// ones the batch may write) or RevertRead (of those keys).
func (g Gate) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	d, err := g.describe(ctx, sql, true)
	if err != nil {
		return nil, err
	}
	texts, err := g.texts(d, args)
	if err != nil {
		return nil, err
	}
	if g.Peek {
		return g.q().Query(ctx, "SELECT * FROM backfill.peek($1, $2, $3) AS t("+d.cols+")", sql, texts, d.types)
	}
	return g.Tx.Query(ctx, "SELECT * FROM backfill.query($1, $2, $3, $4, $5) AS t("+d.cols+")", g.RunID, g.Lane, sql, texts, d.types)
}

// QueryRow is Query's first row.
func (g Gate) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := g.Query(ctx, sql, args...)
	return gateRow{rows: rows, err: err}
}

type gateRow struct {
	rows pgx.Rows
	err  error
}

func (r gateRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
