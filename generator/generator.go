// Package generator turns one backfill's inputs (manifest, sqlc query set,
// transform) into the generated wiring of its binary.
//
// It is a pipeline in the manner of sqlc's code generators: parse the
// manifest, inspect the typed packages, build a plain model, emit files.
// Generate returns the files as a map from path to content and writes
// nothing, so that writing and checking for drift are separate steps.
package generator

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/runonce/backfill/generator/emit"
	"github.com/runonce/backfill/generator/inspect"
	"github.com/runonce/backfill/generator/manifest"
	"github.com/runonce/backfill/generator/model"
	"github.com/runonce/backfill/runtime/bftype"
)

// CodeVersion is the version of the generator and runtime. It is part of
// every run signature: bump it when a change to either alters what a
// backfill binary does.
const CodeVersion = "0.1.0"

// CheckName rejects a name that cannot be a package, directory and binary
// (the rule the manifest's supersedes: follows too).
func CheckName(name string) error {
	if !bftype.IsBackfillName(name) {
		return fmt.Errorf("backfill name %q must be lower case letters, digits and underscores, starting with a letter", name)
	}
	return nil
}

// Layout says where one backfill's files are, relative to Root. The standard
// layout is backfills/NAME and queries/NAME; tests use others.
type Layout struct {
	Root    string // the repository root (with go.mod)
	Name    string // the backfill name
	Dir     string // the transform package; its db/ and cmd/ are generated
	Queries string // the .sql query set
}

// Standard is the layout of backfill name in the repository at root.
func Standard(root, name string) Layout {
	return Layout{Root: root, Name: name, Dir: filepath.Join("backfills", name), Queries: filepath.Join("queries", name)}
}

// Manifest is the path of the manifest, relative to the root.
func (l Layout) Manifest() string { return filepath.Join(l.Dir, "backfill.yaml") }

// MainFile is the path of the generated wiring, relative to the root.
func (l Layout) MainFile() string { return filepath.Join(l.Dir, "cmd", "main.go") }

// Generate returns the generated files of backfill name, keyed by path
// relative to root.
func Generate(root, name string) (map[string][]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return GenerateLayout(Standard(root, name))
}

// GenerateLayout is Generate for any layout.
func GenerateLayout(l Layout) (map[string][]byte, error) {
	module, err := ModulePath(l.Root)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Load(filepath.Join(l.Root, l.Manifest()))
	if err != nil {
		return nil, err
	}
	if err := oneStatementEach(l); err != nil {
		return nil, err
	}
	pkg := module + "/" + filepath.ToSlash(l.Dir)
	var params []model.Param
	for _, n := range m.ParamNames() {
		params = append(params, model.Param{Name: n, Type: m.Params[n].Type})
	}
	b, err := inspect.Load(l.Root, l.Name, pkg+"/db", pkg, params)
	if err != nil {
		return nil, err
	}
	sig, err := RunSignature(l)
	if err != nil {
		return nil, err
	}
	if m.Reversible && b.Revert == nil {
		return nil, fmt.Errorf("backfill %q: reversible: true needs a RevertRead query that reads the current value of what the backfill sets, by key (see docs/authoring.md), or reversible: false", l.Name)
	}
	if err := checkRisk(l.Name, m, b.Apply); err != nil {
		return nil, err
	}
	if m.HasTenants() && b.TenantField == "" {
		return nil, fmt.Errorf("backfill %q: target.tenants is set, so the rows of ScopePage must have a text column tenant (a Tenant string field) to check against it", l.Name)
	}
	if b.GroupFields, err = groupFields(l.Name, m, b.RowFields); err != nil {
		return nil, err
	}
	b.ManifestJSON, b.RunSignature, b.CodeVersion = string(m.JSON()), sig, CodeVersion
	main, err := emit.Main(module, b)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{filepath.ToSlash(l.MainFile()): main}, nil
}

// oneStatementEach refuses a query file in which a query holds more than
// one statement: sqlc would drop the others silently.
func oneStatementEach(l Layout) error {
	files, err := listFiles(l.Root, l.Queries, ".sql")
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(l.Root, f))
		if err != nil {
			return fmt.Errorf("error reading %s: %w", f, err)
		}
		if err := inspect.OneStatementEach(string(data)); err != nil {
			return fmt.Errorf("backfill %q: %s: %v (write each query as one statement)", l.Name, f, err)
		}
	}
	return nil
}

// Write writes generated files under root, leaving files whose content is
// already right untouched.
func Write(root string, files map[string][]byte) error {
	for _, path := range Drift(root, files) {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("error creating directory for %q: %w", path, err)
		}
		if err := os.WriteFile(full, files[path], 0o644); err != nil {
			return fmt.Errorf("error writing generated file %q: %w", path, err)
		}
	}
	return nil
}

// Drift returns the generated files whose content on disk differs from files.
func Drift(root string, files map[string][]byte) []string {
	var stale []string
	for _, path := range sortedKeys(files) {
		have, err := os.ReadFile(filepath.Join(root, path))
		if err != nil || !bytes.Equal(have, files[path]) {
			stale = append(stale, path)
		}
	}
	return stale
}

// ModulePath reads the module path from root/go.mod.
func ModulePath(root string) (string, error) {
	path := filepath.Join(root, "go.mod")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("error reading %q (run from the repository root): %w", path, err)
	}
	mod := modfile.ModulePath(data)
	if mod == "" {
		return "", fmt.Errorf("error reading %q: no module line", path)
	}
	return mod, nil
}

// Names lists the backfills under root/backfills, sorted.
func Names(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "backfills"))
	if err != nil {
		return nil, fmt.Errorf("error listing backfills: %w", err)
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, Standard(root, e.Name()).Manifest())); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// groupFields finds the report.group_by columns among the scope row's fields.
func groupFields(name string, m *bftype.Manifest, row []model.RowField) ([]model.RowField, error) {
	if m.Report == nil {
		return nil, nil
	}
	var out []model.RowField
	for _, g := range m.Report.GroupBy {
		i := slices.IndexFunc(row, func(f model.RowField) bool { return f.Display == g })
		if i < 0 {
			names := make([]string, len(row))
			for j, f := range row {
				names[j] = f.Display
			}
			return nil, fmt.Errorf("backfill %q: report.group_by names %q, which is not a column of the ScopePage rows (%s)", name, g, strings.Join(names, ", "))
		}
		out = append(out, row[i])
	}
	return out, nil
}
