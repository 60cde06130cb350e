package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/engine"
)

// The live line: the whole run's rows against the count of its first
// preflight, as a percentage, with rate, ETA, elapsed, retries, lock waits
// and what it waits for; never wider than asked, dropping the least useful
// parts first.
func TestLiveText(t *testing.T) {
	t.Parallel()
	p := engine.Progress{Batch: 412, Scanned: 198_050, Matched: 200_000, Changed: 66_000, Rate: 300.4, ETA: 6500 * time.Millisecond}
	huge := engine.Progress{Batch: 9_876_543, Scanned: 12_345_678_901, Matched: 98_765_432_109, Changed: 7_654_321_098, Rate: 1_234_567, ETA: 1000 * time.Hour}
	for _, tc := range []struct {
		name  string
		s     liveState
		width int
		want  string
	}{
		{"before the first batch", liveState{elapsed: 3 * time.Second}, 80, "starting  elapsed 3s"},
		{"a batch", liveState{p: p, seen: true, elapsed: 65 * time.Second}, 80,
			"99.0%  198.1k/200k rows  changed 66k  300/s  ETA 7s  elapsed 1m05s  batch 412"},
		{"no rate yet", liveState{p: engine.Progress{Batch: 1, Scanned: 50, Matched: 100}, seen: true}, 80,
			"50.0%  50/100 rows  changed 0  0/s  ETA -  elapsed 0s  batch 1"},
		{"retries and lock waits", liveState{p: p, seen: true, elapsed: time.Hour + 2*time.Minute, retries: 19, lockWaits: 4}, 80,
			"99.0%  198.1k/200k rows  300/s  ETA 7s  elapsed 1h02m  retries 19  lock waits 4"},
		{"waiting for a replica", liveState{p: p, seen: true, waiting: "waiting: replica lag 12s"}, 80,
			"Waiting: replica lag 12s |  99.0%  198.1k/200k rows  300/s  ETA 7s  elapsed 0s"},
		{"paused", liveState{p: p, seen: true, waiting: "paused"}, 80,
			"Paused |  99.0%  198.1k/200k rows  changed 66k  300/s  ETA 7s  elapsed 0s"},
		{"wide numbers abbreviate", liveState{p: huge, seen: true, elapsed: 100 * time.Hour, retries: 12345, lockWaits: 678}, 80,
			"12.5%  12.3G/98.8G rows  ETA 1000h00m  retries 12345  lock waits 678"},
		{"narrow terminal", liveState{p: p, seen: true, retries: 2}, 40, "99.0%  198.1k/200k rows  ETA 7s"},
		{"too narrow for anything but the wait", liveState{p: p, seen: true, waiting: "retrying, attempt 3"}, 12, "Retrying,..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := liveText(tc.s, tc.width)
			require.Equal(t, tc.want, got)
			require.LessOrEqual(t, utf8.RuneCountInString(got), tc.width)
		})
	}
}

// On a terminal, a message clears the live line, takes a line of its own
// and the live line is drawn again under it; waits show on the line as
// they happen, and the next batch clears them.
func TestConsoleMessagesNeverLandOnTheLiveLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	c := &console{w: &buf, tty: true, started: clock, now: func() time.Time { return clock }}
	p := engine.Progress{Batch: 1, Scanned: 50, Matched: 100, Changed: 10}
	c.progress(p)
	clock = clock.Add(time.Second)
	c.note("Stopping after the current batch; press Ctrl-C again to stop at once.")
	c.wait(engine.Wait{Kind: "lock_wait", Detail: "attempt 2: canceling statement due to lock timeout"})
	clock = clock.Add(time.Second)
	p.Batch, p.Scanned = 2, 100
	c.progress(p)
	c.done()
	line1 := "50.0%  50/100 rows  changed 10  0/s  ETA -  elapsed 0s  batch 1"
	want := "\r\033[K" + line1 +
		"\r\033[KStopping after the current batch; press Ctrl-C again to stop at once.\n\r\033[K" + line1 +
		"\r\033[KLock wait, attempt 2 |  50.0%  50/100 rows  0/s  ETA -  elapsed 1s  lock waits 1" +
		"\r\033[K100.0%  100/100 rows  changed 10  0/s  ETA -  elapsed 2s  lock waits 1  batch 2\n"
	require.Equal(t, want, buf.String())
}

// Off a terminal, progress is a plain line every few seconds, and each
// wait a message once, not once a second.
func TestConsoleOffATerminal(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	c := &console{w: &buf, started: clock, now: func() time.Time { return clock }}
	p := engine.Progress{Batch: 1, Scanned: 10, Matched: 100}
	c.progress(p)
	clock = clock.Add(time.Second)
	p.Batch = 2
	c.progress(p) // too soon: not printed
	for range 3 {
		c.wait(engine.Wait{Kind: "replica_lag", Detail: "replica lag 12s"})
	}
	c.wait(engine.Wait{Kind: "retry", Detail: "attempt 1: deadlock detected"})
	c.wait(engine.Wait{Kind: "retry", Detail: "attempt 2: deadlock detected"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Equal(t, []string{
		"10.0%  10/100 rows  changed 0  0/s  ETA -  elapsed 0s  batch 1",
		"Waiting: replica lag 12s",
		"Retrying, attempt 1: deadlock detected",
		"Retrying, attempt 2: deadlock detected",
	}, lines)
	require.NotContains(t, buf.String(), "\r")
}
