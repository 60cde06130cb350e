package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestSecretsNeverReachTheLogOrTheLedger passes a distinct secret in every
// place an operator can give one (a keyword-form and a URL-form password,
// PGPASSWORD, a webhook token by flag, environment and file, a token in the
// alert command), runs a refused execution, a dry-run saved to the ledger, a
// completed execution, a second refused one and a revert, and then looks for
// each secret in every output, every file the runs wrote and every row of
// every ledger table. The alerts still reach the real webhook URL.
func TestSecretsNeverReachTheLogOrTheLedger(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var delivered []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a struct{ Event string }
		_ = json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		delivered = append(delivered, r.URL.RequestURI()+" "+a.Event)
		mu.Unlock()
	}))
	defer srv.Close()

	x := newTarget(t)
	s := map[string]string{}
	for _, what := range []string{"keyword", "url", "pgpassword", "approver", "flaghook", "flagquery", "envhook", "filehook", "filequery"} {
		s[what] = "s3cret" + what + rnd()
	}
	s["command"] = "sk9f8E7d6C5b4A3" + rnd() // looks like an API key
	cfg, err := pgx.ParseConfig(x.runner)
	require.NoError(t, err)
	keyword := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable password='%s x'",
		cfg.Host, cfg.Port, cfg.Database, cfg.User, s["keyword"])
	withPassword := func(u, pw string) string { return strings.Replace(u, "@", ":"+pw+"@", 1) }
	flagHook := srv.URL + "/flag/" + s["flaghook"] + "?token=" + s["flagquery"]
	fileHook := srv.URL + "/file/" + s["filehook"] + "?token=" + s["filequery"]
	hookFile := filepath.Join(t.TempDir(), "webhook")
	require.NoError(t, os.WriteFile(hookFile, []byte(fileHook+"\n"), 0o600))
	command := "cat >> alerts.jsonl; echo hook saw " + s["command"] + " >&2; exit 3"
	env := []string{"PGPASSWORD=" + s["pgpassword"], "BACKFILL_ALERT_WEBHOOK=" + srv.URL + "/env/" + s["envhook"]}
	dir := t.TempDir() // the runs' working directory: their log files land here
	var outputs []string
	runIn := func(env []string, args ...string) result {
		res := runBinaryIn(t, dir, env, x.bin, args...)
		outputs = append(outputs, res.stdout, res.stderr)
		return res
	}

	// Refused: not approved yet.
	res := runIn(env, "--execute", "--database-url", keyword, "--alert-webhook", flagHook, "--alert-command", command)
	require.Equal(t, int(bftype.ExitNotApproved), res.code, res.stdout+res.stderr)

	x.alice, x.bob = withPassword(x.alice, s["approver"]), withPassword(x.bob, s["approver"])
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res = runIn(append(env, "DATABASE_URL="+withPassword(x.runner, s["url"])), "--save")
	require.Equal(t, 0, res.code, res.stderr)

	// Completed, alerting the webhook from the file (over the environment's).
	res = runIn(env, "--execute", "--database-url", withPassword(x.runner, s["url"]), "--alert-webhook-file", hookFile,
		"--alert-command", command)
	require.Equal(t, 0, res.code, tail(res.stderr))
	mu.Lock()
	require.Equal(t, []string{"/flag/" + s["flaghook"] + "?token=" + s["flagquery"] + " refused",
		"/file/" + s["filehook"] + "?token=" + s["filequery"] + " completed"}, delivered)
	mu.Unlock()
	alerts, err := os.ReadFile(filepath.Join(dir, "alerts.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(alerts), `"event":"completed"`)

	// Refused: already completed; the webhook comes from the environment.
	res = runIn(append(env, "DATABASE_URL="+withPassword(x.runner, s["url"])), "--execute")
	require.Equal(t, int(bftype.ExitAlreadyDone), res.code, res.stderr)

	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'completed'")
	x.approve("alice", x.bin, "--revert-run", run)
	x.approve("bob", x.bin, "--revert-run", run)
	res = runIn(env, "revert", "--run", run, "--execute", "--database-url", keyword, "--alert-webhook="+flagHook,
		"--alert-command="+command)
	require.Equal(t, 0, res.code, tail(res.stderr))
	outputs = append(outputs, x.cli("runs", "--database-url", strings.Replace(keyword, cfg.User, "t_observer_"+x.suffix, 1)))
	outputs = append(outputs, x.cli("show", run, "--database-url", withPassword(x.observer, s["url"])))

	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		outputs = append(outputs, string(data))
	}
	// What is recorded instead: the runs, with their flags redacted.
	params := pgtest.Query(t, x.db, "SELECT string_agg(parameters::text, E'\\n' ORDER BY id) FROM backfill.runs")
	require.Contains(t, params, `"--alert-webhook", "`+srv.URL+`"`)
	require.Contains(t, params, `"--alert-webhook=`+srv.URL+`"`)
	require.Contains(t, params, `"--alert-command", "REDACTED"`)
	require.Contains(t, params, "sslmode=disable password=REDACTED")
	require.Contains(t, params, ":REDACTED@")
	log, err := os.ReadFile(filepath.Join(dir, "fix_roles.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "alert command failed")
	require.Contains(t, string(log), "hook saw REDACTED")
	ledger := ledgerText(t, x.db)
	for what, secret := range s {
		for i, out := range outputs {
			require.False(t, strings.Contains(out, secret), "the %s secret is in output %d:\n%s", what, i, out)
		}
		if i := strings.Index(ledger, secret); i >= 0 {
			t.Errorf("the %s secret is in the ledger: ...%s...", what, ledger[max(0, i-300):min(len(ledger), i+100)])
		}
	}
}

// ledgerText is every row of every table in schema backfill, as text.
func ledgerText(t *testing.T, db string) string {
	t.Helper()
	tables := strings.Fields(pgtest.Query(t, db, `SELECT string_agg(table_name, ' ' ORDER BY table_name)
		FROM information_schema.tables WHERE table_schema = 'backfill' AND table_type = 'BASE TABLE'`))
	require.GreaterOrEqual(t, len(tables), 8, tables)
	var b strings.Builder
	for _, name := range tables {
		b.WriteString(name + ":\n" + pgtest.Query(t, db, fmt.Sprintf(
			"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM backfill.%s t", pgx.Identifier{name}.Sanitize())) + "\n")
	}
	return b.String()
}
