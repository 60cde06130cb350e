package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options tune how the batches run; zero values take the defaults.
type Options struct {
	// Logger receives structured events (start, batch, backoff, throttle,
	// stop); the CLI adds the run id and launch parameters to every line.
	Logger *slog.Logger
	// Connect opens a new connection after the old one was lost.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// Graceful is closed to stop after the current batch (first Ctrl-C);
	// cancelling the context stops at once, rolling the batch back.
	Graceful <-chan struct{}
	// MaxRetryTime bounds how long one batch is retried before the run
	// stops as partial.
	MaxRetryTime time.Duration
	// TargetBatchTime is the batch duration the batch size adapts toward.
	TargetBatchTime time.Duration
	// MaxReplicationLag pauses batches while a replica lags more (0: off).
	MaxReplicationLag time.Duration
	// ControlPoll is how often a paused run checks whether to resume.
	ControlPoll time.Duration
	// Lanes caps the lanes a new run cuts its scope into (0: the
	// manifest's batch.lanes); a resumed run keeps the lanes it started with.
	Lanes int
	// NoAdaptive switches the adaptive mode off: no probe, no lock-wait
	// sampling, and the run keeps batch.size and max_rows_per_second
	// whatever the application feels.
	NoAdaptive bool
	// PauseAfterCanary pauses the run in the canary batch's own transaction
	// (--pause-after-canary): a person checks the canary's rows, reported
	// through Hooks.Canary, and then runs backfill resume or cancel.
	PauseAfterCanary bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRetryTime == 0 {
		o.MaxRetryTime = 5 * time.Minute
	}
	if o.TargetBatchTime == 0 {
		o.TargetBatchTime = 200 * time.Millisecond
	}
	if o.ControlPoll == 0 {
		o.ControlPoll = time.Second
	}
	return o
}
