package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// The adaptive mode protects the application while a run writes: between
// batches a controller reads what the application feels (sessions waiting
// on the run's locks, the tail latency of a probe that reads the target
// table on another connection, the latency of the batches' commits and
// their time per row), each against its baseline, and slows the run down
// (halving its rows per second and its batch size) when one goes over
// batch.max_app_impact, or speeds it up a step at a time when all are
// within it: additive increase, multiplicative decrease, as TCP does with
// its window.
//
// The probe is judged by its tail, not its median: an application's 99th
// percentile moves long before its median does (measured in
// docs/performance.md, bench-load). A tail of a dozen probes is noisy, so
// the probe counts only when it is over its bound in probeStrikes periods
// in a row.

// Slack below which a latency over its ratio is not an impact: a probe of
// 0.2 ms going to 0.5 ms is 2.5x its baseline and nothing anyone feels.
const (
	probeSlack  = time.Millisecond
	commitSlack = 2 * time.Millisecond
)

// probeStrikes is how many periods in a row the probe's tail must be over
// its bound before the controller slows down.
const probeStrikes = 2

// Signals are what the application felt during one control period.
type Signals struct {
	// Probe is the 90th percentile of the latency of the probes taken while
	// batches were in flight (0: no probe ran).
	Probe time.Duration
	// LockWaiters is the most sessions seen waiting on a lock a session of
	// the run held, and LockWait the longest such wait.
	LockWaiters int
	LockWait    time.Duration
	// Commit is the median latency of the batches' COMMIT (0: no batch).
	Commit time.Duration
	// PerRow is the median time of a batch per row it read (0: no batch).
	PerRow time.Duration
	// Rate is the rows per second the run read in the period.
	Rate float64
}

// Baseline is what the signals were before the run loaded the database: the
// probe's 90th percentile before the first batch, and the median commit and
// per-row time of the first batches.
type Baseline struct {
	Probe  time.Duration
	Commit time.Duration
	PerRow time.Duration
}

// Action is what the controller decided for the next period.
type Action string

// The controller's actions; slow_down and speed_up are logged and counted.
const (
	ActionHold     Action = "hold"
	ActionSlowDown Action = "slow_down"
	ActionSpeedUp  Action = "speed_up"
	// ActionWait: over a bound at the floor, so no batch runs until the
	// signals are back within their bounds.
	ActionWait Action = "wait"
)

// Decision is one step of the controller: the action, why (a reason code:
// lock_wait, probe_latency, commit_latency, batch_time, within_bounds; a
// hold for a probe over its bound once is probe_latency too), a
// sentence with the figures, and the rate and batch size from now on.
type Decision struct {
	Action Action
	Reason string
	Detail string
	// Rate is the rows per second the run is held to; 0 is no limit of the
	// controller's (the manifest's max_rows_per_second still holds).
	Rate float64
	Size int
}

// controller is the AIMD state of one run. It is pure: the engine feeds it
// signals and applies its decisions, so tests drive it with synthetic ones.
type controller struct {
	bounds   bftype.AppImpact
	lockWait time.Duration
	ceiling  float64 // manifest max_rows_per_second; 0: none
	maxSize  int
	minSize  int
	base     Baseline
	rate     float64 // 0: unlimited by the controller
	size     int
	peak     float64       // the fastest rate measured, the ceiling when the manifest has none
	rise     time.Duration // max_app_impact.probe_rise
	strikes  int           // periods in a row the probe was over its bound
	trip     float64       // the rate the last slow-down came from; 0: none yet
}

func newController(bounds bftype.AppImpact, ceiling, maxSize, minSize int) *controller {
	return &controller{bounds: bounds, lockWait: bounds.LockWaitDuration(), rise: bounds.ProbeRiseDuration(), ceiling: float64(ceiling),
		maxSize: maxSize, minSize: max(1, min(minSize, maxSize)), size: maxSize}
}

// probeLimit is the most the probe's tail may take: probe_ratio times its
// baseline, but at least probeSlack and at most probe_rise over it, so that
// a tiny baseline does not make noise an impact and a large one (a busy
// server) does not let the application's tail grow without bound.
func (c *controller) probeLimit() time.Duration {
	b := c.base.Probe
	return min(max(time.Duration(c.bounds.ProbeRatio*float64(b)), b+probeSlack), b+c.rise)
}

// probeOver counts the periods in a row the probe's tail was over its
// limit and reports whether it was over in this one.
func (c *controller) probeOver(s Signals) bool {
	if s.Probe == 0 || c.base.Probe == 0 || s.Probe <= c.probeLimit() {
		c.strikes = 0
		return false
	}
	c.strikes++
	return true
}

func (c *controller) probeDetail(s Signals) string {
	return fmt.Sprintf("probe p90 took %s, %.1fx its baseline of %s, over its limit of %s in %d period(s) in a row (max_app_impact.probe_ratio %g, probe_rise %s)",
		round(s.Probe), ratio(s.Probe, c.base.Probe), round(c.base.Probe), round(c.probeLimit()), c.strikes, c.bounds.ProbeRatio, c.rise)
}

// over names the first signal beyond its bound, or "" when all are within;
// the probe counts once it was over in probeStrikes periods in a row.
func (c *controller) over(s Signals, probe bool) (reason, detail string) {
	b := c.base
	switch {
	case s.LockWaiters > 0 && s.LockWait > c.lockWait:
		return "lock_wait", fmt.Sprintf("%d session(s) waited up to %s on a lock the run held (max_app_impact.lock_wait %s)",
			s.LockWaiters, s.LockWait.Round(time.Millisecond), c.lockWait)
	case probe && c.strikes >= probeStrikes:
		return "probe_latency", c.probeDetail(s)
	case ratioOver(s.Commit, b.Commit, c.bounds.CommitRatio, commitSlack):
		return "commit_latency", fmt.Sprintf("commit took %s, %.1fx its baseline of %s (max_app_impact.commit_ratio %g)",
			round(s.Commit), ratio(s.Commit, b.Commit), round(b.Commit), c.bounds.CommitRatio)
	case c.bounds.BatchRatio > 0 && ratioOver(s.PerRow, b.PerRow, c.bounds.BatchRatio, 0):
		return "batch_time", fmt.Sprintf("a batch took %s a row, %.1fx its baseline of %s (max_app_impact.batch_ratio %g)",
			s.PerRow, ratio(s.PerRow, b.PerRow), b.PerRow, c.bounds.BatchRatio)
	}
	return "", ""
}

func ratioOver(v, base time.Duration, limit float64, slack time.Duration) bool {
	return v > 0 && base > 0 && limit > 0 && float64(v) > limit*float64(base) && v-base > slack
}

func ratio(v, base time.Duration) float64 { return float64(v) / float64(base) }

func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// decide takes one period's signals and returns what to do next: halve
// rate and size when a signal is over its bound (wait when both are at
// their floor already), else raise them by a step (a small one near the
// rate that last hurt), back to no limit of its own once the rate reaches
// the ceiling.
//
// A probe over its bound in fewer than probeStrikes periods in a row holds
// the rate and size where they are: no speed-up on a period that may
// have hurt the application.
func (c *controller) decide(s Signals) Decision {
	c.peak = math.Max(c.peak, s.Rate)
	probe := c.probeOver(s)
	if reason, detail := c.over(s, probe); reason != "" {
		if reason == "probe_latency" {
			c.strikes = 0 // the next slow-down for the probe needs as many periods again
		}
		return c.slowDown(s, reason, detail)
	}
	if probe {
		return Decision{Action: ActionHold, Reason: "probe_latency", Detail: c.probeDetail(s), Rate: c.rate, Size: c.size}
	}
	if c.rate == 0 && c.size == c.maxSize {
		return Decision{Action: ActionHold, Reason: "within_bounds", Size: c.size}
	}
	c.size = min(c.maxSize, c.size+max(1, c.maxSize/10))
	if c.rate > 0 {
		c.rate += c.step()
		if top := c.top(); top == 0 || c.rate >= top {
			c.rate = 0
		}
	}
	return Decision{Action: ActionSpeedUp, Reason: "within_bounds", Detail: "every signal within batch.max_app_impact", Rate: c.rate, Size: c.size}
}

func (c *controller) slowDown(s Signals, reason, detail string) Decision {
	floor := float64(c.bounds.MinRowsPerSecond)
	from := c.rate
	if from == 0 {
		from = s.Rate
	}
	if from == 0 {
		from = c.top()
	}
	if (c.rate > 0 && c.rate <= floor) && c.size <= c.minSize {
		return Decision{Action: ActionWait, Reason: reason, Detail: detail, Rate: c.rate, Size: c.size}
	}
	c.trip = from
	c.rate = math.Max(floor, from/2)
	c.size = max(c.minSize, c.size/2)
	return Decision{Action: ActionSlowDown, Reason: reason, Detail: detail, Rate: c.rate, Size: c.size}
}

// top is the rate above which the controller stops limiting: the manifest's
// max_rows_per_second, else the fastest rate measured.
func (c *controller) top() float64 {
	if c.ceiling > 0 {
		return c.ceiling
	}
	return c.peak
}

// step is the additive increase: a twentieth of the top rate, at least the
// floor; but a hundredth from three quarters of the rate the last slow-down
// came from up to that rate, where the application felt the run before, so
// that the run spends most of its time just below the rate that hurt
// instead of climbing back to it every few seconds. Past it (the
// application's load fell) it climbs at the full step again.
func (c *controller) step() float64 {
	step := c.top() / 20
	if c.trip > 0 && c.rate >= 0.75*c.trip && c.rate < c.trip {
		step = c.top() / 100
	}
	return math.Max(float64(max(1, c.bounds.MinRowsPerSecond)), step)
}
