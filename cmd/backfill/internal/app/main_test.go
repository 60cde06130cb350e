package app_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Built once per test binary in TestMain and shared by every test.
var (
	repoRoot string // the repository under test
	cliBin   string // bin/backfill built from it
	fixRoles string // dist/fix_roles/fix_roles built from it
	sqlcBin  string // bin/sqlc, built by make test
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "backfill-app-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if err := buildAll(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "test setup:", err)
		return 1
	}
	return m.Run()
}

func buildAll(tmp string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "../../../.."))
	sqlcBin = os.Getenv("SQLC")
	if sqlcBin == "" {
		sqlcBin = filepath.Join(repoRoot, "bin", "sqlc")
	}
	cliBin = filepath.Join(tmp, "backfill")
	if out, err := run(repoRoot, nil, "go", "build", "-o", cliBin, "./cmd/backfill"); err != nil {
		return fmt.Errorf("building the CLI: %v\n%s", err, out)
	}
	dist := filepath.Join(tmp, "dist")
	if out, err := run(repoRoot, nil, cliBin, "build", "fix_roles", "--dist", dist, "--source-commit", "test-commit"); err != nil {
		return fmt.Errorf("building fix_roles: %v\n%s", err, out)
	}
	fixRoles = filepath.Join(dist, "fix_roles", "fix_roles")
	return nil
}

// run runs a command in dir with extra environment and returns its combined output.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs a built binary with a clean environment (no DATABASE_URL or
// PG* from the developer's shell) plus env.
func runBinary(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	return runBinaryIn(t, "", env, bin, args...)
}

// runBinaryIn is runBinary in a working directory.
func runBinaryIn(t *testing.T, dir string, env []string, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if dir == "" {
		dir = t.TempDir() // log files and reports land here, not in the package
	}
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("error running %s: %v", bin, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
