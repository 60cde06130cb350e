package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

func testController(ceiling int) *controller {
	c := newController(bftype.Batch{}.AppImpact(), ceiling, 1000, 50)
	c.base = Baseline{Probe: 2 * time.Millisecond, Commit: 4 * time.Millisecond, PerRow: 10 * time.Microsecond}
	return c
}

var calm = Signals{Probe: 3 * time.Millisecond, Commit: 5 * time.Millisecond, PerRow: 12 * time.Microsecond, Stall: 9 * time.Millisecond, Others: 4, Rate: 40000}

func TestControllerHoldsAtFullSpeedWithinBounds(t *testing.T) {
	t.Parallel()
	c := testController(0)
	d := c.decide(calm)
	require.Equal(t, ActionHold, d.Action)
	require.Equal(t, 0.0, d.Rate)
	require.Equal(t, 1000, d.Size)
}

func TestControllerHalvesOnEachSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		edit   func(*Signals)
	}{
		{"lock_wait", func(s *Signals) { s.LockWaiters, s.LockWait = 2, 300*time.Millisecond }},
		{"probe_latency", func(s *Signals) { s.Probe = 9 * time.Millisecond }},
		{"commit_latency", func(s *Signals) { s.Commit = 20 * time.Millisecond }},
		{"commit_stall", func(s *Signals) { s.Stall = 80 * time.Millisecond }},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			c := testController(0)
			s := calm
			tc.edit(&s)
			d := c.decide(s)
			require.Equal(t, ActionSlowDown, d.Action)
			require.Equal(t, tc.reason, d.Reason)
			require.NotEmpty(t, d.Detail)
			require.Equal(t, 20000.0, d.Rate, "half the measured rate")
			require.Equal(t, 500, d.Size)
			d = c.decide(s)
			require.Equal(t, 10000.0, d.Rate, "half again")
			require.Equal(t, 250, d.Size)
		})
	}
}

// A short lock wait, a probe over its ratio but within the slack, and a
// slow batch while batch_ratio is off are no impact.
func TestControllerIgnoresNoise(t *testing.T) {
	t.Parallel()
	c := testController(0)
	c.base.Probe = 200 * time.Microsecond
	s := calm
	s.Probe = 900 * time.Microsecond // 4.5x, but less than 1 ms more
	s.LockWaiters, s.LockWait = 1, 20*time.Millisecond
	s.PerRow = time.Millisecond
	require.Equal(t, ActionHold, c.decide(s).Action)
}

// With no other session connected to the server, a slow probe, slow
// commits and a commit stall are the run's own load: nobody to protect, so
// the run keeps its speed (and gets it back when the others leave).
func TestControllerIgnoresLatencyWithNoOtherSession(t *testing.T) {
	t.Parallel()
	c := testController(0)
	c.bounds.BatchRatio = 2
	alone := Signals{Probe: 30 * time.Millisecond, Commit: 40 * time.Millisecond, PerRow: time.Millisecond, Stall: 300 * time.Millisecond, Rate: 40000, Alone: true}
	require.Equal(t, ActionHold, c.decide(alone).Action)
	crowded := alone
	crowded.Others, crowded.Alone = 1, false
	d := c.decide(crowded)
	require.Equal(t, ActionSlowDown, d.Action)
	require.Equal(t, "commit_stall", d.Reason)
	d = c.decide(alone)
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Equal(t, "no_other_sessions", d.Reason, "the log says why it ignored the latency")
	require.Contains(t, d.Detail, "only lock waits count")

	// A session waiting behind the run is someone, whatever the count said.
	locked := alone
	locked.LockWaiters, locked.LockWait = 1, time.Second
	require.Equal(t, "lock_wait", c.decide(locked).Reason)
}

// Not knowing whether anyone else is there (no sample succeeded) is not
// being alone: the signals count.
func TestControllerCountsLatencyWhenItCannotTellWhoIsThere(t *testing.T) {
	t.Parallel()
	c := testController(0)
	unknown := Signals{Stall: 300 * time.Millisecond, Rate: 40000}
	require.Equal(t, "commit_stall", c.decide(unknown).Reason)
}

// A commit stall is 50 ms by default over the probe's baseline (its round
// trip, so a distant server is not a stall); "0s" does not watch it.
func TestControllerCommitStallBound(t *testing.T) {
	t.Parallel()
	c := testController(0) // probe baseline 2 ms
	s := calm
	s.Stall = 51 * time.Millisecond
	require.Equal(t, ActionHold, c.decide(s).Action)
	s.Stall = 53 * time.Millisecond
	d := c.decide(s)
	require.Equal(t, "commit_stall", d.Reason)
	require.Contains(t, d.Detail, "a commit took 53ms, 51ms over the probe's baseline of 2ms")
	require.Contains(t, d.Detail, "max_app_impact.commit_stall 50ms")

	far := testController(0)
	far.base.Probe = 60 * time.Millisecond
	s.Stall, s.Probe = 100*time.Millisecond, 70*time.Millisecond
	d = far.decide(s)
	require.Equal(t, ActionHold, d.Action, "a 60 ms round trip and a 100 ms commit: 40 ms over: %s", d.Detail)

	off := newController(bftype.Batch{MaxAppImpact: &bftype.AppImpact{CommitStall: "0s"}}.AppImpact(), 0, 1000, 50)
	off.base = testController(0).base
	s.Stall, s.Probe = 5*time.Second, calm.Probe
	require.Equal(t, ActionHold, off.decide(s).Action)
}

func TestControllerWatchesBatchTimeWhenAsked(t *testing.T) {
	t.Parallel()
	c := testController(0)
	c.bounds.BatchRatio = 3
	s := calm
	s.PerRow = 40 * time.Microsecond
	d := c.decide(s)
	require.Equal(t, ActionSlowDown, d.Action)
	require.Equal(t, "batch_time", d.Reason)
}

// Speed-ups add a twentieth of the ceiling a period, and the controller
// stops limiting at the manifest's max_rows_per_second.
func TestControllerAddsBackToTheCeiling(t *testing.T) {
	t.Parallel()
	c := testController(20000)
	slow := calm
	slow.Probe = 10 * time.Millisecond
	slow.Rate = 20000
	d := c.decide(slow)
	require.Equal(t, 10000.0, d.Rate)
	require.Equal(t, 500, d.Size)
	d = c.decide(calm)
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Equal(t, 11000.0, d.Rate)
	require.Equal(t, 600, d.Size)
	for range 8 {
		d = c.decide(calm)
	}
	require.Equal(t, 19000.0, d.Rate)
	require.Equal(t, 1000, d.Size)
	d = c.decide(calm)
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Equal(t, 0.0, d.Rate, "at the ceiling the manifest's limit alone holds")
	require.Equal(t, ActionHold, c.decide(calm).Action)
}

// At the floor (min_rows_per_second and batch.canary rows) a signal still
// over its bound makes the run wait; once it clears, it speeds up again.
func TestControllerWaitsAtTheFloor(t *testing.T) {
	t.Parallel()
	c := testController(0)
	locked := calm
	locked.LockWaiters, locked.LockWait = 1, time.Second
	var d Decision
	for range 12 {
		d = c.decide(locked)
		if d.Action == ActionWait {
			break
		}
		require.Equal(t, ActionSlowDown, d.Action)
	}
	require.Equal(t, ActionWait, d.Action)
	require.Equal(t, "lock_wait", d.Reason)
	require.Equal(t, 100.0, d.Rate)
	require.Equal(t, 50, d.Size)
	d = c.decide(Signals{Probe: 2 * time.Millisecond, Others: 1})
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Greater(t, d.Rate, 100.0)
}
