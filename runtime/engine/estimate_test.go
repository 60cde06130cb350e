package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The case: 500,000 rows scanned, 75,000 changed, 20,000 rows/s.
// The engine limits rows read, so the batches take at least 25 s, not the
// 3.75 s that rows changed over the limit gave.
func TestEstimateThrottlesRowsScannedNotChanged(t *testing.T) {
	t.Parallel()
	in := EstimateInput{Scanned: 500_000, Changes: 75_000, Batches: 1001, Lanes: 1, MaxRowsPerSecond: 20_000,
		Count: 500 * time.Millisecond, Read: 2 * time.Second, Transform: 300 * time.Millisecond}
	e := EstimateRun(in)
	require.Equal(t, 25*time.Second, e.Throttle)
	require.GreaterOrEqual(t, e.Total, 25*time.Second, "at least scanned / max_rows_per_second")
	require.Equal(t, e.Throttle, e.Batching, "the limit is longer than the work")
	require.Equal(t, EstimatePreflight+500*time.Millisecond+25*time.Second, e.Total)

	// Lanes divide the work, never the limit.
	in.Lanes = 4
	four := EstimateRun(in)
	require.Equal(t, 25*time.Second, four.Throttle)
	require.Equal(t, e.Total, four.Total)
}

// Without a limit the batches take the work: the dry-run's reads and
// transform as measured, the writes and commits as estimated, shared by
// the lanes.
func TestEstimateAddsMeasuredAndEstimatedWork(t *testing.T) {
	t.Parallel()
	in := EstimateInput{Scanned: 200_000, Changes: 100_000, Batches: 201, Lanes: 1,
		Count: 200 * time.Millisecond, Read: time.Second, Transform: 100 * time.Millisecond}
	e := EstimateRun(in)
	require.Equal(t, int64(201), e.Batches)
	require.Equal(t, 100_000*EstimatePerChange, e.Write)
	require.Equal(t, 201*EstimatePerBatch, e.Commit)
	one := time.Second + 100*time.Millisecond + e.Write + e.Commit
	require.Equal(t, one, e.Work)
	require.Zero(t, e.Throttle)
	require.Equal(t, EstimatePreflight+200*time.Millisecond+one, e.Total)

	in.Reversible = true
	require.Equal(t, 100_000*(EstimatePerChange+EstimatePerImage), EstimateRun(in).Write, "before-images cost on top")

	in.Reversible, in.Lanes = false, 2
	two := EstimateRun(in)
	require.Equal(t, int64(202), two.Batches, "the second lane ends on a batch of its own")
	require.Equal(t, time.Duration(float64(one+EstimatePerBatch)/(1+EstimateLaneGain)), two.Work)
}

func TestPlannedLanesFollowsTheSplitKeys(t *testing.T) {
	t.Parallel()
	var keys []json.RawMessage
	for k := 10; k <= 640; k += 10 {
		b, _ := json.Marshal(k)
		keys = append(keys, b)
	}
	require.Equal(t, 1, PlannedLanes(keys, WantLanes(0, 0)))
	require.Equal(t, 4, PlannedLanes(keys, WantLanes(4, 0)))
	require.Equal(t, 2, PlannedLanes(keys, WantLanes(4, 2)), "--lanes lowers the manifest's")
	require.Equal(t, 4, PlannedLanes(keys, WantLanes(4, 9)), "never raises it")
	require.Equal(t, 1, PlannedLanes(nil, WantLanes(4, 0)), "no split keys: one lane")
}
