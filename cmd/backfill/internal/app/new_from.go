package app

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/runonce/backfill/generator"
)

// copyFrom returns the files of backfill name as a copy of backfill old,
// relative to root: its queries (old.sql renamed to name.sql), its manifest
// with supersedes: old, its hand-written Go files under the new package name,
// and its sqlc output as sqlc writes it for the renamed query file, so the
// copy builds before the author runs make sqlc. It reads only: a refusal
// changes nothing.
func copyFrom(root, module, name, old string) (map[string][]byte, error) {
	if err := generator.CheckName(old); err != nil {
		return nil, usageError{"--from: " + err.Error()}
	}
	if _, err := os.Stat(filepath.Join(root, "backfills", old, "backfill.yaml")); err != nil {
		return nil, fmt.Errorf("backfill %q does not exist (no backfills/%s/backfill.yaml); name an existing backfill in --from", old, old)
	}
	if _, err := os.Stat(filepath.Join(root, "backfills", old, "db")); err != nil {
		return nil, fmt.Errorf("backfill %q has no generated backfills/%s/db/; run make sqlc, then backfill new %s --from %s again", old, old, name, old)
	}
	files := map[string][]byte{}
	rename := func(base string) string {
		if strings.TrimSuffix(base, ".sql") == old {
			return name + ".sql"
		}
		return base
	}
	if err := copyDir(root, "queries/"+old, "queries/"+name, files, func(base string, data []byte) (string, []byte, bool) {
		return rename(base), data, strings.HasSuffix(base, ".sql")
	}); err != nil {
		return nil, err
	}
	if err := copyDir(root, "backfills/"+old, "backfills/"+name, files, func(base string, data []byte) (string, []byte, bool) {
		switch {
		case base == "backfill.yaml":
			return base, supersede(data, old), true
		case strings.HasSuffix(base, ".go"):
			return base, renamePackage(data, module, old, name), true
		}
		return base, nil, false
	}); err != nil {
		return nil, err
	}
	source := regexp.MustCompile(`(?m)^// source: ` + regexp.QuoteMeta(old) + `\.sql$`)
	err := copyDir(root, "backfills/"+old+"/db", "backfills/"+name+"/db", files, func(base string, data []byte) (string, []byte, bool) {
		if base == old+".sql.go" {
			return name + ".sql.go", source.ReplaceAll(data, []byte("// source: "+name+".sql")), true
		}
		return base, data, strings.HasSuffix(base, ".go")
	})
	return files, err
}

// copyDir adds the regular files directly in root/from, mapped by keep, to
// files under to. keep returns the new base name, the content and whether
// to copy the file at all.
func copyDir(root, from, to string, files map[string][]byte, keep func(string, []byte) (string, []byte, bool)) error {
	entries, err := os.ReadDir(filepath.Join(root, from))
	if err != nil {
		return fmt.Errorf("error reading %q: %w", from, err)
	}
	for _, ent := range entries {
		if !ent.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, from, ent.Name()))
		if err != nil {
			return fmt.Errorf("error reading %q: %w", from+"/"+ent.Name(), err)
		}
		if base, content, ok := keep(ent.Name(), data); ok {
			files[to+"/"+base] = content
		}
	}
	return nil
}

var supersedesLine = regexp.MustCompile(`(?m)^supersedes:.*\n`)

var firstKey = regexp.MustCompile(`(?m)^[a-z_]+:`)

// supersede sets the manifest's supersedes to old: it replaces a
// supersedes line (the old backfill superseded another) or adds one before
// the first key.
func supersede(manifest []byte, old string) []byte {
	line := "supersedes: " + old + "    # a new version of backfill " + old + " (backfill new --from)\n"
	if supersedesLine.Match(manifest) {
		return supersedesLine.ReplaceAll(manifest, []byte(line))
	}
	at := firstKey.FindIndex(manifest)
	if at == nil {
		return append([]byte(line), manifest...)
	}
	return append(append(append([]byte{}, manifest[:at[0]]...), line...), manifest[at[0]:]...)
}

// renamePackage moves a Go file of backfill old to backfill name: its
// package clause, its package comment and its imports of old's packages.
func renamePackage(src []byte, module, old, name string) []byte {
	s := regexp.MustCompile(`(?m)^package `+regexp.QuoteMeta(old)+`(_test)?\b`).ReplaceAllString(string(src), "package "+name+"$1")
	s = regexp.MustCompile(`(?m)^// Package `+regexp.QuoteMeta(old)+`\b`).ReplaceAllString(s, "// Package "+name)
	prefix := module + "/backfills/"
	s = strings.ReplaceAll(s, `"`+prefix+old+`"`, `"`+prefix+name+`"`)
	return []byte(strings.ReplaceAll(s, `"`+prefix+old+`/`, `"`+prefix+name+`/`))
}

func sortedPaths(files map[string][]byte) []string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
