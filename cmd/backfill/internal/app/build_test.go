package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// copyRepo copies the repository's tracked and untracked (not ignored)
// files into a new directory, as a fresh clone with the same work tree.
func copyRepo(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-co", "--exclude-standard", "-z").Output()
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "clone")
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(repoRoot, rel)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, rel), data, st.Mode().Perm()))
	}
	return dst
}

// build builds fix_roles in repo and returns its digest and run signature.
func build(t *testing.T, repo string) (digest, signature string) {
	t.Helper()
	out, err := run(repo, nil, cliBin, "build", "fix_roles", "--source-commit", "same-commit")
	require.NoError(t, err, out)
	var info struct {
		Digest       string `json:"digest"`
		RunSignature string `json:"run_signature"`
	}
	data, err := os.ReadFile(filepath.Join(repo, "dist/fix_roles/manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &info))
	require.Contains(t, out, "sha256:"+info.Digest)
	sums, err := os.ReadFile(filepath.Join(repo, "dist/fix_roles/SHA256SUMS"))
	require.NoError(t, err)
	require.Contains(t, string(sums), info.Digest+"  fix_roles\n")
	return info.Digest, info.RunSignature
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), old)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644))
}

func TestBuildIsReproducibleAndEveryInputChangesTheDigest(t *testing.T) {
	t.Parallel()
	a, b := copyRepo(t), copyRepo(t)
	digestA, sigA := build(t, a)
	digestB, sigB := build(t, b)
	require.Equal(t, digestA, digestB, "two builds of the same source in two directories differ")
	require.Equal(t, sigA, sigB)

	for _, c := range []struct{ name, file, old, new string }{
		{"transform", "backfills/fix_roles/transform.go", "leave this row alone", "leave this row be"},
		{"query", "queries/fix_roles/fix_roles.sql", "ORDER BY u.id\n", "ORDER BY u.id \n"},
		{"manifest", "backfills/fix_roles/backfill.yaml", "owner: identity-team", "owner: identity-teams"},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := copyRepo(t)
			edit(t, filepath.Join(repo, c.file), c.old, c.new)
			digest, sig := build(t, repo)
			require.NotEqual(t, digestA, digest, "digest unchanged after editing %s", c.file)
			require.NotEqual(t, sigA, sig, "run signature unchanged after editing %s", c.file)
		})
	}
}

// TestBuildCompilesTheSourceBundleItRecords edits a copy of the repository
// without committing and builds it: the bundle holds the edit, the binary
// embeds the bundle's digest, and build.json's command, run in the
// extracted bundle elsewhere, gives the same sha256.
func TestBuildCompilesTheSourceBundleItRecords(t *testing.T) {
	t.Parallel()
	repo := copyRepo(t)
	edit(t, filepath.Join(repo, "backfills/fix_roles/transform.go"), "leave this row alone", "leave this row be")
	digest, _ := build(t, repo)
	dist := filepath.Join(repo, "dist/fix_roles")

	bundle, err := os.ReadFile(filepath.Join(dist, "source.tar"))
	require.NoError(t, err)
	src := t.TempDir()
	out, err := run(src, nil, "tar", "-xf", filepath.Join(dist, "source.tar"))
	require.NoError(t, err, out)
	transform, err := os.ReadFile(filepath.Join(src, "backfills/fix_roles/transform.go"))
	require.NoError(t, err)
	require.Contains(t, string(transform), "leave this row be", "the bundle is not the tree that was built")
	require.NoFileExists(t, filepath.Join(src, "backfills/fix_roles/transform_test.go"))
	require.NoDirExists(t, filepath.Join(src, "cmd/backfill"))

	var recipe struct {
		SourceDigest string `json:"source_digest"`
		Env          map[string]string
		Args         []string
		Package      string
	}
	data, err := os.ReadFile(filepath.Join(dist, "build.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &recipe))
	sum := sha256.Sum256(bundle)
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), recipe.SourceDigest)
	res := runBinary(t, nil, filepath.Join(dist, "fix_roles"), "info")
	require.Contains(t, res.stdout, "source bundle  "+recipe.SourceDigest)

	var env []string
	for k, v := range recipe.Env {
		env = append(env, k+"="+v)
	}
	args := append(append([]string{}, recipe.Args...), "-o", filepath.Join(src, "rebuilt"), recipe.Package)
	out, err = run(src, env, "go", args...)
	require.NoError(t, err, out)
	rebuilt, err := fileSHA(filepath.Join(src, "rebuilt"))
	require.NoError(t, err)
	require.Equal(t, digest, rebuilt, "the recorded command on the bundle does not give the binary")
}

func fileSHA(path string) (string, error) {
	data, err := os.ReadFile(path)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), err
}

func TestInfoShowsTheBinarysOwnDigest(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, fixRoles, "info", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var info struct {
		Name, Digest, SourceCommit string
		RunSignature               string `json:"run_signature"`
		Manifest                   bftype.Manifest
		Statements                 []bftype.Statement
		Apply                      bftype.Apply
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &info))
	out, err := exec.Command("sha256sum", fixRoles).Output()
	require.NoError(t, err)
	require.Equal(t, strings.Fields(string(out))[0], info.Digest)
	require.Equal(t, "fix_roles", info.Name)
	require.Len(t, info.RunSignature, 64)
	require.Equal(t, "high", info.Manifest.Risk)
	require.Len(t, info.Statements, 4) // count, page, apply and revert_read
	require.Equal(t, bftype.Apply{Kind: bftype.KindUpdate, Table: "users"}, info.Apply)

	text := runBinary(t, nil, fixRoles, "info")
	require.Contains(t, text.stdout, "digest         sha256:"+info.Digest)
	require.Contains(t, text.stdout, "source commit  test-commit")
	require.Contains(t, text.stdout, "risk           high\n")
	require.Contains(t, text.stdout, "writes         UPDATE users (a run and its dry-run count the rows it will update)")
}

func TestHelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"help"}, {"info", "--help"}} {
		res := runBinary(t, nil, fixRoles, args...)
		require.Equal(t, 0, res.code, "%v: %s", args, res.stderr)
		require.Contains(t, res.stdout+res.stderr, "Usage:")
	}
	res := runBinary(t, nil, fixRoles, "frobnicate")
	require.Equal(t, int(bftype.ExitUsage), res.code)
	require.Contains(t, res.stderr, `unknown command "frobnicate"`)
	res = runBinary(t, nil, fixRoles, "--no-such-flag")
	require.Equal(t, int(bftype.ExitUsage), res.code)

	res = runBinary(t, nil, cliBin, "--help")
	require.Equal(t, 0, res.code)
	for _, cmd := range []string{"new", "generate", "build"} {
		require.Contains(t, res.stdout, "  "+cmd+" ")
		sub := runBinary(t, nil, cliBin, cmd, "--help")
		require.Equal(t, 0, sub.code, sub.stderr)
		require.Contains(t, sub.stdout, "Usage: backfill "+cmd)
	}
}

func TestGenerateCheckFailsOnDriftWithoutWriting(t *testing.T) {
	t.Parallel()
	repo := copyRepo(t)
	out, err := run(repo, nil, cliBin, "generate", "--check")
	require.NoError(t, err, out)

	edit(t, filepath.Join(repo, "backfills/fix_roles/transform.go"), "leave this row alone", "leave it alone")
	main := filepath.Join(repo, "backfills/fix_roles/cmd/main.go")
	before, err := os.ReadFile(main)
	require.NoError(t, err)
	out, err = run(repo, nil, cliBin, "generate", "--check")
	require.Error(t, err)
	require.Contains(t, out, "generated code is out of date: backfills/fix_roles/cmd/main.go")
	after, err := os.ReadFile(main)
	require.NoError(t, err)
	require.Equal(t, before, after, "generate --check wrote a file")

	out, err = run(repo, nil, cliBin, "generate")
	require.NoError(t, err, out)
	out, err = run(repo, nil, cliBin, "generate", "--check")
	require.NoError(t, err, out)
}

func TestNewScaffoldBuildsAndDryRuns(t *testing.T) {
	t.Parallel()
	_, err := os.Stat(sqlcBin)
	require.NoError(t, err, "sqlc is needed: run make test (it builds bin/sqlc)")
	repo := copyRepo(t)
	out, err := run(repo, nil, cliBin, "new", "widget_status")
	require.NoError(t, err, out)
	for _, f := range []string{"queries/widget_status/widget_status.sql", "backfills/widget_status/backfill.yaml", "backfills/widget_status/transform.go"} {
		require.FileExists(t, filepath.Join(repo, f))
	}
	sqlcYAML, err := os.ReadFile(filepath.Join(repo, "sqlc.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(sqlcYAML), "out: backfills/widget_status/db")

	out, err = run(repo, nil, cliBin, "new", "widget_status")
	require.Error(t, err)
	require.Contains(t, out, `backfill "widget_status" already exists`)
	out, err = run(repo, nil, cliBin, "new", "Bad-Name")
	require.Error(t, err)
	require.Contains(t, out, "must be lower case letters")

	// The scaffold targets my_table; give the schema one, as an author would.
	table := "\nCREATE TABLE my_table (id bigint PRIMARY KEY, status text NOT NULL, legacy_status text, updated_at timestamptz);\n"
	f, err := os.OpenFile(filepath.Join(repo, "queries/schema/schema.sql"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(table)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	out, err = run(repo, nil, sqlcBin, "generate")
	require.NoError(t, err, out)
	edit(t, filepath.Join(repo, "backfills/widget_status/backfill.yaml"), "database: app", "database: whatever")
	out, err = run(repo, nil, cliBin, "build", "widget_status")
	require.NoError(t, err, out)

	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, table, `INSERT INTO my_table SELECT i, 'unknown', CASE WHEN i % 2 = 0 THEN 'active' END FROM generate_series(1, 10) i`)
	res := runBinary(t, nil, filepath.Join(repo, "dist/widget_status/widget_status"), "--database-url", db)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "will update           5")
	require.Contains(t, res.stdout, `status           "unknown" -> "active"`)
}

// TestPackageBoundaries holds the layout contract: the runtime never
// imports the generator, the generator imports of the runtime only the leaf
// bftype (the one manifest type both decode and validate), and no package
// is named runtime.
func TestPackageBoundaries(t *testing.T) {
	t.Parallel()
	const mod = "github.com/runonce/backfill/"
	deps := func(pattern string) []string {
		out, err := run(repoRoot, nil, "go", "list", "-deps", "-test", pattern)
		require.NoError(t, err, out)
		return strings.Fields(out)
	}
	for _, dep := range deps("./generator/...") {
		if strings.HasPrefix(dep, mod+"runtime/") {
			require.Equal(t, mod+"runtime/bftype", dep, "the generator may import only the leaf runtime/bftype")
		}
	}
	for _, dep := range deps("./runtime/...") {
		require.False(t, strings.HasPrefix(dep, mod+"generator"), "the runtime imports %s", dep)
	}
	bftypeDeps, err := run(repoRoot, nil, "go", "list", "-f", `{{join .Imports "\n"}}`, "./runtime/bftype")
	require.NoError(t, err, bftypeDeps)
	require.NotContains(t, bftypeDeps, mod, "runtime/bftype is a leaf: no project imports")
	// The archive reads the ledger's own types back; it never needs the
	// engine that wrote them or the binary's CLI.
	archiveDeps, err := run(repoRoot, nil, "go", "list", "-deps", "./cmd/backfill/internal/archive")
	require.NoError(t, err, archiveDeps)
	for _, dep := range strings.Fields(archiveDeps) {
		require.NotContains(t, []string{mod + "runtime/engine", mod + "runtime/cli"}, dep, "the archive depends on %s", dep)
	}
	names, err := run(repoRoot, nil, "go", "list", "-f", "{{.Name}}", "./...")
	require.NoError(t, err, names)
	for _, n := range strings.Fields(names) {
		require.NotEqual(t, "runtime", n)
	}
}
