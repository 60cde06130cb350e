// A run's connections: reconnecting after a lost connection, and joining the
// new session to the run in the ledger.

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// recover turns a lost connection between batches into a reconnect (the
// step then runs again) and returns every other error as it is.
func (r *runner) recover(ctx context.Context, err error) error {
	var refusal *bftype.Refusal
	if err == nil || errors.As(err, &refusal) || pgdb.Classify(err) != pgdb.Reconnect {
		return err
	}
	r.log.Warn("connection lost between batches, reconnecting", "event", "backoff", "error", pgdb.ErrorSentence(err))
	r.hooks.wait("reconnect", "connection lost; reconnecting")
	for attempt := 0; ; attempt++ {
		if !sleep(ctx, r.opts.Graceful, backoff(attempt)) {
			return nil // the next step sees the signal
		}
		rerr := r.reconnect(ctx)
		if rerr == nil {
			return nil
		}
		if attempt > 20 {
			return r.stop(ledger.StatusPartial, bftype.ReasonFailed, bftype.ExitPartial,
				"Check the database, then rerun the same binary: it resumes after the last committed batch.",
				"could not reconnect after losing the connection: %s", pgdb.ErrorSentence(rerr))
		}
	}
}

// reconnectForRecord opens a fresh connection to record how the run ended,
// joined to the run (the old session is gone; a lane's may still be alive).
// Failing to join is not fatal here: finish_run lets the run's login record
// the end when no session of the run is alive.
func (r *runner) reconnectForRecord(ctx context.Context) error {
	return r.rejoin(ctx, false)
}

// reconnect replaces a lost connection and joins the new session to the run.
func (r *runner) reconnect(ctx context.Context) error {
	if err := r.rejoin(ctx, true); err != nil {
		return err
	}
	r.log.Info("reconnected", "event", "reconnect")
	return nil
}

// rejoin replaces the run's connection with a new one joined to the run;
// when the join fails, must says whether that is an error or a warning.
func (r *runner) rejoin(ctx context.Context, must bool) error {
	if r.opts.Connect == nil {
		return errors.New("no way to reconnect")
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		return err
	}
	if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
		if must {
			conn.Close(context.WithoutCancel(ctx))
			return fmt.Errorf("could not join run %d again after reconnecting: %w", r.run.ID, err)
		}
		r.log.Warn("could not join the run from the new connection", "event", "reconnect", "error", pgdb.ErrorSentence(err))
	}
	r.conn.Close(context.WithoutCancel(ctx))
	r.conn = conn
	return nil
}
