package app

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"

	"github.com/runonce/backfill/runtime/pgdb"
)

// dbFlag adds --database-url to a command.
func dbFlag(fs *pflag.FlagSet) *string {
	return fs.String("database-url", "", "PostgreSQL connection URL (default: DATABASE_URL, then the PG* variables)")
}

// connect opens the ledger database.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	u, src := pgdb.Resolve(url)
	return pgdb.Connect(ctx, u, src, "backfill cli")
}

// withConn runs fn on a connection to the ledger database and closes it.
func withConn(ctx context.Context, url string, fn func(*pgx.Conn) error) error {
	conn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}
