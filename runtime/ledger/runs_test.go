package ledger

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

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
// run of one cutoff neither blocks nor is resumed by a run of another, a run
// of the same values resumes only once its session is gone, and the
// database refuses a second completed run of the same values.
func TestRunOncePerParams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newLedgerDB(t)
	early, late := json.RawMessage(`{"cutoff":"2025-01-01"}`), json.RawMessage(`{"cutoff": "2026-08-01"}`)
	for _, values := range []json.RawMessage{early, late} {
		st := statement(d.alice, "execute", testStatements(), time.Hour)
		st = strings.Replace(st, `"purpose":"execute"`, `"purpose":"execute","params":`+string(values), 1)
		_, err := AddApproval(ctx, d.as(d.alice), Approval{Approver: d.alice, Statement: st, Signature: "s"})
		require.NoError(t, err)
	}
	run := func(params json.RawMessage) Run {
		r := testRun("execute")
		r.Params = params
		return r
	}
	runner := d.as(d.runner)
	first, resumed, err := Start(ctx, runner, run(early), testStatements(), 1)
	require.NoError(t, err)
	require.False(t, resumed)
	require.JSONEq(t, string(early), string(first.Params))
	require.Equal(t, d.runner, first.DBUser, "the database sets the login")
	require.NoError(t, Finish(ctx, runner, first.ID, StatusCompleted, "", ""))

	done, err := Ended(ctx, runner, "sig", "execute", early)
	require.NoError(t, err)
	require.Equal(t, first.ID, done.ID)
	done, err = Ended(ctx, runner, "sig", "execute", late)
	require.NoError(t, err)
	require.Nil(t, done, "another cutoff has not run")
	_, _, err = Start(ctx, runner, run(nil), testStatements(), 1)
	require.True(t, IsCode(err, CodeNotApproved), "no parameters is a value of its own, not approved: %v", err)

	other := d.as(d.runner)
	second, resumed, err := Start(ctx, other, run(late), testStatements(), 1)
	require.NoError(t, err)
	require.False(t, resumed, "a run of other values is not resumed")
	require.NotEqual(t, first.ID, second.ID)
	_, _, err = Start(ctx, runner, run(json.RawMessage(`{"cutoff":"2026-08-01"}`)), testStatements(), 1)
	require.True(t, IsCode(err, CodeHeld), "a live session holds it: %v", err)
	d.gone(other)
	again, resumed, err := Start(ctx, runner, run(json.RawMessage(`{"cutoff":"2026-08-01"}`)), testStatements(), 1)
	require.NoError(t, err)
	require.True(t, resumed, "the same values, spelt differently, resume once the session is gone")
	require.Equal(t, second.ID, again.ID)

	_, _, err = Start(ctx, d.as(d.runner), run(early), testStatements(), 1)
	require.True(t, IsCode(err, CodeAlreadyDone), "%v", err)
}
