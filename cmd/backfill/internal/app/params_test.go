package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// early are the rows created before 2025-01-01 in this test: users 1 to 30,
// ten of which (every third) hold a role their latest grant disagrees with.
const (
	earlyState     = `SELECT md5(string_agg(u.id || ':' || u.role || ':' || u.xmin, ',' ORDER BY u.id)) FROM users u WHERE id <= 30`
	wrongRoleCount = `SELECT count(*) FROM users u WHERE u.role IS DISTINCT FROM (SELECT g.role FROM role_grants g WHERE g.user_id = u.id
		ORDER BY g.granted_at DESC, g.id DESC LIMIT 1)`
)

// The playbook of issue 12: a parameterised backfill runs once per approved
// values. Cutoff 2025-01-01 completes; the same values again are refused;
// 2026-08-01, approved, runs with the same binary and digest and changes only
// the rows that newly qualify, leaving the rows already right untouched; an
// execution with values no approval names is refused naming the parameter;
// malformed and missing values are usage errors.
func TestParamsRunOncePerApprovedValues(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	pgtest.Exec(t, x.db, "UPDATE users SET created_at = timestamptz '2024-06-01' + id * interval '1 hour' WHERE id <= 30")
	bin := x.build("sync_roles")
	url := []string{"--database-url", x.runner}
	run := func(args ...string) result {
		t.Helper()
		return runBinary(t, nil, bin, append(args, url...)...)
	}

	// Usage errors name the parameter, before anything reaches the database.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{nil, "parameter cutoff: is required"},
		{[]string{"--param", "cutoff=2025-02-30"}, `parameter cutoff: "2025-02-30" is not a date; write YYYY-MM-DD`},
		{[]string{"--param", "cutoff=2031-01-01"}, "parameter cutoff: 2031-01-01 is after the maximum 2030-12-31"},
		{[]string{"--param", "cutoff=2025-01-01", "--param", "tenants=acme,umbrella"}, `parameter tenants: element "umbrella" is not allowed`},
		{[]string{"--param", "cutoff=2025-01-01", "--param", "since=1"}, "parameter since: is not declared by this backfill"},
		{[]string{"--execute", "--param", "cutoff=yesterday"}, "parameter cutoff:"},
	} {
		res := run(c.args...)
		require.Equal(t, int(bftype.ExitUsage), res.code, "%v: %s%s", c.args, res.stdout, res.stderr)
		require.Contains(t, res.stderr, c.msg)
	}
	help := runBinary(t, nil, bin, "--help")
	require.Contains(t, help.stdout, "Parameters (--param NAME=VALUE or --params-file FILE; approvals pin them):")
	info := runBinary(t, nil, bin, "info")
	require.Contains(t, info.stdout, "parameters     cutoff (date, required, min 2020-01-01, max 2030-12-31): users created before this day (UTC) are in scope")

	// The dry-run shows the canonical values, in text and JSON.
	params := filepath.Join(t.TempDir(), "params.yaml")
	require.NoError(t, os.WriteFile(params, []byte("cutoff: 2025-01-01\ntenants: [initech, acme, globex]\n"), 0o600))
	dry := run("--params-file", params, "--report", "-", "--save")
	require.Equal(t, 0, dry.code, dry.stderr)
	require.Contains(t, dry.stderr, "parameters     cutoff=2025-01-01 tenants=acme,globex,initech")
	var rep bftype.Report
	require.NoError(t, json.NewDecoder(strings.NewReader(dry.stdout)).Decode(&rep))
	require.Equal(t, "2025-01-01", rep.Params["cutoff"])
	require.Equal(t, int64(30), rep.Counts.Matched)
	require.Equal(t, int64(10), rep.Counts.WillChange)

	// Not approved at all, then approved for 2025-01-01 only.
	before := x.state()
	res := run("--execute", "--param", "cutoff=2025-01-01")
	x.requireRefused(res, before, bftype.ExitNotApproved, bftype.ReasonNotApproved, "not approved")
	x.approve("alice", bin, "--param", "cutoff=2025-01-01")
	res = run("--execute", "--param", "cutoff=2026-08-01")
	x.requireRefused(res, before, bftype.ExitNotApproved, bftype.ReasonNotApproved,
		`it approves other parameter values: cutoff is "2026-08-01" here but "2025-01-01" there`)
	require.Contains(t, res.stderr, "with these values: backfill approve BINARY --param cutoff=2026-08-01 --param tenants=acme,globex,initech",
		"the next step names the values to approve")

	res = run("--execute", "--param", "cutoff=2025-01-01")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "10", pgtest.Query(t, x.db, "SELECT changed FROM backfill.runs WHERE status = 'completed'"))
	require.Equal(t, `{"cutoff": "2025-01-01", "tenants": ["acme", "globex", "initech"]}`,
		pgtest.Query(t, x.db, "SELECT params::text FROM backfill.runs WHERE status = 'completed'"))
	verify := run("verify", "--param", "cutoff=2025-01-01")
	require.Equal(t, 0, verify.code, verify.stdout+verify.stderr)
	require.Contains(t, verify.stdout, "as dry-run")
	early := pgtest.Query(t, x.db, earlyState)

	// The same values again: run once. The tenants default is a value too.
	before = x.state()
	res = run("--execute", "--param", "cutoff=2025-01-01", "--param", "tenants=globex,acme,initech")
	x.requireRefused(res, before, bftype.ExitAlreadyDone, bftype.ReasonAlreadyDone, "with parameters cutoff=2025-01-01 tenants=acme,globex,initech already completed")

	// A new cutoff, approved, runs with the same binary.
	wrong := pgtest.Query(t, x.db, wrongRoleCount)
	x.approve("alice", bin, "--param", "cutoff=2026-08-01")
	res = run("--execute", "--param", "cutoff=2026-08-01")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "390", wrong, "every third of the other 1,170 users")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoleCount))
	require.Equal(t, "390", pgtest.Query(t, x.db, `SELECT changed FROM backfill.runs WHERE status = 'completed' AND params->>'cutoff' = '2026-08-01'`))
	require.Equal(t, early, pgtest.Query(t, x.db, earlyState), "rows the first run made right were not written again")
	require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(DISTINCT digest) FROM backfill.runs WHERE status = 'completed'"))
	x.requireRefused(run("--execute", "--param", "cutoff=2026-08-01"), x.state(), bftype.ExitAlreadyDone, bftype.ReasonAlreadyDone, "already completed")

	// The two completed runs differ by their values, and the text lists say so.
	runs := x.cli("runs", "--database-url", x.observer)
	require.Contains(t, runs, "PARAMS")
	require.Contains(t, runs, `"cutoff": "2025-01-01"`)
	require.Contains(t, runs, `"cutoff": "2026-08-01"`)
	id := pgtest.Query(t, x.db, `SELECT id FROM backfill.runs WHERE status = 'completed' AND params->>'cutoff' = '2026-08-01'`)
	require.Regexp(t, `(?m)^parameters\s+\{"cutoff": "2026-08-01"`, x.cli("show", id, "--database-url", x.observer))
	status := runBinary(t, nil, bin, "status", "--database-url", x.observer)
	require.Contains(t, status.stdout, `parameters {"cutoff":"2025-01-01","tenants":["acme","globex","initech"]}`)
}
