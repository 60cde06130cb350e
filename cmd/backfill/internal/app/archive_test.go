package app_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// archiveRun archives a run as the runner from the repository copy (so the
// default --dist, dist/fix_roles, is used) and returns the .tar.gz.
func (x *target) archiveRun(run string) string {
	x.t.Helper()
	out := filepath.Join(x.t.TempDir(), "fix_roles-run-"+run+".tar.gz")
	stdout := x.cliIn(x.repo, "archive", run, "--out", out, "--database-url", x.runner)
	require.Contains(x.t, stdout, "archived run "+run+" of fix_roles")
	return out
}

// verifyArchive runs verify-archive in a new directory with no database in
// the environment.
func verifyArchive(t *testing.T, path string, extra ...string) result {
	t.Helper()
	return runBinaryIn(t, t.TempDir(), nil, cliBin, append([]string{"verify-archive", path}, extra...)...)
}

// archivedReport archives a run, requires the archive to verify and
// returns its REPORT.md.
func (x *target) archivedReport(run string) string {
	x.t.Helper()
	path := x.archiveRun(run)
	res := verifyArchive(x.t, path)
	require.Equal(x.t, 0, res.code, res.stdout+res.stderr)
	return string(readArchive(x.t, path)[archive.ReportFile])
}

func readArchive(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files, _, err := archive.Read(path)
	require.NoError(t, err)
	return files
}

// executed is a target whose binary ran to completion after two approvals
// and a saved dry-run; run is the completed run's id.
func executed(t *testing.T) (*target, string) {
	x := newTarget(t)
	require.Equal(t, int(bftype.ExitNotApproved), x.execute(x.bin).code) // a refused attempt, also archived
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, runBinary(t, nil, x.bin, "--save", "--database-url", x.runner).code)
	require.Equal(t, 0, x.execute(x.bin).code)
	return x, pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
}

func TestArchiveOfARunVerifiesOfflineAndRebuildsToTheSameDigest(t *testing.T) {
	t.Parallel()
	x, run := executed(t)
	path := x.archiveRun(run)

	// An auditor: another directory, no database, an empty build cache.
	res := verifyArchive(t, path, "--rebuild")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "verifies, and its source rebuilds to the archived binary")
	require.Contains(t, res.stdout, "ok    the source rebuilds, in a new directory with an empty build cache")
	require.Contains(t, res.stdout, "ok    all 2 approval signatures verify")

	files := readArchive(t, path)
	report := string(files[archive.ReportFile])
	for _, want := range []string{
		"# Backfill fix_roles, run " + run, "**Outcome: completed: 333 rows updated in 3 batches**", "- writes: `UPDATE users`",
		"> Set users.role to the role of the user's latest grant",
		"| alice (t_alice_" + x.suffix + ") | execute | demo | reviewed by alice |",
		"| bob (t_bob_" + x.suffix + ") | execute | demo | reviewed by bob |",
		"database login t_runner_" + x.suffix, "database: " + x.name,
		"| rows updated | [1, 15000] | 333 (dry-run 1) | 333 |",
		"Before the first write", "After the last write", "| no_null_roles | 0 | 0 | yes |",
		"Reconciled with dry-run 1 (it planned 333 rows updated): match.",
	} {
		require.Contains(t, report, want)
	}
	// The binary in the archive is the one that ran, with its source and recipe.
	bin, err := os.ReadFile(x.bin)
	require.NoError(t, err)
	require.Equal(t, bin, files[archive.BinaryFile("fix_roles")])
	require.Contains(t, string(files[archive.RecipeFile]), `"source_commit": "test"`)

	// The archive is anchored in the audit log, and never overwritten.
	require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.audit_events WHERE kind = 'archived' AND run_id = "+run))
	again := runBinaryIn(t, x.repo, nil, cliBin, "archive", run, "--out", path, "--database-url", x.runner)
	require.Equal(t, 1, again.code)
	require.Contains(t, again.stderr, "it exists; archives are written once")
	require.NotContains(t, again.stdout, "archived run", "the existing file was checked only after the work")

	// --dir writes the same files, read-only, and verifies the same way.
	dir := filepath.Join(t.TempDir(), "worm")
	unlockOnCleanup(t, dir)
	x.cliIn(x.repo, "archive", run, "--dir", dir, "--database-url", x.observer)
	st, err := os.Stat(filepath.Join(dir, archive.ReportFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o444), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(dir, "ledger"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o555), st.Mode().Perm(), "files could be added to the archive directory")
	res = verifyArchive(t, dir)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)

	// A binary that is not the one that ran is refused before anything is written.
	other := filepath.Join(t.TempDir(), "fix_roles")
	require.NoError(t, os.MkdirAll(other, 0o755))
	for _, f := range []string{"fix_roles", "build.json", "manifest.json", "source.tar"} {
		data, err := os.ReadFile(filepath.Join(filepath.Dir(fixRoles), f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(other, f), data, 0o755))
	}
	out := filepath.Join(t.TempDir(), "wrong.tar.gz")
	res = runBinary(t, nil, cliBin, "archive", run, "--dist", other, "--out", out, "--database-url", x.runner)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "ran sha256:")
	require.NoFileExists(t, out)
}

// tamper writes a changed copy of an archive's files as a directory. With
// resum, SHA256SUMS is recomputed, as someone covering their tracks would.
func tamper(t *testing.T, files map[string][]byte, resum bool, change func(map[string][]byte)) string {
	t.Helper()
	copied := map[string][]byte{}
	for p, d := range files {
		copied[p] = bytes.Clone(d)
	}
	change(copied)
	require.NotEqual(t, string(archive.Sums(files))+string(files[archive.SumsFile]),
		string(archive.Sums(copied))+string(copied[archive.SumsFile]), "the change changed nothing")
	if resum {
		copied[archive.SumsFile] = archive.Sums(copied)
	}
	dir := filepath.Join(t.TempDir(), "archive")
	unlockOnCleanup(t, dir)
	require.NoError(t, archive.WriteDir(dir, copied))
	return dir
}

// unlockOnCleanup makes a read-only archive directory removable again when
// the test ends (t.TempDir cannot remove it otherwise, unless root).
func unlockOnCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

func requireFails(t *testing.T, dir string, wants ...string) {
	t.Helper()
	res := verifyArchive(t, dir)
	require.Equal(t, 1, res.code, res.stdout)
	require.Contains(t, res.stderr, "does not verify")
	for _, w := range wants {
		require.Contains(t, res.stdout, "FAIL  "+w)
	}
}

func TestVerifyArchiveNamesEveryTampering(t *testing.T) {
	t.Parallel()
	x, run := executed(t)
	files := readArchive(t, x.archiveRun(run))
	untouched := filepath.Join(t.TempDir(), "archive")
	unlockOnCleanup(t, untouched)
	require.NoError(t, archive.WriteDir(untouched, files))
	require.Equal(t, 0, verifyArchive(t, untouched).code, "an untouched copy must verify")

	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		t.Run("one byte of "+p, func(t *testing.T) {
			t.Parallel()
			dir := tamper(t, files, false, func(f map[string][]byte) {
				f[p][len(f[p])/2] ^= 0x01
			})
			if p == archive.SumsFile {
				res := verifyArchive(t, dir)
				require.Equal(t, 1, res.code, res.stdout)
				require.Contains(t, res.stdout, archive.SumsFile)
				return
			}
			requireFails(t, dir, p+": does not match its sha256 in SHA256SUMS")
		})
	}

	cases := []struct {
		name   string
		change func(map[string][]byte)
		wants  []string
	}{
		{"an approval removed", func(f map[string][]byte) {
			delete(f, archive.StatementFile(2))
			delete(f, archive.SignatureFile(2))
			f[archive.ApprovalsFile] = dropApproval(t, f[archive.ApprovalsFile], 2)
		}, []string{"ledger/approvals.json: approval 2, counted by run " + run + ", is missing"}},
		{"the binary swapped", func(f map[string][]byte) {
			other, err := os.ReadFile(fixRoles)
			require.NoError(t, err)
			f[archive.BinaryFile("fix_roles")] = other
		}, []string{"binary/fix_roles: is sha256:"}},
		{"one audit event edited", func(f map[string][]byte) {
			f[archive.EventsFile] = bytes.Replace(f[archive.EventsFile], []byte(`\"changed\": 167`), []byte(`\"changed\": 166`), 1)
		}, []string{"ledger/audit_events.jsonl: audit chain broken at event"}},
		{"an approval's reason rewritten", func(f map[string][]byte) {
			f[archive.StatementFile(1)] = bytes.Replace(f[archive.StatementFile(1)], []byte("reviewed by alice"), []byte("reviewed by nobody"), 1)
		}, []string{"approvals/1.json: signature approvals/1.sig does not verify with keys/alice.pub"}},
		{"REPORT.md edited", func(f map[string][]byte) {
			f[archive.ReportFile] = bytes.Replace(f[archive.ReportFile], []byte("reviewed by bob"), []byte("reviewed by carol"), 1)
		}, []string{"REPORT.md: does not say what the archived records say"}},
		{"a batch row removed", func(f map[string][]byte) {
			f[archive.BatchesFile] = dropBatch(t, f[archive.BatchesFile])
		}, []string{"ledger/batches.json: run " + run + " has 2 batches"}},
		{"a command slipped into the recipe", func(f map[string][]byte) {
			f[archive.RecipeFile] = bytes.Replace(f[archive.RecipeFile], []byte(`"-trimpath",`), []byte(`"-trimpath", "-toolexec=/bin/sh -c touch /tmp/pwned",`), 1)
		}, []string{"binary/build.json: is not the standard recipe, and is never run: args are"}},
		{"the manifest's risk lowered", func(f map[string][]byte) {
			f[archive.ManifestFile] = bytes.ReplaceAll(f[archive.ManifestFile], []byte(`"risk": "high"`), []byte(`"risk": "low"`))
			f[archive.ManifestFile] = bytes.ReplaceAll(f[archive.ManifestFile], []byte(`\"risk\": \"high\"`), []byte(`\"risk\": \"low\"`))
		}, []string{"binary/manifest.json: says the binary embeds"}},
		{"the kind of write relabelled", func(f map[string][]byte) {
			f[archive.ManifestFile] = bytes.Replace(f[archive.ManifestFile], []byte(`"kind": "update"`), []byte(`"kind": "delete"`), 1)
		}, []string{"binary/manifest.json: says the binary writes DELETE FROM users, which its Apply statement does not"}},
		{"an approval removed with every trace outside the chain", func(f map[string][]byte) {
			delete(f, archive.StatementFile(2))
			delete(f, archive.SignatureFile(2))
			delete(f, archive.KeyFile("bob"))
			f[archive.ApprovalsFile] = dropApproval(t, f[archive.ApprovalsFile], 2)
			f[archive.RunsFile] = bytes.Replace(f[archive.RunsFile], []byte("\"approval_ids\": [\n      1,\n      2\n    ]"), []byte("\"approval_ids\": [\n      1\n    ]"), 1)
		}, []string{"ledger/approvals.json: approval 2 of this binary (audit event"}},
		{"a run's parameter values rewritten", func(f map[string][]byte) {
			f[archive.RunsFile] = bytes.ReplaceAll(f[archive.RunsFile], []byte(`"params": {}`), []byte(`"params": {"cutoff": "2099-01-01"}`))
		}, []string{"ledger/runs.json: run " + run + " does not say what its started event"}},
		{"the operator rewritten", func(f map[string][]byte) {
			f[archive.RunsFile] = bytes.ReplaceAll(f[archive.RunsFile], []byte(`"os_user": "`), []byte(`"os_user": "someone-else-`))
		}, []string{"ledger/runs.json: run " + run + " does not say what its started event"}},
		{"the refused attempt dropped", func(f map[string][]byte) {
			var runs []map[string]any
			require.NoError(t, jsonUnmarshal(f[archive.RunsFile], &runs))
			f[archive.RunsFile] = jsonMarshal(t, runs[1:])
		}, []string{"ledger/runs.json: run 1 of this binary (audit event"}},
		{"the dry-run report edited", func(f map[string][]byte) {
			f[archive.DryRunFile(1)] = bytes.Replace(f[archive.DryRunFile(1)], []byte(`"will_change": 333`), []byte(`"will_change": 33`), 1)
		}, []string{"dry_runs/1.json: is not the report whose sha256 audit event"}},
		{"the chain re-hashed from a made-up start", func(f map[string][]byte) {
			f[archive.EventsFile] = rechain(t, f[archive.EventsFile], "abc")
		}, []string{`ledger/audit_events.jsonl: the first event's prev_hash "abc" is not a sha256`}},
		{"a note added", func(f map[string][]byte) {
			f["NOTES.md"] = []byte("Approved verbally by the CISO.\n")
		}, []string{"NOTES.md: is not part of this archive"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			requireFails(t, tamper(t, files, false, c.change)) // the checksums alone catch it
			requireFails(t, tamper(t, files, true, c.change), c.wants...)
		})
	}

	// An archive written before REPORT.md's wording changed (no
	// report_format in its index) still verifies, and verify-archive says it
	// did not compare that REPORT.md with the records.
	t.Run("an archive of an older report format", func(t *testing.T) {
		t.Parallel()
		dir := tamper(t, files, true, func(f map[string][]byte) {
			f[archive.IndexFile] = bytes.Replace(f[archive.IndexFile], []byte(`"report_format": 2,`), nil, 1)
			f[archive.ReportFile] = bytes.ReplaceAll(f[archive.ReportFile], []byte("updated"), []byte("changed"))
		})
		res := verifyArchive(t, dir)
		require.Equal(t, 0, res.code, res.stdout)
		require.Contains(t, res.stdout, "note  REPORT.md is in report format 0, older than the 2 this tool writes, so it was not compared with the records")
	})
}

func dropApproval(t *testing.T, data []byte, id int) []byte {
	t.Helper()
	var rows []map[string]any
	require.NoError(t, jsonUnmarshal(data, &rows))
	var kept []map[string]any
	for _, r := range rows {
		if int(r["id"].(float64)) != id {
			kept = append(kept, r)
		}
	}
	require.Len(t, kept, len(rows)-1)
	return jsonMarshal(t, kept)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	return append(data, '\n')
}

// rechain recomputes every event's hash from a new first prev_hash, as a
// forger would.
func rechain(t *testing.T, data []byte, prev string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var e ledger.Event
		require.NoError(t, json.Unmarshal(line, &e))
		e.PrevHash = prev
		e.Hash = ledger.Hash(e)
		prev = e.Hash
		enc, err := json.Marshal(e)
		require.NoError(t, err)
		out.Write(append(enc, '\n'))
	}
	return out.Bytes()
}

func dropBatch(t *testing.T, data []byte) []byte {
	t.Helper()
	var rows []map[string]any
	require.NoError(t, jsonUnmarshal(data, &rows))
	return jsonMarshal(t, rows[:len(rows)-1])
}

func TestArchiveOfRefusedInterruptedAndRevertedRuns(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		x := newTarget(t)
		require.Equal(t, int(bftype.ExitNotApproved), x.execute(x.bin).code)
		run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs")
		report := x.archivedReport(run)
		require.Contains(t, report, "**Outcome: REFUSED before any write (not_approved)")
		require.Contains(t, report, "No approval of this binary was ever submitted.")
		require.Contains(t, report, "No check results were recorded for this run")
	})
	t.Run("interrupted, then resumed", func(t *testing.T) {
		t.Parallel()
		x := approvedSlowTarget(t)
		s := x.start()
		x.waitFor(runningBatches, "true")
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
		require.Equal(t, int(bftype.ExitInterrupted), s.wait(t))
		run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs")
		report := x.archivedReport(run)
		require.Contains(t, report, "**Outcome: INTERRUPTED after ")
		require.Contains(t, report, "rerunning the same binary resumes after key")

		require.Equal(t, 0, x.execute(x.bin).code)
		report = x.archivedReport(run)
		require.Contains(t, report, "**Outcome: completed: 333 rows updated")
		require.Contains(t, report, "- resumed 1 time(s): ")
	})
	t.Run("killed while running", func(t *testing.T) {
		t.Parallel()
		x := approvedSlowTarget(t)
		s := x.start()
		x.waitFor(runningBatches, "true")
		// While it runs, the archive is refused: the record is not final.
		res := runBinaryIn(t, x.repo, nil, cliBin, "archive", "1", "--out", filepath.Join(t.TempDir(), "a.tar.gz"), "--database-url", x.runner)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "still running")
		require.NoError(t, s.cmd.Process.Kill())
		s.wait(t)
		require.Contains(t, x.archivedReport("1"), "**Outcome: STOPPED WITHOUT A RECORD after ")
	})
	t.Run("reverted", func(t *testing.T) {
		t.Parallel()
		x, run := executed(t)
		x.approve("alice", x.bin, "--revert-run", run)
		x.approve("bob", x.bin, "--revert-run", run)
		res := runBinary(t, nil, x.bin, "revert", "--run", run, "--execute", "--database-url", x.runner)
		require.Equal(t, 0, res.code, tail(res.stderr))
		path := x.archiveRun(run)
		v := verifyArchive(t, path)
		require.Equal(t, 0, v.code, v.stdout+v.stderr)
		require.Contains(t, v.stdout, "(revert:"+run+", completed) was approved by 2 distinct approvers")
		report := string(readArchive(t, path)[archive.ReportFile])
		require.Contains(t, report, "; REVERTED by run ")
		require.Contains(t, report, "(333 rows restored, 0 left alone)")
		require.True(t, strings.Contains(report, "| revert:"+run+" | completed |"), report)

		// The revert's own archive counts rows restored, never rows updated.
		revert := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE purpose = 'revert:"+run+"'")
		report = x.archivedReport(revert)
		require.Contains(t, report, "**Outcome: completed: 333 rows restored in ")
		require.Contains(t, report, "- writes: `the before-images of run "+run+" back (it wrote UPDATE users)`")
		require.Contains(t, report, "| rows restored | | 333 |")
		require.NotContains(t, report, "rows updated")
	})
}

// A run with lanes archives and verifies like any other, and each batch is
// bound to its audit event lane included: moving a batch to another lane in
// the archive, checksums recomputed, is named.
func TestArchiveOfARunWithLanes(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 100, canary: 10, max_rows_per_second: 0, lanes: 3,"})
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, runBinary(t, nil, x.bin, "--save", "--database-url", x.runner).code)
	require.Equal(t, 0, x.execute(x.bin).code)
	require.Equal(t, "3", pgtest.Query(t, x.db, "SELECT count(DISTINCT lane) FROM backfill.batches"))
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	path := x.archiveRun(run)
	res := verifyArchive(t, path)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)

	files := readArchive(t, path)
	dir := tamper(t, files, true, func(f map[string][]byte) {
		var rows []map[string]any
		require.NoError(t, jsonUnmarshal(f[archive.BatchesFile], &rows))
		for _, r := range rows {
			if r["lane"].(float64) == 2 {
				r["lane"] = 1.0
				break
			}
		}
		f[archive.BatchesFile] = jsonMarshal(t, rows)
	})
	requireFails(t, dir, archive.BatchesFile)
}
