// Package pgdb is the runtime's one adapter to PostgreSQL: it resolves where
// to connect, opens the connection, runs transactions through one helper and
// turns driver errors into sentences an operator can act on.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/bftype"
)

// Source says where a connection string came from, for messages.
type Source string

// Connection sources, in order of precedence.
const (
	FromFlag Source = "--database-url"
	FromEnv  Source = "DATABASE_URL"
	FromPG   Source = "PG* environment variables"
)

// Resolve picks the connection string: the flag, else DATABASE_URL, else ""
// which makes pgx read the libpq PG* variables.
func Resolve(flag string) (string, Source) {
	if flag != "" {
		return flag, FromFlag
	}
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v, FromEnv
	}
	return "", FromPG
}

// Connect opens one connection. Every failure is a Refusal with one sentence.
// The session's application_name is app after the operator's own
// (PGAPPNAME or the URL's application_name), so a DBA sees both.
//
// Every session runs with SearchPath, whatever the connection string,
// PGOPTIONS, the role or the database say: the statements a backfill was
// approved with name tables without a schema, and they must reach the same
// tables for every operator.
func Connect(ctx context.Context, url string, src Source, app string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, connRefusal(src, "", fmt.Errorf("the connection string from %s is not valid: %s", src, rootCause(err)), err)
	}
	cfg.RuntimeParams["application_name"] = appName(cfg.RuntimeParams["application_name"], app)
	pinSearchPath(cfg.RuntimeParams)
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		where := fmt.Sprintf("%s as %q to database %q", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.User, cfg.Database)
		return nil, connRefusal(src, where, errors.New(rootCause(err)), err)
	}
	if err := checkSearchPath(ctx, conn); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// appName is the application_name of a session: the operator's name, if
// any, then ours.
func appName(operators, ours string) string {
	if operators == "" {
		return ours
	}
	return operators + " " + ours
}

func connRefusal(src Source, where string, msg, cause error) *bftype.Refusal {
	r := bftype.Refuse(bftype.ReasonConnection, bftype.ExitConnection,
		fmt.Sprintf("Check the connection settings (%s) and that the server is up.", src),
		"Could not connect to PostgreSQL%s: %s.", prefix(" at ", where), strings.TrimSuffix(msg.Error(), "."))
	r.Err = cause
	return r
}

func prefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// rootCause is the innermost useful message of a driver error: a server
// error's own text, or the last part of a dial error ("connection refused").
func rootCause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && !strings.Contains(msg[i:], "\"") {
		msg = msg[i+2:]
	}
	return msg
}

// ErrorSentence is an error's root cause in one line, with the SQLSTATE of a
// server error.
func ErrorSentence(err error) string { return rootCause(err) }
