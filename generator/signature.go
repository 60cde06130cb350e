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
func SignatureInputs(l Layout) ([]string, error) {
	files := []string{l.Manifest()}
	sqls, err := listFiles(l.Root, l.Queries, ".sql")
	if err != nil {
		return nil, err
	}
	gos, err := listFiles(l.Root, l.Dir, ".go")
	if err != nil {
		return nil, err
	}
	if len(sqls) == 0 {
		return nil, fmt.Errorf("backfill %q has no queries: expected .sql files in %s", l.Name, l.Queries)
	}
	return append(append(files, sqls...), gos...), nil
}

// RunSignature hashes the signature inputs and the code version. Each file
// goes in as its path and length-prefixed bytes, so moving bytes between
// files changes the signature too.
func RunSignature(l Layout) (string, error) {
	files, err := SignatureInputs(l)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "backfill-run-signature/v1\x00code %s\x00", CodeVersion)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(l.Root, f))
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
