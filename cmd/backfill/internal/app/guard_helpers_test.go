package app_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// target is one test's own database with a ledger, logins for every role,
// two trusted approvers and a fix_roles binary built to target it.
type target struct {
	t        *testing.T
	db       string // superuser URL of the database
	name     string // database name
	bin      string // the fix_roles binary targeting it
	repo     string // the repository copy it was built from
	keys     string // directory with the approvers' keys
	suffix   string
	runner   string // URL as the runner login
	observer string
	admin    string
	alice    string // URL as approver alice's login
	bob      string
}

func rnd() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// login creates a login role in the given group roles and drops it when the
// test ends (after its database is gone).
func login(t *testing.T, name string, groups ...string) {
	t.Helper()
	admin := pgtest.AdminURL()
	sql := "CREATE ROLE " + name + " LOGIN"
	pgtest.Exec(t, admin, sql)
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP ROLE IF EXISTS "+name) })
	for _, g := range groups {
		pgtest.Exec(t, admin, "GRANT "+g+" TO "+name)
	}
}

// groupRoles makes sure the ledger's group roles exist before tests grant them.
func groupRoles(t *testing.T) {
	t.Helper()
	pgtest.Exec(t, pgtest.AdminURL(), `DO $$ DECLARE r text; BEGIN
		FOREACH r IN ARRAY ARRAY['backfill_runner','backfill_approver','backfill_observer','backfill_admin'] LOOP
			BEGIN EXECUTE format('CREATE ROLE %I NOLOGIN', r); EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
		END LOOP; END $$`)
}

// edits change the manifest of the copy before it is built.
type edit2 struct{ old, new string }

func newTarget(t *testing.T, edits ...edit2) *target {
	t.Helper()
	return newTargetEnv(t, "demo", edits...)
}

// newTargetEnv is newTarget with a ledger of environment env.
func newTargetEnv(t *testing.T, env string, edits ...edit2) *target {
	t.Helper()
	groupRoles(t)
	s := rnd()
	x := &target{t: t, suffix: s}
	for _, r := range []struct{ name, group string }{
		{"t_runner_" + s, "backfill_runner"}, {"t_observer_" + s, "backfill_observer"}, {"t_admin_" + s, "backfill_admin"},
		{"t_alice_" + s, "backfill_approver"}, {"t_bob_" + s, "backfill_approver"},
	} {
		login(t, r.name, r.group)
	}
	x.db = demoDB(t)
	x.name = strings.SplitN(x.db[strings.LastIndex(x.db, "/")+1:], "?", 2)[0]
	as := func(role string) string {
		return strings.Replace(x.db, "postgres://postgres@", "postgres://"+role+"@", 1)
	}
	require.Contains(t, x.db, "postgres://postgres@", "tests need TEST_DATABASE_URL with user postgres and trust auth")
	x.runner, x.observer, x.admin = as("t_runner_"+s), as("t_observer_"+s), as("t_admin_"+s)
	x.alice, x.bob = as("t_alice_"+s), as("t_bob_"+s)
	x.cli("ledger", "init", "--environment", env, "--database-url", x.db)
	pgtest.Exec(t, x.db, "GRANT SELECT ON users TO backfill_runner", "GRANT SELECT, UPDATE (role) ON users TO backfill_writer", "GRANT SELECT ON role_grants, app_settings TO backfill_runner, backfill_writer")

	x.keys = t.TempDir()
	for _, who := range []string{"alice", "bob"} {
		x.cliIn(x.keys, "keys", "generate", who)
		x.cli("approvers", "add", who, "--key", filepath.Join(x.keys, who+".pub"), "--login", "t_"+who+"_"+s, "--database-url", x.admin)
	}
	x.repo = copyRepo(t)
	manifest := filepath.Join(x.repo, "backfills/fix_roles/backfill.yaml")
	edit(t, manifest, "database: backfill_demo", "database: "+x.name)
	for _, e := range edits {
		edit(t, manifest, e.old, e.new)
	}
	out, err := run(x.repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(t, err, out)
	x.bin = filepath.Join(x.repo, "dist/fix_roles/fix_roles")
	return x
}

var keyEnv = []string{"BACKFILL_KEY_PASSWORD=test-password"}

// cli runs bin/backfill and fails the test if it fails.
func (x *target) cli(args ...string) string {
	x.t.Helper()
	return x.cliIn("", args...)
}

func (x *target) cliIn(dir string, args ...string) string {
	x.t.Helper()
	res := runBinaryIn(x.t, dir, keyEnv, cliBin, args...)
	require.Equal(x.t, 0, res.code, "backfill %v: %s%s", args, res.stdout, res.stderr)
	return res.stdout
}

// approve approves bin as who ("alice" or "bob") with extra flags.
func (x *target) approve(who, bin string, extra ...string) {
	x.t.Helper()
	url := map[string]string{"alice": x.alice, "bob": x.bob}[who]
	args := append([]string{"approve", bin, "--key", filepath.Join(x.keys, who+".key"), "--reason", "reviewed by " + who, "--database-url", url}, extra...)
	x.cli(args...)
}

// execute runs the binary with --execute as the runner.
func (x *target) execute(bin string) result {
	x.t.Helper()
	return runBinary(x.t, nil, bin, "--execute", "--database-url", x.runner)
}

// state is a hash of the target tables' contents.
func (x *target) state() string { return pgtest.Query(x.t, x.db, tableState) }

// lastRun is the newest run's status and stop reason.
func (x *target) lastRun() string {
	return pgtest.Query(x.t, x.db, "SELECT status || ':' || coalesce(stop_reason, '') FROM backfill.runs ORDER BY id DESC LIMIT 1")
}

// requireRefused checks an execution was refused with code and reason and
// wrote nothing to the target tables.
func (x *target) requireRefused(res result, before string, code bftype.ExitCode, reason bftype.StopReason, msg string) {
	x.t.Helper()
	require.Equal(x.t, int(code), res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(x.t, res.stderr, "REFUSED ("+string(reason)+")")
	require.Contains(x.t, res.stderr, msg)
	require.Contains(x.t, res.stderr, "Next: ")
	require.Equal(x.t, before, x.state(), "a refused execution changed the target tables")
	require.Equal(x.t, "refused:"+string(reason), x.lastRun())
}

// appendByte writes a copy of bin with one byte appended.
func appendByte(t *testing.T, bin string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "fix_roles")
	require.NoError(t, os.WriteFile(out, append(data, 0), 0o755))
	return out
}
