package pgdb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReadOnly runs fn in a REPEATABLE READ, READ ONLY transaction and always
// rolls it back: the database itself then refuses any write fn might attempt,
// and every page fn reads sees one snapshot.
func ReadOnly(ctx context.Context, conn *pgx.Conn, statementTimeout time.Duration, fn func(pgx.Tx) error) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("error beginning read-only transaction: %w", err)
	}
	defer rollback(tx)
	if statementTimeout > 0 {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", statementTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("error setting statement_timeout: %w", err)
		}
	}
	return fn(tx)
}

// rollback ends tx even when the caller's context was cancelled.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// An error here means the connection is already broken, and the server
	// rolls back a broken connection's transaction by itself.
	_ = tx.Rollback(ctx)
}

// WithTx runs fn in a read-write transaction and commits it when fn returns
// nil; otherwise, or when the context ends, it rolls back.
func WithTx(ctx context.Context, conn *pgx.Conn, fn func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer rollback(tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// DBTX is what queries need: a connection or a transaction. It is the
// method set sqlc-generated code calls, so a DBTX can be passed to a
// backfill's sqlc package as well as to the ledger.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
