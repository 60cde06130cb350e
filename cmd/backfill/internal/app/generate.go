package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/runonce/backfill/generator"
)

func generateCommand(_ context.Context, e *env, args []string) error {
	fs := flags(e, "generate", "[NAME...]", "Regenerates backfills/NAME/cmd/main.go for the named backfills (default: all).\nWith --check, writes nothing and fails if a generated file is out of date.")
	check := fs.Bool("check", false, "fail on drift instead of writing")
	if err := parse(fs, args, 0, -1); err != nil {
		return err
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		if names, err = generator.Names(root); err != nil {
			return err
		}
	}
	var stale []string
	for _, name := range names {
		files, err := generator.Generate(root, name)
		if err != nil {
			return err
		}
		if *check {
			stale = append(stale, generator.Drift(root, files)...)
			continue
		}
		if err := generator.Write(root, files); err != nil {
			return err
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("generated code is out of date: %s; run make generate and commit the result", strings.Join(stale, ", "))
	}
	verb := "generated"
	if *check {
		verb = "checked"
	}
	fmt.Fprintf(e.stdout, "%s %s\n", verb, plural(len(names), "backfill"))
	return nil
}
