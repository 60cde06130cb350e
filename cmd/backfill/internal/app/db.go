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
