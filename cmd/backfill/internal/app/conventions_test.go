package app_test

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// Help is output: on stdout, exit 0, for every command, group and subcommand,
// and `help CMD` is `CMD --help`.
func TestHelpGoesToStdoutForEveryCommandAndGroup(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"approvers", "--help"}, {"approval", "--help"}, {"keys", "--help"}, {"audit", "--help"}, {"ledger", "--help"},
		{"approvers", "add", "--help"}, {"audit", "verify", "-h"}, {"ledger", "init", "--help"}, {"runs", "--help"},
		{"help", "approvers"}, {"help", "runs"}, {"help", "keys", "generate"}, {"completion", "--help"},
	} {
		res := runBinary(t, nil, cliBin, args...)
		require.Equal(t, 0, res.code, "%v: %s", args, res.stderr)
		require.Empty(t, res.stderr, "%v", args)
		require.Contains(t, res.stdout, "Usage: backfill ", "%v", args)
	}
	res := runBinary(t, nil, cliBin, "approvers", "--help")
	for _, sub := range []string{"add", "list", "revoke"} {
		require.Contains(t, res.stdout, "\n  "+sub+" ")
	}

	res = runBinary(t, nil, fixRoles, "--help")
	require.Equal(t, 0, res.code, res.stderr)
	require.Empty(t, res.stderr)
	for _, sub := range []string{"info", "status", "verify", "revert", "--execute", "--version", "--database-url"} {
		require.Contains(t, res.stdout, sub)
	}
	for _, args := range [][]string{{"status", "--help"}, {"help", "revert"}, {"info", "-h"}} {
		res := runBinary(t, nil, fixRoles, args...)
		require.Equal(t, 0, res.code, "%v: %s", args, res.stderr)
		require.Contains(t, res.stdout, "Usage: fix_roles ", "%v", args)
	}
}

func TestVersionOnBothPrograms(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, cliBin, "--version")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `^backfill \d+\.\d+\.\d+ \(commit \S+, go1\.\S+\)\n$`, res.stdout)

	var info struct {
		RunSignature string `json:"run_signature"`
		CodeVersion  string `json:"code_version"`
	}
	out := runBinary(t, nil, fixRoles, "info", "--json")
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &info))
	res = runBinary(t, nil, fixRoles, "--version")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `^fix_roles \(backfill binary; code version `+info.CodeVersion+`, source commit test-commit, go1\.\S+\)\n`+
		`run signature `+info.RunSignature+`\n$`, res.stdout)
}

// The completion scripts name every command, subcommand and a command's
// flags; bash parses them.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		res := runBinary(t, nil, cliBin, "completion", shell)
		require.Equal(t, 0, res.code, res.stderr)
		for _, word := range []string{"approvers", "revoke", "verify-archive", "database-url", "limit", "completion"} {
			require.Contains(t, res.stdout, word, shell)
		}
	}
	res := runBinary(t, nil, cliBin, "completion", "bash")
	script := res.stdout + `
COMP_WORDS=(backfill approvers add --k); COMP_CWORD=3; _backfill; echo "${COMPREPLY[@]}"
COMP_WORDS=(backfill appr); COMP_CWORD=1; _backfill; echo "${COMPREPLY[@]}"
COMP_WORDS=(backfill completion ""); COMP_CWORD=2; _backfill; echo "${COMPREPLY[@]}"
`
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, "--key\napproval approvals approve approvers\nbash zsh fish\n", string(out))
	res = runBinary(t, nil, cliBin, "completion", "tcsh")
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, `unknown shell "tcsh"`)
}

// A database without a ledger gets one sentence and the next step, not
// "relation backfill.runs does not exist (SQLSTATE 42P01)".
func TestOperatorCLIOnADatabaseWithoutALedger(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	for _, args := range [][]string{{"runs"}, {"audit", "verify"}, {"show", "1"}} {
		res := runBinary(t, nil, cliBin, append(args, "--database-url", db)...)
		require.Equal(t, 1, res.code, "%v", args)
		require.Contains(t, res.stderr, "this database has no backfill ledger", "%v", args)
		require.Contains(t, res.stderr, "Next: ask its owner or a DBA to run: backfill ledger init --environment NAME", "%v", args)
		require.NotContains(t, res.stderr, "SQLSTATE", "%v", args)
	}
}

// --report - writes the JSON report to stdout, alone; the human report
// moves to stderr, and no file named "-" appears.
func TestDryRunReportToStdout(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	dir := t.TempDir()
	res := runBinaryIn(t, dir, []string{"DATABASE_URL=" + db}, fixRoles, "--report", "-")
	require.Equal(t, 0, res.code, res.stderr)
	var rep struct {
		Counts struct {
			WillChange int64 `json:"will_change"`
		} `json:"counts"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep), res.stdout)
	require.EqualValues(t, 333, rep.Counts.WillChange)
	require.Contains(t, res.stderr, "DRY-RUN of fix_roles")
	require.NoFileExists(t, dir+"/-")
}

// Every list and status command prints JSON with --output json (and
// --json), and refuses another --output value as a usage error.
func TestOutputJSONOnEveryListAndStatusCommand(t *testing.T) {
	t.Parallel()
	x, run := executed(t)
	for _, c := range []struct {
		bin  string
		args []string
		key  string
	}{
		{cliBin, []string{"runs", "--database-url", x.observer}, ""},
		{cliBin, []string{"show", run, "--database-url", x.observer}, "run"},
		{cliBin, []string{"approvers", "list", "--database-url", x.observer}, ""},
		{cliBin, []string{"audit", "verify", "--database-url", x.observer}, "verified"},
		{x.bin, []string{"status", "--database-url", x.observer}, "runs"},
		{x.bin, []string{"info"}, "digest"},
	} {
		for _, flag := range [][]string{{"--output", "json"}, {"--json"}} {
			res := runBinary(t, nil, c.bin, append(c.args, flag...)...)
			require.Equal(t, 0, res.code, "%v %v: %s", c.args, flag, res.stderr)
			var v any
			require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), "%v %v: %s", c.args, flag, res.stdout)
			if c.key != "" {
				require.Contains(t, v.(map[string]any), c.key, "%v", c.args)
			} else {
				require.NotEmpty(t, v.([]any), "%v", c.args)
			}
		}
		res := runBinary(t, nil, c.bin, append(c.args, "--output", "yaml")...)
		require.Equal(t, 2, res.code, "%v --output yaml: %s", c.args, res.stderr)
		require.Contains(t, res.stderr, `--output must be text or json, not "yaml"`)
	}
}
