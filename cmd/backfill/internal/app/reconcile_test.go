package app_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

var savedAs = regexp.MustCompile(`Report saved in the ledger as dry-run (\d+)`)

// saveDryRun saves a dry-run as the runner and returns its id.
func (x *target) saveDryRun() string {
	x.t.Helper()
	res := runBinary(x.t, nil, x.bin, "--save", "--database-url", x.runner)
	m := savedAs.FindStringSubmatch(res.stdout)
	require.NotNil(x.t, m, "no dry-run saved: %s%s", res.stdout, res.stderr)
	return m[1]
}

// verify, the run's own reconciliation and REPORT.md all compare the run
// with the last dry-run of its digest saved before it started, never one
// saved after; a difference an operator acknowledges with backfill ack is
// shown with its reason instead of failing verify, and is archived.
func TestReconcileUsesTheDryRunBeforeTheRunAndShowsAnAck(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	x.saveDryRun() // an older one, superseded by the next
	planned := x.saveDryRun()

	// Someone sets user 1's role by hand between the dry-run and the run.
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'viewer' WHERE id = 1")
	res := x.execute(x.bin)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "reconcile: updated 334 rows but dry-run "+planned+" planned 333")
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")

	// A dry-run saved after the run sees nothing left to change: it must not count.
	after := x.saveDryRun()
	require.NotEqual(t, planned, after)

	verify := runBinary(t, nil, x.bin, "verify", "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitValidation), verify.code, verify.stderr)
	require.Contains(t, verify.stdout, "reconcile: updated 334 rows but dry-run "+planned+" planned 333")
	require.Contains(t, verify.stderr, "Run "+run+" updated 334 rows but dry-run "+planned+" planned 333.")
	require.Contains(t, verify.stderr, "backfill ack "+run+" --reason")

	// Only a runner login acknowledges, with a reason, a difference that exists.
	res = runBinary(t, nil, cliBin, "ack", run, "--reason", "user 1 was set by hand", "--database-url", x.observer)
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, "may not acknowledge a run")
	res = runBinary(t, nil, cliBin, "ack", run, "--database-url", x.runner)
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, "ack needs --reason")
	require.Equal(t, int(bftype.ExitAlreadyDone), x.execute(x.bin).code, "a rerun is refused")
	refused := pgtest.Query(t, x.db, "SELECT max(id) FROM backfill.runs WHERE status = 'refused'")
	res = runBinary(t, nil, cliBin, "ack", refused, "--reason", "x", "--database-url", x.runner)
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, "not a completed execution")

	reason := "user 1 was set to viewer by hand (ticket OPS-42) between the dry-run and the run"
	out := x.cli("ack", run, "--reason", reason, "--database-url", x.runner)
	require.Contains(t, out, "acknowledged: run "+run+" changed 334 rows, dry-run "+planned+" planned 333")
	require.Equal(t, "t_runner_"+x.suffix, pgtest.Query(t, x.db, "SELECT actor FROM backfill.audit_events WHERE kind = 'acknowledged'"))

	verify = runBinary(t, nil, x.bin, "verify", "--database-url", x.runner)
	require.Equal(t, 0, verify.code, verify.stderr)
	require.Contains(t, verify.stdout, "reconcile: updated 334 rows but dry-run "+planned+" planned 333; acknowledged by t_runner_"+x.suffix)
	require.Contains(t, verify.stdout, reason)

	report := x.archivedReport(run)
	require.Contains(t, report, "| rows updated | [1, 15000] | 333 (dry-run "+planned+") | 334 |")
	require.Contains(t, report, "Reconciled with dry-run "+planned+" (it planned 333 rows updated): MISMATCH.")
	require.Contains(t, report, "Difference acknowledged by t_runner_"+x.suffix)
	require.Contains(t, report, reason)
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
}
