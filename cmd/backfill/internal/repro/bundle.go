// Package repro is the reproducible build of a backfill binary: the
// deterministic source bundle it is built from, the recipe (build.json) that
// says exactly how, and the build itself. The build always compiles an
// extracted copy of the bundle, never the work tree, so the bundle is by
// construction the exact source of the binary, uncommitted changes included;
// an auditor rebuilding the archived bundle with the archived recipe gets the
// same sha256.
package repro

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// sourceExts are the kinds of file a bundle carries. Anything else (a
// profile, a stray binary, an editor backup) is not source; if a build ever
// needed another kind, building from the extracted bundle would fail at once.
var sourceExts = map[string]bool{".go": true, ".sql": true, ".yaml": true, ".yml": true, ".tmpl": true, ".mod": true, ".sum": true}

// Roots are the paths, relative to the repository root, that make up the
// source of backfill name: the module files, the generator and templates
// (to regenerate the wiring), the runtime, the backfill itself with its
// generated code, its queries and the schema snapshot they are checked
// against, and the pinned sqlc module.
func Roots(name string) []string {
	return []string{"go.mod", "go.sum", "sqlc.yaml", "generator", "templates", "runtime",
		"backfills/" + name, "queries/schema", "queries/" + name, "tools/sqlc/go.mod", "tools/sqlc/go.sum"}
}

// Files lists the bundle's files under root, sorted, slash-separated. Test
// files and testdata are left out: they are not compiled into the binary.
func Files(root, name string) ([]string, error) {
	var files []string
	for _, r := range Roots(name) {
		err := filepath.WalkDir(filepath.Join(root, filepath.FromSlash(r)), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			base := d.Name()
			if d.IsDir() {
				if base == "testdata" || (strings.HasPrefix(base, ".") && p != root) {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || strings.HasPrefix(base, ".") || strings.HasSuffix(base, "_test.go") ||
				!sourceExts[filepath.Ext(base)] {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) && (r == "tools/sqlc/go.mod" || r == "tools/sqlc/go.sum" || r == "sqlc.yaml") {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("error listing the source of backfill %q: %w", name, err)
		}
	}
	sort.Strings(files)
	return files, nil
}

// epoch is the modification time of every bundle entry.
var epoch = time.Unix(0, 0).UTC()

// Bundle is the deterministic tar of the source of backfill name: the same
// files give the same bytes, whatever the directory, owner, clock or umask.
func Bundle(root, name string) ([]byte, error) {
	files, err := Files(root, name)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("error bundling backfill %q: no source files under %s", name, root)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("error reading source file %q: %w", f, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if len(f) < 100 {
			hdr.Format = tar.FormatUSTAR
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("error bundling %q: %w", f, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("error bundling %q: %w", f, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("error closing the source bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// Digest is "sha256:" and the hex sha256 of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Extract writes a bundle's files under dir. It refuses anything a bundle
// never holds: absolute or escaping paths, links, devices, duplicates.
func Extract(bundle []byte, dir string) ([]string, error) {
	tr := tar.NewReader(bytes.NewReader(bundle))
	seen := map[string]bool{}
	var files []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("error reading the source bundle: %w", err)
		}
		name := hdr.Name
		if hdr.Typeflag != tar.TypeReg || name == "" || path.IsAbs(name) || path.Clean(name) != name ||
			name == ".." || strings.HasPrefix(name, "../") || seen[name] {
			return nil, fmt.Errorf("error reading the source bundle: entry %q is not a plain, unique, relative file", name)
		}
		seen[name] = true
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, fmt.Errorf("error extracting %q: %w", name, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("error extracting %q: %w", name, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return nil, fmt.Errorf("error extracting %q: %w", name, err)
		}
		files = append(files, name)
	}
}
