package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestDryRunBreaksDownByTenantAndRunReconcilesPerGroup builds fix_roles with
// report.group_by [tenant] and two spot-check keys, gives a second tenant
// changes of its own, and follows the breakdown from the dry-run (text,
// JSON, ledger) through the run to verify and the archive's REPORT.md.
func TestDryRunBreaksDownByTenantAndRunReconcilesPerGroup(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"checks:\n", "report: {group_by: [tenant], spot_check: [3, 2]}\nchecks:\n"})
	// globex users 1, 4, ..., 100 (34 of them) lose their role too.
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'member' WHERE id % 3 = 1 AND id <= 100")

	report := filepath.Join(t.TempDir(), "report.json")
	res := runBinary(t, nil, x.bin, "--database-url", x.runner, "--save", "--report", report, "--spot", "4", "--spot", "1100")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	for _, want := range []string{
		"Per tenant (report.group_by; 3 groups):",
		"  tenant       matched  will update  unchanged",
		`  "acme"           333          333          0`,
		`  "globex"         334           34        300`,
		`  "initech"        333            0        333`,
		"role: from -> to (367 rows changed, 1 distinct):",
		`    "member" -> "editor"  367`,
		"Spot checks (report.spot_check and --spot):",
		`  id=3  will update  ("acme")`, `      role             "member" -> "editor"`,
		`  id=2  in scope, unchanged: a real run leaves it as it is  ("initech")`,
		`  id=4  will update  ("globex")`,
		"  id=1100  not in scope: a real run does not touch it",
	} {
		require.Contains(t, res.stdout, want)
	}

	var rep bftype.Report
	data, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rep))
	require.NotNil(t, rep.Breakdown)
	require.Equal(t, []string{"tenant"}, rep.Breakdown.GroupBy)
	require.Equal(t, []bftype.GroupCounts{
		{Group: `"acme"`, Matched: 333, WillChange: 333},
		{Group: `"globex"`, Matched: 334, WillChange: 34, Unchanged: 300},
		{Group: `"initech"`, Matched: 333, Unchanged: 333},
	}, rep.Breakdown.Groups)
	require.Len(t, rep.Transitions, 1)
	require.Equal(t, []bftype.Transition{{From: `"member"`, To: `"editor"`, Rows: 367}}, rep.Transitions[0].Top)
	require.Len(t, rep.Spots, 4)
	// The saved report holds the same breakdown.
	require.Equal(t, "334", pgtest.Query(t, x.db, `SELECT report->'breakdown'->'groups'->1->>'matched' FROM backfill.dry_runs`))

	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	// Each batch's audit event counts its changes by group.
	require.Equal(t, "34", pgtest.Query(t, x.db,
		`SELECT sum((payload->'groups'->>'"globex"')::int) FROM backfill.audit_events WHERE kind = 'batch'`))

	res = runBinary(t, nil, x.bin, "verify", "--database-url", x.runner)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	for _, want := range []string{
		"reconcile: updated 367 rows, as dry-run 1 planned",
		"reconcile per group:", `  "acme"           333        333  match`, `  "globex"          34         34  match`, `  "initech"          0          0  match`,
		"spot checks (dry-run prediction, then the row now):",
		`  id=3  as predicted`, `      role             predicted "member" -> "editor", now "editor"`,
		`  id=2  in scope, predicted unchanged`, `      role             now "viewer"`,
		`  id=1100  not in scope (the run did not touch it)`,
	} {
		require.Contains(t, res.stdout, want)
	}

	// Someone changes a spot-checked row after the run: verify shows it.
	pgtest.Exec(t, x.db, "UPDATE users SET role = 'viewer' WHERE id = 4")
	res = runBinary(t, nil, x.bin, "verify", "--database-url", x.runner)
	require.Contains(t, res.stdout, "  id=4  MISMATCH")
	require.Contains(t, res.stdout, `predicted "member" -> "editor", now "viewer"`)

	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	files := readArchive(t, x.archiveRun(run))
	md := string(files[archive.ReportFile])
	for _, want := range []string{
		"| group | planned (dry-run 1) | updated | |", `| "globex" | 34 | 34 | match |`, `| "initech" | 0 | 0 | match |`,
		"Spot checks (the dry-run's prediction, and the row when the run ended):",
		"- `id=4`: as predicted", "`role predicted \"member\" -> \"editor\", now \"editor\"`",
		"Dry-run 1 per tenant:", `| "globex" | 334 | 34 | 300 |`,
		"Dry-run 1, `role` from -> to (367 rows):", `| "member" | "editor" | 367 |`,
	} {
		require.Contains(t, md, want)
	}
}
