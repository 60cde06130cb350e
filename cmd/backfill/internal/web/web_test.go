package web

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/ledger"
)

func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr   string
		remote bool
		token  string
		ok     bool
	}{
		{"127.0.0.1:8080", false, "", true},
		{"127.0.0.2:0", false, "", true},
		{"[::1]:8080", false, "", true},
		{"localhost:8080", false, "", true},
		{":8080", false, "", false},
		{"0.0.0.0:8080", true, "", false},
		{"0.0.0.0:8080", false, "t", false},
		{"0.0.0.0:8080", true, "t", true},
		{"db.example.com:8080", true, "t", true},
	} {
		err := CheckListen(c.addr, c.remote, c.token)
		if c.ok {
			require.NoError(t, err, c.addr)
		} else {
			require.True(t, errors.Is(err, ErrRemote), "%s: %v", c.addr, err)
		}
	}
	require.Error(t, CheckListen("8080", false, ""), "no host:port")
}

func TestRunViewFormatsProgressRateAndETA(t *testing.T) {
	t.Parallel()
	matched := int64(1000)
	r := ledger.Run{ID: 7, Status: ledger.StatusRunning, Matched: &matched, Scanned: 250, Changed: 200, Batches: 25, UpdatedAt: time.Unix(0, 0)}
	v := newRunView(r, ledger.Live{Control: ledger.ControlPause, Lanes: 4, LanesDone: 1, WindowRows: 100, WindowSeconds: 2})
	require.Equal(t, "paused", v.State)
	require.Equal(t, 25.0, *v.Percent)
	require.Equal(t, 50.0, v.RowsPerSec)
	require.Equal(t, 15.0, *v.ETASeconds)
	require.Equal(t, map[string]string{"state": "paused", "stop_reason": "", "scanned": "250", "changed": "200", "batches": "25",
		"matched": "1000", "percent": "25.0%", "rate": "50 rows/s", "eta": "15s", "lanes": "1/4 done",
		"updated": "1970-01-01T00:00:00Z", "progress": "250 / 1000"}, v.Cells)

	reason := "interrupted"
	r = ledger.Run{Status: ledger.StatusInterrupted, StopReason: &reason, Scanned: 3}
	v = newRunView(r, ledger.Live{WindowRows: 100, WindowSeconds: 2})
	require.Equal(t, "interrupted", v.Cells["stop_reason"])
	require.Nil(t, v.Percent, "no scope count, no percentage")
	require.Equal(t, "-", v.Cells["rate"], "only a running run has a rate")
	data, err := json.Marshal(v)
	require.NoError(t, err)
	require.Contains(t, string(data), `"percent":null`)
}

func TestTimelineMarksRetriesAndSamplesLongRuns(t *testing.T) {
	t.Parallel()
	require.True(t, timeline(nil).Empty)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batches []ledger.Batch
	for i := range 5000 {
		attempts := 1
		if i == 10 {
			attempts = 3
		}
		batches = append(batches, ledger.Batch{Scanned: 10, Attempts: attempts, Committed: start.Add(time.Duration(i) * time.Second)})
	}
	c := timeline(batches)
	require.Equal(t, int64(50000), c.MaxRows)
	require.Len(t, c.Retries, 1)
	points := strings.Fields(c.Line)
	require.LessOrEqual(t, len(points), chartMaxPoints+2)
	require.Equal(t, "40.0,160.0", points[0])
	require.Equal(t, "760.0,40.0", points[len(points)-1], "the last batch is the top right corner")
}
