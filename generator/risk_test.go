package generator

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/model"
	"github.com/runonce/backfill/runtime/bftype"
)

// A DELETE below high risk needs a reason; every other kind, and a DELETE
// at high risk, needs none.
func TestCheckRisk(t *testing.T) {
	t.Parallel()
	del := model.Apply{Kind: model.KindDelete, Table: "sessions"}
	for _, risk := range []string{"low", "medium"} {
		err := checkRisk("purge", &bftype.Manifest{Risk: risk}, del)
		require.EqualError(t, err, `backfill "purge": its Apply statement deletes rows (DELETE FROM sessions), so backfill.yaml needs risk: high, `+
			`or, to keep risk: `+risk+`, a risk_reason: "..." saying why deleting them is not high risk`)
		require.NoError(t, checkRisk("purge", &bftype.Manifest{Risk: risk, RiskReason: "sessions expire within a day anyway"}, del))
	}
	require.NoError(t, checkRisk("purge", &bftype.Manifest{Risk: "high"}, del))
	for _, a := range []model.Apply{{Kind: model.KindUpdate}, {Kind: model.KindInsert}, {Kind: model.KindInsert, Upsert: true}} {
		require.NoError(t, checkRisk("x", &bftype.Manifest{Risk: "low"}, a))
	}
}
