package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// probeSQL is the probe of the adaptive mode: a transaction that takes a
// transaction id and commits, writing no table. Its commit writes a commit
// record and waits for the WAL flush, as an application's commit does, so
// its latency rises with the round trip, the CPU and the WAL the run
// competes for. It uses one transaction id per probe.
const probeSQL = "SELECT pg_current_xact_id()"

// lockWaitSQL counts the sessions waiting on a lock that a session of the
// run ($1, their backend pids) holds or waits ahead of, and the longest
// wait (pg_locks.waitstart, PostgreSQL 14 and later), and the sessions
// connected to a database of the server other than the run's (with their
// parallel workers) and this one.
// Every login sees pg_locks, may call pg_blocking_pids and sees the pid and
// database of every session in pg_stat_activity.
const lockWaitSQL = `SELECT count(DISTINCT w.pid)::int, coalesce(max(extract(epoch FROM clock_timestamp() - w.waitstart)), 0)::float8,
		(SELECT count(*) FROM pg_stat_activity AS a
			WHERE a.datid IS NOT NULL AND coalesce(a.leader_pid, a.pid) <> ALL($1::int[]) AND a.pid <> pg_backend_pid())::int
	FROM (SELECT pid, waitstart FROM pg_locks WHERE NOT granted AND pid <> ALL($1::int[])) AS w
	WHERE pg_blocking_pids(w.pid) && $1::int[]`

// probeEvery is the monitor's tick: one probe and one lock sample.
const probeEvery = 50 * time.Millisecond

// monitor samples, on its own connection and beside the batches, what the
// application feels: the probe's latency, the sessions waiting behind the
// run, and how many other sessions are connected. The controller takes its
// samples once a control period.
type monitor struct {
	conn     *pgx.Conn
	connect  func(context.Context) (*pgx.Conn, error)
	lost     time.Time // when the last reconnect was tried
	pids     atomic.Pointer[[]int32]
	inFlight atomic.Bool // a batch is being written
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	busy    []time.Duration // probes while a batch was in flight
	idle    []time.Duration // probes between batches
	slowest time.Duration   // the slowest probe
	waiters int
	wait    time.Duration
	others  int
	sampled int   // samples that succeeded
	err     error // the last error of the sampling, if any
}

func newMonitor(conn *pgx.Conn, connect func(context.Context) (*pgx.Conn, error)) *monitor {
	return &monitor{conn: conn, connect: connect, stop: make(chan struct{}), done: make(chan struct{})}
}

// reconnect replaces a lost connection, at most once a second.
func (m *monitor) reconnect(ctx context.Context) {
	if time.Since(m.lost) < time.Second {
		return
	}
	m.lost = time.Now()
	if conn, err := m.connect(ctx); err == nil {
		m.conn.Close(context.WithoutCancel(ctx))
		m.conn = conn
	}
}

// baseline is the median of n probes before the run writes anything.
func (m *monitor) baseline(ctx context.Context, n int) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		d, err := m.probe(ctx)
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
		time.Sleep(10 * time.Millisecond)
	}
	return median(ds), nil
}

func (m *monitor) probe(ctx context.Context) (time.Duration, error) {
	began := time.Now()
	_, err := m.conn.Exec(ctx, probeSQL)
	return time.Since(began), err
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
	var waiters, others int
	var wait float64
	if pids := m.pids.Load(); err == nil && pids != nil {
		err = m.conn.QueryRow(ctx, lockWaitSQL, *pids).Scan(&waiters, &wait, &others)
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
	m.slowest = max(m.slowest, d)
	m.waiters = max(m.waiters, waiters)
	m.wait = max(m.wait, time.Duration(wait*float64(time.Second)))
	m.others = max(m.others, others)
	m.sampled++
}

// take returns the signals sampled since the last take and starts anew: the
// median of the probes taken while batches were in flight (of all probes
// when none was; a higher percentile of a dozen probes on a busy machine
// slowed runs down for noise), the slowest probe, the most sessions seen
// waiting behind the run and the longest wait, the most other sessions
// seen connected, and whether the run was alone (known only when a sample
// succeeded).
func (m *monitor) take() (Signals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	probes := m.busy
	if len(probes) == 0 {
		probes = m.idle
	}
	s := Signals{Probe: median(probes), Stall: m.slowest, LockWaiters: m.waiters, LockWait: m.wait, Others: m.others,
		Alone: m.sampled > 0 && m.others == 0}
	err := m.err
	m.busy, m.idle, m.slowest, m.waiters, m.wait, m.others, m.sampled, m.err = m.busy[:0], m.idle[:0], 0, 0, 0, 0, 0, nil
	return s, err
}

func (m *monitor) close() {
	close(m.stop)
	<-m.done
	m.conn.Close(context.Background())
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// percentile is the q-th quantile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
