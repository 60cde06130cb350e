// Package demo_test checks that the demo never writes into, nor drops, a
// database it did not create. The whole demo takes over a minute, so these
// tests run the functions of tools/demo/database.sh on their own, and the
// demo script itself only as far as its first refusal.
package demo_test

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

type result struct {
	stdout, stderr string
	code           int
}

// bash runs a bash script from the repository root with args and env.
func bash(t *testing.T, env []string, script string, args ...string) result {
	t.Helper()
	_, err := exec.LookPath("psql")
	require.NoError(t, err, "the demo needs psql (Debian: apt-get install postgresql-client)")
	cmd := exec.Command("bash", append([]string{"-c", script, "bash"}, args...)...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// demoDatabase runs demo_database URL NAME.
func demoDatabase(t *testing.T, dbURL, name string) result {
	t.Helper()
	return bash(t, nil, `source tools/demo/database.sh && demo_database "$1" "$2"`, dbURL, name)
}

func dbName(dbURL string) string {
	return strings.SplitN(dbURL[strings.LastIndex(dbURL, "/")+1:], "?", 2)[0]
}

// server is host:port of a URL, as the demo names it.
func server(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

// oid identifies a database: dropping and creating it again changes it.
func oid(t *testing.T, name string) string {
	t.Helper()
	return pgtest.Query(t, pgtest.AdminURL(), "SELECT coalesce((SELECT oid::text FROM pg_database WHERE datname = $1), 'none')", name)
}

func TestDemoRefusesADatabaseWithTablesAndLeavesIt(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	name := dbName(db)
	pgtest.Exec(t, db, "CREATE TABLE orders (id int)", "INSERT INTO orders SELECT generate_series(1, 3)",
		"CREATE SCHEMA billing", "CREATE TABLE billing.invoices (id int)")
	before := oid(t, name)

	res := demoDatabase(t, db, name)
	require.Equal(t, 2, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, "demo: REFUSED: database "+name+" on "+server(t, db)+" already holds tables this demo did not create (billing.invoices, public.orders)")
	require.Contains(t, res.stderr, "never drops one")
	require.Contains(t, res.stderr, "drop it yourself (dropdb "+name+")")
	require.Equal(t, before, oid(t, name), "the database was dropped")
	require.Equal(t, "3", pgtest.Query(t, db, "SELECT count(*) FROM orders"))
}

func TestDemoUsesAnEmptyDatabaseInPlace(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	name := dbName(db)
	before := oid(t, name)
	res := demoDatabase(t, db, name)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Equal(t, "Using the empty database "+name+" on "+server(t, db)+".\n", res.stdout)
	require.Equal(t, before, oid(t, name), "the database was dropped and created again")
}

func TestDemoCreatesTheDatabaseTheURLNamesWhenItIsMissing(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t) // only for a unique name on the test server
	name := dbName(db) + "_new"
	t.Cleanup(func() { pgtest.Exec(t, pgtest.AdminURL(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	missing := strings.Replace(db, "/"+dbName(db)+"?", "/"+name+"?", 1)
	require.Equal(t, "none", oid(t, name))
	res := demoDatabase(t, missing, name)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Equal(t, "Created database "+name+" on "+server(t, db)+" for this demo.\n", res.stdout)
	require.NotEqual(t, "none", oid(t, name))
}

// TestTheDemoRefusesAURLNamingAnotherDatabase runs the demo script itself:
// it used to drop and recreate backfill_demo on whatever server the URL
// named. It must refuse before touching anything.
func TestTheDemoRefusesAURLNamingAnotherDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	name := dbName(db)
	pgtest.Exec(t, db, "CREATE TABLE orders (id int)")
	before := oid(t, name)

	res := bash(t, []string{"DATABASE_URL=" + db}, "tools/demo/demo.sh")
	require.Equal(t, 2, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, `demo: REFUSED: DATABASE_URL names database "`+name+`" on `+server(t, db)+`, but the demo's backfill targets database "backfill_demo"`)
	require.NotContains(t, res.stdout, "Building")
	require.Equal(t, before, oid(t, name))
	require.Equal(t, "0", pgtest.Query(t, db, "SELECT count(*) FROM orders"))
}
