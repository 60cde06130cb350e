package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/engine"
)

// The live line after a resume: the whole run's rows against the count of
// its first preflight, at the rate and ETA of this process's batches.
func TestProgressTextShowsTheRunAgainstItsFirstCount(t *testing.T) {
	t.Parallel()
	got := progressText(engine.Progress{Batch: 412, Scanned: 198_050, Matched: 200_000, Changed: 66_000, Rate: 300.4, ETA: 6500 * time.Millisecond})
	require.Equal(t, "batch 412  scanned 198050/200000  changed 66000  skipped 132050  300 rows/s  ETA 7s", got)
	require.Contains(t, progressText(engine.Progress{Batch: 1, Scanned: 50, Matched: 100}), "0 rows/s  ETA -", "no rate before a round ends")
}
