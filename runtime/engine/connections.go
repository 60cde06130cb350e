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
// joined to the run (the old session is gone).
func (r *runner) reconnectForRecord(ctx context.Context) error {
	if r.opts.Connect == nil {
		return errors.New("no way to reconnect")
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		return err
	}
	// The new session records the end as one of the run's: a lane's
	// session may still be alive.
	if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
		r.log.Warn("could not join the run from the new connection", "event", "reconnect", "error", pgdb.ErrorSentence(err))
	}
	r.conn.Close(ctx)
	r.conn = conn
	return nil
}

// reconnect replaces a lost connection and joins the new session to the run.
func (r *runner) reconnect(ctx context.Context) error {
	if r.opts.Connect == nil {
		return errors.New("no way to reconnect")
	}
	conn, err := r.opts.Connect(ctx)
	if err != nil {
		return err
	}
	if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("could not join run %d again after reconnecting: %w", r.run.ID, err)
	}
	r.conn.Close(context.WithoutCancel(ctx))
	r.conn = conn
	r.log.Info("reconnected", "event", "reconnect")
	return nil
}
