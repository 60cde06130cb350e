package app_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

// TestHostPinIsTheServerReached: with target.host localhost, a connection
// string "localhost:1,127.0.0.1:5432" names localhost first but reaches
// 127.0.0.1 (nothing answers on port 1); it is refused. One that names
// localhost on port 5432, target.host's default port, passes the check.
func TestHostPinIsTheServerReached(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"  environment: demo\n", "  environment: demo\n  host: localhost\n"})
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	u, err := url.Parse(x.runner)
	require.NoError(t, err)
	require.Equal(t, "5432", u.Port(), "this test needs the server on the default port")
	multi := strings.Replace(x.runner, "@"+u.Host+"/", "@localhost:1,"+u.Host+"/", 1)

	before := x.state()
	res := runBinary(t, nil, x.bin, "--execute", "--database-url", multi)
	x.requireRefused(res, before, bftype.ExitEnvironment, bftype.ReasonEnvironment,
		`The connection string names 2 hosts (localhost:1, `+u.Host+`); --execute and revert connect to exactly one`)

	single := strings.Replace(x.runner, "@"+u.Host+"/", "@localhost:5432/", 1)
	res = runBinary(t, nil, x.bin, "--execute", "--database-url", single)
	require.Equal(t, 0, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "ok  environment")
}
