package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/pgdb"
)

// readOnlySQL makes every statement of the monitor's connection read-only:
// the probe reads the target table through the scope's page query, and a
// page query that locks its rows (FOR UPDATE) is refused there instead of
// taking a lock the application would wait on. A read-only transaction may
// still take a transaction id, which the probe commits.
const readOnlySQL = "SET default_transaction_read_only = on"

// commitProbeSQL ends every probe: a transaction that takes a transaction
// id and commits, writing no table, so that, as an application's commit
// does, it waits for the WAL flush the run's batches make longer. Alone, it
// is the probe when the target table cannot be read (no SELECT privilege, a
// page query that locks, or one too slow to run 20 times a second).
const commitProbeSQL = "SELECT pg_current_xact_id()"

// readProbeMax is the slowest median of the probe's read (without its
// commit) that the monitor keeps; a page query slower than this costs the
// server too much 20 times a second.
const readProbeMax = 5 * time.Millisecond

// Reader is the read of the probe: it reads the row of the target table after the
// key cursor (JSON) through the scope's page query, on db, which is
// read-only. The engine makes it from the job's plan.
type Reader func(ctx context.Context, db *pgx.Conn, cursor json.RawMessage) error

// lockWaitSQL counts the sessions waiting on a lock that a session of the
// run ($1, their backend pids) holds or waits ahead of, and the longest
// wait (pg_locks.waitstart, PostgreSQL 14 and later). Every login sees
// pg_locks and may call pg_blocking_pids.
const lockWaitSQL = `SELECT count(DISTINCT w.pid)::int, coalesce(max(extract(epoch FROM clock_timestamp() - w.waitstart)), 0)::float8
	FROM (SELECT pid, waitstart FROM pg_locks WHERE NOT granted AND pid <> ALL($1::int[])) AS w
	WHERE pg_blocking_pids(w.pid) && $1::int[]`

// probeEvery is the monitor's tick: one probe and one lock sample.
const probeEvery = 50 * time.Millisecond

// monitor samples, on its own connection and beside the batches, what the
// application feels: the probe's latency and the sessions waiting behind the
// run. The controller takes its samples once a control period.
type monitor struct {
	conn     *pgx.Conn
	connect  func(context.Context) (*pgx.Conn, error)
	read     Reader          // nil: the probe only commits
	readMax  time.Duration   // readProbeMax; tests on a loaded machine raise it
	reads    []time.Duration // the reads' own times, while the baseline is taken
	lost     time.Time       // when the last reconnect was tried
	pids     atomic.Pointer[[]int32]
	cursor   atomic.Pointer[json.RawMessage] // the run's last committed key, where the read probe reads
	inFlight atomic.Bool                     // a batch is being written
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	busy    []time.Duration // probes while a batch was in flight
	idle    []time.Duration // probes between batches
	waiters int
	wait    time.Duration
	err     error // the last error of the sampling, if any
}

// newMonitor makes conn read-only and returns the monitor that probes on
// it: reading with read when not nil, then committing.
func newMonitor(ctx context.Context, conn *pgx.Conn, connect func(context.Context) (*pgx.Conn, error), read Reader) (*monitor, error) {
	if _, err := conn.Exec(ctx, readOnlySQL); err != nil {
		return nil, fmt.Errorf("error making the probe's connection read-only: %w", err)
	}
	return &monitor{conn: conn, connect: connect, read: read, readMax: readProbeMax, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// reconnect replaces a lost connection, at most once a second.
func (m *monitor) reconnect(ctx context.Context) {
	if time.Since(m.lost) < time.Second {
		return
	}
	m.lost = time.Now()
	conn, err := m.connect(ctx)
	if err != nil {
		return
	}
	if _, err := conn.Exec(ctx, readOnlySQL); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return
	}
	m.conn.Close(context.WithoutCancel(ctx))
	m.conn = conn
}

// baseline is the 90th percentile of n probes before the run writes
// anything. When the read fails or is too slow to run 20 times a second,
// the monitor probes with the commit alone and says why (fell).
func (m *monitor) baseline(ctx context.Context, n int) (base time.Duration, fell string, err error) {
	if m.read != nil {
		m.reads = []time.Duration{}
		ds, err := m.probes(ctx, n)
		read := median(m.reads)
		m.reads = nil
		switch {
		case err != nil:
			fell = "the read probe failed: " + pgdb.ErrorSentence(err)
		case read > m.readMax:
			fell = fmt.Sprintf("the read probe took %s, more than %s", round(read), m.readMax)
		default:
			return tail(ds), "", nil
		}
		m.read = nil
	}
	ds, err := m.probes(ctx, n)
	if err != nil {
		return 0, fell, err
	}
	return tail(ds), fell, nil
}

func (m *monitor) probes(ctx context.Context, n int) ([]time.Duration, error) {
	var ds []time.Duration
	for range n {
		d, err := m.probe(ctx)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		time.Sleep(10 * time.Millisecond)
	}
	return ds, nil
}

// probe is what an application's transaction does, on the monitor's
// connection: it reads a row of the target table after the run's cursor
// (the row the next batch reads first: in the buffers and on the pages the
// run works on), then commits a transaction id; its latency is both.
func (m *monitor) probe(ctx context.Context) (time.Duration, error) {
	began := time.Now()
	if m.read != nil {
		var cursor json.RawMessage
		if c := m.cursor.Load(); c != nil {
			cursor = *c
		}
		if err := m.read(ctx, m.conn, cursor); err != nil {
			return 0, err
		}
		if m.reads != nil {
			m.reads = append(m.reads, time.Since(began))
		}
	}
	_, err := m.conn.Exec(ctx, commitProbeSQL)
	return time.Since(began), err
}

// kind names the probe for the log: read+commit, or commit when the
// target table is not read.
func (m *monitor) kind() string {
	if m.read != nil {
		return "read+commit"
	}
	return "commit"
}

// run samples until close; errors are kept for the log, never stop the run.
func (m *monitor) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.sample(ctx)
	}
}

func (m *monitor) sample(ctx context.Context) {
	if m.conn.IsClosed() {
		m.reconnect(ctx)
	}
	busy := m.inFlight.Load()
	d, err := m.probe(ctx)
	var waiters int
	var wait float64
	if pids := m.pids.Load(); err == nil && pids != nil {
		err = m.conn.QueryRow(ctx, lockWaitSQL, *pids).Scan(&waiters, &wait)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.err = err
		return
	}
	if busy || m.inFlight.Load() {
		m.busy = append(m.busy, d)
	} else {
		m.idle = append(m.idle, d)
	}
	m.waiters = max(m.waiters, waiters)
	m.wait = max(m.wait, time.Duration(wait*float64(time.Second)))
}

// take returns the signals sampled since the last take and starts anew: the
// 90th percentile of the probes taken while batches were in flight (of all
// probes when none was; the controller acts on it only when it is over in
// two periods in a row, since the tail of a dozen probes is noisy), the
// most sessions seen waiting behind the run and the longest wait.
func (m *monitor) take() (Signals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	probes := m.busy
	if len(probes) == 0 {
		probes = m.idle
	}
	s := Signals{Probe: tail(probes), LockWaiters: m.waiters, LockWait: m.wait}
	err := m.err
	m.busy, m.idle, m.waiters, m.wait, m.err = m.busy[:0], m.idle[:0], 0, 0, nil
	return s, err
}

func (m *monitor) close() {
	close(m.stop)
	<-m.done
	m.conn.Close(context.Background())
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// tail is the probe's statistic: the 90th percentile, of ten probes the
// second slowest.
func tail(ds []time.Duration) time.Duration { return percentile(ds, 0.9) }

// percentile is the q-th quantile of ds (nearest rank: the smallest value
// at least a fraction q of ds is at or below); 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1))]
}
