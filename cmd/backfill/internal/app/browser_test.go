package app_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// chromium finds a Chromium or Chrome binary, or skips the test: .ci/run
// installs one, a developer machine may not have it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (install one: apt-get install -y chromium, or set CHROMIUM=/path/to/chrome); skipping the browser test")
	return ""
}

// browser is a headless Chromium tab that closes when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser; it lives as long as ctx.
	require.NoError(t, chromedp.Do(ctx), "starting chromium")
	return ctx
}

// textOf reads the text of the first element matching sel.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, "reading %s", sel)
	return s
}

// tryText is textOf for polling: "" when the element cannot be read.
func tryText(ctx context.Context, sel string) string {
	step, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
	return s
}

// eventually waits until the element's text is want, without reloading.
func eventually(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return tryText(ctx, sel) == want }, 30*time.Second, 200*time.Millisecond,
		"waiting for %s to read %q (it reads %q)", sel, want, tryText(ctx, sel))
}

// crawl is slower than slow: 1,000 rows at 80 rows a second, long enough to
// watch in a browser.
var crawl = edit2{"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 10, canary: 5, max_rows_per_second: 80,"}

func TestBrowserFollowsARunLive(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	x := newTarget(t, crawl)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	base := serving(t, x.observer)

	// Opened before the run starts, the list adds the run's row by itself.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/")))
	require.Contains(t, textOf(t, ctx, `main`), "No runs in the ledger yet.")
	s := x.start()
	x.waitFor("SELECT count(*) > 0 FROM backfill.runs WHERE status = 'running' AND batches > 0", "true")
	run := pgtest.Query(t, x.db, "SELECT id FROM backfill.runs WHERE status = 'running'")
	row := `tr[data-run="` + run + `"] `
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row+`[data-field="batches"]`))))
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.sameDocument = true`))
	require.NoError(t, err)
	require.Equal(t, "running", textOf(t, ctx, row+`[data-field="state"]`))

	// The numbers advance while the page stays the same document.
	first, err := strconv.Atoi(textOf(t, ctx, row+`[data-field="batches"]`))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := strconv.Atoi(tryText(ctx, row+`[data-field="batches"]`))
		return err == nil && n > first
	}, 20*time.Second, 200*time.Millisecond, "the batch count never advanced past %d on the page", first)
	require.NotEqual(t, "-", textOf(t, ctx, row+`[data-field="rate"]`))
	require.NotEqual(t, "-", textOf(t, ctx, row+`[data-field="eta"]`))

	// Interrupted: the page shows the state and its stop reason.
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, int(bftype.ExitInterrupted), s.wait(t), s.stderr.String())
	eventually(t, ctx, row+`[data-field="state"]`, "interrupted")
	eventually(t, ctx, row+`[data-field="stop_reason"]`, "interrupted")

	// Resumed to the end: completed, all of it.
	res := x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stderr)
	eventually(t, ctx, row+`[data-field="state"]`, "completed")
	eventually(t, ctx, row+`[data-field="progress"]`, "1000 / 1000")
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.sameDocument === true`))
	require.NoError(t, err)
	require.True(t, same, "the page reloaded instead of updating in place")

	// The run's own page: chart, checks, approvals, audit chain.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+`a`)), chromedp.WaitVisible(chromedp.CSS(`svg.chart polyline`))))
	require.Contains(t, textOf(t, ctx, `main`), "Audit chain intact")
	require.Contains(t, textOf(t, ctx, `main`), "reviewed by alice")
	require.Equal(t, "completed", textOf(t, ctx, `section[data-run] [data-field="state"]`))
}
