package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// The adaptive mode protects the application while a run writes: between
// batches a controller reads what the application feels (sessions waiting
// on the run's locks, the slowest commit, the latency of a probe on another
// connection, the latency of the batches' commits and their time per row),
// each against its bound, and slows the run down (halving its rows per second and its
// batch size) when one goes over batch.max_app_impact, or speeds it up a
// step at a time when all are within it: additive increase, multiplicative
// decrease, as TCP does with its window.

// Slack below which a latency over its ratio is not an impact: a probe of
// 0.2 ms going to 0.5 ms is 2.5x its baseline and nothing anyone feels.
const (
	probeSlack  = time.Millisecond
	commitSlack = 2 * time.Millisecond
)

// Signals are what the application felt during one control period.
type Signals struct {
	// Probe is the median latency of the probes taken while batches were
	// in flight (0: no probe ran).
	Probe time.Duration
	// LockWaiters is the most sessions seen waiting on a lock a session of
	// the run held, and LockWait the longest such wait.
	LockWaiters int
	LockWait    time.Duration
	// Commit is the median latency of the batches' COMMIT (0: no batch).
	Commit time.Duration
	// PerRow is the median time of a batch per row it read (0: no batch).
	PerRow time.Duration
	// Stall is the slowest commit of the period, the probe's or a batch's
	// (0: none): a commit that waits long on the WAL flush makes every
	// session that commits meanwhile wait as long.
	Stall time.Duration
	// Others is the most sessions seen connected to the server, other than
	// the run's own and the monitor's: the application the run may hurt.
	Others int
	// Alone: every sample of the period that succeeded saw no other session,
	// and one did. Then the latency signals are the run's own load and not
	// an impact on anyone. False when unknown (no sample succeeded), so a
	// monitor that fails never switches the protection off.
	Alone bool
	// Rate is the rows per second the run read in the period.
	Rate float64
}

// Baseline is what the signals were before the run loaded the database: the
// probe's median before the first batch, and commit and per-row time of the
// first batches.
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
// lock_wait, commit_stall, probe_latency, commit_latency, batch_time;
// within_bounds or no_other_sessions for a hold or speed-up), a
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
	stall    time.Duration
	ceiling  float64 // manifest max_rows_per_second; 0: none
	maxSize  int
	minSize  int
	base     Baseline
	rate     float64 // 0: unlimited by the controller
	size     int
	peak     float64 // the fastest rate measured, the ceiling when the manifest has none
}

func newController(bounds bftype.AppImpact, ceiling, maxSize, minSize int) *controller {
	return &controller{bounds: bounds, lockWait: bounds.LockWaitDuration(), stall: bounds.CommitStallDuration(), ceiling: float64(ceiling),
		maxSize: maxSize, minSize: max(1, min(minSize, maxSize)), size: maxSize}
}

// over names the first signal beyond its bound, or "" when all are within.
// Only lock waits count while no other session is connected to the server:
// then the probe and the commits measure nothing but the run's own load.
func (c *controller) over(s Signals) (reason, detail string) {
	b := c.base
	switch {
	case s.LockWaiters > 0 && s.LockWait > c.lockWait:
		return "lock_wait", fmt.Sprintf("%d session(s) waited up to %s on a lock the run held (max_app_impact.lock_wait %s)",
			s.LockWaiters, s.LockWait.Round(time.Millisecond), c.lockWait)
	case s.Alone:
		return "", ""
	case c.stall > 0 && s.Stall-b.Probe > c.stall:
		return "commit_stall", fmt.Sprintf("a commit took %s, %s over the probe's baseline of %s, and every session committing meanwhile waited with it (max_app_impact.commit_stall %s)",
			round(s.Stall), round(s.Stall-b.Probe), round(b.Probe), c.stall)
	case ratioOver(s.Probe, b.Probe, c.bounds.ProbeRatio, probeSlack):
		return "probe_latency", fmt.Sprintf("probe took %s, %.1fx its baseline of %s (max_app_impact.probe_ratio %g)",
			round(s.Probe), ratio(s.Probe, b.Probe), round(b.Probe), c.bounds.ProbeRatio)
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
// their floor already), else raise them by a step, back to no limit of its
// own once the rate reaches the ceiling.
func (c *controller) decide(s Signals) Decision {
	c.peak = math.Max(c.peak, s.Rate)
	if reason, detail := c.over(s); reason != "" {
		return c.slowDown(s, reason, detail)
	}
	reason, detail := "within_bounds", "every signal within batch.max_app_impact"
	if s.Alone {
		reason, detail = "no_other_sessions", "no other session connected to the server: only lock waits count"
	}
	if c.rate == 0 && c.size == c.maxSize {
		return Decision{Action: ActionHold, Reason: reason, Size: c.size}
	}
	c.size = min(c.maxSize, c.size+max(1, c.maxSize/10))
	if c.rate > 0 {
		c.rate += c.step()
		if top := c.top(); top == 0 || c.rate >= top {
			c.rate = 0
		}
	}
	return Decision{Action: ActionSpeedUp, Reason: reason, Detail: detail, Rate: c.rate, Size: c.size}
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
// floor.
func (c *controller) step() float64 {
	return math.Max(float64(max(1, c.bounds.MinRowsPerSecond)), c.top()/20)
}
