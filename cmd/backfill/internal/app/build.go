package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/runonce/backfill/generator"
)

// BuildFlags are the exact flags of the reproducible build. docs/auditing.md
// documents them; changing them changes every digest.
var BuildFlags = []string{"build", "-trimpath", "-buildvcs=false"}

// LinkFlags are the linker flags; sourceCommit is appended.
const LinkFlags = "-s -w -buildid="

func buildCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "build", "NAME", "Generates the wiring of backfill NAME and builds the reproducible binary\ndist/NAME/NAME with dist/NAME/manifest.json and dist/NAME/SHA256SUMS.\nThe same source gives the same sha256 on any machine with the same Go version.")
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
	bin, err := compile(ctx, root, name, dir, *commit)
	if err != nil {
		return err
	}
	digest, err := describeBuild(ctx, dir, bin)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "built %s\nsha256:%s\n", filepath.Join(*out, name, name), digest)
	return nil
}

// compile runs the reproducible go build into dir and returns the binary path.
func compile(ctx context.Context, root, name, dir, commit string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("error creating %q: %w", dir, err)
	}
	bin := filepath.Join(dir, name)
	tmp := bin + ".tmp"
	args := append(append([]string{}, BuildFlags...),
		"-ldflags", LinkFlags+" -X main.sourceCommit="+commit, "-o", tmp, "./backfills/"+name+"/cmd")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("error building backfill %q: %w\n%s", name, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("error moving binary into place: %w", err)
	}
	return bin, nil
}

// describeBuild writes manifest.json (the binary's own `info --json`) and
// SHA256SUMS, and returns the binary's digest.
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
	for _, p := range []string{bin, manifest} {
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
