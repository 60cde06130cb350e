package ledger

import (
	"context"
	"encoding/json"
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
	d, err := LatestDryRun(ctx, conn, "d", nil)
	require.NoError(t, err)
	require.Equal(t, old, d.ID, "a report without off_target")

	on := save("d", map[string]any{"off_target": false})
	save("d", map[string]any{"off_target": true})
	save("other", map[string]any{"off_target": false})
	d, err = LatestDryRun(ctx, conn, "d", nil)
	require.NoError(t, err)
	require.Equal(t, on, d.ID, "the newer off-target report was taken")

	d, err = LatestDryRun(ctx, conn, "none", nil)
	require.NoError(t, err)
	require.Nil(t, d)
}

// Run once is per run signature, purpose and parameter values: a completed
// run of one cutoff neither blocks nor is resumed by a run of another, and
// the database refuses a second completed run of the same values.
func TestRunOncePerParams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = Init(ctx, conn, "test")
	require.NoError(t, err)

	early, late := json.RawMessage(`{"cutoff":"2025-01-01"}`), json.RawMessage(`{"cutoff": "2026-08-01"}`)
	run := func(params json.RawMessage) Run {
		return Run{Backfill: "b", Digest: "d", RunSignature: "sig", Purpose: "execute", OSUser: "u", ClientHost: "h",
			CodeVersion: "v", SourceCommit: "c", Params: params, ApprovalIDs: []int64{}}
	}
	first, resumed, err := Start(ctx, conn, run(early))
	require.NoError(t, err)
	require.False(t, resumed)
	require.JSONEq(t, string(early), string(first.Params))
	require.NoError(t, Finish(ctx, conn, first.ID, StatusCompleted, "", ""))

	done, err := Ended(ctx, conn, "sig", "execute", early)
	require.NoError(t, err)
	require.Equal(t, first.ID, done.ID)
	done, err = Ended(ctx, conn, "sig", "execute", late)
	require.NoError(t, err)
	require.Nil(t, done, "another cutoff has not run")
	done, err = Ended(ctx, conn, "sig", "execute", nil)
	require.NoError(t, err)
	require.Nil(t, done, "no parameters is a value of its own")

	second, resumed, err := Start(ctx, conn, run(late))
	require.NoError(t, err)
	require.False(t, resumed, "a run of other values is not resumed")
	require.NotEqual(t, first.ID, second.ID)
	again, resumed, err := Start(ctx, conn, run(json.RawMessage(`{"cutoff":"2026-08-01"}`)))
	require.NoError(t, err)
	require.True(t, resumed, "the same values, spelt differently, resume")
	require.Equal(t, second.ID, again.ID)

	third, _, err := Start(ctx, conn, run(early))
	require.NoError(t, err)
	require.Error(t, Finish(ctx, conn, third.ID, StatusCompleted, "", ""), "the database keeps one completed run per values")
}
