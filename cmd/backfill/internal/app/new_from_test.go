package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
)

// repoState is what a refused new may not change: sqlc.yaml and whether
// the backfill's directories exist.
func repoState(t *testing.T, repo, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "sqlc.yaml"))
	require.NoError(t, err)
	for _, dir := range []string{"backfills/" + name, "queries/" + name} {
		if _, err := os.Stat(filepath.Join(repo, dir)); err == nil {
			data = append(data, "\nexists "+dir...)
		}
	}
	return string(data)
}

func infoJSON(t *testing.T, bin string) (signature, supersedes string) {
	t.Helper()
	res := runBinary(t, nil, bin, "info", "--output", "json")
	require.Equal(t, 0, res.code, res.stderr)
	var info struct {
		RunSignature string `json:"run_signature"`
		Manifest     struct {
			Supersedes string `json:"supersedes"`
		} `json:"manifest"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &info))
	return info.RunSignature, info.Manifest.Supersedes
}

func TestNewFromCopiesABackfillThatBuildsAndDryRuns(t *testing.T) {
	t.Parallel()
	_, err := os.Stat(sqlcBin)
	require.NoError(t, err, "sqlc is needed: run make test (it builds bin/sqlc)")
	repo := copyRepo(t)

	// Refusals change nothing and say what to do next.
	before := repoState(t, repo, "fix_roles_v2")
	for _, c := range []struct{ args, want string }{
		{"new fix_roles_v2 --from nope", `backfill "nope" does not exist (no backfills/nope/backfill.yaml); name an existing backfill in --from`},
		{"new sync_roles --from fix_roles", `backfill "sync_roles" already exists (backfills/sync_roles); choose another name or edit it`},
		{"new fix_roles_v2 --from Bad-Name", "--from: backfill name"},
	} {
		out, err := run(repo, nil, cliBin, strings.Fields(c.args)...)
		require.Error(t, err, c.args)
		require.Contains(t, out, c.want, c.args)
		require.Equal(t, before, repoState(t, repo, "fix_roles_v2"), c.args)
	}

	out, err := run(repo, nil, cliBin, "new", "fix_roles_v2", "--from", "fix_roles")
	require.NoError(t, err, out)
	require.Contains(t, out, "supersedes: fix_roles")
	for _, f := range []string{"queries/fix_roles_v2/fix_roles_v2.sql", "backfills/fix_roles_v2/backfill.yaml", "backfills/fix_roles_v2/transform.go",
		"backfills/fix_roles_v2/db/fix_roles_v2.sql.go", "backfills/fix_roles_v2/cmd/main.go"} {
		require.FileExists(t, filepath.Join(repo, f))
	}
	transform, err := os.ReadFile(filepath.Join(repo, "backfills/fix_roles_v2/transform.go"))
	require.NoError(t, err)
	require.Contains(t, string(transform), "\npackage fix_roles_v2\n")
	require.Contains(t, string(transform), `"github.com/runonce/backfill/backfills/fix_roles_v2/db"`)
	require.NotContains(t, string(transform), "backfills/fix_roles/")
	out, err = run(repo, nil, cliBin, "new", "fix_roles_v2", "--from", "fix_roles")
	require.Error(t, err)
	require.Contains(t, out, `backfill "fix_roles_v2" already exists`)

	// The copied sqlc output is what sqlc writes for the copy.
	generated := filepath.Join(repo, "backfills/fix_roles_v2/db/fix_roles_v2.sql.go")
	copied, err := os.ReadFile(generated)
	require.NoError(t, err)
	out, err = run(repo, nil, sqlcBin, "generate")
	require.NoError(t, err, out)
	regenerated, err := os.ReadFile(generated)
	require.NoError(t, err)
	require.Equal(t, string(regenerated), string(copied))
	out, err = run(repo, nil, cliBin, "generate", "--check")
	require.NoError(t, err, out)

	db := demoDB(t)
	dbName := db[strings.LastIndex(db, "/")+1:]
	dbName = strings.SplitN(dbName, "?", 2)[0]
	for _, name := range []string{"fix_roles", "fix_roles_v2"} {
		edit(t, filepath.Join(repo, "backfills", name, "backfill.yaml"), "database: backfill_demo", "database: "+dbName)
		out, err = run(repo, nil, cliBin, "build", name, "--source-commit", "test")
		require.NoError(t, err, out)
	}
	bin := filepath.Join(repo, "dist/fix_roles_v2/fix_roles_v2")
	oldSig, oldSup := infoJSON(t, filepath.Join(repo, "dist/fix_roles/fix_roles"))
	newSig, newSup := infoJSON(t, bin)
	require.NotEqual(t, oldSig, newSig, "the copy must be a backfill of its own, with its own runs")
	require.Equal(t, "", oldSup)
	require.Equal(t, "fix_roles", newSup)
	res := runBinary(t, nil, bin, "info")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "supersedes     fix_roles\n")

	res = runBinary(t, nil, bin, "--database-url", db)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "  supersedes     fix_roles (a new version of that backfill, with its own runs)\n")
	require.Contains(t, res.stdout, "will update")
}

func TestRebuildKeepsTheEarlierDigestsBuildForItsArchive(t *testing.T) {
	t.Parallel()
	x, runID := executed(t)
	ran, err := os.ReadFile(x.bin)
	require.NoError(t, err)
	digest, err := fileSHA(x.bin)
	require.NoError(t, err)
	kept := filepath.Join(x.repo, "dist/fix_roles/sha256-"+digest)
	for _, f := range []string{"fix_roles", "build.json", "manifest.json", "source.tar", "SHA256SUMS"} {
		require.FileExists(t, filepath.Join(kept, f))
	}

	// A changed transform, rebuilt: dist/fix_roles/fix_roles is another
	// binary, and the one that ran is still there.
	edit(t, filepath.Join(x.repo, "backfills/fix_roles/transform.go"), "package fix_roles\n", "package fix_roles\n\n// A later edit.\n")
	out, err := run(x.repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(t, err, out)
	rebuilt, err := fileSHA(x.bin)
	require.NoError(t, err)
	require.NotEqual(t, digest, rebuilt)
	require.FileExists(t, filepath.Join(x.repo, "dist/fix_roles/sha256-"+rebuilt, "fix_roles"))
	still, err := os.ReadFile(filepath.Join(kept, "fix_roles"))
	require.NoError(t, err)
	require.Equal(t, ran, still)

	// The archive of the earlier run finds its binary in the kept build.
	path := x.archiveRun(runID)
	res := verifyArchive(t, path)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Equal(t, ran, readArchive(t, path)[archive.BinaryFile("fix_roles")])
}
