// The waits and controls between a run's rounds of batches: pause and
// cancel through the ledger, lagging replicas, the health query, the rate
// limit, and the canary shown to a person.

package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// showCanary hands the committed canary batch of a run paused after it to
// the Canary hook, with the report.spot_check keys read now; the pause
// itself committed with the batch, and the next step waits in obeyControl.
func (r *runner) showCanary(ctx context.Context, o outcome) error {
	r.log.Info("paused after the canary batch", "event", "pause", "canary", true, "batch", o.number)
	if r.hooks.Canary == nil {
		return nil
	}
	c := Canary{RunID: r.run.ID, Batch: o.number, Cursor: o.b.Cursor, Scanned: o.b.Scanned, Changed: o.n, Samples: o.b.Samples}
	var err error
	if c.Spots, c.DryRunID, err = r.canarySpots(ctx); err != nil {
		return err
	}
	r.hooks.Canary(c)
	return nil
}

// canarySpots reads the spot-check keys: those of the dry-run the run
// reconciles with, predictions included, or else the manifest's alone.
func (r *runner) canarySpots(ctx context.Context) ([]SpotResult, int64, error) {
	rec, err := Reconcile(ctx, r.conn, r.run)
	if err != nil {
		return nil, 0, err
	}
	spots := rec.PlannedSpots
	if rec.DryRunID == 0 && r.job.Manifest.Report != nil {
		for _, k := range r.job.Manifest.Report.SpotCheck {
			spots = append(spots, bftype.Spot{Key: k})
		}
	}
	res, err := SpotCheck(ctx, r.conn, r.job.Plan, spots)
	if err != nil {
		return nil, 0, err
	}
	// Only the canary's keys are written yet.
	// Only the canary's keys are written yet: it is the first batch of the
	// first lane, and every other lane's keys come after it.
	MarkNotReached(res, r.lanes[0].cursor, nil)
	return res, rec.DryRunID, nil
}

// obeyControl honours pause and cancel requests from the ledger.
func (r *runner) obeyControl(ctx context.Context) (*Result, error) {
	announced := false
	for {
		c, err := ledger.Control(ctx, r.conn, r.run.ID)
		if err != nil {
			return nil, err
		}
		switch c {
		case ledger.ControlRun:
			if announced {
				r.log.Info("run resumed", "event", "resume")
				r.hooks.wait("resumed", "")
			}
			return nil, nil
		case ledger.ControlCancel:
			return nil, r.stop(ledger.StatusCancelled, bftype.ReasonCancelled, bftype.ExitInterrupted,
				"The run was cancelled through the ledger; it will not resume.", "cancelled by an operator after %d batches", r.batches)
		}
		if !announced {
			r.log.Info("run paused", "event", "pause", "batches", r.batches)
			if r.hooks.Paused != nil {
				r.hooks.Paused(r.run.ID)
			}
			announced = true
		}
		if !sleep(ctx, r.opts.Graceful, r.opts.ControlPoll) {
			return nil, r.stop(ledger.StatusInterrupted, bftype.ReasonInterrupted, bftype.ExitInterrupted,
				"Rerun the same binary to resume from the last committed batch.", "stopped by a signal while paused")
		}
	}
}

// waitForReplicas pauses while any replica lags more than allowed.
func (r *runner) waitForReplicas(ctx context.Context) error {
	if r.opts.MaxReplicationLag <= 0 {
		return nil
	}
	for {
		var lag float64
		err := r.conn.QueryRow(ctx, "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication").Scan(&lag)
		if err != nil {
			return fmt.Errorf("error reading replication lag: %w", err)
		}
		d := time.Duration(lag * float64(time.Second))
		if d <= r.opts.MaxReplicationLag {
			return nil
		}
		r.log.Warn("replica lagging, waiting", "event", "throttle", "lag_ms", ms(d), "max_ms", ms(r.opts.MaxReplicationLag))
		r.hooks.wait("replica_lag", "replica lag "+d.Round(time.Second).String())
		if !sleep(ctx, r.opts.Graceful, time.Second) {
			return nil // the next step sees the signal
		}
	}
}

// waitForHealth pauses while the manifest's health query is above its max;
// the query runs in a read-only transaction.
func (r *runner) waitForHealth(ctx context.Context) error {
	h := r.job.Manifest.Health
	if h == nil {
		return nil
	}
	for {
		// Read-only, like the canary and the checks: a health query that
		// writes fails instead of writing.
		var v float64
		err := pgdb.ReadOnly(ctx, r.conn, r.job.Manifest.Batch.StatementTimeoutDuration(), func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, healthSQL(h.Query)).Scan(&v)
		})
		if err != nil {
			var refusal *bftype.Refusal
			if pgdb.Classify(err) == pgdb.Reconnect || errors.As(err, &refusal) {
				return err
			}
			return r.stop(ledger.StatusFailed, bftype.ReasonFailed, bftype.ExitPartial, "Fix health.query in backfill.yaml, rebuild and have it approved.",
				"the health query failed: %s", pgdb.ErrorSentence(err))
		}
		if v <= h.Max {
			return nil
		}
		r.log.Warn("database unhealthy, waiting", "event", "throttle", "health", v, "max", h.Max)
		r.hooks.wait("unhealthy", fmt.Sprintf("health %g > %g", v, h.Max))
		if !sleep(ctx, r.opts.Graceful, time.Second) {
			return nil // the next step sees the signal
		}
	}
}

// throttle keeps the run under the manifest's rows per second, or the
// adaptive mode's lower rate.
func (r *runner) throttle(ctx context.Context, rows int, took time.Duration) {
	limit := r.rateLimit()
	if limit <= 0 {
		return
	}
	wait := time.Duration(float64(rows)/limit*float64(time.Second)) - took
	if wait > 10*time.Millisecond {
		r.log.Debug("throttling", "event", "throttle", "wait_ms", ms(wait), "max_rows_per_second", math.Round(limit))
	}
	sleep(ctx, r.opts.Graceful, wait)
}
