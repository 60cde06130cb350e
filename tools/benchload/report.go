package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// line is one scenario's measurements.
type line struct {
	name string
	app  appStats
	bf   backfill
}

// report prints the table as Markdown, ready for docs/performance.md.
func report(w io.Writer, c config, lines []line) {
	fmt.Fprintf(w, "\nApplication: pgbench, %d clients at %d tx/s, each reading and updating one random user of %d; late: over %s.\n\n",
		c.clients, c.rate, c.rows, c.limit)
	fmt.Fprintln(w, "| scenario | app p50 | app p99 | app max | steady p99 | stall seconds | tx | failed | late | backfill s | rows/s | lock waits caused | longest | WAL MB | slow-downs / speed-ups |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, l := range lines {
		a := l.app
		took, rate, waits, longest, wal, adapt := "", "", "", "", "", ""
		if l.bf.rows > 0 {
			took = fmt.Sprintf("%.2f", l.bf.took.Seconds())
			rate = fmt.Sprintf("%.0f", float64(l.bf.rows)/l.bf.took.Seconds())
			waits = fmt.Sprint(l.bf.waits)
			longest = msText(l.bf.maxWait)
			wal = fmt.Sprintf("%.0f", float64(l.bf.wal)/(1<<20))
		}
		if l.bf.slowDowns+l.bf.speedUps > 0 {
			adapt = fmt.Sprintf("%d / %d", l.bf.slowDowns, l.bf.speedUps)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d of %d | %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", l.name, msText(a.p50), msText(a.p99), msText(a.max),
			msText(a.steady), a.stalls, a.seconds, a.n, a.failed+a.aborted, a.late+a.skipped, took, rate, waits, longest, wal, adapt)
	}
	if len(lines) > 0 && lines[0].app.p99 > 0 {
		idle := lines[0].app.p99
		fmt.Fprintln(w)
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%s: app p99 %.1fx idle", l.name, float64(l.app.p99)/float64(idle))
			if lines[0].app.steady > 0 {
				fmt.Fprintf(w, ", steady p99 %.1fx idle's", float64(l.app.steady)/float64(lines[0].app.steady))
			}
			if len(l.bf.reasons) > 0 {
				var by []string
				for r, n := range l.bf.reasons {
					by = append(by, fmt.Sprintf("%s %d", r, n))
				}
				slices.Sort(by)
				fmt.Fprintf(w, "; by reason: %s", strings.Join(by, ", "))
			}
			fmt.Fprintln(w)
		}
	}
}

func msText(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
