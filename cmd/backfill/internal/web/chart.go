package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/ledger"
)

// Size of the batch timeline, in SVG units.
const (
	chartW, chartH = 800.0, 200.0
	chartPad       = 40.0
	chartMaxPoints = 1000 // more batches are sampled down to this many points
)

// chart is a run's batch timeline: rows scanned so far against time, one
// point per batch, with batches that needed retries marked.
type chart struct {
	Empty    bool
	W, H     float64
	Line     string // polyline points of the cumulative rows scanned
	Retries  []point
	MaxRows  int64
	From, To string
	Span     string
}

type point struct{ X, Y float64 }

// Points is the line as an SVG attribute value.
func (c chart) Points() template.HTMLAttr { return template.HTMLAttr(c.Line) }

func timeline(batches []ledger.Batch) chart {
	c := chart{W: chartW, H: chartH, Empty: len(batches) == 0}
	if c.Empty {
		return c
	}
	start, end := batches[0].Committed, batches[len(batches)-1].Committed
	span := end.Sub(start)
	var total int64
	cum := make([]int64, len(batches))
	for i, b := range batches {
		total += int64(b.Scanned)
		cum[i] = total
	}
	c.MaxRows, c.From, c.To, c.Span = total, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), span.Round(time.Millisecond).String()
	at := func(i int) point {
		x := chartPad
		if span > 0 {
			x += (chartW - 2*chartPad) * float64(batches[i].Committed.Sub(start)) / float64(span)
		}
		y := chartH - chartPad
		if total > 0 {
			y -= (chartH - 2*chartPad) * float64(cum[i]) / float64(total)
		}
		return point{x, y}
	}
	step := max(1, len(batches)/chartMaxPoints)
	var b strings.Builder
	for i := 0; i < len(batches); i += step {
		p := at(i)
		fmt.Fprintf(&b, "%.1f,%.1f ", p.X, p.Y)
	}
	p := at(len(batches) - 1)
	fmt.Fprintf(&b, "%.1f,%.1f", p.X, p.Y)
	c.Line = b.String()
	for i, bt := range batches {
		if bt.Attempts > 1 {
			c.Retries = append(c.Retries, at(i))
		}
	}
	return c
}
