package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SignatureInputs lists, relative to root, the files a run signature covers:
// the manifest, every .sql file of the query set and every non-test .go file
// of the transform package (not the generated db/ and cmd/ below it).
func SignatureInputs(root, name string) ([]string, error) {
	files := []string{ManifestPath(name)}
	sqls, err := listFiles(root, filepath.Join("queries", name), ".sql")
	if err != nil {
		return nil, err
	}
	gos, err := listFiles(root, filepath.Join("backfills", name), ".go")
	if err != nil {
		return nil, err
	}
	if len(sqls) == 0 {
		return nil, fmt.Errorf("backfill %q has no queries: expected .sql files in queries/%s", name, name)
	}
	return append(append(files, sqls...), gos...), nil
}

// RunSignature hashes the signature inputs and the code version. Each file
// goes in as its path and length-prefixed bytes, so moving bytes between
// files changes the signature too.
func RunSignature(root, name string) (string, error) {
	files, err := SignatureInputs(root, name)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "backfill-run-signature/v1\x00code %s\x00", CodeVersion)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", fmt.Errorf("error reading signature input %q: %w", f, err)
		}
		fmt.Fprintf(h, "file %s\x00%d\x00", filepath.ToSlash(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func listFiles(root, dir, ext string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("error listing %q: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ext) && !strings.HasSuffix(n, "_test.go") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
