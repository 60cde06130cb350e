package app_test

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// seedProfiles fills profiles with every mix of NULL, ” and values in the
// two nullable columns the fill_nicknames backfill sets and the legacy
// columns it reads.
const seedProfiles = `INSERT INTO profiles (tenant, nickname, points, legacy_nick, legacy_points)
	SELECT 'acme',
		(ARRAY[NULL, '', 'kept', ' Ann '])[1 + i % 4],
		(ARRAY[NULL, 0, 7])[1 + i % 3],
		(ARRAY[NULL, '', '  ', ' Bob ', 'kept', 'x' || i])[1 + i % 6],
		(ARRAY[NULL, '', '0', '7', 'abc', i::text])[1 + (i / 7) % 6]
	FROM generate_series(1, 600) AS i`

// profilesState hashes the rows as PostgreSQL writes them out, where a NULL
// (nothing) and ” ("") differ; except leaves one row out.
const profilesState = `SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM profiles p WHERE id <> $1`

// build builds another backfill of the repository copy against x's database.
func (x *target) build(name string, edits ...edit2) string {
	x.t.Helper()
	manifest := filepath.Join(x.repo, "backfills", name, "backfill.yaml")
	edit(x.t, manifest, "database: backfill_demo", "database: "+x.name)
	for _, e := range edits {
		edit(x.t, manifest, e.old, e.new)
	}
	out, err := run(x.repo, nil, cliBin, "build", name, "--source-commit", "test")
	require.NoError(x.t, err, out)
	return filepath.Join(x.repo, "dist", name, name)
}

// killThenComplete SIGKILLs an execution of bin at random instants until it
// has been killed kills times, then lets one run to completion.
func (x *target) killThenComplete(bin string, kills int) {
	x.t.Helper()
	for killed := 0; killed < kills; {
		cmd := exec.Command(bin, "--execute", "--database-url", x.runner)
		cmd.Env = cleanEnv()
		require.NoError(x.t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			code := exitCode(err)
			require.Contains(x.t, []int{0, int(bftype.ExitLocked)}, code, "an execution between kills failed")
			if code == 0 {
				x.t.Fatalf("the run completed after %d of %d kills; make it longer", killed, kills)
			}
			time.Sleep(50 * time.Millisecond) // the killed run's session is still closing
		case <-time.After(time.Duration(150+rand.IntN(250)) * time.Millisecond):
			require.NoError(x.t, cmd.Process.Signal(syscall.SIGKILL))
			<-done
			killed++
		}
	}
	for range 50 {
		res := x.execute(bin)
		if res.code == int(bftype.ExitLocked) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		require.Equal(x.t, 0, res.code, tail(res.stderr))
		return
	}
	x.t.Fatal("the resumed run stayed locked out")
}

// TestNullsRoundTripThroughKillResumeAndRevert runs the fill_nicknames
// backfill, whose two columns are nullable text and integer, through kills
// and resumes, then reverts it: NULL is written as NULL (never ” or 0), the
// table ends byte for byte as it was before the run, and a row changed by
// hand since the run is left alone.
func TestNullsRoundTripThroughKillResumeAndRevert(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	bin := x.build("fill_nicknames", edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 5, canary: 2, max_rows_per_second: 250,"})
	pgtest.Exec(t, x.db, seedProfiles, "GRANT SELECT ON profiles TO backfill_runner", "GRANT SELECT, UPDATE ON profiles TO backfill_writer")
	require.Equal(t, "150 150 200 200", pgtest.Query(t, x.db, `SELECT count(*) FILTER (WHERE nickname IS NULL) || ' ' ||
		count(*) FILTER (WHERE nickname = '') || ' ' || count(*) FILTER (WHERE points IS NULL) || ' ' || count(*) FILTER (WHERE points = 0) FROM profiles`))
	original := pgtest.Query(t, x.db, profilesState, 1) // row 1 is changed by hand below

	x.approve("alice", bin)
	x.approve("bob", bin)
	x.killThenComplete(bin, 3)
	require.Equal(t, "completed true", pgtest.Query(t, x.db, "SELECT status || ' ' || (resumes > 0) FROM backfill.runs WHERE status <> 'refused'"))

	// Forward: a blank or NULL legacy nickname wrote NULL, never ''; points
	// that are not a whole number wrote NULL, never 0.
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM profiles WHERE nickname = ''"))
	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM profiles WHERE
		nickname IS DISTINCT FROM nullif(btrim(legacy_nick, ' '), '')
		OR points IS DISTINCT FROM (CASE WHEN btrim(legacy_points, ' ') ~ '^[0-9]+$' THEN legacy_points::int END)`))
	require.Equal(t, "300", pgtest.Query(t, x.db, "SELECT count(*) FROM profiles WHERE nickname IS NULL"))
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	images := pgtest.Query(t, x.db, "SELECT sum(json_array_length(items)) FROM backfill.undo WHERE run_id = "+run)
	before := func(key string) string {
		return pgtest.Query(t, x.db, `SELECT (i->'before')::text FROM backfill.undo u, json_array_elements(u.items) i
			WHERE u.run_id = `+run+` AND i->>'key' = '`+key+`'`)
	}
	require.Equal(t, `{"nickname":"","points":0}`, before("1"), "the before-image keeps '' and 0 apart from NULL")
	require.Equal(t, `{"nickname":null,"points":0}`, before("4"))

	// Someone sets row 1 by hand after the run: the revert leaves it alone.
	pgtest.Exec(t, x.db, "UPDATE profiles SET nickname = 'by hand' WHERE id = 1")
	x.approve("alice", bin, "--revert-run", run)
	x.approve("bob", bin, "--revert-run", run)
	res := runBinary(t, nil, bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "1 changed since and left alone")
	require.Contains(t, res.stdout, "key 1: changed since the run (nickname)")
	require.NotEqual(t, "0", images)

	require.Equal(t, original, pgtest.Query(t, x.db, profilesState, 1), "the revert did not restore the table exactly (NULL, '' and 0 included)")
	require.Equal(t, "by hand", pgtest.Query(t, x.db, "SELECT nickname FROM profiles WHERE id = 1"))
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
}
