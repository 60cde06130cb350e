package app_test

import (
	"math/rand/v2"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// wrongRoles counts in-scope users whose role differs from their latest grant.
const wrongRoles = `SELECT count(*) FROM users u WHERE created_at < '2026-01-01' AND role <>
	(SELECT g.role FROM role_grants g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1)`

// TestKillAtRandomInstantsNeverWritesARowTwice SIGKILLs one execution at
// many random instants and reruns it each time. Every batch commits its
// writes and its checkpoint together, so a trigger counting writes per row
// must end with each row that needed a change written exactly once.
func TestKillAtRandomInstantsNeverWritesARowTwice(t *testing.T) {
	t.Parallel()
	// Batches of two rows at most 250 rows a second: about four seconds of
	// work, so that kills every 40-200 ms land all through it.
	x := newTarget(t, edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 2, canary: 1, max_rows_per_second: 250,"})
	killUntilDone(t, x)
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.lanes"), "one lane unless the manifest asks for more")
}

// The same with three lanes: every lane commits its batches and its own
// checkpoint together on its own connection, and a kill at any instant,
// including while the lanes are being fixed, loses or repeats no row.
func TestKillWithLanesNeverWritesARowTwice(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 2, canary: 1, max_rows_per_second: 250, lanes: 3,"})
	require.Equal(t, 0, runBinary(t, nil, x.bin, "--save", "--database-url", x.runner).code, "the dry-run gives the keys lanes are cut at")
	killUntilDone(t, x)
	require.Equal(t, "3 3", pgtest.Query(t, x.db, "SELECT count(*) || ' ' || count(*) FILTER (WHERE done) FROM backfill.lanes"), "three lanes, all done")
	require.Equal(t, "3", pgtest.Query(t, x.db, "SELECT count(DISTINCT lane) FROM backfill.batches"), "batches came from every lane")
	require.Equal(t, "true", pgtest.Query(t, x.db, "SELECT max(batch) = count(*) AND min(batch) = 1 FROM backfill.batches"),
		"batch numbers have no gap whatever order the lanes committed in")
	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM (SELECT committed_at < lag(committed_at) OVER (ORDER BY batch) AS back
		FROM backfill.batches) s WHERE back`), "the recorded times follow the batch numbers")
	require.Equal(t, "true", pgtest.Query(t, x.db, `SELECT bool_and(l.until IS NULL OR b.cursor <= l.until) AND bool_and(l.after IS NULL OR b.cursor > l.after)
		FROM backfill.batches b JOIN backfill.lanes l USING (run_id, lane)`), "every batch stayed in its lane's keys")
}

// killUntilDone approves x's binary, then SIGKILLs its execution at random
// instants and reruns it until it completes, and checks every row that
// needed a change was written exactly once, by one run that kept its id.
func killUntilDone(t *testing.T, x *target) {
	t.Helper()
	pgtest.Exec(t, x.db, `CREATE TABLE row_writes (id bigint PRIMARY KEY, n int NOT NULL)`,
		`CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			INSERT INTO row_writes VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = row_writes.n + 1; RETURN NEW; END $$`,
		`CREATE TRIGGER count_write AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION count_write()`,
		`GRANT SELECT ON row_writes TO backfill_runner`, `GRANT SELECT, INSERT, UPDATE ON row_writes TO backfill_writer`)
	expected := pgtest.Query(t, x.db, `SELECT string_agg(u.id::text, ',' ORDER BY u.id) FROM users u WHERE created_at < '2026-01-01' AND role <>
		(SELECT g.role FROM role_grants g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1)`)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)

	kills := 0
	for attempt := 0; attempt < 200; attempt++ {
		cmd := exec.Command(x.bin, "--execute", "--database-url", x.runner)
		cmd.Env = cleanEnv()
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Later kills come a little later each time, so that a loaded machine,
		// where starting and the preflight take longer, still makes progress.
		delay := time.Duration(40+rand.IntN(160)+5*attempt) * time.Millisecond
		select {
		case err := <-done:
			code := exitCode(err)
			if code == int(bftype.ExitLocked) { // the killed run's session is still closing
				time.Sleep(50 * time.Millisecond)
				continue
			}
			// 13: the last kill landed after the run had completed.
			require.Contains(t, []int{0, int(bftype.ExitAlreadyDone)}, code, "a rerun after %d kills failed", kills)
			require.GreaterOrEqual(t, kills, 20, "the run finished before it was killed 20 times; make it longer")
			require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
			require.Equal(t, expected, pgtest.Query(t, x.db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM row_writes"),
				"rows written differ from rows that needed a change")
			require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT max(n) FROM row_writes"), "a row was written twice")
			run := pgtest.Query(t, x.db, "SELECT status || ' resumes=' || (resumes > 0)::text FROM backfill.runs WHERE status <> 'refused' ORDER BY id LIMIT 1")
			require.Equal(t, "completed resumes=true", run)
			require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.runs WHERE status NOT IN ('refused')"),
				"a resumed run must keep its run id")
			require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
			t.Logf("SIGKILLed %d times; every row written once", kills)
			return
		case <-time.After(delay):
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			<-done
			kills++
		}
	}
	t.Fatalf("the execution never completed after %d kills", kills)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
