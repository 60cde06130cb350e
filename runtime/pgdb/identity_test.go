package pgdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

func identity(t *testing.T, db string) pgdb.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgdb.Connect(ctx, db, pgdb.FromFlag, "identity test")
	require.NoError(t, err)
	defer conn.Close(ctx)
	id, err := pgdb.ReadIdentity(ctx, conn)
	require.NoError(t, err)
	return id
}

// withHost is db with its host:port replaced by hostport.
func withHost(t *testing.T, db, hostport string) string {
	t.Helper()
	u := mustURL(t, db)
	return strings.Replace(db, "@"+u.Host+"/", "@"+hostport+"/", 1)
}

// TestReachedComparesHostAndPortActuallyConnected: a pin is a host and a
// port (5432 when it names none), matched against the pair dialed, the
// socket's peer or the server's own address, never a host alone.
func TestReachedComparesHostAndPortActuallyConnected(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	u := mustURL(t, db)
	require.Equal(t, "5432", u.Port(), "this test needs the server on the default port")
	id := identity(t, withHost(t, db, "localhost:5432"))
	require.Equal(t, []string{"localhost:5432"}, id.Hosts)
	for pin, want := range map[string]bool{
		"localhost": true, "LOCALHOST:5432": true, "127.0.0.1": true, "127.0.0.1:5432": true,
		"localhost:6432": false, "127.0.0.1:6432": false, "db.prod.internal": false, "10.0.0.1": false,
	} {
		require.Equal(t, want, id.Reached(pgdb.ParsePin(pin)), "pin %q, connected to %s", pin, id.Where())
	}
}

// TestMultiHostConnectionsNameNoHost: with "db1,db2" pgx reaches the first
// that answers; the identity lists every host and does not claim the first
// one (unreachable here) as the one dialed.
func TestMultiHostConnectionsNameNoHost(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	id := identity(t, withHost(t, db, "localhost:1,127.0.0.1:5432"))
	require.Equal(t, []string{"localhost:1", "127.0.0.1:5432"}, id.Hosts)
	require.Empty(t, id.DialedHost)
	require.False(t, id.Reached(pgdb.ParsePin("localhost:1")), "the first host was never reached")
	require.False(t, id.Reached(pgdb.ParsePin("localhost")), "localhost was dialed only on port 1")
	require.True(t, id.Reached(pgdb.ParsePin("127.0.0.1:5432")), id.Where())
}
