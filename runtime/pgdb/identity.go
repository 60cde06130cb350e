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

// Identity is what the server says about itself, for the target checks.
type Identity struct {
	Database         string
	ServerAddress    string // inet_server_addr(), "" on a Unix socket
	DialedHost       string // the host the client connected to
	SystemIdentifier string
	SessionUser      string
}

// ReadIdentity reads the connection's identity.
func ReadIdentity(ctx context.Context, conn *pgx.Conn) (Identity, error) {
	id := Identity{DialedHost: conn.Config().Host}
	err := conn.QueryRow(ctx, `SELECT current_database(), coalesce(host(inet_server_addr()), ''),
		(SELECT system_identifier::text FROM pg_control_system()), session_user`).
		Scan(&id.Database, &id.ServerAddress, &id.SystemIdentifier, &id.SessionUser)
	if err != nil {
		return id, fmt.Errorf("error reading the server's identity: %w", err)
	}
	return id, nil
}
