package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestPGOPTIONSSearchPathDoesNotRedirectTheBackfill: an operator's
// PGOPTIONS naming a schema with an empty users table first would make the
// approved statements read (and write) that table instead; the binary
// still reads public.users.
func TestPGOPTIONSSearchPathDoesNotRedirectTheBackfill(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	pgtest.Exec(t, db, "CREATE SCHEMA evil", "CREATE TABLE evil.users (LIKE public.users INCLUDING ALL)")
	res := runBinary(t, []string{"PGOPTIONS=-c search_path=evil,public"}, fixRoles, "--database-url", db)
	require.Equal(t, 0, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "matched           1,000")
}
