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

var calm = Signals{Probe: 3 * time.Millisecond, Commit: 5 * time.Millisecond, PerRow: 12 * time.Microsecond, Rate: 40000}

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
		reason  string
		periods int // periods in a row over the bound before it acts
		edit    func(*Signals)
	}{
		{"lock_wait", 1, func(s *Signals) { s.LockWaiters, s.LockWait = 2, 300*time.Millisecond }},
		{"probe_latency", probeStrikes, func(s *Signals) { s.Probe = 9 * time.Millisecond }},
		{"commit_latency", 1, func(s *Signals) { s.Commit = 20 * time.Millisecond }},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			c := testController(0)
			s := calm
			tc.edit(&s)
			d := decideN(t, c, s, tc.periods)
			require.Equal(t, ActionSlowDown, d.Action)
			require.Equal(t, tc.reason, d.Reason)
			require.NotEmpty(t, d.Detail)
			require.Equal(t, 20000.0, d.Rate, "half the measured rate")
			require.Equal(t, 500, d.Size)
			d = decideN(t, c, s, tc.periods)
			require.Equal(t, 10000.0, d.Rate, "half again")
			require.Equal(t, 250, d.Size)
		})
	}
}

// decideN feeds s for n periods: the first n-1 must hold, and it returns
// the last decision.
func decideN(t *testing.T, c *controller, s Signals, n int) Decision {
	t.Helper()
	for range n - 1 {
		d := c.decide(s)
		require.Equal(t, ActionHold, d.Action, d.Detail)
	}
	return c.decide(s)
}

// The probe is judged by its tail over two periods in a row: one period
// over its bound holds the rate where it is (no speed-up, no slow-down), a
// period within starts the count again, and a second period in a row over
// slows the run down, saying so.
func TestControllerActsOnTheProbeTailTwoPeriodsInARow(t *testing.T) {
	t.Parallel()
	c := testController(0)
	c.rate, c.size, c.peak = 10000, 500, 40000 // slowed down before
	over := calm
	over.Probe = 5 * time.Millisecond // 2.5x its baseline of 2 ms, 3 ms over

	d := c.decide(over)
	require.Equal(t, ActionHold, d.Action, "one period's tail is noise")
	require.Equal(t, "probe_latency", d.Reason)
	require.Contains(t, d.Detail, "1 period(s) in a row")
	require.Equal(t, 10000.0, d.Rate, "held, not sped up")
	require.Equal(t, 500, d.Size)

	require.Equal(t, ActionSpeedUp, c.decide(calm).Action)
	require.Equal(t, ActionHold, c.decide(over).Action, "the count starts again after a period within")
	d = c.decide(over)
	require.Equal(t, ActionSlowDown, d.Action)
	require.Equal(t, "probe_latency", d.Reason)
	require.Contains(t, d.Detail, "probe p90 took 5ms, 2.5x its baseline of 2ms, over its limit of 4ms in 2 period(s) in a row")
	require.Equal(t, 6000.0, d.Rate, "half of 12000, the rate after one speed-up")
	require.Equal(t, ActionHold, c.decide(over).Action, "each slow-down for the probe needs two periods")
}

// The probe's limit is probe_ratio times its baseline, at least 1 ms and at
// most probe_rise (3 ms) over it: a probe of 14 ms against a baseline of 10
// ms is only 1.4x, and still an impact, since the application's tail rose
// by as much.
func TestControllerProbeLimitIsRelativeAndAbsolute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base, limit time.Duration
	}{
		{300 * time.Microsecond, 1300 * time.Microsecond}, // the slack: 1 ms over
		{2 * time.Millisecond, 4 * time.Millisecond},      // the ratio: 2x
		{10 * time.Millisecond, 13 * time.Millisecond},    // the rise: 3 ms over
	} {
		c := testController(0)
		c.base.Probe = tc.base
		require.Equal(t, tc.limit, c.probeLimit(), "baseline %s", tc.base)
		s := calm
		s.Probe = tc.limit
		require.Equal(t, ActionHold, decideN(t, c, s, probeStrikes).Action, "at the limit, baseline %s", tc.base)
		s.Probe = tc.limit + 100*time.Microsecond
		require.Equal(t, ActionSlowDown, decideN(t, c, s, probeStrikes).Action, "over the limit, baseline %s", tc.base)
	}
	c := testController(0)
	c.bounds.ProbeRise = "20ms"
	c.rise = c.bounds.ProbeRiseDuration()
	c.base.Probe = 10 * time.Millisecond
	require.Equal(t, 20*time.Millisecond, c.probeLimit(), "a larger probe_rise leaves the ratio in charge")
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

// Speed-ups add a twentieth of the ceiling a period, a hundredth from three
// quarters of the rate the last slow-down came from, and the controller
// stops limiting at the manifest's max_rows_per_second.
func TestControllerAddsBackToTheCeiling(t *testing.T) {
	t.Parallel()
	c := testController(20000)
	slow := calm
	slow.Commit = 30 * time.Millisecond
	slow.Rate = 20000
	d := c.decide(slow)
	require.Equal(t, 10000.0, d.Rate)
	require.Equal(t, 500, d.Size)
	d = c.decide(calm)
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Equal(t, 11000.0, d.Rate)
	require.Equal(t, 600, d.Size)
	for range 4 {
		d = c.decide(calm)
	}
	require.Equal(t, 15000.0, d.Rate, "a twentieth a period up to three quarters of 20000")
	require.Equal(t, 1000, d.Size)
	d = c.decide(calm)
	require.Equal(t, 15200.0, d.Rate, "then a hundredth, near the rate that hurt")
	for range 23 {
		d = c.decide(calm)
	}
	require.Equal(t, 19800.0, d.Rate)
	d = c.decide(calm)
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Equal(t, 0.0, d.Rate, "at the ceiling the manifest's limit alone holds")
	require.Equal(t, ActionHold, c.decide(calm).Action)
}

// A synthetic application whose probe tail goes over its bound whenever
// the run goes faster than 70% of its top rate, with a stray slow probe in
// one period of seven: the controller keeps the run above half its top
// rate and over the bound in at most one period in eight. Climbing back at
// a twentieth a period all the way (before the small steps near the rate
// that hurt) it was over in more than one period in five.
func TestControllerSettlesBelowTheRateThatHurts(t *testing.T) {
	t.Parallel()
	const top, hurts, periods = 40000.0, 0.7, 400
	c := testController(0)
	var sum float64
	over := 0
	for i := range periods {
		s := calm
		s.Rate = top
		if c.rate > 0 {
			s.Rate = min(c.rate, top)
		}
		sum += s.Rate
		if s.Rate > hurts*top {
			over++
			s.Probe = 10 * time.Millisecond
		} else if i%7 == 0 {
			s.Probe = 10 * time.Millisecond // noise: one period alone
		}
		c.decide(s)
	}
	require.GreaterOrEqual(t, sum/periods/top, 0.55, "mean rate as a fraction of the top")
	require.LessOrEqual(t, float64(over)/periods, 0.125, "periods over the bound")
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
	d = c.decide(Signals{Probe: 2 * time.Millisecond})
	require.Equal(t, ActionSpeedUp, d.Action)
	require.Greater(t, d.Rate, 100.0)
}
