package app_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestRevertRestoresExactlyTheRowsTheRunChanged runs fix_roles, changes one
// of the rows it wrote, and reverts: every other row the run changed gets its
// role back, the changed row is left alone and reported, and nothing else moves.
func TestRevertRestoresExactlyTheRowsTheRunChanged(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	original := pgtest.Query(t, x.db, "SELECT md5(string_agg(id || ':' || role, ',' ORDER BY id)) FROM users")
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, x.execute(x.bin).code)
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	require.Equal(t, "333", pgtest.Query(t, x.db, "SELECT sum(json_array_length(items)) FROM backfill.undo WHERE run_id = "+run))

	// Someone fixes user 3 by hand after the run; the revert must not undo that.
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'admin' WHERE id = 3")

	preview := runBinary(t, nil, x.bin, "revert", "--run", run, "--database-url", x.runner)
	require.Equal(t, 0, preview.code, preview.stderr)
	require.Contains(t, preview.stdout, "would be restored                332")
	require.Contains(t, preview.stdout, `key 3: changed since the run (role), now {"role":"admin"}`)

	// Not approved for the revert (the execute approvals do not count).
	before := x.state()
	res := runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitNotApproved), res.code, res.stderr)
	require.Contains(t, res.stderr, "it approves execute, not revert:"+run)
	require.Equal(t, before, x.state())

	x.approve("alice", x.bin, "--revert-run", run)
	x.approve("bob", x.bin, "--revert-run", run)
	res = runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "restored 332 of 333 rows; 1 changed since and left alone")
	require.Contains(t, res.stdout, "key 3: changed since the run (role)")

	require.Equal(t, "admin", pgtest.Query(t, x.db, "SELECT role FROM users WHERE id = 3"))
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'member' WHERE id = 3") // what the seed had
	require.Equal(t, original, pgtest.Query(t, x.db, "SELECT md5(string_agg(id || ':' || role, ',' ORDER BY id)) FROM users"),
		"the revert did not restore exactly the rows the run changed")

	// A revert runs once too.
	res = runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitAlreadyDone), res.code, res.stderr)
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
}

// A revert behaves like a run: it is held to max_rows_per_second (the rows
// it reads are the before-images), a rerun after an interrupt
// says "Resumed" and counts the whole revert, and runs, status
// and show name each run's purpose, the original as "reverted by run N".
func TestRevertIsThrottledResumesAndIsNamed(t *testing.T) {
	t.Parallel()
	// Batches of 10 rows keep 3 or 4 before-images each, so the revert's
	// 333 images come in about 100 batches, held to 200 rows a second.
	x := newTarget(t, edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 10, canary: 5, max_rows_per_second: 200,"})
	require.Equal(t, int(bftype.ExitNotApproved), x.execute(x.bin).code)
	res := runBinary(t, nil, x.bin, "revert", "--run", "1", "--execute", "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitUsage), res.code, res.stderr)
	require.Contains(t, res.stderr, "Run 1 was refused before it wrote anything; there is nothing to revert.")
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, x.execute(x.bin).code)
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	x.approve("alice", x.bin, "--revert-run", run)
	x.approve("bob", x.bin, "--revert-run", run)

	cmd := exec.Command(x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	cmd.Env, cmd.Dir = cleanEnv(), t.TempDir()
	require.NoError(t, cmd.Start())
	x.waitFor("SELECT coalesce(max(batches), 0) > 10 FROM backfill.runs WHERE purpose = 'revert:"+run+"'", "true")
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, int(bftype.ExitInterrupted), exitCode(cmd.Wait()))
	revert := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE purpose = 'revert:"+run+"' AND status <> 'refused'")
	first := pgtest.Query(t, x.db, "SELECT batches FROM backfill.runs WHERE id = "+revert)

	res = runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "Resumed revert run "+revert+" of run "+run)
	require.Contains(t, res.stdout, "Completed revert run "+revert+" of run "+run+": restored 333 of 333 rows; 0 changed since",
		"the totals count the whole revert, both processes")
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM users WHERE id <= 1000 AND id % 3 = 0 AND role <> 'member'"))

	// Each process's batches are held to 200 images a second: from its first
	// commit to its last, at least the images between them at that rate.
	require.Equal(t, "true true", pgtest.Query(t, x.db, `SELECT string_agg(held::text, ' ' ORDER BY second) FROM (
		SELECT batch > `+first+` AS second,
			extract(epoch FROM max(committed_at) - min(committed_at)) >=
			(sum(scanned) - (array_agg(scanned ORDER BY batch))[1] - (array_agg(scanned ORDER BY batch DESC))[1]) / 200.0 AS held
		FROM backfill.batches WHERE run_id = `+revert+` GROUP BY 1) p`), "a revert batch ran faster than max_rows_per_second")
	require.Equal(t, "true", pgtest.Query(t, x.db, "SELECT count(*) > 50 FROM backfill.batches WHERE run_id = "+revert), "enough batches to see the rate")

	runs := x.cli("runs", "--database-url", x.observer)
	require.Regexp(t, `(?m)^`+revert+`\s+fix_roles\s+revert of run `+run+`\s+completed\s`, runs)
	require.Regexp(t, `(?m)^`+run+`\s+fix_roles\s+execute, reverted by run `+revert+`\s+completed\s`, runs)
	status := runBinary(t, nil, x.bin, "status", "--database-url", x.observer).stdout
	require.Contains(t, status, "run "+revert+"  completed\n  purpose revert of run "+run+"\n  scanned 333 of 333, changed 333")
	require.Contains(t, status, "run "+run+"  completed\n  purpose execute, reverted by run "+revert+"\n")
	require.Regexp(t, `(?m)^purpose\s+execute, reverted by run `+revert+`$`, x.cli("show", run, "--database-url", x.observer))
	require.Regexp(t, `(?m)^purpose\s+revert of run `+run+`$`, x.cli("show", revert, "--database-url", x.observer))
}

// A revert batch that meets a row lock held past lock_timeout backs off and
// retries, like a run's batch, instead of stopping the revert.
func TestRevertRetriesALockTimeout(t *testing.T) {
	t.Parallel()
	x, run := executed(t)
	x.approve("alice", x.bin, "--revert-run", run)
	x.approve("bob", x.bin, "--revert-run", run)
	key := pgtest.Query(t, x.db, `SELECT min((i->>'key')::bigint) FROM backfill.undo u, json_array_elements(u.items) i WHERE u.run_id = `+run)

	ctx := context.Background()
	other, err := pgx.Connect(ctx, x.db)
	require.NoError(t, err)
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", key)
	require.NoError(t, err)
	release := time.AfterFunc(3500*time.Millisecond, func() { _ = tx.Rollback(ctx) }) // past the 2s lock_timeout once
	defer release.Stop()

	res := runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner, "--log-stderr", "yes")
	require.Equal(t, 0, res.code, tail(res.stdout+res.stderr))
	require.Contains(t, res.stderr, `"event":"backoff"`, "the lock timeout was retried")
	require.Contains(t, res.stdout, "restored 333")
}

// A revert writes the before-images back through Apply; an Apply whose
// WHERE restates the scope matches none of the rows the run changed, and
// the revert says so loudly instead of ending as a quiet success (found by
// a fresh-eyes trial: "restored 0 of 2700 rows").
func TestRevertThatRestoresFewerRowsThanItsImagesSaysSo(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	queries, err := filepath.Glob(filepath.Join(x.repo, "queries/fix_roles/*.sql"))
	require.NoError(t, err)
	require.Len(t, queries, 1)
	edit(t, queries[0], "  AND u.role IS DISTINCT FROM v.role;", `  AND u.role IS DISTINCT FROM v.role
  AND u.role IS DISTINCT FROM (SELECT g.role FROM role_grants AS g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1);`)
	out, err := run(x.repo, nil, sqlcBin, "generate")
	require.NoError(t, err, out)
	out, err = run(x.repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(t, err, out)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, x.execute(x.bin).code)
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	x.approve("alice", x.bin, "--revert-run", run)
	x.approve("bob", x.bin, "--revert-run", run)
	before := x.state()
	res := runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "restored 0 of 333 rows")
	require.Contains(t, res.stderr, "WARNING: 333 of the 333 rows this revert was to restore were not written")
	require.Equal(t, before, x.state(), "nothing was restored")
}
