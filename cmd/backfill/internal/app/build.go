package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/runonce/backfill/cmd/backfill/internal/repro"
	"github.com/runonce/backfill/generator"
)

func buildCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "build", "NAME", "Generates the wiring of backfill NAME, bundles its source deterministically and\nbuilds the reproducible binary from an extracted copy of that bundle, writing\ndist/NAME/{NAME,source.tar,build.json,manifest.json,SHA256SUMS}, and keeps a copy\nof them in dist/NAME/sha256-DIGEST/ that later builds leave alone (archives and\nreverts of a run need its binary). The same source gives the same sha256 on any\nmachine with the same Go version; docs/auditing.md explains how an auditor rebuilds it.")
	commit := fs.String("source-commit", "", "source commit to embed (default: git rev-parse HEAD, with -dirty if the tree has changes)")
	out := fs.String("dist", "dist", "output directory (relative to the repository root)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	root, err := findRoot()
	if err != nil {
		return err
	}
	files, err := generator.Generate(root, name)
	if err != nil {
		return err
	}
	if err := generator.Write(root, files); err != nil {
		return err
	}
	if *commit == "" {
		*commit = sourceCommit(ctx, root)
	}
	dir := filepath.Join(*out, name)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	digest, err := compile(ctx, root, name, dir, *commit)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "built %s\nsha256:%s\n", filepath.Join(*out, name, name), digest)
	return nil
}

// compile bundles the source of backfill name, builds the binary from an
// extracted copy of the bundle into dir and describes the build there. It
// returns the binary's sha256.
func compile(ctx context.Context, root, name, dir, commit string) (string, error) {
	bundle, err := repro.Bundle(root, name)
	if err != nil {
		return "", err
	}
	recipe, err := repro.NewRecipe(ctx, name, repro.Digest(bundle), commit)
	if err != nil {
		return "", err
	}
	src, err := os.MkdirTemp("", "backfill-build-")
	if err != nil {
		return "", fmt.Errorf("error creating a build directory: %w", err)
	}
	defer os.RemoveAll(src)
	if _, err := repro.Extract(bundle, src); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("error creating %q: %w", dir, err)
	}
	bin := filepath.Join(dir, name)
	tmp := bin + ".tmp"
	if err := repro.Build(ctx, recipe, src, tmp, repro.Opts{}); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("error moving binary into place: %w", err)
	}
	if recipe.SHA256, err = fileSHA256(bin); err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(dir, "source.tar"), bundle); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(recipe, "", "  ")
	if err != nil {
		return "", fmt.Errorf("error encoding build.json: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "build.json"), append(data, '\n')); err != nil {
		return "", err
	}
	digest, err := describeBuild(ctx, dir, bin)
	if err != nil {
		return "", err
	}
	return digest, keepBuild(dir, name, digest)
}

// buildFiles are the files `backfill build` writes for one binary, besides
// the binary itself.
var buildFiles = []string{"build.json", "manifest.json", "source.tar", "SHA256SUMS"}

// keepBuild copies the build just written to dir/sha256-DIGEST/, so that a
// later build of name, which overwrites dir/name, leaves the binary an
// earlier run ran (and its source bundle) for that run's archive and revert.
// A digest already kept is the same binary and is left as it is.
func keepBuild(dir, name, digest string) error {
	keep := filepath.Join(dir, "sha256-"+digest)
	if _, err := os.Stat(filepath.Join(keep, name)); err == nil {
		return nil
	}
	tmp := keep + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("error removing %q: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("error creating %q: %w", tmp, err)
	}
	for _, f := range append([]string{name}, buildFiles...) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("error reading %q: %w", filepath.Join(dir, f), err)
		}
		mode := os.FileMode(0o644)
		if f == name {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, mode); err != nil {
			return fmt.Errorf("error writing %q: %w", filepath.Join(tmp, f), err)
		}
	}
	if err := os.Rename(tmp, keep); err != nil {
		return fmt.Errorf("error keeping the build in %q: %w", keep, err)
	}
	return nil
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("error writing %q: %w", path, err)
	}
	return nil
}

// describeBuild writes manifest.json (the binary's own `info --json`) and
// SHA256SUMS over the binary and its build files, and returns the binary's
// digest.
func describeBuild(ctx context.Context, dir, bin string) (string, error) {
	info, err := exec.CommandContext(ctx, bin, "info", "--json").Output()
	if err != nil {
		return "", fmt.Errorf("error running %s info: %w", bin, err)
	}
	manifest := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifest, info, 0o644); err != nil {
		return "", fmt.Errorf("error writing %q: %w", manifest, err)
	}
	var sums strings.Builder
	var digest string
	for _, p := range []string{bin, filepath.Join(dir, "build.json"), manifest, filepath.Join(dir, "source.tar")} {
		sum, err := fileSHA256(p)
		if err != nil {
			return "", err
		}
		if p == bin {
			digest = sum
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, filepath.Base(p))
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		return "", fmt.Errorf("error writing SHA256SUMS: %w", err)
	}
	return digest, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("error opening %q: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("error hashing %q: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sourceCommit is HEAD, marked -dirty when the work tree has changes, or
// "unknown" outside a git checkout.
func sourceCommit(ctx context.Context, root string) string {
	head, err := git(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		return "unknown"
	}
	if status, err := git(ctx, root, "status", "--porcelain", "--untracked-files=normal"); err == nil && status != "" {
		return head + "-dirty"
	}
	return head
}

func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
