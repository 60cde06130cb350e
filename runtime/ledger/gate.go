package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/runonce/backfill/runtime/bftype"
)

// Gate is the DBTX a batch reads its page and writes through. The runner
// login holds no write privilege on the target tables: every statement sent
// through a Gate runs in the function of schema backfill_exec that
// backfill.prepare made for its text (SECURITY DEFINER, owned by the NOLOGIN
// role backfill_writer), which runs it only when its text is one the run's
// approvals name, for this run's purpose, while this session holds the run
// and it is not paused or cancelled, with only the keys the batch's page
// read, and counts the rows a write changed for RecordBatch.
//
// The sqlc-generated code the transform sees is unchanged: it calls Exec,
// Query and QueryRow with the approved SQL and its typed arguments, which go
// to the function as they are (binary, planned once, like a prepared
// statement), followed by the run and the lane.
type Gate struct {
	Tx    pgx.Tx
	RunID int64
	Lane  int
	// Prepared are the functions PrepareRun made for the run's statements;
	// nil: each call asks backfill.prepare (in the batch's transaction).
	Prepared *Prepared
	// Peek makes the Gate one for reads outside a batch (a spot check, a
	// revert's preview): its Query runs an approved RevertRead through
	// backfill.peek, and it never writes. Tx may then be nil and Conn set.
	Peek bool
	Conn *pgx.Conn
}

// NewPeek is a Gate for reading approved RevertRead statements outside a
// batch, on conn (and in tx when not nil).
func NewPeek(conn *pgx.Conn, tx pgx.Tx) Gate { return Gate{Tx: tx, Conn: conn, Peek: true} }

// Prepared maps a run's statements to the functions that run them.
type Prepared struct {
	mu    sync.Mutex
	calls map[string]string // SQL text -> the call of its function, $1..$n+2
}

// gated are the roles whose statements a run executes through the ledger.
var gated = map[string]bool{"page": true, "apply": true, "revert_read": true, "revert_insert": true, "revert_delete": true}

// reads are the gated roles that return rows.
var reads = map[string]bool{"page": true, "revert_read": true}

// PrepareRun has backfill.prepare make, and commit, the function of each of
// the run's gated statements, on conn, which holds the run (outside a
// batch's transaction, so that a rolled-back batch does not take them away).
func PrepareRun(ctx context.Context, conn *pgx.Conn, runID int64, stmts []bftype.Statement) (*Prepared, error) {
	p := &Prepared{calls: map[string]string{}}
	g := Gate{Conn: conn, RunID: runID}
	for _, s := range stmts {
		if !gated[s.Role] {
			continue
		}
		call, err := g.prepare(ctx, s.SQL, reads[s.Role])
		if err != nil {
			return nil, fmt.Errorf("error preparing statement %s of run %d: %w", s.Name, runID, err)
		}
		p.calls[s.SQL] = call
	}
	return p, nil
}

func (g Gate) conn() *pgx.Conn {
	if g.Tx != nil {
		return g.Tx.Conn()
	}
	return g.Conn
}

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (g Gate) q() queryer {
	if g.Tx != nil {
		return g.Tx
	}
	return g.Conn
}

// described is what the Gate learns of a statement once: its parameter
// types and, for a query, the types of its columns.
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
	if d, ok := descriptions.Load(key); ok && (!rows || d.(*described).types != nil) {
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
		if err := g.q().QueryRow(ctx, "SELECT coalesce(array_agg(format_type(o, NULL) ORDER BY i), '{}') FROM unnest($1::oid[]) WITH ORDINALITY AS u(o, i)", oids).Scan(&types); err != nil {
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

// prepare asks backfill.prepare for the function of sql and returns its
// call, with placeholders for the statement's parameters, the run and the
// lane.
func (g Gate) prepare(ctx context.Context, sql string, rows bool) (string, error) {
	d, err := g.describe(ctx, sql, rows)
	if err != nil {
		return "", err
	}
	var name string
	if err := g.q().QueryRow(ctx, "SELECT backfill.prepare($1, $2, $3)", g.RunID, sql, d.types).Scan(&name); err != nil {
		return "", err
	}
	marks := make([]string, len(d.params)+2)
	for i := range marks {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	call := "backfill_exec." + pgx.Identifier{name}.Sanitize() + "(" + strings.Join(marks, ", ") + ")"
	return call, nil
}

// call is the call of sql's function.
func (g Gate) call(ctx context.Context, sql string, rows bool) (string, error) {
	if g.Prepared != nil {
		g.Prepared.mu.Lock()
		call, ok := g.Prepared.calls[sql]
		g.Prepared.mu.Unlock()
		if ok {
			return call, nil
		}
	}
	return g.prepare(ctx, sql, rows)
}

// Exec runs an approved write of the run through its function.
func (g Gate) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if g.Peek {
		return pgconn.CommandTag{}, fmt.Errorf("a read outside a batch does not write")
	}
	call, err := g.call(ctx, sql, false)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	var n int64
	if err := g.Tx.QueryRow(ctx, "SELECT "+call, append(args, g.RunID, g.Lane)...).Scan(&n); err != nil {
		return pgconn.CommandTag{}, err
	}
	return pgconn.NewCommandTag(fmt.Sprintf("UPDATE %d", n)), nil
}

// Query runs a read of the batch through its function: the approved
// ScopePage (from the lane's checkpoint; the keys it returns are the only
// ones the batch may write) or RevertRead.
func (g Gate) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if g.Peek {
		return g.peek(ctx, sql, args)
	}
	call, err := g.call(ctx, sql, true)
	if err != nil {
		return nil, err
	}
	return g.Tx.Query(ctx, "SELECT * FROM "+call, append(args, g.RunID, g.Lane)...)
}

// peek runs an approved RevertRead outside a batch through backfill.peek,
// its parameters as text in the types PostgreSQL gives them.
func (g Gate) peek(ctx context.Context, sql string, args []any) (pgx.Rows, error) {
	d, err := g.describe(ctx, sql, true)
	if err != nil {
		return nil, err
	}
	if len(args) != len(d.params) {
		return nil, fmt.Errorf("the statement takes %d parameters, not %d", len(d.params), len(args))
	}
	m := g.conn().TypeMap()
	texts := make([]*string, len(args))
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
			texts[i] = &s
		}
	}
	return g.q().Query(ctx, "SELECT * FROM backfill.peek($1, $2, $3) AS t("+d.cols+")", sql, texts, d.types)
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
