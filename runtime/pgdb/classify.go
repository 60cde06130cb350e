package pgdb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class is what to do about a failed batch.
type Class int

// Error classes.
const (
	// Stop: constraint, data, schema and unknown errors; retrying cannot help.
	Stop Class = iota
	// Retry: serialization failures, deadlocks, lock and statement timeouts.
	Retry
	// Reconnect: the connection was lost or the server is restarting.
	Reconnect
	// Permission: the login lacks a privilege; stop and alert.
	Permission
)

func (c Class) String() string {
	return [...]string{"stop", "retry", "reconnect", "permission"}[c]
}

// Conflict is a batch that met another session's write it cannot account
// for; like a serialization failure, it is rolled back and retried, when the
// other write is committed and visible.
type Conflict struct{ What string }

func (c *Conflict) Error() string { return c.What }

// Classify sorts an error by SQLSTATE, or by its network nature when the
// server never answered.
func Classify(err error) Class {
	var conflict *Conflict
	if errors.As(err, &conflict) {
		return Retry
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "40001", code == "40P01", code == "55P03", code == "57014":
			return Retry
		case code == "57P01", code == "57P02", code == "57P03", strings.HasPrefix(code, "08"):
			return Reconnect
		case code == "42501":
			return Permission
		}
		return Stop
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Stop
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err), isClosed(err):
		return Reconnect
	}
	return Stop
}

func isClosed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "unexpected EOF")
}

// IsTimeout reports a lock or statement timeout, after which a smaller batch helps.
func IsTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "57014")
}

// Detail is a server error's detail (often naming the failing key), or "".
func Detail(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Detail
	}
	return ""
}

// IsUniqueViolation reports a unique_violation (23505): two writers raced
// for a row only one may hold.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
