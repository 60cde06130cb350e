package engine

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// A spot check of a key the run has not reached says so, instead of
// MISMATCH: its row still holds the value from before (found by the demo:
// a canary paused for a person showed a key far past it as a mismatch).
func TestSpotChecksAfterTheCheckpointAreNotReached(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	spot := func(key string) SpotResult {
		return SpotResult{Key: raw(key), Current: map[string]json.RawMessage{"role": raw(`"member"`)},
			Predicted: bftype.Spot{Key: raw(key), InScope: true, Change: true,
				Diffs: []bftype.FieldDiff{{Field: "role", Before: raw(`"member"`), After: raw(`"viewer"`)}}}}
	}
	res := []SpotResult{spot("14"), spot("1092"), spot("9007199254740993")}
	MarkNotReached(res, raw("50"), nil)
	require.False(t, res[0].NotReached)
	require.Equal(t, "MISMATCH", res[0].Verdict(), "a key the canary wrote is checked")
	require.True(t, res[1].NotReached)
	require.Equal(t, "not reached yet (after the run's checkpoint)", res[1].Verdict())
	require.True(t, res[2].NotReached, "big keys compare exactly")

	lanes := []ledger.Lane{{Lane: 0, Until: raw("500"), Cursor: raw("100")}, {Lane: 1, After: raw("500"), Cursor: raw("1200")}}
	res = []SpotResult{spot("14"), spot("200"), spot("1092"), spot("1500")}
	MarkNotReached(res, nil, lanes)
	require.Equal(t, []bool{false, true, false, true}, []bool{res[0].NotReached, res[1].NotReached, res[2].NotReached, res[3].NotReached})

	res = []SpotResult{spot(`"b"`), spot(`"z"`)}
	MarkNotReached(res, raw(`"m"`), nil)
	require.Equal(t, []bool{false, true}, []bool{res[0].NotReached, res[1].NotReached})
}
