package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// serving starts backfill serve on a free loopback port and returns its
// base URL; the server stops when the test ends.
func serving(t *testing.T, url string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(cliBin, append([]string{"serve", "--listen", "127.0.0.1:0", "--database-url", url}, extra...)...)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "backfill serve printed no address")
	base := regexp.MustCompile(`http://[0-9.:]+`).FindString(line)
	require.NotEmpty(t, base, line)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return base
}

// get fetches a URL and returns its status and body.
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

// scrape reads /metrics with the Prometheus text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, body)
	return fams
}

// sample is the one metric of a family whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no metric %s", name)
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s with labels %v", name, want)
	return nil
}

func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	return sample(t, fams, name, labels...).GetGauge().GetValue()
}

func TestServeMetricsOfARealRun(t *testing.T) {
	t.Parallel()
	x := approvedSlowTarget(t)
	base := serving(t, x.observer)
	s := x.start()
	x.waitFor(runningBatches, "true")
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'running'")

	during := scrape(t, base)
	require.Equal(t, 1.0, gauge(t, during, "backfill_ledger_up"))
	require.Equal(t, 1.0, gauge(t, during, "backfill_runs", "status", "running"))
	require.Equal(t, 1000.0, gauge(t, during, "backfill_run_rows_matched", "run_id", run, "backfill", "fix_roles"))
	require.Greater(t, gauge(t, during, "backfill_run_rows_scanned", "run_id", run), 0.0)
	require.Greater(t, gauge(t, during, "backfill_run_batches", "run_id", run), 3.0)
	last := gauge(t, during, "backfill_run_last_progress_timestamp_seconds", "run_id", run)
	require.InDelta(t, float64(time.Now().Unix()), last, 60)

	require.Equal(t, 0, s.wait(t), s.stderr.String())
	after := scrape(t, base)
	require.Equal(t, 0.0, gauge(t, after, "backfill_runs", "status", "running"))
	require.Equal(t, 1.0, gauge(t, after, "backfill_runs", "status", "completed"))
	require.NotContains(t, after, "backfill_run_rows_scanned", "a finished run is not a running one")
	batches, _ := strconv.ParseUint(pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.batches"), 10, 64)
	attempts, _ := strconv.ParseFloat(pgtest.Query(t, x.db, "SELECT sum(attempts) FROM backfill.batches"), 64)
	seconds, _ := strconv.ParseFloat(pgtest.Query(t, x.db, "SELECT sum(duration_ms) / 1000 FROM backfill.batches"), 64)
	h := sample(t, after, "backfill_batch_duration_seconds", "backfill", "fix_roles").GetHistogram()
	require.Equal(t, batches, h.GetSampleCount())
	require.InDelta(t, seconds, h.GetSampleSum(), 0.001)
	require.Equal(t, batches, h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount(), "every batch is under a minute")
	require.Equal(t, attempts, sample(t, after, "backfill_batch_attempts_total", "backfill", "fix_roles").GetCounter().GetValue())
	require.Equal(t, attempts-float64(batches), sample(t, after, "backfill_batch_retries_total", "backfill", "fix_roles").GetCounter().GetValue())

	// The JSON and the run's page say the same, read as the observer.
	_, body := get(t, base+"/api/runs")
	var api struct {
		Runs []struct {
			ID      int64    `json:"id"`
			State   string   `json:"state"`
			Scanned int64    `json:"scanned"`
			Percent *float64 `json:"percent"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &api), body)
	require.Len(t, api.Runs, 1)
	require.Equal(t, "completed", api.Runs[0].State)
	require.Equal(t, int64(1000), api.Runs[0].Scanned)
	require.Equal(t, 100.0, *api.Runs[0].Percent)
	code, page := get(t, base+"/runs/"+run)
	require.Equal(t, http.StatusOK, code, page)
	for _, want := range []string{"Audit chain intact", "reviewed by alice", "reviewed by bob", "t_alice_" + x.suffix, "<polyline", "no_null_roles"} {
		require.Contains(t, page, want)
	}
}

func TestServeListensOnLoopbackAndChecksTheToken(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		res := runBinary(t, nil, cliBin, "serve", "--listen", listen)
		require.Equal(t, 2, res.code, res.stderr)
		require.Contains(t, res.stderr, "refusing to listen beyond loopback")
		res = runBinary(t, nil, cliBin, "serve", "--listen", listen, "--allow-remote")
		require.Equal(t, 2, res.code, "--allow-remote without --token: %s", res.stderr)
	}
	// The token is checked before the ledger is read: no database needed.
	base := serving(t, "postgres://nobody@127.0.0.1:1/none", "--token", "s3cret")
	for _, c := range []struct {
		url    string
		header []string
		code   int
	}{
		{"/static/style.css", nil, http.StatusUnauthorized},
		{"/metrics?token=wrong", nil, http.StatusUnauthorized},
		{"/api/runs", []string{"Authorization", "Bearer wrong"}, http.StatusUnauthorized},
		{"/static/style.css?token=s3cret", nil, http.StatusOK},
		{"/static/style.css", []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
	} {
		code, body := get(t, base+c.url, c.header...)
		require.Equal(t, c.code, code, "%s %v: %s", c.url, c.header, body)
	}
	// A ledger that cannot be read is a 500 with the reason, and metrics say so.
	code, body := get(t, base+"/?token=s3cret")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "Could not connect to PostgreSQL")
	code, body = get(t, base+"/metrics?token=s3cret")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "backfill_ledger_up 0")
}
