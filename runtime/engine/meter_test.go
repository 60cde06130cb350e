package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A resumed run had read 300,000 rows before this process started; this
// process reads 300 rows a second. Its rate is 300, not the whole run's
// rows over this process's age, and its ETA is the rows left of the count
// the run started with at that rate.
func TestMeterCountsOnlyThisProcesssRecentBatches(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newMeter(start, 300_000, 10*time.Second)
	require.Zero(t, m.rate(), "no batch yet")
	require.Zero(t, m.eta(400_000, 300_000))

	m.add(start.Add(time.Second), 300_300)
	require.InDelta(t, 300, m.rate(), 0.001)
	require.Equal(t, 332*time.Second, m.eta(400_000, 300_300).Round(time.Second), "99,700 rows left at 300 rows/s")
	require.Equal(t, 331*time.Second, m.eta(400_000, 300_600).Round(time.Second), "from the rows read so far, not the last mark's")

	// Thirty seconds at 300 rows/s, then ten at 100: the rate follows the
	// last ten seconds.
	for s := 2; s <= 30; s++ {
		m.add(start.Add(time.Duration(s)*time.Second), 300_000+int64(300*s))
	}
	require.InDelta(t, 300, m.rate(), 0.001)
	for s := 31; s <= 40; s++ {
		m.add(start.Add(time.Duration(s)*time.Second), 309_000+int64(100*(s-30)))
	}
	require.InDelta(t, 100, m.rate(), 0.001)
	require.LessOrEqual(t, len(m.marks), 12, "old marks are forgotten")

	require.Zero(t, m.eta(300_000, 310_000), "past the count: no ETA")
}

// Lanes commit several batches at one instant: the rate still counts them all.
func TestMeterAddsBatchesOfOneInstant(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newMeter(start, 0, 10*time.Second)
	at := start.Add(2 * time.Second)
	m.add(at, 1000)
	m.add(at, 2000)
	require.InDelta(t, 1000, m.rate(), 0.001)
}
