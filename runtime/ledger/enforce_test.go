package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// These tests attack the ledger the way a hostile runner, approver, outside
// login or database owner would, each logged in with only the grants
// docs/operating.md prescribes, and check that each attempt is refused and
// changes neither a row of the target table nor the audit chain.

// snapshot is what no refused attempt may change: the target table, the
// runs, batches and undo rows, and the audit chain's head.
func (d *ledgerDB) snapshot() string {
	d.t.Helper()
	return pgtest.Query(d.t, d.url, `SELECT md5(concat_ws('|',
		(SELECT string_agg(t::text, ',' ORDER BY id) FROM t),
		(SELECT string_agg(r.id || r.status || r.control || coalesce(r.cursor::text, '') || r.changed || r.db_user, ',' ORDER BY id) FROM backfill.runs r),
		(SELECT count(*) FROM backfill.batches), (SELECT count(*) FROM backfill.undo),
		(SELECT max(seq) || hash FROM backfill.audit_events GROUP BY hash ORDER BY max(seq) DESC LIMIT 1)))`)
}

// refused runs sql as conn and requires it to fail with SQLSTATE code
// (42501: permission denied) and change nothing.
func (d *ledgerDB) refused(conn *pgx.Conn, code, sql string, args ...any) {
	d.t.Helper()
	before := d.snapshot()
	_, err := conn.Exec(context.Background(), sql, args...)
	require.Error(d.t, err, sql)
	require.True(d.t, IsCode(err, code), "%s: want SQLSTATE %s, got %v", sql, code, err)
	require.Equal(d.t, before, d.snapshot(), "a refused attempt changed something: %s", sql)
}

// started is a running run of the test backfill, held by a runner session.
func (d *ledgerDB) started() (*pgx.Conn, *Run) {
	d.t.Helper()
	d.approve(d.alice, "execute")
	conn := d.as(d.runner)
	run, _, err := Start(context.Background(), conn, testRun("execute"), testStatements(), 1)
	require.NoError(d.t, err)
	return conn, run
}

// B1, B2, B3, B4: the runner writes neither the target table nor the ledger
// except through the ledger's functions.
func TestRunnerHoldsNoWritePrivilege(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	runner, run := d.started()
	ctx := context.Background()
	// A batch, so there are rows to tamper with.
	tx, err := runner.Begin(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, page(t, tx, run.ID, 0, 2))
	n, err := Gate{Tx: tx, RunID: run.ID}.Exec(ctx, testApply, []int64{1, 2}, []string{"new", "new"})
	require.NoError(t, err)
	require.Equal(t, int64(2), n.RowsAffected())
	num, changed, err := RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, Cursor: json.RawMessage("2"), Scanned: 2, Intended: 2, Size: 2, Attempts: 1,
		Undo: []byte(`[{"key":1,"before":{"v":"old"},"after":{"v":"new"}}]`), UndoKeys: []string{"1"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), num)
	require.Equal(t, int64(2), changed, "the database counts the rows")
	require.NoError(t, tx.Commit(ctx))

	for _, sql := range []string{
		"UPDATE t SET v = 'psql'",                                 // B1
		"DELETE FROM t",                                           // B1
		"UPDATE backfill.runs SET status = 'failed'",              // B2
		"UPDATE backfill.runs SET cursor = NULL, db_user = 'bob'", // identity
		`INSERT INTO backfill.runs (backfill, digest, run_signature, status, os_user, client_host, code_version, source_commit)
			VALUES ('b', 'd', 'sig', 'completed', 'u', 'h', 'v', 'c')`, // B3
		`INSERT INTO backfill.batches (run_id, batch, cursor, scanned, intended, changed, size, attempts, duration_ms)
			VALUES (1, 9, '9', 1, 1, 1, 1, 1, 1)`, // B3
		"INSERT INTO backfill.audit_events (run_id, kind, payload) VALUES (1, 'finished', '{}')",                                  // B3
		`INSERT INTO backfill.undo (run_id, batch, items) VALUES (1, 9, '[{"key":5,"before":{"v":"evil"},"after":{"v":"old"}}]')`, // B4
		"DELETE FROM backfill.audit_events",
		"TRUNCATE backfill.audit_events",
		"DO $$ BEGIN LOCK TABLE backfill.audit_head IN EXCLUSIVE MODE; END $$",
		"SELECT * FROM backfill.audit_head FOR UPDATE",
		"SELECT backfill._event(1, 'finished', '{}')",
		"UPDATE backfill.settings SET value = 'production'",
	} {
		d.refused(runner, "42501", sql)
	}
}

// Audit events are written only by the ledger's functions, each its own
// kinds, with the database's actor: a runner cannot log an approval, a
// finish or an archive, nor set a run's login.
func TestForgedEventsAndIdentity(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	runner, run := d.started()
	require.Equal(t, d.runner, run.DBUser)
	for _, kind := range []string{"approval", "finished", "archived", "started", "batch", "acknowledged", "dry_run"} {
		d.refused(runner, CodeMalformed, "SELECT backfill.run_event($1, $2, '{}')", run.ID, kind)
	}
	// A run in another session's hands is not this session's to log.
	d.refused(d.as(d.runner), CodeNotHeld, "SELECT backfill.run_event($1, 'preflight', '{}')", run.ID)
	// Whatever a process claims, the actor is the session's login.
	require.NoError(t, Append(context.Background(), runner, run.ID, "preflight", map[string]string{"actor": "alice"}))
	require.Equal(t, d.runner, pgtest.Query(t, d.url, "SELECT actor FROM backfill.audit_events ORDER BY seq DESC LIMIT 1"))
	// An approver is not a runner.
	d.refused(d.as(d.alice), "42501", "SELECT backfill.run_event($1, 'preflight', '{}')", run.ID)
}

// Writes go only through the run's approved statements, in a batch of a
// run this session holds, not paused or cancelled, and checkpoints only
// move forward.
func TestWritesOnlyAsApproved(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	runner, run := d.started()
	ctx := context.Background()
	prepare := func(conn *pgx.Conn, sql string) (string, error) {
		var name string
		err := conn.QueryRow(ctx, "SELECT backfill.prepare($1, $2, NULL)", run.ID, sql).Scan(&name)
		return name, err
	}
	before := d.snapshot()
	_, err := prepare(runner, "UPDATE t SET v = 'evil'")
	require.True(t, IsCode(err, CodeNotApprovedSQL), "an unapproved statement: %v", err)
	_, err = prepare(runner, testApply+" ")
	require.True(t, IsCode(err, CodeNotApprovedSQL), "another text, one space more: %v", err)
	_, err = prepare(runner, testRead)
	require.True(t, IsCode(err, CodeMalformed), "RevertRead is a read, with column types: %v", err)
	_, err = prepare(d.as(d.runner), testApply)
	require.True(t, IsCode(err, CodeNotHeld), "another session of the same login: %v", err)
	name, err := prepare(runner, testApply)
	require.NoError(t, err)
	call := "SELECT backfill_exec." + name + "($1, $2, $3, $4)"
	_, err = d.as(d.runner).Exec(ctx, call, []int64{1}, []string{"evil"}, run.ID, 0)
	require.True(t, IsCode(err, CodeNotHeld), "another session of the same login calls the write: %v", err)
	_, err = runner.Exec(ctx, call, []int64{1}, []string{"evil"}, run.ID, 0)
	require.True(t, IsCode(err, CodeKeys), "the holder outside a batch that read a page: %v", err)
	for _, who := range []string{d.alice, d.outside} {
		_, err = d.as(who).Exec(ctx, "SELECT backfill.prepare($1, $2, NULL)", run.ID, testApply)
		require.True(t, IsCode(err, "42501"), "%s: %v", who, err)
		_, err = d.as(who).Exec(ctx, call, []int64{1}, []string{"evil"}, run.ID, 0)
		require.True(t, IsCode(err, "42501"), "%s calls the write: %v", who, err)
	}
	_, err = d.as(d.runner).Exec(ctx, "CREATE FUNCTION backfill_exec.x_0() RETURNS int LANGUAGE sql AS 'SELECT 1'")
	require.True(t, IsCode(err, "42501"), "only the writer creates there: %v", err)
	require.Equal(t, before, d.snapshot())

	// A batch writes only keys its page read, and reads its page only from
	// the checkpoint: a checkpoint never goes back.
	batch := func(after int64, limit int32, write []int64, from, to string) error {
		tx, err := runner.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		rows, err := Gate{Tx: tx, RunID: run.ID}.Query(ctx, testPage, after, limit)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			return err
		}
		if len(write) > 0 {
			vals := make([]string, len(write))
			for i := range vals {
				vals[i] = "new"
			}
			if _, err := (Gate{Tx: tx, RunID: run.ID}).Exec(ctx, testApply, write, vals); err != nil {
				return err
			}
		}
		var f json.RawMessage
		if from != "" {
			f = json.RawMessage(from)
		}
		if _, _, err := RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, From: f, Cursor: json.RawMessage(to), Scanned: 1, Size: 1, Attempts: 1}); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	before = d.snapshot()
	require.True(t, IsCode(batch(0, 2, []int64{1, 9}, "", "2"), CodeKeys), "key 9 is not in the page of keys 1 and 2")
	require.True(t, IsCode(batch(0, 2, []int64{1}, "", "5"), CodeKeys), "cursor 5 is not a key the page read")
	tx, err := runner.Begin(ctx)
	require.NoError(t, err)
	page(t, tx, run.ID, 0, 2)
	_, _, err = RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, Cursor: json.RawMessage("2"), Scanned: 2, Size: 2, Attempts: 1,
		Undo: []byte(`[{"key":9,"before":{"v":"evil"},"after":{"v":"old"}}]`), UndoKeys: []string{"9"}})
	require.True(t, IsCode(err, CodeKeys), "images of a key the batch did not read (B4 through the function): %v", err)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, before, d.snapshot())
	require.NoError(t, batch(0, 5, []int64{5}, "", "5"))
	before = d.snapshot()
	require.True(t, IsCode(batch(3, 2, nil, "5", "5"), CodeCheckpoint), "a page from before the checkpoint")
	require.True(t, IsCode(batch(7, 2, nil, "5", "8"), CodeCheckpoint), "a page from after the checkpoint skips rows")
	require.ErrorIs(t, batch(5, 2, nil, "2", "7"), ErrLaneMoved)
	require.ErrorIs(t, batch(5, 2, nil, "null", "7"), ErrLaneMoved)
	require.True(t, IsCode(batch(5, 2, []int64{4}, "5", "7"), CodeKeys), "key 4 was written by an earlier batch")
	require.Equal(t, before, d.snapshot())

	// Paused: no write until it is resumed; cancelled: none ever again.
	require.NoError(t, SetControl(ctx, d.as(d.runner), run.ID, ControlPause))
	require.True(t, IsCode(batch(5, 2, []int64{6}, "5", "7"), CodePaused))
	require.NoError(t, SetControl(ctx, d.as(d.runner), run.ID, ControlRun))
	require.NoError(t, batch(5, 2, []int64{6}, "5", "7"))
	require.NoError(t, SetControl(ctx, d.as(d.runner), run.ID, ControlCancel))
	require.True(t, IsCode(batch(7, 2, []int64{8}, "7", "9"), CodeFinal))
	require.Error(t, SetControl(ctx, d.as(d.runner), run.ID, ControlRun), "a cancel is final")
}

// A dead run's cancel is final: the next start does not undo it; and while
// a revert of a run has started, the run does not resume.
func TestCancelStaysAndRevertExcludesResume(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	runner, run := d.started()
	ctx := context.Background()
	d.gone(runner) // the process died
	require.NoError(t, SetControl(ctx, d.as(d.runner), run.ID, ControlCancel))
	require.Equal(t, StatusCancelled, pgtest.Query(t, d.url, "SELECT status FROM backfill.runs WHERE id = 1"))
	_, _, err := Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 1)
	require.True(t, IsCode(err, CodeAlreadyDone), "a cancelled run is final: %v", err)

	d2 := newLedgerDB(t)
	runner, run = d2.started()
	d2.gone(runner)
	d2.approve(d2.alice, "revert:1")
	_, _, err = Start(ctx, d2.as(d2.runner), testRun("revert:1"), testStatements(), 1)
	require.NoError(t, err)
	_, _, err = Start(ctx, d2.as(d2.runner), testRun("execute"), testStatements(), 1)
	require.True(t, IsCode(err, CodeConflict), "a run does not resume once its revert started: %v", err)
	_ = run
}

// Approvals count by the database's rules: from the statement itself,
// strict JSON, at most 30 days, by the server's clock, by a login other
// than the runner's, naming exactly the statements the run submits.
func TestApprovalsCheckedByTheDatabase(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	alice := d.as(d.alice)
	submit := func(st string) error {
		_, err := AddApproval(ctx, alice, Approval{Approver: d.alice, Statement: st, Signature: "s"})
		return err
	}
	good := statement(d.alice, "execute", testStatements(), time.Hour)
	before := d.snapshot()
	for name, st := range map[string]string{
		"2099 expiry":        statement(d.alice, "execute", testStatements(), 80*365*24*time.Hour),
		"duplicate key":      strings.Replace(good, `"purpose":"execute"`, `"purpose":"execute","purpose":"revert:9"`, 1),
		"case-variant key":   strings.Replace(good, `"purpose":"execute"`, `"purpose":"execute","Purpose":"revert:9"`, 1),
		"trailing data":      good + `{"predicate":{}}`,
		"unknown key":        strings.Replace(good, `"purpose":"execute"`, `"purpose":"execute","environmnet":"prod"`, 1),
		"names no SQL":       statement(d.alice, "execute", nil, time.Hour),
		"another's approver": statement(d.bob, "execute", testStatements(), time.Hour),
	} {
		require.Error(t, submit(st), name)
	}
	_, err := alice.Exec(ctx, `INSERT INTO backfill.approvals (backfill, digest, run_signature, environment, purpose, approver, reason, expires_at, statement, signature)
		VALUES ('b', $1, 'sig', 'test', 'execute', $2, 'r', '2099-01-01', '{}', 's')`, strings.Repeat("d", 64), d.alice)
	require.True(t, IsCode(err, "42501"), "an approval row is the database's to write: %v", err)
	require.Equal(t, before, d.snapshot())

	// An approval of other SQL does not count for this run.
	other := testStatements()
	other[0].SQL = "UPDATE t SET v = 'x'"
	require.NoError(t, submit(statement(d.alice, "execute", other, time.Hour)))
	_, _, err = Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 1)
	require.True(t, IsCode(err, CodeNotApproved), "%v", err)
	// The runner's own approval never counts for its run.
	require.NoError(t, submit(good))
	_, _, err = Start(ctx, alice, testRun("execute"), testStatements(), 1)
	require.Error(t, err, "alice is no runner")
	pgtest.Exec(t, pgtest.AdminURL(), "GRANT backfill_runner TO "+d.alice)
	_, _, err = Start(ctx, d.as(d.alice), testRun("execute"), testStatements(), 1)
	require.True(t, IsCode(err, CodeNotApproved), "alice approving her own run: %v", err)
	// Two approvals are needed: one approver login counts once.
	require.NoError(t, submit(good))
	_, _, err = Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 2)
	require.True(t, IsCode(err, CodeNotApproved), "%v", err)
	run, _, err := Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 1)
	require.NoError(t, err)
	require.Len(t, run.ApprovalIDs, 1)
}

// Only ECDSA P-256 approver keys are trusted.
func TestOnlyP256Keys(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	pemOf := func(pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		require.NoError(t, err)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	for name, key := range map[string]string{"rsa1024": pemOf(&rsa1024.PublicKey), "rsa2048": pemOf(&rsa2048.PublicKey),
		"ed25519": pemOf(edPub), "p384": pemOf(&p384.PublicKey), "junk": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		err := AddApprover(ctx, d.admin, Approver{Name: name, Login: "x", PublicKey: key, KeyID: name})
		require.True(t, IsCode(err, CodeMalformed), "%s: %v", name, err)
	}
}

// A login without a backfill role reads nothing of the ledger, calls none
// of its functions and cannot block a run: it may take any advisory lock.
func TestOutsideLoginCannotBlockARun(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	outside := d.as(d.outside)
	tx, err := d.as(d.outside).Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	for i := int64(0); i < 64; i++ {
		_, err := tx.Exec(ctx, "SELECT pg_advisory_lock($1)", 7305811741290600+i)
		require.NoError(t, err)
	}
	_, err = outside.Exec(ctx, "SELECT * FROM backfill.runs")
	require.True(t, IsCode(err, "42501"), "%v", err)
	_, err = outside.Exec(ctx, "SELECT backfill.run_live(1)")
	require.True(t, IsCode(err, "42501"), "%v", err)
	runner, run := d.started()
	tx2, err := runner.Begin(ctx)
	require.NoError(t, err)
	page(t, tx2, run.ID, 0, 3)
	_, err = Gate{Tx: tx2, RunID: run.ID}.Exec(ctx, testApply, []int64{3}, []string{"new"})
	require.NoError(t, err)
	_, _, err = RecordBatch(ctx, tx2, BatchRecord{RunID: run.ID, Cursor: json.RawMessage("3"), Scanned: 3, Intended: 1, Size: 3, Attempts: 1})
	require.NoError(t, err)
	require.NoError(t, tx2.Commit(ctx))
}

// The statement's names resolve in the ledger's search_path, whatever the
// session's: neither a schema first on the runner's search_path nor a
// temp table of the same name redirects a write.
func TestSearchPathAndTempTablesDoNotRedirect(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	pgtest.Exec(t, d.url, "CREATE SCHEMA evil AUTHORIZATION "+d.runner)
	runner, run := d.started()
	ctx := context.Background()
	for _, sql := range []string{"CREATE TABLE evil.t (id bigint, v text)", "INSERT INTO evil.t VALUES (4, 'evil')",
		"CREATE TEMP TABLE t (id bigint, v text)", "INSERT INTO t VALUES (4, 'temp')", "SET search_path = evil, public"} {
		_, err := runner.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	tx, err := runner.Begin(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4}, page(t, tx, run.ID, 0, 4), "the page read public.t")
	rows, err := Gate{Tx: tx, RunID: run.ID}.Query(ctx, testRead, []int64{4})
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToMap)
	require.NoError(t, err)
	require.Equal(t, "old", got[0]["bf_c2"], "RevertRead read public.t")
	n, err := Gate{Tx: tx, RunID: run.ID}.Exec(ctx, testApply, []int64{4}, []string{"new"})
	require.NoError(t, err)
	require.Equal(t, int64(1), n.RowsAffected())
	_, _, err = RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, Cursor: json.RawMessage("4"), Scanned: 4, Intended: 1, Size: 4, Attempts: 1})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "new", pgtest.Query(t, d.url, "SELECT v FROM public.t WHERE id = 4"))
	require.Equal(t, "evil", pgtest.Query(t, d.url, "SELECT v FROM evil.t WHERE id = 4"))
}

// B6: the database owner, who is not a superuser, can neither disable the
// ledger's triggers nor rewrite an event.
func TestDatabaseOwnerCannotRewriteTheLedger(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	name := pgtest.Query(t, d.url, "SELECT current_database()")
	pgtest.Exec(t, d.url, "ALTER DATABASE "+name+" OWNER TO "+d.outside)
	owner := d.as(d.outside)
	d.approve(d.alice, "execute")
	for _, sql := range []string{
		"ALTER TABLE backfill.audit_events DISABLE TRIGGER ALL",
		"ALTER TABLE backfill.audit_events DISABLE TRIGGER audit_append_only",
		"UPDATE backfill.audit_events SET payload = '{}'",
		"DROP TABLE backfill.audit_events",
		"DROP SCHEMA backfill CASCADE",
		"ALTER SCHEMA backfill RENAME TO old",
		"CREATE OR REPLACE FUNCTION backfill.append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
		"GRANT backfill_owner TO " + d.outside,
		"SET ROLE backfill_owner",
	} {
		d.refused(owner, "42501", sql)
	}
}

// Found by a fresh-eyes trial: writes that no record_batch recorded, or
// recorded after a cancel, never commit; so the ledger's counts, images and
// events are always those of what was written.
func TestWritesCommitOnlyWithTheirBatchRecord(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	runner, run := d.started()
	ctx := context.Background()
	write := func(keys []int64, immediate bool) error {
		tx, err := runner.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		if immediate {
			_, err = tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE")
			require.NoError(t, err)
		}
		page(t, tx, run.ID, 0, 10)
		vals := make([]string, len(keys))
		for i := range vals {
			vals[i] = "forged"
		}
		if _, err := (Gate{Tx: tx, RunID: run.ID}).Exec(ctx, testApply, keys, vals); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	before := d.snapshot()
	require.True(t, IsCode(write([]int64{1, 2, 3}, false), CodeUnrecorded), "commit without record_batch")
	require.True(t, IsCode(write([]int64{1, 2, 3}, true), CodeUnrecorded), "with the check made immediate")
	require.Equal(t, before, d.snapshot())

	// A cancel while a batch is open: the batch cannot record, so its writes
	// cannot commit.
	tx, err := runner.Begin(ctx)
	require.NoError(t, err)
	page(t, tx, run.ID, 0, 3)
	require.NoError(t, SetControl(ctx, d.as(d.runner), run.ID, ControlCancel))
	_, err = Gate{Tx: tx, RunID: run.ID}.Exec(ctx, testApply, []int64{1}, []string{"after cancel"})
	require.NoError(t, err, "the batch was open before the cancel")
	_, _, err = RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, Cursor: json.RawMessage("3"), Scanned: 3, Size: 3, Attempts: 1})
	require.True(t, IsCode(err, CodeFinal), "%v", err)
	require.Error(t, tx.Commit(ctx))
	require.Equal(t, "old", pgtest.Query(t, d.url, "SELECT v FROM t WHERE id = 1"))
}

// peek runs only the RevertRead of a run the database started, and undoes
// whatever it did: an approval of any text (the database does not check
// signatures) is no way to run SQL as the writer, and a RevertRead that
// writes writes nothing through peek.
func TestPeekRunsOnlyARunsRevertReadAndUndoesIt(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	evil := "WITH d AS (UPDATE t SET v = 'pwned' WHERE id = ANY($1::bigint[]) RETURNING id, v) SELECT id, v FROM d"
	stmts := testStatements()
	stmts[1].SQL = evil
	_, err := AddApproval(ctx, d.as(d.alice), Approval{Approver: d.alice, Statement: statement(d.alice, "execute", stmts, time.Hour), Signature: "not a signature"})
	require.NoError(t, err)
	observer := d.as(d.outside)
	pgtest.Exec(t, pgtest.AdminURL(), "GRANT backfill_observer TO "+d.outside)
	peek := func(conn *pgx.Conn) error {
		rows, err := NewPeek(conn, nil).Query(ctx, evil, []int64{9})
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		return err
	}
	require.True(t, IsCode(peek(observer), CodeNotApprovedSQL), "approved, but no run started with it")

	// A quorum started a run with it: peek runs it, and undoes it.
	r := testRun("execute")
	_, _, err = Start(ctx, d.as(d.runner), r, stmts, 1)
	require.NoError(t, err)
	require.NoError(t, peek(observer))
	require.Equal(t, "old", pgtest.Query(t, d.url, "SELECT v FROM t WHERE id = 9"))
	require.Equal(t, "0", pgtest.Query(t, d.url, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 't' AND l.mode = 'RowExclusiveLock'"))
}

// A login that can create objects in a schema the writer's functions search
// (here the database owner, through schema public) could shadow a function
// the approved SQL calls and run as the writer: no run starts, and ledger
// check names it.
func TestNoRunWhileALoginCanShadowTheWritersFunctions(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	d.approve(d.alice, "execute")
	pgtest.Exec(t, d.url, "GRANT CREATE ON SCHEMA public TO "+d.outside)
	ctx := context.Background()
	before := d.snapshot()
	_, _, err := Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 1)
	require.True(t, IsCode(err, CodeUntrustedPath), "%v", err)
	require.Contains(t, err.Error(), d.outside+" in schema public")
	require.Equal(t, before, d.snapshot())
	exposed, err := Exposures(ctx, d.admin)
	require.NoError(t, err)
	require.Contains(t, exposed, Exposure{Login: d.outside, Role: "backfill_writer", How: "create in schema public"})
	pgtest.Exec(t, d.url, "REVOKE CREATE ON SCHEMA public FROM "+d.outside)
	_, _, err = Start(ctx, d.as(d.runner), testRun("execute"), testStatements(), 1)
	require.NoError(t, err)
}

// A session proves it holds a run by a token only it knows (ledger version
// 7): another session of the same login that sets backfill.session to what
// it can read (the sha256 a row of backfill.sessions keeps, or a guess)
// writes nothing, and a session that loses its token (RESET ALL) stops
// holding the run until it joins again.
func TestSessionTokenCannotBeBorrowed(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	runner, run := d.started()
	hash := pgtest.Query(t, d.url, fmt.Sprintf("SELECT token FROM backfill.sessions WHERE run_id = %d", run.ID))
	require.Len(t, hash, 64, "the session's row holds the token's sha256")
	var mine string
	require.NoError(t, runner.QueryRow(ctx, "SELECT current_setting('backfill.session')").Scan(&mine))
	require.NotEqual(t, hash, mine, "the row does not hold the token itself")

	write := func(conn *pgx.Conn) error {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		rows, err := (Gate{Tx: tx, RunID: run.ID}).Query(ctx, testPage, int64(0), int32(2))
		if err != nil {
			return err
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = (Gate{Tx: tx, RunID: run.ID}).Exec(ctx, testApply, []int64{1}, []string{"evil"})
		return err
	}
	before := d.snapshot()
	for _, token := range []string{hash, strings.Repeat("0", 64), ""} {
		other := d.as(d.runner)
		_, err := other.Exec(ctx, "SELECT set_config('backfill.session', $1, false)", token)
		require.NoError(t, err)
		// The prepared functions exist; the other session calls them directly.
		_, err = other.Exec(ctx, "SELECT backfill.prepare($1, $2, $3)", run.ID, testPage, []string{"bigint", "text"})
		require.True(t, IsCode(err, CodeNotHeld), "token %q: %v", token, err)
		require.True(t, IsCode(write(other), CodeNotHeld), "token %q", token)
	}
	require.Equal(t, before, d.snapshot())

	// The holder itself, having lost its token, holds the run no more.
	_, err := runner.Exec(ctx, "RESET ALL")
	require.NoError(t, err)
	require.True(t, IsCode(write(runner), CodeNotHeld))
	require.Equal(t, before, d.snapshot())
	// Joining again gives it a new token, and the run back.
	require.NoError(t, Join(ctx, runner, run.ID))
	var again string
	require.NoError(t, runner.QueryRow(ctx, "SELECT current_setting('backfill.session')").Scan(&again))
	require.NotEqual(t, mine, again)
	require.NoError(t, write(runner))
}

// A page comes back through the ledger in the order its approved ScopePage
// gives, not the table's physical order (the batch's cursor is its last
// key): rows moved to the end of the heap by updates still come in key
// order, with an index scan and with a sort.
func TestPageKeepsItsOrder(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	pgtest.Exec(t, d.url, "UPDATE t SET v = 'moved' WHERE id % 2 = 1", "UPDATE t SET v = 'moved again' WHERE id < 5")
	runner, run := d.started()
	for _, scan := range []string{"SET enable_indexscan = on", "SET enable_indexscan = off"} {
		_, err := runner.Exec(ctx, scan)
		require.NoError(t, err)
		tx, err := runner.Begin(ctx)
		require.NoError(t, err)
		require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, page(t, tx, run.ID, 0, 10), scan)
		require.NoError(t, tx.Rollback(ctx))
	}
}

// The token is bound to the login too: the holder's session can read its
// own token, so a session of another runner login that learnt it and got
// the holder's process id after the holder ended (simulated by moving the
// holder's row to the other session's pid) holds nothing.
func TestLeakedTokenOnAReusedPidHoldsNothing(t *testing.T) {
	t.Parallel()
	d := newLedgerDB(t)
	ctx := context.Background()
	holder, run := d.started()
	var token string
	require.NoError(t, holder.QueryRow(ctx, "SHOW backfill.session").Scan(&token))
	other := "l_runner2_" + d.suffix
	pgtest.Exec(t, pgtest.AdminURL(), "CREATE ROLE "+other+" LOGIN", "GRANT backfill_runner TO "+other)
	t.Cleanup(func() { dropLogin(d.url, other) })
	thief := d.as(other)
	_, err := thief.Exec(ctx, "SELECT set_config('backfill.session', $1, false)", token)
	require.NoError(t, err)
	pgtest.Exec(t, d.url, fmt.Sprintf("UPDATE backfill.sessions SET pid = %d WHERE run_id = %d", thief.PgConn().PID(), run.ID))
	before := d.snapshot()
	tx, err := thief.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = (Gate{Tx: tx, RunID: run.ID}).Query(ctx, testPage, int64(0), int32(2))
	require.True(t, IsCode(err, CodeNotHeld), "another login with the holder's token and pid: %v", err)
	require.Equal(t, before, d.snapshot())
}
