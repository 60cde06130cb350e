package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runonce/backfill/runtime/engine"
)

// lineWidth is the most columns the live line takes.
const lineWidth = 80

// console is stderr while a run writes. It carries one format only: human
// lines (a live progress line on a terminal, a progress line every few
// seconds otherwise, and messages on lines of their own), or, with
// --log-stderr json, the JSON log alone. It is safe for concurrent use: lanes,
// the watchdog and the signal handler all report through it.
type console struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	log  *slog.Logger
	// runID is the run's id once it started, for the lines note logs.
	runID atomic.Int64
	tty   bool
	live  liveState
	// drawn is the live line now on the terminal, "" when none.
	drawn   string
	last    time.Time // when a progress line was last drawn or printed
	started time.Time
	now     func() time.Time
}

// liveState is what the live line shows.
type liveState struct {
	p         engine.Progress
	seen      bool // a batch has committed
	elapsed   time.Duration
	retries   int    // failed batch attempts retried, reconnects included
	lockWaits int    // batches that timed out waiting for a lock
	waiting   string // what the run waits for now: "paused", "replica lag 12s"; "" when it goes on
}

func newConsole(w io.Writer, json bool, log *slog.Logger) *console {
	return &console{w: w, json: json, log: log, tty: isTerminal(w), started: time.Now(), now: time.Now}
}

// progress draws a committed batch: at most five times a second on a
// terminal, every nonTTYEvery otherwise, and always the last one.
func (c *console) progress(p engine.Progress) {
	if c.json {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.p, c.live.seen, c.live.waiting = p, true, ""
	final := p.Scanned >= p.Matched
	every := 200 * time.Millisecond
	if !c.tty {
		every = nonTTYEvery
	}
	if c.now().Sub(c.last) < every && !final {
		return
	}
	c.drawLocked()
}

const nonTTYEvery = 5 * time.Second

// wait shows a wait as it begins: on the live line on a terminal, as a
// message otherwise (once per kind of wait in a row, not once a second).
func (c *console) wait(w engine.Wait) {
	if c.json {
		return // the engine logs every wait
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.live.waiting
	short, _, _ := strings.Cut(w.Detail, ":") // "attempt 3", without the error
	msg := ""
	switch w.Kind {
	case "retry", "reconnect":
		c.live.retries++
		c.live.waiting, msg = "retrying, "+short, "Retrying, "+w.Detail
	case "lock_wait":
		c.live.lockWaits++
		c.live.waiting, msg = "lock wait, "+short, "Lock wait, "+w.Detail
	case "resumed":
		c.live.waiting, msg = "", "Resumed."
	default:
		c.live.waiting, msg = "waiting: "+w.Detail, "Waiting: "+w.Detail
	}
	if c.tty {
		c.drawLocked()
		return
	}
	if kindOf(was) != kindOf(c.live.waiting) || w.Kind != "replica_lag" && w.Kind != "unhealthy" {
		fmt.Fprintln(c.w, msg)
	}
}

func kindOf(waiting string) string { k, _, _ := strings.Cut(waiting, ":"); return k }

// paused shows that the run waits for resume or cancel through the ledger.
func (c *console) paused(id int64) {
	c.note(fmt.Sprintf("Run %d paused through the ledger; waiting for resume or cancel.", id))
	if c.json {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.waiting = "paused"
	if c.tty {
		c.drawLocked()
	}
}

// note prints a message on a line of its own: on a terminal it clears the
// live line, prints the message and draws the line again under it.
func (c *console) note(msg string) {
	if c.json {
		if id := c.runID.Load(); id != 0 {
			c.log.Info(msg, "event", "note", "run_id", id)
		} else {
			c.log.Info(msg, "event", "note")
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drawn != "" {
		fmt.Fprintf(c.w, "\r\033[K%s\n%s", msg, c.drawn)
		return
	}
	fmt.Fprintln(c.w, msg)
}

// done ends the live line, leaving its last state on the terminal.
func (c *console) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drawn != "" {
		fmt.Fprintln(c.w)
		c.drawn = ""
	}
}

func (c *console) drawLocked() {
	c.last = c.now()
	c.live.elapsed = c.now().Sub(c.started)
	line := liveText(c.live, lineWidth)
	if c.tty {
		fmt.Fprintf(c.w, "\r\033[K%s", line)
		c.drawn = "\r\033[K" + line
		return
	}
	fmt.Fprintln(c.w, line)
}

// liveText is the live line, at most width columns. Its parts, in the
// order shown: what the run waits for, percent done, rows read of the scope
// count of the run's first preflight, rows changed, rate, ETA, elapsed,
// retries and lock waits, batch. When they do not fit, the least useful go
// first (batch, then changed, rate, elapsed, retries), then the line is cut.
func liveText(s liveState, width int) string {
	p := s.p
	type part struct {
		text string
		keep int // higher stays longer
	}
	var parts []part
	if s.waiting != "" {
		parts = append(parts, part{strings.ToUpper(s.waiting[:1]) + s.waiting[1:] + " |", 9})
	}
	if !s.seen {
		parts = append(parts, part{"starting", 8})
	} else {
		pct := "-"
		if p.Matched > 0 {
			pct = fmt.Sprintf("%.1f%%", 100*float64(min(p.Scanned, p.Matched))/float64(p.Matched))
		}
		eta := "-"
		if p.ETA > 0 {
			eta = compactDuration(p.ETA)
		}
		parts = append(parts,
			part{pct, 8},
			part{abbrev(p.Scanned) + "/" + abbrev(p.Matched) + " rows", 7},
			part{"changed " + abbrev(p.Changed), 2},
			part{abbrev(int64(p.Rate)) + "/s", 4},
			part{"ETA " + eta, 6})
	}
	parts = append(parts, part{"elapsed " + compactDuration(s.elapsed), 4})
	if s.retries > 0 {
		parts = append(parts, part{fmt.Sprintf("retries %d", s.retries), 5})
	}
	if s.lockWaits > 0 {
		parts = append(parts, part{fmt.Sprintf("lock waits %d", s.lockWaits), 5})
	}
	if s.seen {
		parts = append(parts, part{"batch " + abbrev(p.Batch), 1})
	}
	join := func() string {
		t := make([]string, 0, len(parts))
		for _, p := range parts {
			t = append(t, p.text)
		}
		return strings.Join(t, "  ")
	}
	for line := join(); ; line = join() {
		if len([]rune(line)) <= width || len(parts) == 1 {
			return cut(line, width)
		}
		low := 0
		for i, p := range parts {
			if p.keep < parts[low].keep {
				low = i
			}
		}
		parts = append(parts[:low], parts[low+1:]...)
	}
}

// cut shortens s to width columns, ending in "..." when cut.
func cut(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:width-3]) + "..."
}

// abbrev writes a count in at most six columns: 9999, 198.1k, 12.3M, 4.1G.
func abbrev(n int64) string {
	f := float64(n)
	switch {
	case n < 10_000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return trimZero(fmt.Sprintf("%.1f", f/1e3)) + "k"
	case n < 1_000_000_000:
		return trimZero(fmt.Sprintf("%.1f", f/1e6)) + "M"
	}
	return trimZero(fmt.Sprintf("%.1f", f/1e9)) + "G"
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

// compactDuration is 7s, 3m05s, 2h04m.
func compactDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
