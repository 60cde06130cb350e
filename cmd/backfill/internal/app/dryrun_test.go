package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// demoDB makes a database with the schema and the demo's seed data.
func demoDB(t *testing.T) string {
	t.Helper()
	db := pgtest.NewDB(t)
	pgtest.ExecFiles(t, db, filepath.Join(repoRoot, "queries/schema/schema.sql"), filepath.Join(repoRoot, "tools/demo/seed.sql"))
	return db
}

const tableState = `SELECT md5(string_agg(u::text, ',' ORDER BY u.id)) || md5(string_agg(g::text, ',' ORDER BY g.id))
	FROM users u FULL JOIN role_grants g ON false`

const writeCounters = `SELECT sum(n_tup_ins)::text || '/' || sum(n_tup_upd)::text || '/' || sum(n_tup_del)::text
	FROM pg_stat_user_tables`

// flushedCounters reads the write counters after the server has flushed the
// statistics of every backend that has exited.
func flushedCounters(t *testing.T, db string) string {
	t.Helper()
	pgtest.Exec(t, db, "SELECT pg_stat_force_next_flush()")
	return pgtest.Query(t, db, writeCounters)
}

func TestDryRunMakesNoWrites(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	stateBefore := pgtest.Query(t, db, tableState)
	countersBefore := flushedCounters(t, db)

	res := runBinary(t, nil, fixRoles, "--database-url", db)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "nothing was written")

	require.Equal(t, stateBefore, pgtest.Query(t, db, tableState), "table contents changed")
	// Statistics of the dry-run's backend are flushed when it exits; give the
	// server a moment, then compare.
	time.Sleep(1200 * time.Millisecond)
	require.Equal(t, countersBefore, flushedCounters(t, db), "write counters moved during a dry-run")

	// Control: the same measurement does see a real write.
	pgtest.Exec(t, db, "UPDATE users SET role = role WHERE id = 1")
	require.Eventually(t, func() bool { return flushedCounters(t, db) != countersBefore }, 5*time.Second, 200*time.Millisecond,
		"the write counters do not show a real write, so the check above proves nothing")
}

func TestDryRunReportsCountsSamplesAndSQL(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	report := filepath.Join(t.TempDir(), "report.json")
	res := runBinary(t, []string{"DATABASE_URL=" + db}, fixRoles, "--report", report, "--samples", "3")
	require.Equal(t, 0, res.code, res.stderr)
	for _, want := range []string{
		"scanned           1,000", "matched           1,000", "will update         333", "unchanged           667",
		"risk           high", "writes         UPDATE users: a real run will update 333 rows of users",
		"Samples (first 3 of the 333 rows it will update, by key):", "id=3", `role             "member" -> "editor"`,
		"ETA for --execute", "-- Apply (apply)", "UPDATE users AS u", "ROWS FROM (unnest($1::bigint[])",
		"Parameters of the first Apply batch (batch 1, the canary batch of 50 rows, which runs first and alone):",
		"id         [3, 6, 9, 12, 15, 18, 21, 24, ...] (16 values)", "after_id", "limit = 50 for the canary batch, then 500",
		"1,000 rows read at batch.max_rows_per_second 20000 (it counts rows read, not written",
		"3 batches: a canary of 50 rows, then up to 500 rows each",
	} {
		require.Contains(t, res.stdout, want)
	}
	require.NotContains(t, res.stdout, "0 CHANGES")

	var rep bftype.Report
	data, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rep))
	require.Equal(t, bftype.Counts{Scanned: 1000, Matched: 1000, WillChange: 333, Unchanged: 667}, rep.Counts)
	require.Equal(t, bftype.Apply{Kind: bftype.KindUpdate, Table: "users"}, rep.Apply)
	require.Contains(t, string(data), `"kind": "update"`)
	require.Contains(t, string(data), `"table": "users"`)
	require.Len(t, rep.Samples, 3)
	require.JSONEq(t, `3`, string(rep.Samples[0].Key))
	require.Equal(t, "role", rep.Samples[0].Diffs[0].Field)
	require.JSONEq(t, `"member"`, string(rep.Samples[0].Diffs[0].Before))
	require.JSONEq(t, `"editor"`, string(rep.Samples[0].Diffs[0].After))
	require.Equal(t, "test-commit", rep.SourceCommit)
	require.Empty(t, rep.Violations)
	require.Equal(t, int64(1), rep.FirstApplyBatch)
	require.NotNil(t, rep.Estimate)
	require.Equal(t, int64(3), rep.Estimate.Batches, "the canary of 50 rows, then 950 rows in batches of 500")
	require.Equal(t, 50*time.Millisecond, rep.Estimate.Throttle, "1000 rows read at 20000 rows/s, though only 333 change")
	require.GreaterOrEqual(t, rep.ETA, rep.Estimate.Preflight+rep.Estimate.Throttle)
	require.Equal(t, rep.ETA, rep.Estimate.Total)
}

func TestDryRunZeroChangesIsLoudAndOutsideBounds(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	pgtest.Exec(t, db, `UPDATE users u SET role = (SELECT g.role FROM role_grants g WHERE g.user_id = u.id
		ORDER BY g.granted_at DESC, g.id DESC LIMIT 1)`)
	res := runBinary(t, nil, fixRoles, "--database-url", db)
	require.Contains(t, res.stdout, "0 CHANGES: a real run will update 0 rows of users; nothing in scope needs it.")
	require.Contains(t, res.stdout, "will update           0")
	// fix_roles expects at least one change, so zero is also out of bounds.
	require.Equal(t, int(bftype.ExitExpectBounds), res.code)
	require.Contains(t, res.stderr, "REFUSED (expect_bounds): will update 0 is outside expect.changed [1, 15000].")
}

func TestDryRunOutsideExpectBoundsExitsNonZero(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	// 15,000 more users in scope, each with a grant: 16,000 > expect.matched.max.
	pgtest.Exec(t, db, `INSERT INTO users (id, email, role, tenant, created_at)
		SELECT i, 'extra' || i || '@example.com', 'member', 'acme', '2025-03-01' FROM generate_series(10001, 25000) i`,
		`INSERT INTO role_grants (user_id, role, granted_at) SELECT i, 'member', '2025-04-01' FROM generate_series(10001, 25000) i`)
	res := runBinary(t, nil, fixRoles, "--database-url", db)
	require.Equal(t, int(bftype.ExitExpectBounds), res.code, res.stderr)
	require.Contains(t, res.stderr, "matched 16,000 is outside expect.matched [1, 15000]")
	require.Contains(t, res.stdout, "OUTSIDE EXPECTED BOUNDS")
}

func TestConnectionFailureIsOneSentence(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, fixRoles, "--database-url", "postgres://postgres@127.0.0.1:1/nope?connect_timeout=3")
	require.Equal(t, int(bftype.ExitConnection), res.code)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	require.Len(t, lines, 2, res.stderr)
	require.Equal(t, `REFUSED (connection_failed): Could not connect to PostgreSQL at 127.0.0.1:1 as "postgres" to database "nope": connection refused.`, lines[0])
	require.Equal(t, "Next: Check the connection settings (--database-url) and that the server is up.", lines[1])

	res = runBinary(t, []string{"DATABASE_URL=" + pgtest.WithDatabase(t, pgtest.AdminURL(), "no_such_db_here")}, fixRoles)
	require.Equal(t, int(bftype.ExitConnection), res.code)
	require.Contains(t, res.stderr, `database "no_such_db_here" does not exist (SQLSTATE 3D000)`)
	require.Contains(t, res.stderr, "(DATABASE_URL)")
}

func TestConnectionFromLibpqVariables(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	name := strings.SplitN(db[strings.LastIndex(db, "/")+1:], "?", 2)[0]
	admin := pgtest.AdminURL()
	host := pgtest.Query(t, admin, "SELECT coalesce(host(inet_server_addr()), '127.0.0.1')")
	port := pgtest.Query(t, admin, "SELECT inet_server_port()")
	user := pgtest.Query(t, admin, "SELECT current_user")
	res := runBinary(t, []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=" + user, "PGDATABASE=" + name, "PGSSLMODE=disable"}, fixRoles)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "database       "+name)
}

func TestTextKeyedBackfillDryRuns(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "textkey")
	out, err := run(repoRoot, nil, "go", "build", "-o", bin, "./generator/testdata/textkey/cmd")
	require.NoError(t, err, out)

	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, `CREATE TABLE accounts (email text PRIMARY KEY, plan text NOT NULL, note text)`,
		`INSERT INTO accounts VALUES ('a@x', 'free', NULL), ('b@x', 'pro', NULL), ('c@x', 'pro', 'plan:pro'), ('', 'empty', NULL)`)
	res := runBinary(t, nil, bin, "--database-url", db)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "scanned               3")
	require.Contains(t, res.stdout, "matched               4")
	// c@x already holds its note: a nullable column is compared, not assumed to differ.
	require.Contains(t, res.stdout, "will update           2")
	require.Contains(t, res.stdout, `email="a@x"`)
	require.Contains(t, res.stdout, `note             null -> "plan:free"`)
	require.Contains(t, res.stdout, "2 batches: a canary of 1 row, then up to 2 rows each")
	require.Contains(t, res.stdout, "Parameters of the first Apply batch (batch 1, the canary batch of 1 row, which runs first and alone)")
	// A key equal to the start cursor ('' for text) is never paged; the
	// dry-run must say so rather than pass over the row in silence.
	require.Contains(t, res.stdout, "WARNING: the scope count (4) and the rows the pages returned (3) differ")
}

// A column misspelt in Apply passes sqlc (it does not check an UPDATE's SET
// list) but not the dry-run, which prepares every statement against the live
// schema: it exits 15 before reading anything, names the statement with
// PostgreSQL's message and SQLSTATE, and says to fix the query.
func TestDryRunRefusesAStatementThatDoesNotPrepare(t *testing.T) {
	t.Parallel()
	repo := copyRepo(t)
	edit(t, filepath.Join(repo, "queries/fix_roles/fix_roles.sql"), "SET role = v.role", "SET rol = v.role")
	out, err := run(repo, nil, sqlcBin, "generate")
	require.NoError(t, err, out)
	out, err = run(repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(t, err, out)

	db := demoDB(t)
	res := runBinary(t, nil, filepath.Join(repo, "dist/fix_roles/fix_roles"), "--database-url", db)
	require.Equal(t, int(bftype.ExitSchema), res.code, res.stderr)
	require.Equal(t, "REFUSED (schema_mismatch): Statement Apply does not prepare against the live schema: "+
		"column \"rol\" of relation \"users\" does not exist (SQLSTATE 42703).\n"+
		"Next: Fix the query named in queries/fix_roles/, run make sqlc and rebuild "+
		"(if the live schema is right, refresh queries/schema too: sqlc checked the query against that copy).\n", res.stderr)
	require.Empty(t, res.stdout, "a report of a binary whose Apply cannot run")
}

// The report says which statements it prepared, and a dry-run of another
// database than target.database says so at the top and in the JSON.
func TestDryRunReportNamesPreparedStatementsAndTheTarget(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	report := filepath.Join(t.TempDir(), "report.json")
	res := runBinary(t, nil, fixRoles, "--database-url", db, "--report", report)
	require.Equal(t, 0, res.code, res.stderr)
	name := pgtest.Query(t, db, "SELECT current_database()")
	require.True(t, strings.HasPrefix(res.stdout, "DRY-RUN of fix_roles: nothing was written (one READ ONLY transaction)\n\n"+banner+"\n"+
		`  NOT THE TARGET: this dry-run read database "`+name+`", but target.database is "backfill_demo".`), res.stdout)
	require.Contains(t, res.stdout, "  prepared       6 statements against the live schema: CountScope, ScopePage, Apply, RevertRead, target.canary.query, check no_null_roles\n")
	var rep bftype.Report
	data, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rep))
	require.True(t, rep.OffTarget)
	require.Equal(t, "backfill_demo", rep.TargetDatabase)
	require.Equal(t, name, rep.Database)
	require.Equal(t, []string{"CountScope", "ScopePage", "Apply", "RevertRead", "target.canary.query", "check no_null_roles"}, rep.Prepared)
}

var banner = strings.Repeat("=", 64)
