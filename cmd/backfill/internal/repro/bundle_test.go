package repro_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/repro"
)

// tree writes a small repository layout under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		dst := filepath.Join(root, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, []byte(content), 0o600))
	}
	return root
}

var source = map[string]string{
	"go.mod": "module example\n", "go.sum": "", "sqlc.yaml": "version: 2\n",
	"runtime/a.go": "package runtime\n", "runtime/migrations/001.sql": "select 1;\n",
	"generator/g.go": "package generator\n", "templates/t.go.tmpl": "x\n",
	"backfills/one/transform.go": "package one\n", "backfills/one/backfill.yaml": "scope: x\n",
	"queries/schema/schema.sql": "create table t (id int);\n", "queries/one/one.sql": "select 1;\n",
}

func TestBundleIsTheSameBytesWhateverTheDirectoryTimeOrMode(t *testing.T) {
	t.Parallel()
	a, b := tree(t, source), tree(t, source)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(filepath.Join(b, "runtime/a.go"), old, old))
	require.NoError(t, os.Chmod(filepath.Join(b, "go.mod"), 0o755))
	bundleA, err := repro.Bundle(a, "one")
	require.NoError(t, err)
	bundleB, err := repro.Bundle(b, "one")
	require.NoError(t, err)
	require.Equal(t, repro.Digest(bundleA), repro.Digest(bundleB))

	// One changed character anywhere in the source changes the digest.
	require.NoError(t, os.WriteFile(filepath.Join(b, "queries/one/one.sql"), []byte("select 2;\n"), 0o644))
	bundleB, err = repro.Bundle(b, "one")
	require.NoError(t, err)
	require.NotEqual(t, repro.Digest(bundleA), repro.Digest(bundleB))
}

func TestBundleHoldsTheSourceAndNothingElse(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"runtime/a_test.go": "package runtime\n", "runtime/testdata/x.sql": "x\n", "runtime/cpu.prof": "junk",
		"runtime/.a.go.swp": "junk", "backfills/two/transform.go": "package two\n", "queries/two/two.sql": "select 2;\n",
		"dist/one/one": "binary", "cmd/backfill/main.go": "package main\n",
	}
	for p, c := range source {
		files[p] = c
	}
	got, err := repro.Files(tree(t, files), "one")
	require.NoError(t, err)
	want := []string{"backfills/one/backfill.yaml", "backfills/one/transform.go", "generator/g.go", "go.mod", "go.sum",
		"queries/one/one.sql", "queries/schema/schema.sql", "runtime/a.go", "runtime/migrations/001.sql", "sqlc.yaml", "templates/t.go.tmpl"}
	require.ElementsMatch(t, want, got)

	bundle, err := repro.Bundle(tree(t, files), "one")
	require.NoError(t, err)
	dir := t.TempDir()
	extracted, err := repro.Extract(bundle, dir)
	require.NoError(t, err)
	require.Equal(t, got, extracted)
	data, err := os.ReadFile(filepath.Join(dir, "queries/one/one.sql"))
	require.NoError(t, err)
	require.Equal(t, "select 1;\n", string(data))
}

func TestExtractRefusesEntriesABundleNeverHolds(t *testing.T) {
	t.Parallel()
	for name, hdr := range map[string]tar.Header{
		"escaping path": {Name: "../evil.go", Typeflag: tar.TypeReg},
		"absolute path": {Name: "/etc/evil", Typeflag: tar.TypeReg},
		"symlink":       {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"unclean path":  {Name: "a/../b.go", Typeflag: tar.TypeReg},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			h := hdr
			require.NoError(t, tw.WriteHeader(&h))
			require.NoError(t, tw.Close())
			dir := t.TempDir()
			_, err := repro.Extract(buf.Bytes(), dir)
			require.ErrorContains(t, err, "is not a plain, unique, relative file")
			entries, _ := os.ReadDir(dir)
			require.Empty(t, entries)
		})
	}
}
