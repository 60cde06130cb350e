package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestUpsertInsertsRaisesAndRevertsByDeleting runs grant_quotas, whose
// Apply is INSERT ... ON CONFLICT DO UPDATE, through kills and a resume: it
// inserts the quota rows pro accounts lack and raises lower ones. Its revert
// deletes the rows the run inserted and writes the raised quotas back, so the
// table ends as it was, except rows changed by hand since, which it leaves.
func TestUpsertInsertsRaisesAndRevertsByDeleting(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	bin := x.build("grant_quotas", edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 5, canary: 2, max_rows_per_second: 250,"})
	pgtest.Exec(t, x.db,
		`INSERT INTO accounts (tenant, plan) SELECT 'acme', (ARRAY['pro', 'free', 'pro'])[1 + i % 3] FROM generate_series(1, 600) AS i`,
		// Of the 400 pro accounts: a third have no quota, a third 50 GB (raised), a third 200 GB (left).
		`INSERT INTO quotas (account_id, storage_gb, note)
			SELECT id, (ARRAY[50, 200])[1 + (id / 3) % 2], (ARRAY[NULL, '', 'vip'])[1 + id % 3]
			FROM accounts WHERE plan = 'pro' AND id % 3 = 0 OR plan = 'free' AND id % 2 = 0`,
		"GRANT SELECT ON accounts TO backfill_runner, backfill_writer",
		"GRANT SELECT ON quotas TO backfill_runner", "GRANT SELECT, INSERT, UPDATE, DELETE ON quotas TO backfill_writer")
	const quotasState = `SELECT md5(string_agg(q::text, ',' ORDER BY account_id)) FROM quotas q WHERE account_id NOT IN ($1, $2)`
	missing := pgtest.Query(t, x.db, `SELECT count(*) FROM accounts a WHERE plan = 'pro' AND NOT EXISTS (SELECT FROM quotas WHERE account_id = a.id)`)
	raised := pgtest.Query(t, x.db, `SELECT count(*) FROM quotas q JOIN accounts a ON a.id = q.account_id WHERE plan = 'pro' AND storage_gb < 100`)
	require.NotEqual(t, "0", missing)
	require.NotEqual(t, "0", raised)
	// The two rows changed by hand below: one the run inserts, one it raises.
	ins := pgtest.Query(t, x.db, `SELECT min(a.id) FROM accounts a WHERE plan = 'pro' AND NOT EXISTS (SELECT FROM quotas WHERE account_id = a.id)`)
	rai := pgtest.Query(t, x.db, `SELECT min(account_id) FROM quotas q JOIN accounts a ON a.id = q.account_id WHERE plan = 'pro' AND storage_gb < 100`)
	original := pgtest.Query(t, x.db, quotasState, ins, rai)

	res := runBinary(t, nil, bin, "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "writes         INSERT INTO quotas ... ON CONFLICT DO UPDATE: a real run will insert or update ")
	require.Contains(t, res.stdout, " rows in quotas\n")
	x.approve("alice", bin)
	x.approve("bob", bin)
	x.killThenComplete(bin, 2)

	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM accounts a WHERE plan = 'pro'
		AND NOT EXISTS (SELECT FROM quotas q WHERE q.account_id = a.id AND q.storage_gb >= 100)`))
	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM quotas q JOIN accounts a ON a.id = q.account_id WHERE plan = 'free' AND storage_gb = 100`))
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	require.Equal(t, missing+" "+raised, pgtest.Query(t, x.db, `SELECT count(*) FILTER (WHERE json_typeof(i->'before') = 'null') || ' ' || count(*) FILTER (WHERE json_typeof(i->'before') <> 'null')
		FROM backfill.undo u, json_array_elements(u.items) i WHERE u.run_id = `+run), "an inserted row has no before-image, a raised one its old quota")

	pgtest.Exec(t, x.db, "UPDATE quotas SET storage_gb = 150 WHERE account_id IN ("+ins+", "+rai+")")
	x.approve("alice", bin, "--revert-run", run)
	x.approve("bob", bin, "--revert-run", run)
	res = runBinary(t, nil, bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "2 changed since and left alone")
	require.Equal(t, original, pgtest.Query(t, x.db, quotasState, ins, rai), "the revert did not delete the inserted rows and restore the raised ones exactly")
	require.Equal(t, "150 150", pgtest.Query(t, x.db, `SELECT string_agg(storage_gb::text, ' ') FROM quotas WHERE account_id IN (`+ins+`, `+rai+`)`))
}

// TestDeleteKeepsWholeRowsAndRevertReinsertsThem runs purge_sessions, whose
// Apply is a DELETE and whose Change holds only the key, through kills and a
// resume. The before-images are whole rows (NULL, ” and JSON kept apart);
// the revert inserts them back byte for byte, except a row whose key a new
// row took since, which it leaves alone.
func TestDeleteKeepsWholeRowsAndRevertReinsertsThem(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	bin := x.build("purge_sessions", edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 5, canary: 2, max_rows_per_second: 250,"})
	pgtest.Exec(t, x.db,
		`INSERT INTO sessions (tenant, user_id, token, expires_at, meta)
			SELECT 'acme', i % 17, (ARRAY[NULL, '', 'tok-' || i])[1 + i % 3],
				timestamptz '2025-12-31 23:59:59.123456+00' + (i % 2) * interval '1 day' - i * interval '1 minute 0.000001 second',
				(ARRAY[NULL, '{"a": [1, 2.50]}', '[]', '"x"'])[1 + i % 4]::jsonb
			FROM generate_series(1, 600) AS i`,
		"GRANT SELECT ON sessions TO backfill_runner", "GRANT SELECT, INSERT, DELETE, UPDATE (id) ON sessions TO backfill_writer")
	const sessionsState = `SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM sessions s WHERE id <> $1`
	expired := pgtest.Query(t, x.db, "SELECT count(*) FROM sessions WHERE expires_at < '2026-01-01'")
	kept := pgtest.Query(t, x.db, "SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM sessions s WHERE expires_at >= '2026-01-01'")
	retaken := pgtest.Query(t, x.db, "SELECT min(id) FROM sessions WHERE expires_at < '2026-01-01'")
	original := pgtest.Query(t, x.db, sessionsState, retaken)

	res := runBinary(t, nil, bin, "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, `"deleted"`, "the dry-run's samples show the rows deleted")
	require.Contains(t, res.stdout, "writes         DELETE FROM sessions: a real run will DELETE "+expired+" rows from sessions\n")
	x.approve("alice", bin)
	x.approve("bob", bin)
	x.killThenComplete(bin, 2)

	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM sessions WHERE expires_at < '2026-01-01'"))
	require.Equal(t, kept, pgtest.Query(t, x.db, "SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM sessions s"), "sessions out of scope were touched")
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	require.Equal(t, expired+" 0", pgtest.Query(t, x.db, `SELECT count(*) || ' ' || count(*) FILTER (WHERE json_typeof(i->'after') <> 'null' OR i->'before'->'meta' IS NULL)
		FROM backfill.undo u, json_array_elements(u.items) i WHERE u.run_id = `+run), "each deleted row keeps its whole row and no after-image")
	require.Equal(t, expired, pgtest.Query(t, x.db, "SELECT changed FROM backfill.runs WHERE id = "+run))

	// A new session takes the key of a deleted one: the revert leaves it.
	pgtest.Exec(t, x.db, "INSERT INTO sessions (id, tenant, user_id, expires_at) VALUES ("+retaken+", 'acme', 99, now())")
	x.approve("alice", bin, "--revert-run", run)
	x.approve("bob", bin, "--revert-run", run)
	res = runBinary(t, nil, bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "1 changed since and left alone")
	require.Contains(t, res.stdout, "a row with this key exists again")
	require.Equal(t, original, pgtest.Query(t, x.db, sessionsState, retaken), "the revert did not insert the deleted rows back exactly")
	require.Equal(t, "99", pgtest.Query(t, x.db, "SELECT user_id FROM sessions WHERE id = "+retaken))
}

// TestInsertRaceKeepsAnotherSessionsRow: while a batch of grant_quotas
// runs, another session inserts a quota row of an account in that batch and
// commits while the batch waits on it. The upsert leaves that row alone (it
// already holds 100 GB), so the batch cannot say which rows it inserted: it is
// rolled back and retried, and the row is recorded as existing, never as one
// the run inserted. The revert then leaves it in place.
func TestInsertRaceKeepsAnotherSessionsRow(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	bin := x.build("grant_quotas", edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 5, canary: 2, max_rows_per_second: 100,"})
	pgtest.Exec(t, x.db,
		`INSERT INTO accounts (tenant, plan) SELECT 'acme', 'pro' FROM generate_series(1, 60)`,
		"GRANT SELECT ON accounts TO backfill_runner, backfill_writer",
		"GRANT SELECT ON quotas TO backfill_runner", "GRANT SELECT, INSERT, UPDATE, DELETE ON quotas TO backfill_writer")
	x.approve("alice", bin)
	x.approve("bob", bin)

	ctx := context.Background()
	other, err := pgx.Connect(ctx, x.db)
	require.NoError(t, err)
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO quotas (account_id, storage_gb, note) VALUES (20, 100, 'the app''s own')")
	require.NoError(t, err)
	done := make(chan result, 1)
	go func() { done <- runBinary(t, nil, bin, "--execute", "--database-url", x.runner) }()
	// Commit once the batch holding account 20 waits on the row.
	require.Eventually(t, func() bool {
		return pgtest.Query(t, x.db, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%backfill_exec.%'`) == "1"
	}, 20*time.Second, 20*time.Millisecond, "the batch never waited on the other session's row")
	require.NoError(t, tx.Commit(ctx))
	res := <-done
	require.Equal(t, 0, res.code, tail(res.stderr))

	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM backfill.undo u, json_array_elements(u.items) i
		WHERE u.run_id = `+run+` AND i->>'key' = '20'`), "the other session's row is not the run's to undo")
	require.NotEqual(t, "0", pgtest.Query(t, x.db, "SELECT sum(attempts - 1) FROM backfill.batches WHERE run_id = "+run), "the batch was retried")
	x.approve("alice", bin, "--revert-run", run)
	x.approve("bob", bin, "--revert-run", run)
	res = runBinary(t, nil, bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Equal(t, "the app's own", pgtest.Query(t, x.db, "SELECT note FROM quotas WHERE account_id = 20"))
	require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(*) FROM quotas"))
}
