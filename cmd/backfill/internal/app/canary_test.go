package app_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// spotChecks adds report.spot_check keys, which a run paused after its
// canary prints as the rows hold them.
var spotChecks = edit2{"checks:\n", "report: {spot_check: [3, 2]}\nchecks:\n"}

const (
	canaryRun    = "SELECT id FROM backfill.runs WHERE status <> 'refused'"
	pausedCanary = "SELECT control || ' ' || batches FROM backfill.runs WHERE status <> 'refused'"
	batchRows    = "SELECT count(*) || ' ' || coalesce(sum(scanned), 0) FROM backfill.batches"
)

// requireHeld checks that a run paused after its canary commits nothing more
// over a few of its control polls.
func (x *target) requireHeld() {
	x.t.Helper()
	x.waitFor(pausedCanary, "pause 1")
	time.Sleep(2500 * time.Millisecond)
	require.Equal(x.t, "pause 1", pgtest.Query(x.t, x.db, pausedCanary), "a run paused after its canary went on")
	require.Equal(x.t, "1 5", pgtest.Query(x.t, x.db, batchRows), "only the canary batch of 5 rows may be committed")
}

func TestPauseAfterCanaryWaitsForResume(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t, spotChecks)
	s := x.start("--pause-after-canary")
	x.requireHeld()
	id := pgtest.Query(t, x.db, canaryRun)
	require.Equal(t, `{"batch": 1, "canary": true, "control": "pause"}`,
		pgtest.Query(t, x.db, "SELECT payload FROM backfill.audit_events WHERE kind = 'control' AND run_id = "+id))
	// The lists say the run waits: its status stays running until it stops.
	require.Regexp(t, `(?m)^`+id+`\s+fix_roles\s+execute\s+running, paused\s`, x.cli("runs", "--database-url", x.observer))
	require.Regexp(t, `(?m)^status\s+running, paused$`, x.cli("show", id, "--database-url", x.observer))
	status := runBinary(t, nil, x.bin, "status", "--database-url", x.observer)
	require.Equal(t, 0, status.code, status.stderr)
	require.Contains(t, status.stdout, "run "+id+"  running, paused\n")
	x.cli("resume", id, "--database-url", x.runner)
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	out := s.stdout.String()
	require.Contains(t, out, "Canary batch 1 of run "+id+" committed: scanned 5 rows")
	require.Contains(t, out, "spot checks (report.spot_check; no saved dry-run predicts them), the row now:\n  id=3\n")
	require.Contains(t, out, "Run "+id+" is paused after its canary batch. Check the rows, then: backfill resume "+id)
	require.Contains(t, s.stderr.String(), "paused through the ledger")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
	require.Equal(t, "completed", pgtest.Query(t, x.db, "SELECT status FROM backfill.runs WHERE id = "+id))
}

func TestPauseAfterCanaryThenCancelStopsForGood(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start("--pause-after-canary")
	x.requireHeld()
	x.cli("cancel", pgtest.Query(t, x.db, canaryRun), "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t), s.stderr.String())
	require.Equal(t, "cancelled:cancelled", x.lastRun())
	require.Equal(t, "1 5", pgtest.Query(t, x.db, batchRows))
}

// A process killed while paused after its canary leaves the pause in the
// ledger: a rerun, even without the flag, waits for backfill resume.
func TestRunPausedAfterCanaryStaysPausedWhenRerun(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start("--pause-after-canary")
	x.waitFor(pausedCanary, "pause 1")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	s.wait(t)
	x.waitFor("SELECT count(*) FROM pg_stat_activity WHERE usename = 't_runner_"+x.suffix+"'", "0")

	s = x.start()
	x.waitFor("SELECT resumes FROM backfill.runs WHERE status = 'running'", "1")
	x.requireHeld()
	x.cli("resume", pgtest.Query(t, x.db, canaryRun), "--database-url", x.runner)
	require.Equal(t, 0, s.wait(t), tail(s.stderr.String()))
	require.Contains(t, s.stdout.String(), "Resumed run")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
}
