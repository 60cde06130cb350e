package app_test

import (
	"testing"

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
	require.Contains(t, preview.stdout, "would be restored        332")
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
