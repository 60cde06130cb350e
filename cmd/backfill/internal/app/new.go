package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/runonce/backfill/generator"
	"github.com/runonce/backfill/templates"
)

func newCommand(_ context.Context, e *env, args []string) error {
	fs := flags(e, "new", "NAME [--from OLD]", "Scaffolds a backfill: queries/NAME/NAME.sql, backfills/NAME/backfill.yaml and\n"+
		"backfills/NAME/transform.go, and adds NAME to sqlc.yaml. With --from OLD it copies\n"+
		"backfill OLD instead (its queries, manifest and Go files, under the new name and\n"+
		"package, the manifest saying supersedes: OLD) and generates the copy so it builds:\n"+
		"the way to a new version of a completed backfill. Refuses to overwrite.")
	from := fs.String("from", "", "copy this existing backfill instead of the scaffold (docs/authoring.md, section 13)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	if err := generator.CheckName(name); err != nil {
		return usageError{err.Error()}
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	module, err := generator.ModulePath(root)
	if err != nil {
		return err
	}
	for _, dir := range []string{filepath.Join("backfills", name), filepath.Join("queries", name)} {
		if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
			return fmt.Errorf("backfill %q already exists (%s); choose another name or edit it", name, dir)
		}
	}
	d := templates.Data{Name: name, Module: module}
	if *from != "" {
		return newFrom(e, root, d, *from)
	}
	files, err := templates.Scaffold(d)
	if err != nil {
		return err
	}
	entry, err := templates.SQLCEntry(d)
	if err != nil {
		return err
	}
	if err := appendSQLC(root, entry); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(root, f.Path), f.Content); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created %s\n", f.Path)
	}
	fmt.Fprintf(e.stdout, "added %s to sqlc.yaml\n\nNext:\n"+
		"  1. edit queries/%[1]s/%[1]s.sql for your table (add it to queries/schema/ if it is new)\n"+
		"  2. make sqlc                       (typed Go code in backfills/%[1]s/db/)\n"+
		"  3. edit backfills/%[1]s/transform.go and backfills/%[1]s/backfill.yaml\n"+
		"  4. make backfill NAME=%[1]s         (builds dist/%[1]s/%[1]s)\n"+
		"  5. dist/%[1]s/%[1]s --database-url ...   (dry-run)\n"+
		"docs/authoring.md walks through every step.\n", name)
	return nil
}

// newFrom writes backfill d.Name as a copy of backfill old (copyFrom), adds
// it to sqlc.yaml and generates its wiring, as build would.
func newFrom(e *env, root string, d templates.Data, old string) error {
	files, err := copyFrom(root, d.Module, d.Name, old)
	if err != nil {
		return err
	}
	entry, err := templates.SQLCEntry(d)
	if err != nil {
		return err
	}
	if err := appendSQLC(root, entry); err != nil {
		return err
	}
	for _, path := range sortedPaths(files) {
		if err := writeNew(filepath.Join(root, path), files[path]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created %s\n", path)
	}
	generated, err := generator.Generate(root, d.Name)
	if err != nil {
		return err
	}
	if err := generator.Write(root, generated); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added %s to sqlc.yaml and generated its wiring; backfills/%[1]s/backfill.yaml says supersedes: %s\n\nNext:\n"+
		"  1. change the scope in queries/%[1]s/*.sql (CountScope and ScopePage alike), then make sqlc\n"+
		"  2. change scope and expect in backfills/%[1]s/backfill.yaml for the new rows\n"+
		"  3. make backfill NAME=%[1]s         (builds dist/%[1]s/%[1]s)\n"+
		"  4. dist/%[1]s/%[1]s --database-url ...   (dry-run)\n"+
		"docs/authoring.md, section 13, walks through it.\n", d.Name, old)
	return nil
}

func appendSQLC(root string, entry []byte) error {
	path := filepath.Join(root, "sqlc.yaml")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("error opening %q: %w", path, err)
	}
	defer f.Close()
	if _, err := f.Write(entry); err != nil {
		return fmt.Errorf("error appending to %q: %w", path, err)
	}
	return nil
}

func writeNew(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("error creating directory of %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("error creating %q: it already exists", path)
	}
	if err != nil {
		return fmt.Errorf("error creating %q: %w", path, err)
	}
	defer f.Close()
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("error writing %q: %w", path, err)
	}
	return nil
}
