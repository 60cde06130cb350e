package engine

import (
	"encoding/json"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// What a run costs that a dry-run cannot time, because it writes nothing.
// They are estimates, calibrated with make bench and a run whose batches
// changed all or none of their rows, on the project's 2-core machine with
// the server on the same host (docs/performance.md has the figures); on
// other hardware the measured parts of an estimate follow the server, these
// do not.
const (
	// EstimatePreflight is the fixed part of a preflight: starting,
	// hashing the binary, connecting, reading and verifying the approvals,
	// the lock and preparing the statements: about 50 ms for fix_roles on
	// the demo's 1,000 rows, where the whole execute takes 105 ms. The
	// scope count comes on top,
	// as long as the dry-run's took: that count ran beside the dry-run's walk
	// and took longer than it does alone, which covers the checks the
	// preflight runs before the first write.
	EstimatePreflight = 100 * time.Millisecond
	// EstimatePerBatch is what one round of batches costs beyond its rows:
	// the control read, the transaction and its timeouts, the run's
	// progress, the batch row, the audit event (its hash chain serialises
	// appends) and the commit. Measured: 2.9 ms for a batch of 1,000 rows
	// that changes none, of which reading is about 1.5 ms, and 1.6 ms
	// between rounds.
	EstimatePerBatch = 1500 * time.Microsecond
	// EstimatePerChange is what writing one changed row costs: Apply
	// finding and updating it, its WAL, the longer commit, and the client
	// building its change. Measured: 9.8 us a row at 400,000 rows, up to 12
	// at 2,000,000 (a larger table and more WAL).
	EstimatePerChange = 10 * time.Microsecond
	// EstimatePerImage is what keeping one row's before-image costs a
	// reversible backfill: encoding it and storing it in backfill.undo.
	// Measured: 1.7 us a row.
	EstimatePerImage = 2 * time.Microsecond
	// EstimateLaneGain is the share of a lane's work each lane beyond the
	// first takes off: L lanes divide the work by 1 + (L-1) x the gain. A
	// lane is a connection and a server backend; on two cores the second
	// lane competes with the first for CPU and the WAL: two lanes measured
	// 1.56 times as fast as one. On a server with more cores than lanes the
	// gain is higher and the estimate errs long; on a busy one, lower.
	EstimateLaneGain = 0.5
)

// EstimateInput is what a dry-run measured and what the manifest says.
type EstimateInput struct {
	Scanned          int64 // rows the walk read
	Changes          int64 // rows that would change
	Batches          int64 // batches of one lane: the canary, then batch.size rows each
	Lanes            int   // lanes the run would write in (1 or more)
	Reversible       bool  // the run keeps before-images
	MaxRowsPerSecond int   // batch.max_rows_per_second; 0: no limit
	Count            time.Duration
	Read             time.Duration // the dry-run's page queries
	Transform        time.Duration // the dry-run's walk minus its page queries
}

// EstimateRun predicts how long --execute takes. The preflight counts the
// scope again. The batches read the scope again (as long as the dry-run's
// reads took), decide every row again (as long as the dry-run's transform
// took), write every change and commit every batch (the documented
// estimates above), and lanes share that work. The engine holds every
// round of batches to max_rows_per_second over the rows it reads (not the
// rows it changes), and lanes share that limit, so the batches take at
// least Scanned / max_rows_per_second whatever the lanes.
func EstimateRun(in EstimateInput) bftype.Estimate {
	lanes := max(1, in.Lanes)
	e := bftype.Estimate{Scanned: in.Scanned, Changes: in.Changes, Lanes: lanes, MaxRowsPerSecond: in.MaxRowsPerSecond,
		Count: in.Count, Read: in.Read, Transform: in.Transform}
	e.Batches = in.Batches
	if in.Batches > 0 {
		e.Batches += int64(lanes - 1) // each further lane ends on a batch of its own
	}
	e.Preflight = EstimatePreflight + in.Count
	perChange := EstimatePerChange
	if in.Reversible {
		perChange += EstimatePerImage
	}
	e.Write = time.Duration(in.Changes) * perChange
	e.Commit = time.Duration(e.Batches) * EstimatePerBatch
	all := in.Read + in.Transform + e.Write + e.Commit
	e.Work = time.Duration(float64(all) / (1 + float64(lanes-1)*EstimateLaneGain))
	if in.MaxRowsPerSecond > 0 {
		e.Throttle = time.Duration(float64(in.Scanned) / float64(in.MaxRowsPerSecond) * float64(time.Second))
	}
	e.Batching = max(e.Work, e.Throttle)
	e.Total = e.Preflight + e.Batching
	return e
}

// PlannedLanes is how many lanes a run allowed want of them cuts at these
// split keys: what it fixes before its first batch when a dry-run with these
// keys is the latest saved.
func PlannedLanes(splitKeys []json.RawMessage, want int) int {
	if want < 2 {
		return 1
	}
	return len(pickBounds(splitKeys, want)) + 1
}
