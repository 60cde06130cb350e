package pgdb

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Server describes the database a connection reached, for reports.
type Server struct {
	Database string
	Address  string // server address and port as the server sees them
	Version  string
}

// Describe reads what the connection is connected to.
func Describe(ctx context.Context, conn *pgx.Conn) (Server, error) {
	var s Server
	err := conn.QueryRow(ctx, `SELECT current_database(),
		coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local socket'),
		current_setting('server_version')`).Scan(&s.Database, &s.Address, &s.Version)
	if err != nil {
		return s, fmt.Errorf("error describing the server: %w", err)
	}
	return s, nil
}
