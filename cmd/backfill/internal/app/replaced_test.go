package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// runSwapped starts bin from path, stopped by ptrace before its first
// instruction, lets swap change the file at path, then lets it run: the
// window between a process starting and hashing its own file, made wide.
func runSwapped(t *testing.T, bin string, swap func(path string), args ...string) result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fix_roles")
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o755))

	// The tracer is a thread: start, wait and detach from the same one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(path, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	require.NoError(t, cmd.Start())
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(cmd.Process.Pid, &ws, 0, nil)
	require.NoError(t, err)
	require.True(t, ws.Stopped(), "the process did not stop at exec: %v", ws)
	swap(path)
	require.NoError(t, syscall.PtraceDetach(cmd.Process.Pid))
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// putInPlace returns a swap that renames a copy of bin over the path.
func putInPlace(t *testing.T, bin string) func(string) {
	return func(path string) {
		data, err := os.ReadFile(bin)
		require.NoError(t, err)
		tmp := path + ".new"
		require.NoError(t, os.WriteFile(tmp, data, 0o755))
		require.NoError(t, os.Rename(tmp, path))
	}
}

// TestDigestIsOfTheFileThatRuns: a patched binary whose file is replaced by
// the approved one after it started reports its own digest, not the
// approved one's.
func TestDigestIsOfTheFileThatRuns(t *testing.T) {
	t.Parallel()
	patched := appendByte(t, fixRoles)
	res := runSwapped(t, patched, putInPlace(t, fixRoles), "info")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "digest         sha256:"+sha256File(t, patched))
	require.NotContains(t, res.stdout, sha256File(t, fixRoles))
}

// TestExecuteRefusesAReplacedOrDeletedBinary: --execute (and revert
// --execute) refuse to run from a file that is no longer the one running,
// before they connect.
func TestExecuteRefusesAReplacedOrDeletedBinary(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	patched := appendByte(t, fixRoles)
	for name, swap := range map[string]func(string){
		"replaced": putInPlace(t, fixRoles),
		"deleted":  func(path string) { require.NoError(t, os.Remove(path)) },
	} {
		for _, args := range [][]string{{"--execute"}, {"revert", "--run", "1", "--execute"}} {
			res := runSwapped(t, patched, swap, append(args, "--database-url", db)...)
			require.Equal(t, int(bftype.ExitReplaced), res.code, "%s %v: %s%s", name, args, res.stdout, res.stderr)
			require.Contains(t, res.stderr, "REFUSED ("+string(bftype.ReasonReplaced)+")", name)
			require.Contains(t, res.stderr, "was deleted or replaced after it started", name)
			require.Contains(t, res.stderr, "(sha256:"+sha256File(t, patched)+")", name)
		}
	}
	require.Equal(t, "0", pgtest.Query(t, db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'backfill'"), "nothing reached the database")
}
