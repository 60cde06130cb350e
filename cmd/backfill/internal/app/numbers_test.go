package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// readReport reads a dry-run report written with --report.
func readReport(t *testing.T, path string) bftype.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rep bftype.Report
	require.NoError(t, json.Unmarshal(data, &rep))
	return rep
}

// The dry-run's "first Apply batch" is what the real first batch, the
// canary, writes: the same keys, and nothing the batch after it writes.
func TestFirstApplyOfTheDryRunIsWhatTheCanaryBatchWrites(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	path := filepath.Join(t.TempDir(), "report.json")
	res := runBinary(t, nil, x.bin, "--report", path, "--database-url", x.runner)
	require.Equal(t, 0, res.code, res.stderr)
	rep := readReport(t, path)
	require.Equal(t, 50, rep.CanarySize)
	require.Equal(t, "id", rep.FirstApply[0].Name)

	pgtest.Exec(t, x.db, "CREATE TABLE wrong_before AS "+strings.Replace(wrongRoles, "SELECT count(*)", "SELECT u.id", 1))
	require.Equal(t, 0, x.execute(x.bin).code)
	require.Equal(t, "50", pgtest.Query(t, x.db, "SELECT scanned FROM backfill.batches WHERE batch = 1"), "the canary batch reads batch.canary rows")
	written := pgtest.Query(t, x.db, `SELECT json_agg(id ORDER BY id) FROM wrong_before
		WHERE id <= (SELECT cursor::text::bigint FROM backfill.batches WHERE batch = 1)`)
	require.JSONEq(t, written, string(rep.FirstApply[0].Value), "the dry-run's first Apply batch is not what the canary batch wrote")
	require.Equal(t, pgtest.Query(t, x.db, "SELECT changed FROM backfill.batches WHERE batch = 1"),
		strconv.Itoa(len(strings.Split(strings.Trim(written, "[]"), ","))))
}

// A run interrupted and resumed after its scope shrank keeps the count of
// its first preflight as matched (in the ledger, status, runs and show), and
// the resumed process's live line counts against it at the rate of its own
// batches: never above the 400 rows a second the run is held to, where the
// whole run's rows over the new process's age would be far above it.
func TestResumeKeepsTheFirstCountAndRatesThisProcess(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	s := x.start()
	x.waitFor("SELECT coalesce(max(batches), 0) > 40 FROM backfill.runs WHERE status = 'running'", "true")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t))
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs")
	require.Equal(t, "1000", pgtest.Query(t, x.db, "SELECT matched FROM backfill.runs"))

	// A hundred users leave the scope before the resume.
	pgtest.Exec(t, x.db, "UPDATE users SET created_at = '2027-01-01' WHERE id > 900")
	res := runBinary(t, nil, x.bin, "--execute", "--database-url", x.runner, "--log-stderr", "json")
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "Resumed run "+run)
	require.Contains(t, res.stdout, "expected_counts  900 rows in scope", "the preflight counts the scope as it is now")
	require.Equal(t, "completed 1000 1", pgtest.Query(t, x.db, "SELECT status || ' ' || matched || ' ' || resumes FROM backfill.runs"))

	// The live line and the batch log lines are one computation
	// (runner.progressed); off a terminal the line is drawn every 5 s, so the
	// log's batch lines show it for each batch of this process.
	rated := 0
	for _, line := range strings.Split(res.stderr, "\n") {
		var e struct {
			Event   string  `json:"event"`
			Matched int64   `json:"matched"`
			Rate    float64 `json:"rows_per_second"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Event != "batch" {
			continue
		}
		require.Equal(t, int64(1000), e.Matched, "the denominator is the first preflight's count: %s", line)
		require.LessOrEqual(t, e.Rate, 400.0, "the rate must be this process's, held to 400 rows/s: %s", line)
		if e.Rate > 0 {
			rated++
		}
	}
	require.Positive(t, rated, "no batch line showed this process's rate:\n%s", res.stderr)

	status := runBinary(t, nil, x.bin, "status", "--database-url", x.observer)
	require.Contains(t, status.stdout, "scanned 900 of 1000")
	require.Regexp(t, `(?m)^`+run+`\s+fix_roles\s+execute\s+completed\s+1000\s`, x.cli("runs", "--database-url", x.observer))
	require.Regexp(t, `(?m)^matched\s+1000$`, x.cli("show", run, "--database-url", x.observer))
	require.Contains(t, x.archivedReport(run), "| rows in scope | [1, 15000] | no dry-run saved before the run | 1000 |")
}
