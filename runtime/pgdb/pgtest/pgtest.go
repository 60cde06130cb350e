// Package pgtest gives each test its own PostgreSQL database on a real
// server, so tests run in parallel without sharing state and never mock the
// database. The server comes from TEST_DATABASE_URL (make test sets it),
// else 127.0.0.1:5432 as user postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		return v
	}
	return DefaultURL
}

// WithDatabase returns base with its database replaced by name.
func WithDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("TEST_DATABASE_URL must be a postgres:// URL, got %q", base)
	}
	u.Path = "/" + name
	return u.String()
}

// NewDB creates an empty database for this test, drops it when the test
// ends, and returns its URL.
func NewDB(t testing.TB) string {
	t.Helper()
	name := "bft_" + randomHex(6)
	admin := AdminURL()
	Exec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("error connecting to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("error dropping %s: %v", name, err)
		}
	})
	return WithDatabase(t, admin, name)
}

// Exec runs each SQL text on dbURL, failing the test on error.
func Exec(t testing.TB, dbURL string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("error connecting to test database (set TEST_DATABASE_URL or run make test): %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("error running SQL %.80q: %v", sql, err)
		}
	}
}

// ExecFiles runs SQL files on dbURL.
func ExecFiles(t testing.TB, dbURL string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("error reading %s: %v", p, err)
		}
		Exec(t, dbURL, string(data))
	}
}

// Query returns the single value of query on dbURL as text.
func Query(t testing.TB, dbURL, query string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("error connecting to test database: %v", err)
	}
	defer conn.Close(ctx)
	var out *string
	if err := conn.QueryRow(ctx, "SELECT ("+query+")::text", args...).Scan(&out); err != nil {
		t.Fatalf("error running query %.80q: %v", query, err)
	}
	if out == nil {
		return "<null>"
	}
	return *out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
