package engine

import (
	"context"
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
	m := newMonitor(probeConn, connect)
	defer m.conn.Close(ctx)

	s, err := m.take()
	require.NoError(t, err)
	require.False(t, s.Alone, "no sample yet: whether anyone is there is unknown, not no one")
	base, err := m.baseline(ctx, 3)
	require.NoError(t, err)
	require.Greater(t, base, time.Duration(0))
	pids := []int32{int32(run.PgConn().PID())}
	m.pids.Store(&pids)

	m.sample(ctx)
	s, err = m.take()
	require.NoError(t, err)
	require.Zero(t, s.LockWaiters, "nobody waits yet")
	require.GreaterOrEqual(t, s.Others, 1, "the other session is someone the run may hurt")
	require.False(t, s.Alone)
	require.Greater(t, s.Stall, time.Duration(0), "the slowest probe of the period")

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
