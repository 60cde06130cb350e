package ledger

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// An observer's figures come from the batches as committed: the pace over
// the recent ones, the lanes, the pause, and the sums a scrape reports.
func TestLiveAndGaugesFollowTheBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newLedgerDB(t)
	conn := d.admin
	d.approve(d.alice, "execute")
	matched := int64(100)
	r := testRun("execute")
	r.Matched = &matched
	run, _, err := Start(ctx, d.as(d.runner), r, testStatements(), 1)
	require.NoError(t, err)
	for i, b := range []struct {
		scanned, attempts int
		ms                float64
		at                string
	}{{10, 1, 3, "00"}, {10, 2, 40, "02"}, {10, 1, 700, "04"}} {
		// The ledger's own functions record batches at the clock's time; a
		// superuser writes these with known times.
		var n int64
		require.NoError(t, conn.QueryRow(ctx, `UPDATE backfill.runs SET cursor = '1', scanned = scanned + $2, changed = changed + $2,
			batches = batches + 1 WHERE id = $1 RETURNING batches`, run.ID, b.scanned).Scan(&n))
		require.Equal(t, int64(i+1), n)
		// Known commit times, two seconds apart, instead of the clock's.
		_, err = conn.Exec(ctx, `INSERT INTO backfill.batches (run_id, batch, lane, cursor, scanned, intended, changed, size, attempts, duration_ms, committed_at)
			VALUES ($1, $2, 0, '1', $3, 0, 0, 10, $4, $5, $6::timestamptz)`, run.ID, n, b.scanned, b.attempts, b.ms, "2026-01-01 00:00:"+b.at+"Z")
		require.NoError(t, err)
	}
	require.NoError(t, SetControl(ctx, conn, run.ID, ControlPause))

	live, err := LiveOf(ctx, conn, []int64{run.ID, 999})
	require.NoError(t, err)
	require.Len(t, live, 1)
	l := live[run.ID]
	require.Equal(t, ControlPause, l.Control)
	require.Equal(t, int64(20), l.WindowRows, "the first batch of the window only opens it")
	require.InDelta(t, 4.0, l.WindowSeconds, 1e-9)
	require.InDelta(t, 5.0, l.RatePerSecond(), 1e-9)

	g, err := ReadGauges(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{StatusRunning: 1}, g.RunsByStatus)
	require.Len(t, g.Running, 1)
	require.Equal(t, int64(30), g.Running[0].Scanned)
	require.Len(t, g.Batches, 1)
	s := g.Batches[0]
	require.Equal(t, BatchStats{Backfill: "b", Count: 3, Attempts: 4, DurationMS: 743,
		Buckets: []int64{1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3}}, s)
}
