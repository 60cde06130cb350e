package ledger

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// A dry-run of another database than the manifest's target describes that
// database: the latest report a run reconciles with and cuts lanes by is the
// latest on-target one, and a report saved before off_target existed counts.
func TestLatestDryRunIgnoresOffTargetReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = Init(ctx, conn, "test")
	require.NoError(t, err)

	save := func(digest string, report map[string]any) int64 {
		t.Helper()
		id, err := SaveDryRun(ctx, conn, "b", digest, "sig", report)
		require.NoError(t, err)
		return id
	}
	old := save("d", map[string]any{"counts": map[string]int{"will_change": 1}})
	d, err := LatestDryRun(ctx, conn, "d")
	require.NoError(t, err)
	require.Equal(t, old, d.ID, "a report without off_target")

	on := save("d", map[string]any{"off_target": false})
	save("d", map[string]any{"off_target": true})
	save("other", map[string]any{"off_target": false})
	d, err = LatestDryRun(ctx, conn, "d")
	require.NoError(t, err)
	require.Equal(t, on, d.ID, "the newer off-target report was taken")

	d, err = LatestDryRun(ctx, conn, "none")
	require.NoError(t, err)
	require.Nil(t, d)
}
