package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// oneTarget is the target: block of fix_roles once newTarget pointed it at
// the test's database; targetsOf replaces it.
func oneTarget(x *target) string {
	return "target:                    # verified before the first write\n  environment: demo\n  database: " + x.name +
		"\n  canary: {query: \"SELECT value FROM app_settings WHERE key = 'env'\", equals: demo}\n"
}

// rebuild edits fix_roles's manifest in x's copy and builds it again,
// returning a copy of the binary that the next rebuild leaves alone.
func (x *target) rebuild(e edit2) string {
	x.t.Helper()
	edit(x.t, filepath.Join(x.repo, "backfills/fix_roles/backfill.yaml"), e.old, e.new)
	out, err := run(x.repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(x.t, err, out)
	data, err := os.ReadFile(filepath.Join(x.repo, "dist/fix_roles/fix_roles"))
	require.NoError(x.t, err)
	bin := filepath.Join(x.t.TempDir(), "fix_roles")
	require.NoError(x.t, os.WriteFile(bin, data, 0o755))
	return bin
}

// canaryOf is a targets: entry's canary, equal to the environment's name.
func canaryOf(env string) string {
	return `canary: {query: "SELECT value FROM app_settings WHERE key = 'env'", equals: ` + env + `}`
}

// TestTargetsOneDigestRunsInEachEnvironment builds one binary with targets
// for staging and production and runs it, approved in each ledger, in
// both: each run checks the target of its ledger's environment.
func TestTargetsOneDigestRunsInEachEnvironment(t *testing.T) {
	t.Parallel()
	staging, production := newTargetEnv(t, "staging"), newTargetEnv(t, "production")
	for _, x := range []*target{staging, production} {
		env := pgtest.Query(t, x.db, "SELECT value FROM backfill.settings WHERE key = 'environment'")
		pgtest.Exec(t, x.db, "UPDATE app_settings SET value = '"+env+"' WHERE key = 'env'")
	}
	targets := "targets:\n" +
		"  staging: {database: " + staging.name + ", " + canaryOf("staging") + "}\n" +
		"  production: {database: " + production.name + ", " + canaryOf("production") + "}\n"
	bin := staging.rebuild(edit2{oneTarget(staging), targets})

	info := runBinary(t, nil, bin, "info")
	require.Equal(t, 0, info.code, info.stderr)
	require.Contains(t, info.stdout, "targets        production: database "+production.name+"\n")
	require.Contains(t, info.stdout, "               staging: database "+staging.name+"\n")
	dry := runBinary(t, nil, bin, "--database-url", staging.runner)
	require.Equal(t, 0, dry.code, dry.stdout+dry.stderr)
	require.Contains(t, dry.stdout, "  target         environment staging (targets: production, staging)\n")
	require.NotContains(t, dry.stdout, "NOT THE TARGET")

	for _, x := range []*target{staging, production} {
		before := x.state()
		x.requireRefused(x.execute(bin), before, bftype.ExitNotApproved, bftype.ReasonNotApproved, "0 of 2 required")
		x.approve("alice", bin)
		x.approve("bob", bin)
		res := x.execute(bin)
		require.Equal(t, 0, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stdout, "  ok  environment      database "+x.name)
		require.Equal(t, "completed:", x.lastRun())
	}

	// One target, pointed at the production database: the staging run
	// checks the staging entry and refuses the wrong database name, and
	// the production ledger's environment has no entry.
	wrong := staging.rebuild(edit2{targets, "targets:\n  staging: {database: " + production.name + "}\n"})
	before := staging.state()
	staging.requireRefused(staging.execute(wrong), before, bftype.ExitEnvironment, bftype.ReasonEnvironment,
		`Connected to database "`+staging.name+`", but the backfill targets "`+production.name+`".`)
	before = production.state()
	production.requireRefused(production.execute(wrong), before, bftype.ExitEnvironment, bftype.ReasonEnvironment,
		`This database's ledger says it is environment "production", but the backfill targets "staging".`)
}
