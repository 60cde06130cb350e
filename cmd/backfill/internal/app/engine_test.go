package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// slow is a manifest edit that makes fix_roles take a few seconds: batches
// of 10 rows at most 400 rows a second over its 1,000 rows in scope.
var slow = edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 10, canary: 5, max_rows_per_second: 400,"}

// started is an execution running in the background.
type started struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan int
}

func (x *target) start(extra ...string) *started {
	x.t.Helper()
	s := &started{done: make(chan int, 1)}
	s.cmd = exec.Command(x.bin, append([]string{"--execute", "--database-url", x.runner}, extra...)...)
	s.cmd.Env = cleanEnv()
	s.cmd.Dir = x.t.TempDir()
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	require.NoError(x.t, s.cmd.Start())
	go func() { s.done <- exitCode(s.cmd.Wait()) }()
	return s
}

func (s *started) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-s.done:
		return code
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("execution did not finish; stdout:\n%s\nstderr:\n%s", s.stdout.String(), s.stderr.String())
		return -1
	}
}

// waitFor polls a query until it returns want.
func (x *target) waitFor(query, want string) {
	x.t.Helper()
	require.Eventually(x.t, func() bool { return pgtest.Query(x.t, x.db, query) == want }, 30*time.Second, 20*time.Millisecond,
		"waiting for %s = %s", query, want)
}

const runningBatches = "SELECT coalesce(max(batches), 0) > 3 FROM backfill.runs WHERE status = 'running'"

func approvedSlowTarget(t *testing.T, edits ...edit2) *target {
	x := newTarget(t, append([]edit2{slow}, edits...)...)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	return x
}

func TestTerminatedConnectionIsRetriedAndTheRunCompletes(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start("--log-stderr", "json")
	x.waitFor(runningBatches, "true")
	pgtest.Exec(t, x.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 't_runner_"+x.suffix+"'")
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	require.Contains(t, s.stderr.String(), `"event":"backoff"`)
	require.Contains(t, s.stderr.String(), `"event":"reconnect"`)
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
	require.Equal(t, "completed", pgtest.Query(t, x.db, "SELECT status FROM backfill.runs WHERE status <> 'refused'"))
}

func TestLockHeldPastTheLockTimeoutIsRetriedUntilReleased(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t, edit2{"lock_timeout: 2s", "lock_timeout: 100ms"})
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, x.db)
	require.NoError(t, err)
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	require.NoError(t, err)
	// Hold every in-scope user past the 100ms lock timeout.
	_, err = tx.Exec(ctx, "SELECT id FROM users WHERE id > 500 FOR UPDATE")
	require.NoError(t, err)
	s := x.start("--log-stderr", "json")
	// Release only once the run has waited on the lock (however long start-up
	// takes on a loaded machine), and after a few of its 100ms timeouts.
	x.waitFor("SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 't_runner_"+x.suffix+"' AND wait_event_type = 'Lock'", "true")
	time.Sleep(time.Second)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	logs := s.stderr.String()
	require.Contains(t, logs, `"event":"backoff"`)
	require.Contains(t, logs, "lock timeout")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
	require.NotEqual(t, "1", pgtest.Query(t, x.db, "SELECT max(attempts) FROM backfill.batches"), "no batch needed a retry")
}

func TestConstraintViolationStopsWithTheKeyAndAResumeCompletes(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	// Rows past id 600 may not become editors: the run must stop there.
	pgtest.Exec(t, x.db, "ALTER TABLE users ADD CONSTRAINT no_late_editors CHECK (id <= 600 OR role <> 'editor') NOT VALID")
	res := x.execute(x.bin)
	require.Equal(t, int(bftype.ExitPartial), res.code, tail(res.stderr))
	require.Contains(t, res.stderr, `violates check constraint "no_late_editors"`)
	// The batch that failed starts after a key below 603 (batch sizes adapt,
	// so which one depends on the machine); every row up to it is done.
	after := regexp.MustCompile(`\(keys after (\d+)\)`).FindStringSubmatch(res.stderr)
	require.NotNil(t, after, res.stderr)
	key, _ := strconv.Atoi(after[1])
	require.Less(t, key, 603)
	require.Contains(t, res.stderr, "Failing row contains (603,")
	require.Equal(t, "failed:batch_failed", x.lastRun())
	committed := pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE status = 'failed'")
	require.NotEqual(t, "0", committed, "earlier batches must stay committed")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles+" AND u.id <= "+after[1]))

	pgtest.Exec(t, x.db, "ALTER TABLE users DROP CONSTRAINT no_late_editors")
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "Resumed run")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
	require.Equal(t, "completed 1", pgtest.Query(t, x.db, "SELECT status || ' ' || resumes FROM backfill.runs WHERE status <> 'refused'"))
}

func TestPauseResumeAndCancelThroughTheLedger(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start()
	x.waitFor(runningBatches, "true")
	id := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'running'")
	x.cli("pause", id, "--database-url", x.runner)
	time.Sleep(1500 * time.Millisecond)
	paused := pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE id = "+id)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, paused, pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE id = "+id), "a paused run went on")
	x.cli("resume", id, "--database-url", x.runner)
	x.waitFor("SELECT batches > "+paused+" FROM backfill.runs WHERE id = "+id, "true")
	x.cli("cancel", id, "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t))
	require.Equal(t, "cancelled:cancelled", x.lastRun())
	require.NotEqual(t, "0", pgtest.Query(t, x.db, wrongRoles), "a cancelled run must not have finished")
	// Cancelled is final: the same binary does not start again.
	before := x.state()
	x.requireRefused(x.execute(x.bin), before, bftype.ExitAlreadyDone, bftype.ReasonAlreadyDone, "was cancelled by an operator")
	// An observer may not steer a run.
	res := runBinary(t, nil, cliBin, "pause", id, "--database-url", x.observer)
	require.Equal(t, 1, res.code)
}

func TestTwoStageInterrupt(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start()
	x.waitFor(runningBatches, "true")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t), s.stderr.String())
	require.Contains(t, s.stderr.String(), "Stopping after the current batch")
	require.Equal(t, "interrupted:interrupted", x.lastRun())
	// The checkpoint matches what was written: a rerun resumes and finishes.
	res := x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Resumed run")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))

	// Twice: the second signal stops at once.
	y := approvedSlowTarget(t)
	s = y.start()
	y.waitFor(runningBatches, "true")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t), s.stderr.String())
	require.Equal(t, "interrupted:interrupted", y.lastRun(), "a second Ctrl-C must still record how the run ended")
	batches, _ := strconv.Atoi(pgtest.Query(t, y.db, "SELECT batches FROM backfill.runs WHERE status = 'interrupted'"))
	require.Equal(t, strconv.Itoa(batches), pgtest.Query(t, y.db, "SELECT count(*) FROM backfill.batches"))
}

func TestFailingCheckFailsTheRun(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{`equals: 0}`, `equals: 0}
  - {name: impossible, query: "SELECT count(*) FROM users", equals: 7}`})
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res := x.execute(x.bin)
	require.Equal(t, int(bftype.ExitValidation), res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, `Check impossible returned "1200" after the run, not "7"`)
	require.Equal(t, "failed_validation:validation_failed", x.lastRun())
	require.NotContains(t, res.stderr, "..", "doubled full stop")
	// Both checks' values are on record before the first write and after the last.
	require.Equal(t, `[{"got": "0", "name": "no_null_roles", "holds": true, "query": "SELECT count(*) FROM users WHERE role IS NULL", "equals": "0"}, `+
		`{"got": "1200", "name": "impossible", "holds": false, "query": "SELECT count(*) FROM users", "equals": "7"}]`,
		pgtest.Query(t, x.db, "SELECT payload->'checks_before' FROM backfill.audit_events WHERE kind = 'preflight'"))
	require.Equal(t, `false|[true, false]`, pgtest.Query(t, x.db, `SELECT (payload->>'hold') || '|' || jsonb_path_query_array(payload, '$.checks[*].holds')::text
		FROM backfill.audit_events WHERE kind = 'validated'`))
	before := x.state()
	x.requireRefused(x.execute(x.bin), before, bftype.ExitAlreadyDone, bftype.ReasonAlreadyDone, "failed its checks after its last batch")
}

// With --log-stderr json, stderr is the JSON log and nothing else; every
// line names the backfill and its digest, every line from the run's start
// (and the end of a refused attempt) its run id, and only the launch line
// the arguments. Without it, stderr is for people: no JSON.
func TestJSONLogCarriesTheRunIDOnEveryRunLine(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	refused := runBinary(t, nil, x.bin, "--execute", "--database-url", x.runner, "--log-stderr", "json")
	require.Equal(t, int(bftype.ExitNotApproved), refused.code)
	refusedID := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'refused'")
	require.NotContains(t, refused.stderr, "REFUSED (", "the JSON line says it; no prose on a JSON stderr")
	require.Contains(t, refused.stderr, `"event":"stop","error":`)
	require.Contains(t, refused.stderr, `"run_id":`+refusedID+`,"stop_reason":"not_approved","exit_code":`)

	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res := runBinary(t, nil, x.bin, "--execute", "--database-url", x.runner, "--log-stderr", "json")
	require.Equal(t, 0, res.code, res.stderr)
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	digest := pgtest.Query(t, x.db, "SELECT digest FROM backfill.runs WHERE status = 'completed'")
	var runLines, launches int
	started := false
	for _, line := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
		var fields map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &fields), "not a JSON line on stderr: %q", line)
		require.Equal(t, "fix_roles", fields["backfill"], line)
		require.Equal(t, digest, fields["digest"], line)
		require.Contains(t, line, `"time":"`)
		if fields["event"] == "launch" {
			launches++
			require.Contains(t, line, `"args":["--execute","--database-url",`)
			require.Contains(t, line, `"run_signature":"`)
		} else {
			require.NotContains(t, line, `"args"`, "the arguments are on the launch line only")
		}
		started = started || fields["event"] == "start"
		if started {
			require.Equal(t, run, fmt.Sprint(fields["run_id"]), line)
			runLines++
		}
	}
	require.Equal(t, 1, launches)
	require.Greater(t, runLines, 2)

	human := x.execute(x.bin) // refused: already completed
	require.NotContains(t, human.stderr, "{", "JSON on a human stderr")
	require.Contains(t, human.stderr, "REFUSED (already_completed)")
}

// tail keeps failure messages short: the last lines of a log.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-4):], "\n")
}

func TestAlertsFireAndAFailingHookNeverStopsTheRun(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events, texts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a struct{ Event, Text string }
		_ = json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		events, texts = append(events, a.Event), append(texts, a.Text)
		mu.Unlock()
	}))
	defer srv.Close()
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(events, ",")
	}

	x := approvedSlowTarget(t)
	s := x.start("--alert-webhook", srv.URL, "--alert-command", "echo hook broke >&2; exit 3", "--stuck-after", "1s", "--log-stderr", "json")
	x.waitFor(runningBatches, "true")
	id := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'running'")
	x.cli("pause", id, "--database-url", x.runner)
	require.Eventually(t, func() bool { return strings.Contains(got(), "stuck") }, 20*time.Second, 50*time.Millisecond)
	x.cli("resume", id, "--database-url", x.runner)
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	require.Equal(t, "stuck,completed", got())
	require.Contains(t, s.stderr.String(), "alert command failed")
	require.Contains(t, s.stderr.String(), "hook broke")

	// A failed run alerts too.
	y := newTarget(t)
	y.approve("alice", y.bin)
	y.approve("bob", y.bin)
	pgtest.Exec(t, y.db, "ALTER TABLE users ADD CONSTRAINT no_editors CHECK (role <> 'editor') NOT VALID")
	res := runBinary(t, nil, y.bin, "--execute", "--database-url", y.runner, "--alert-webhook", srv.URL)
	require.Equal(t, int(bftype.ExitPartial), res.code)
	require.Equal(t, "stuck,completed,failed", got())

	// So does a refusal, with its stop reason, through the environment's webhook.
	z := newTarget(t)
	res = runBinary(t, []string{"BACKFILL_ALERT_WEBHOOK=" + srv.URL}, z.bin, "--execute", "--database-url", z.runner)
	require.Equal(t, int(bftype.ExitNotApproved), res.code)
	require.Equal(t, "stuck,completed,failed,refused", got())
	refused := pgtest.Query(t, z.db, "SELECT id FROM backfill.runs WHERE status = 'refused'")
	mu.Lock()
	defer mu.Unlock()
	// Text is the one sentence Slack and Teams show.
	require.Regexp(t, `^Backfill fix_roles run \d+ is stuck: no batch committed for \d+s\.$`, texts[0])
	require.Regexp(t, `^Backfill fix_roles run \d+ completed: scanned 1,000, updated 333 in \d+ batches\.$`, texts[1])
	require.Regexp(t, `^Backfill fix_roles run `+refused+` was REFUSED \(not_approved\): .+\.$`, texts[3])
}

func TestStatusAndVerifyReconcileWithTheSavedDryRun(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res := runBinary(t, nil, x.bin, "--save", "--database-url", x.runner)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Report saved in the ledger as dry-run")
	status := runBinary(t, nil, x.bin, "status", "--database-url", x.observer)
	require.Contains(t, status.stdout, "has not run in this database")

	// The data moves between the dry-run and the run: one more user is wrong.
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'viewer' WHERE id = 1")
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "reconcile: updated 334 rows but dry-run")

	status = runBinary(t, nil, x.bin, "status", "--database-url", x.observer)
	require.Equal(t, 0, status.code, status.stderr)
	require.Contains(t, status.stdout, "completed")
	require.Contains(t, status.stdout, "changed 334")
	verify := runBinary(t, nil, x.bin, "verify", "--database-url", x.observer)
	require.Equal(t, int(bftype.ExitPermission), verify.code, "the observer may not read users")
	verify = runBinary(t, nil, x.bin, "verify", "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitValidation), verify.code, verify.stderr)
	require.Contains(t, verify.stdout, "checks: all 1 hold", verify.stderr)
	require.Contains(t, verify.stderr, "updated 334 rows but dry-run")
	require.Contains(t, verify.stderr, "planned 333")

	y := newTarget(t)
	y.approve("alice", y.bin)
	y.approve("bob", y.bin)
	require.Equal(t, int(bftype.ExitValidation), runBinary(t, nil, y.bin, "verify", "--database-url", y.runner).code, "verify before any run")
	require.Equal(t, 0, runBinary(t, nil, y.bin, "--save", "--database-url", y.runner).code)
	require.Equal(t, 0, y.execute(y.bin).code)
	verify = runBinary(t, nil, y.bin, "verify", "--database-url", y.runner)
	require.Equal(t, 0, verify.code, verify.stderr)
	require.Contains(t, verify.stdout, "updated 333 rows, as dry-run")
}

func TestHealthQueryPausesBatchesUntilItRecovers(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t, edit2{"checks:\n", "health: {query: \"SELECT count(*) FROM app_settings WHERE key = 'hold'\", max: 0}\nchecks:\n"})
	s := x.start("--log-stderr", "json")
	x.waitFor(runningBatches, "true")
	pgtest.Exec(t, x.db, "INSERT INTO app_settings VALUES ('hold', 'x')")
	time.Sleep(500 * time.Millisecond) // let the batch in flight commit
	held := pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE status = 'running'")
	time.Sleep(2 * time.Second)
	require.Equal(t, held, pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE status = 'running'"), "batches went on while unhealthy")
	pgtest.Exec(t, x.db, "DELETE FROM app_settings WHERE key = 'hold'")
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	require.Contains(t, s.stderr.String(), `"msg":"database unhealthy, waiting"`)
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
}

// Lanes are cut only at the keys of a saved dry-run of the same binary, and
// --lanes lowers the manifest's number; otherwise the run says why it runs
// one lane and does.
func TestLanesNeedASavedDryRunAndFollowTheLanesFlag(t *testing.T) {
	t.Parallel()
	lanes := edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 50, canary: 10, max_rows_per_second: 0, lanes: 4,"}

	x := newTarget(t, lanes)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res := runBinary(t, nil, x.bin, "--execute", "--database-url", x.runner, "--log-stderr", "yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stderr, "running one lane: no saved dry-run of this binary")
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.lanes"))
	require.Equal(t, "1", pgtest.Query(t, x.db, `SELECT count(*) FROM backfill.audit_events WHERE kind = 'lanes'
		AND payload->>'wanted' = '4' AND payload->>'why' LIKE 'running one lane: no saved dry-run%'`), "the fallback is in the audit log")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))

	y := newTarget(t, lanes)
	y.approve("alice", y.bin)
	y.approve("bob", y.bin)
	require.Equal(t, 0, runBinary(t, nil, y.bin, "--save", "--database-url", y.runner).code)
	res = runBinary(t, nil, y.bin, "--execute", "--database-url", y.runner, "--lanes", "2")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "2", pgtest.Query(t, y.db, "SELECT count(*) FROM backfill.lanes"), "--lanes 2 under the manifest's 4")
	require.Equal(t, "0", pgtest.Query(t, y.db, wrongRoles))
	require.Contains(t, y.cli("audit", "verify", "--database-url", y.observer), "audit chain verified")

	require.Equal(t, 2, runBinary(t, nil, y.bin, "--execute", "--database-url", y.runner, "--lanes", "-1").code, "a negative --lanes is a usage error")
}

// The health query runs read-only, like the canary and the checks: one
// that writes (here it advances a sequence) fails before the first batch
// instead of writing, and the run stops, naming it.
func TestHealthQueryRunsReadOnly(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"checks:\n", "health: {query: \"SELECT nextval('health_probe') * 0\", max: 0}\nchecks:\n"})
	pgtest.Exec(t, x.db, "CREATE SEQUENCE health_probe", "GRANT USAGE, SELECT, UPDATE ON SEQUENCE health_probe TO backfill_runner")
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	before := x.state()
	res := x.execute(x.bin)
	require.Equal(t, int(bftype.ExitPartial), res.code, tail(res.stderr))
	require.Contains(t, res.stderr, "the health query failed: cannot execute nextval() in a read-only transaction (SQLSTATE 25006)")
	require.Contains(t, res.stderr, "Next: Fix health.query in backfill.yaml")
	require.Equal(t, "failed:batch_failed", x.lastRun())
	require.Equal(t, "false", pgtest.Query(t, x.db, "SELECT is_called FROM health_probe"), "the health query wrote")
	require.Equal(t, before, x.state())
}

// A run's sessions keep the operator's PGAPPNAME and add the backfill and
// the run id, so a DBA reading pg_stat_activity sees both.
func TestSessionsAreNamedAfterTheRun(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	cmd := exec.Command(x.bin, "--execute", "--database-url", x.runner)
	cmd.Env, cmd.Dir = append(cleanEnv(), "PGAPPNAME=nightly-job"), t.TempDir()
	require.NoError(t, cmd.Start())
	done := make(chan int, 1)
	go func() { done <- exitCode(cmd.Wait()) }()
	x.waitFor(runningBatches, "true")
	id := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'running'")
	require.Equal(t, "nightly-job backfill fix_roles run "+id, pgtest.Query(t, x.db,
		"SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_activity WHERE usename = 't_runner_"+x.suffix+"'"))
	require.Equal(t, 0, <-done)
}

// slowWhileFlagged makes each batch's update hold its locks 300ms while
// app_settings has the key 'slow': an AFTER statement trigger sleeps.
const slowWhileFlagged = `CREATE FUNCTION slow_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM app_settings WHERE key = 'slow') THEN PERFORM pg_sleep(0.3); END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER slow_batches AFTER UPDATE ON users FOR EACH STATEMENT EXECUTE FUNCTION slow_batches();
GRANT SELECT ON app_settings TO backfill_writer` // the trigger runs as the writer

// With the adaptive mode on (the default), sessions that wait on the run's
// locks longer than batch.max_app_impact.lock_wait slow the run down: the
// log says why, the batches' audit events count it, and the run completes.
func TestAdaptiveModeSlowsDownForLockWaitsAndCompletes(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	pgtest.Exec(t, x.db, slowWhileFlagged, "INSERT INTO app_settings VALUES ('slow', 'x')")
	logFile := filepath.Join(t.TempDir(), "run.log")
	s := x.start("--log-file", logFile)
	x.waitFor(runningBatches, "true")
	// The application: a session that takes a SHARE lock on users again and
	// again, so it waits behind each batch's row-exclusive lock.
	ctx, cancel := context.WithCancel(context.Background())
	app, err := pgx.Connect(ctx, x.db)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer app.Close(context.Background())
		for ctx.Err() == nil {
			_, _ = app.Exec(ctx, "BEGIN; LOCK TABLE users IN SHARE MODE; COMMIT")
			time.Sleep(20 * time.Millisecond)
		}
	})
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), `"event":"slow_down","reason":"lock_wait"`)
	}, 30*time.Second, 50*time.Millisecond, "no slow-down for the lock waits")
	cancel()
	wg.Wait()
	pgtest.Exec(t, x.db, "DELETE FROM app_settings WHERE key = 'slow'")
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
	data, err := os.ReadFile(logFile)
	require.NoError(t, err)
	require.Contains(t, string(data), `"msg":"adaptive mode on"`)
	require.Contains(t, string(data), `on a lock the run held (max_app_impact.lock_wait 100ms)`)
	require.Equal(t, "true", pgtest.Query(t, x.db,
		"SELECT max((payload->'adaptive'->>'slow_downs')::int) > 0 FROM backfill.audit_events WHERE kind = 'batch'"))
	require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.audit_events WHERE kind = 'adaptive'"))
}

// --adaptive=false runs without the probe and without the controller.
func TestAdaptiveModeSwitchedOff(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	logFile := filepath.Join(t.TempDir(), "run.log")
	s := x.start("--log-file", logFile, "--adaptive=false")
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	data, err := os.ReadFile(logFile)
	require.NoError(t, err)
	require.NotContains(t, string(data), `"event":"adaptive"`)
	require.NotContains(t, string(data), `"event":"slow_down"`)
	require.Equal(t, "0", pgtest.Query(t, x.db,
		"SELECT count(*) FROM backfill.audit_events WHERE kind = 'adaptive' OR (kind = 'batch' AND payload ? 'adaptive')"))
}
