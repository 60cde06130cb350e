package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// The monitor sees a session that waits on a lock the run's session holds,
// and only such sessions; its probe commits without writing a table.
func TestMonitorSeesSessionsWaitingBehindTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v int)", "INSERT INTO t VALUES (1, 0)")
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, db) }
	run, err := connect(ctx)
	require.NoError(t, err)
	defer run.Close(ctx)
	other, err := connect(ctx)
	require.NoError(t, err)
	defer other.Close(ctx)
	probeConn, err := connect(ctx)
	require.NoError(t, err)
	m, err := newMonitor(ctx, probeConn, connect, nil)
	require.NoError(t, err)
	defer m.conn.Close(ctx)

	base, fell, err := m.baseline(ctx, 3)
	require.NoError(t, err)
	require.Empty(t, fell)
	require.Greater(t, base, time.Duration(0))
	pids := []int32{int32(run.PgConn().PID())}
	m.pids.Store(&pids)

	m.sample(ctx)
	s, err := m.take()
	require.NoError(t, err)
	require.Zero(t, s.LockWaiters, "nobody waits yet")

	tx, err := run.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE t SET v = 1 WHERE id = 1")
	require.NoError(t, err)
	waiting := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, "UPDATE t SET v = 2 WHERE id = 1")
		waiting <- err
	}()
	require.Eventually(t, func() bool {
		m.sample(ctx)
		s, err = m.take()
		return err == nil && s.LockWaiters == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-waiting)

	// A session that waits on someone else is not the run's doing.
	require.Equal(t, "0", pgtest.Query(t, db, "SELECT v - 2 FROM t WHERE id = 1"))
	tx, err = other.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE t SET v = 3 WHERE id = 1")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = run.Exec(ctx, "SET lock_timeout = '5s'; UPDATE t SET v = 4 WHERE id = 1")
	}()
	require.Eventually(t, func() bool {
		return pgtest.Query(t, db, "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", pids[0]) != "0"
	}, 10*time.Second, 20*time.Millisecond)
	m.sample(ctx)
	s, err = m.take()
	require.NoError(t, err)
	require.Zero(t, s.LockWaiters, "the run waiting on another session is not a wait behind the run")
	require.NoError(t, tx.Rollback(ctx))
	<-done
}

// The read probe reads the row after the run's cursor on a read-only
// connection: a row the application holds locked does not stop it, and a
// page query that would lock rows is refused there, so the monitor falls
// back to probing with a commit alone instead of taking locks the
// application waits on.
func TestMonitorReadProbeReadsWithoutLocking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v int)", "INSERT INTO t SELECT i, 0 FROM generate_series(1, 10) i")
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, db) }
	app, err := connect(ctx)
	require.NoError(t, err)
	defer app.Close(ctx)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT * FROM t WHERE id = 4 FOR UPDATE")
	require.NoError(t, err)

	after := func(lock string) (Reader, *[]json.RawMessage) {
		var seen []json.RawMessage
		return func(ctx context.Context, db *pgx.Conn, cursor json.RawMessage) error {
			seen = append(seen, cursor)
			var id int
			return db.QueryRow(ctx, "SELECT id FROM t WHERE id > $1 ORDER BY id LIMIT 1"+lock, string(cursor)).Scan(&id)
		}, &seen
	}
	read, seen := after("")
	conn, err := connect(ctx)
	require.NoError(t, err)
	m, err := newMonitor(ctx, conn, connect, read)
	require.NoError(t, err)
	defer m.conn.Close(ctx)
	m.readMax = time.Minute // a loaded test machine is no reason to stop reading
	cursor := json.RawMessage("3")
	m.cursor.Store(&cursor)
	base, fell, err := m.baseline(ctx, 3)
	require.NoError(t, err)
	require.Empty(t, fell)
	require.Equal(t, "read+commit", m.kind())
	require.Less(t, base, time.Second, "the read waited on the application's row lock")
	require.Equal(t, []json.RawMessage{cursor, cursor, cursor}, *seen)

	m.readMax = time.Nanosecond
	m.read = read
	_, fell, err = m.baseline(ctx, 3)
	require.NoError(t, err)
	require.Contains(t, fell, "the read probe took", "a read too slow to run 20 times a second")
	require.Equal(t, "commit", m.kind())

	locking, _ := after(" FOR UPDATE")
	conn, err = connect(ctx)
	require.NoError(t, err)
	m, err = newMonitor(ctx, conn, connect, locking)
	require.NoError(t, err)
	defer m.conn.Close(ctx)
	m.cursor.Store(&cursor)
	// Row 4, the one after the cursor, is locked by the application: a
	// locking read that the connection did not refuse would wait on it.
	_, fell, err = m.baseline(ctx, 3)
	require.NoError(t, err)
	require.Contains(t, fell, "read-only transaction")
	require.Equal(t, "commit", m.kind())
}

// The tail is the nearest-rank 90th percentile: of ten probes the second
// slowest, so that one stray probe is not the period's figure.
func TestTailIsTheSecondSlowestOfTen(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := range 10 {
		ds = append(ds, time.Duration(i+1)*time.Millisecond)
	}
	require.Equal(t, 9*time.Millisecond, tail(ds))
	require.Equal(t, 5*time.Millisecond, median(ds))
	require.Equal(t, time.Duration(0), tail(nil))
	require.Equal(t, 3*time.Millisecond, tail([]time.Duration{3 * time.Millisecond}))
}
