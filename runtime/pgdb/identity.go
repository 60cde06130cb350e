package pgdb

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

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

// Identity is what the server says about itself, and where the client
// reached it, for the target checks.
type Identity struct {
	Database         string
	ServerAddress    string // inet_server_addr(), "" on a Unix socket
	ServerPort       int    // inet_server_port(), 0 on a Unix socket
	DialedHost       string // the host name (or socket directory) dialed; "" when the string names several
	DialedPort       int    // the port dialed
	PeerAddress      string // the IP address the socket is connected to, "" on a Unix socket
	PeerPort         int
	Hosts            []string // every distinct host:port the connection string names, in order
	SystemIdentifier string
	SessionUser      string
}

// ReadIdentity reads the connection's identity: what the server reports,
// the socket's actual peer, and every host the connection string names
// (pgx tries each in turn, so with more than one the first is not
// necessarily the one reached).
func ReadIdentity(ctx context.Context, conn *pgx.Conn) (Identity, error) {
	cfg := conn.Config()
	id := Identity{Hosts: configHosts(cfg)}
	if len(id.Hosts) == 1 {
		id.DialedHost, id.DialedPort = cfg.Host, int(cfg.Port)
	}
	if tcp, ok := conn.PgConn().Conn().RemoteAddr().(*net.TCPAddr); ok {
		id.PeerAddress, id.PeerPort = tcp.IP.String(), tcp.Port
	}
	err := conn.QueryRow(ctx, `SELECT current_database(), coalesce(host(inet_server_addr()), ''), coalesce(inet_server_port(), 0),
		(SELECT system_identifier::text FROM pg_catalog.pg_control_system()), session_user`).
		Scan(&id.Database, &id.ServerAddress, &id.ServerPort, &id.SystemIdentifier, &id.SessionUser)
	if err != nil {
		return id, fmt.Errorf("error reading the server's identity: %w", err)
	}
	return id, nil
}

// configHosts lists the distinct host:port pairs of a connection config,
// its fallbacks included (which also repeat a host for each sslmode tried).
func configHosts(cfg *pgx.ConnConfig) []string {
	seen := map[string]bool{}
	var out []string
	add := func(host string, port uint16) {
		hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if !seen[hp] {
			seen[hp] = true
			out = append(out, hp)
		}
	}
	add(cfg.Host, cfg.Port)
	for _, f := range cfg.Fallbacks {
		add(f.Host, f.Port)
	}
	return out
}

// DefaultPort is the port a target.host without one means.
const DefaultPort = 5432

// Pin is a manifest's target.host: a host name or address, and a port
// (DefaultPort when target.host names none).
type Pin struct {
	Host string
	Port int
}

// ParsePin reads target.host: "db1", "db1:6432", "10.0.0.5", "[::1]:5433".
func ParsePin(s string) Pin {
	if host, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err == nil {
			return Pin{Host: host, Port: n}
		}
	}
	return Pin{Host: strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), Port: DefaultPort}
}

func (p Pin) String() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// Reached reports whether the connection reached pin: the host and port
// dialed, the socket's peer address and port, or the address and port the
// server reports for itself, each compared as a pair. A connection string
// naming several hosts matches nothing by the dialed name, since it is not
// known which one pgx reached.
func (id Identity) Reached(pin Pin) bool {
	for _, c := range []Pin{{id.DialedHost, id.DialedPort}, {id.PeerAddress, id.PeerPort}, {id.ServerAddress, id.ServerPort}} {
		if c.Host != "" && c.Port == pin.Port && sameHost(c.Host, pin.Host) {
			return true
		}
	}
	return false
}

func sameHost(a, b string) bool {
	if ipa, ipb := net.ParseIP(a), net.ParseIP(b); ipa != nil && ipb != nil {
		return ipa.Equal(ipb)
	}
	return strings.EqualFold(a, b)
}

// Where is where the connection went, for messages: the host dialed, the
// peer and the server's own address.
func (id Identity) Where() string {
	var parts []string
	if id.DialedHost != "" {
		parts = append(parts, Pin{id.DialedHost, id.DialedPort}.String())
	}
	if id.PeerAddress != "" {
		parts = append(parts, "peer "+Pin{id.PeerAddress, id.PeerPort}.String())
	}
	if id.ServerAddress != "" {
		parts = append(parts, "server address "+Pin{id.ServerAddress, id.ServerPort}.String())
	}
	switch len(parts) {
	case 0:
		return "a local socket"
	case 1:
		return parts[0]
	}
	return parts[0] + " (" + strings.Join(parts[1:], ", ") + ")"
}
