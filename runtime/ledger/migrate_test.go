package ledger

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// A ledger of version 5, with a run a process left running, migrates to
// the current version: the runner's old writes are revoked (version 6), an
// approval made before no longer counts, and the same binary resumes the
// run once approved again.
func TestMigrateFromVersion5(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, m := range Migrations() {
		if m.Version > 5 {
			break
		}
		_, err := conn.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
		if m.Version == 1 {
			_, err = conn.Exec(ctx, versionTable)
			require.NoError(t, err)
		}
		_, err = conn.Exec(ctx, "INSERT INTO backfill.migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
		require.NoError(t, err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO backfill.settings (key, value) VALUES ('environment', 'test');
		INSERT INTO backfill.runs (backfill, digest, run_signature, status, os_user, client_host, code_version, source_commit, cursor, scanned, batches)
		VALUES ('b', repeat('d', 64), 'sig', 'running', 'u', 'h', 'v', 'c', '3', 3, 1)`)
	require.NoError(t, err)
	require.Equal(t, "true", pgtest.Query(t, url, "SELECT has_table_privilege('backfill_runner', 'backfill.runs', 'UPDATE')"))

	res, err := Init(ctx, conn, "")
	require.NoError(t, err)
	require.Equal(t, 5, res.From)
	require.Equal(t, Version(), res.To)
	for _, table := range []string{"runs", "batches", "audit_events", "undo", "lanes", "dry_runs"} {
		require.Equal(t, "false", pgtest.Query(t, url, "SELECT has_table_privilege('backfill_runner', 'backfill."+table+"', 'INSERT') OR has_table_privilege('backfill_runner', 'backfill."+table+"', 'UPDATE')"), table)
	}
	require.Equal(t, "backfill_owner", pgtest.Query(t, url, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'backfill'"))

	// The fixture's logins and table on the migrated ledger.
	d := &ledgerDB{t: t, url: url, admin: conn}
	d.suffix = time.Now().Format("150405.000000")[7:]
	d.runner, d.alice, d.outside = "l_mrunner_"+d.suffix, "l_malice_"+d.suffix, "l_moutside_"+d.suffix
	for login, group := range map[string]string{d.runner: "backfill_runner", d.alice: "backfill_approver"} {
		pgtest.Exec(t, pgtest.AdminURL(), "CREATE ROLE "+login+" LOGIN", "GRANT "+group+" TO "+login)
		t.Cleanup(func() { dropLogin(url, login) })
	}
	pgtest.Exec(t, url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)", "INSERT INTO t SELECT g, 'old' FROM generate_series(1, 10) g",
		"GRANT SELECT ON t TO backfill_runner", "GRANT SELECT, UPDATE (v) ON t TO backfill_writer")
	addTestApprover(t, conn, d.alice)
	d.approve(d.alice, "execute")

	runner := d.as(d.runner)
	run, resumed, err := Start(ctx, runner, testRun("execute"), testStatements(), 1)
	require.NoError(t, err)
	require.True(t, resumed, "the run left running under version 5 resumes")
	require.Equal(t, int64(1), run.ID)
	tx, err := runner.Begin(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5}, page(t, tx, run.ID, 3, 2), "from its checkpoint")
	_, err = Gate{Tx: tx, RunID: run.ID}.Exec(ctx, testApply, []int64{4, 5}, []string{"new", "new"})
	require.NoError(t, err)
	_, _, err = RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, From: json.RawMessage("3"), Cursor: json.RawMessage("5"), Scanned: 2, Size: 2, Attempts: 1})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "new", pgtest.Query(t, url, "SELECT v FROM t WHERE id = 5"))
}
