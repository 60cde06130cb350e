package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestPromoteNeedsEvidenceOfACompletedStagingRun builds one binary that
// promotes from staging to production: production approvals count only
// with the verified archive of its completed staging run, and a tampered
// archive is refused when approving.
func TestPromoteNeedsEvidenceOfACompletedStagingRun(t *testing.T) {
	t.Parallel()
	staging, production := newTargetEnv(t, "staging"), newTargetEnv(t, "production")
	targets := "targets:\n" +
		"  staging: {database: " + staging.name + "}\n" +
		"  production: {database: " + production.name + "}\n" +
		"promote: {from: staging}\n"
	bin := staging.rebuild(edit2{oneTarget(staging), targets})

	info := runBinary(t, nil, bin, "info")
	require.Contains(t, info.stdout, "promote        from staging: an approval in another environment carries the archive of a completed staging run")

	// Production approvals without evidence do not count, and approve says so.
	res := runBinaryIn(t, "", keyEnv, cliBin, "approve", bin, "--key", filepath.Join(production.keys, "alice.key"), "--reason", "no evidence",
		"--database-url", production.alice)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stderr, "warning: fix_roles promotes from staging, so in production an approval counts only with the archive of its completed staging run; this one carries none and will not count")
	production.approve("bob", bin)
	before := production.state()
	production.requireRefused(production.execute(bin), before, bftype.ExitNotApproved, bftype.ReasonNotApproved,
		"it carries no evidence of a completed staging run (approve with --evidence ARCHIVE)")
	require.Contains(t, production.execute(bin).stderr, "--evidence ARCHIVE")

	// Staging needs none: it is where the evidence comes from.
	staging.approve("alice", bin)
	staging.approve("bob", bin)
	res = staging.execute(bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	run := pgtest.Query(t, staging.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	evidence := staging.archiveRun(run)
	files := readArchive(t, evidence)
	sum := sha256.Sum256(files[archive.SumsFile])

	// A tampered archive, and evidence for the environment it came from, are refused at approve time.
	files[archive.ReportFile] = append(files[archive.ReportFile], []byte("\nall good\n")...)
	tampered := filepath.Join(t.TempDir(), "tampered")
	require.NoError(t, archive.WriteDir(tampered, files))
	refused := runBinary(t, keyEnv, cliBin, "approve", bin, "--key", filepath.Join(production.keys, "alice.key"), "--reason", "r",
		"--evidence", tampered, "--database-url", production.alice)
	require.NotEqual(t, 0, refused.code)
	require.Contains(t, refused.stderr, "the evidence archive "+tampered+" does not verify")
	refused = runBinary(t, keyEnv, cliBin, "approve", bin, "--key", filepath.Join(staging.keys, "alice.key"), "--reason", "r",
		"--evidence", evidence, "--database-url", staging.alice)
	require.NotEqual(t, 0, refused.code)
	require.Contains(t, refused.stderr, "--evidence is for an execute approval in an environment this binary promotes to")

	// With the evidence, production runs, and its archive carries the evidence's digest.
	production.approve("alice", bin, "--evidence", evidence)
	production.approve("bob", bin, "--evidence", evidence)
	res = production.execute(bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Equal(t, "completed:", production.lastRun())
	require.Equal(t, "2", pgtest.Query(t, production.db,
		"SELECT count(*) FROM backfill.approvals WHERE statement::jsonb #>> '{predicate,evidence}' = '"+hex.EncodeToString(sum[:])+"'"))
	prodRun := pgtest.Query(t, production.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	prodArchive := filepath.Join(t.TempDir(), "production.tar.gz")
	production.cliIn(staging.repo, "archive", prodRun, "--out", prodArchive, "--database-url", production.runner) // the one build is in staging's copy
	ok := verifyArchive(t, prodArchive)
	require.Equal(t, 0, ok.code, ok.stdout+ok.stderr)
	var carried int
	for name, data := range readArchive(t, prodArchive) {
		if filepath.Dir(name) == "approvals" && filepath.Ext(name) == ".json" && containsEvidence(data, hex.EncodeToString(sum[:])) {
			carried++
		}
	}
	require.Equal(t, 2, carried, "the production archive's approvals name the evidence")
}

func containsEvidence(statement []byte, sum string) bool {
	return strings.Contains(string(statement), `"evidence": "`+sum+`"`)
}
