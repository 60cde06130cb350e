package web

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/ledger"
)

// runLimit is how many runs the list shows, newest first.
const runLimit = 200

// runView is a run as the pages and /api/runs show it. Cells holds the
// formatted text of every figure that changes while a run goes on, keyed
// as the pages' data-field attributes, so the page script updates them
// without knowing how they are formatted.
type runView struct {
	ID         int64             `json:"id"`
	Backfill   string            `json:"backfill"`
	Purpose    string            `json:"purpose"`
	Status     string            `json:"status"`
	State      string            `json:"state"` // status, or paused for a running run asked to pause
	StopReason string            `json:"stop_reason,omitempty"`
	Message    string            `json:"message,omitempty"`
	Digest     string            `json:"digest"`
	Matched    *int64            `json:"matched"`
	Scanned    int64             `json:"scanned"`
	Changed    int64             `json:"changed"`
	Batches    int64             `json:"batches"`
	Percent    *float64          `json:"percent"`
	RowsPerSec float64           `json:"rows_per_second"`
	ETASeconds *float64          `json:"eta_seconds"`
	Lanes      int               `json:"lanes"`
	LanesDone  int               `json:"lanes_done"`
	Operator   string            `json:"operator"`
	DBUser     string            `json:"db_user"`
	StartedAt  time.Time         `json:"started_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	FinishedAt *time.Time        `json:"finished_at"`
	Cells      map[string]string `json:"cells"`
}

// readRuns reads the newest runs and their live state.
func readRuns(ctx context.Context, tx pgx.Tx) ([]runView, error) {
	runs, err := ledger.Runs(ctx, tx, runLimit)
	if err != nil {
		return nil, err
	}
	return views(ctx, tx, runs)
}

func views(ctx context.Context, tx pgx.Tx, runs []ledger.Run) ([]runView, error) {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	live, err := ledger.LiveOf(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]runView, len(runs))
	for i, r := range runs {
		out[i] = newRunView(r, live[r.ID])
	}
	return out, nil
}

func newRunView(r ledger.Run, l ledger.Live) runView {
	v := runView{ID: r.ID, Backfill: r.Backfill, Purpose: r.Purpose, Status: r.Status, State: r.Status,
		StopReason: deref(r.StopReason), Message: deref(r.Message), Digest: r.Digest, Matched: r.Matched,
		Scanned: r.Scanned, Changed: r.Changed, Batches: r.Batches, Lanes: l.Lanes, LanesDone: l.LanesDone,
		Operator: r.OSUser + "@" + r.ClientHost, DBUser: r.DBUser, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt,
		FinishedAt: r.FinishedAt}
	if r.Status == ledger.StatusRunning && l.Control == ledger.ControlPause {
		v.State = "paused"
	}
	if r.Matched != nil {
		p := 100.0
		if *r.Matched > 0 {
			p = math.Min(100, 100*float64(r.Scanned)/float64(*r.Matched))
		}
		v.Percent = &p
	}
	if r.Status == ledger.StatusRunning {
		v.RowsPerSec = l.RatePerSecond()
		if r.Matched != nil && v.RowsPerSec > 0 {
			eta := math.Max(0, float64(*r.Matched-r.Scanned)) / v.RowsPerSec
			v.ETASeconds = &eta
		}
	}
	v.Cells = v.cells()
	return v
}

// cells formats the figures that change during a run.
func (v runView) cells() map[string]string {
	c := map[string]string{
		"state": v.State, "stop_reason": v.StopReason, "scanned": strconv.FormatInt(v.Scanned, 10),
		"changed": strconv.FormatInt(v.Changed, 10), "batches": strconv.FormatInt(v.Batches, 10),
		"matched": "-", "percent": "-", "rate": "-", "eta": "-", "lanes": "-", "updated": v.UpdatedAt.UTC().Format(time.RFC3339),
		"progress": strconv.FormatInt(v.Scanned, 10),
	}
	if v.Matched != nil {
		c["matched"] = strconv.FormatInt(*v.Matched, 10)
		c["progress"] = fmt.Sprintf("%d / %d", v.Scanned, *v.Matched)
	}
	if v.Percent != nil {
		c["percent"] = fmt.Sprintf("%.1f%%", *v.Percent)
	}
	if v.RowsPerSec > 0 {
		c["rate"] = fmt.Sprintf("%.0f rows/s", v.RowsPerSec)
	}
	if v.ETASeconds != nil {
		c["eta"] = (time.Duration(*v.ETASeconds) * time.Second).String()
	}
	if v.Lanes > 0 {
		c["lanes"] = fmt.Sprintf("%d/%d done", v.LanesDone, v.Lanes)
	}
	return c
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
