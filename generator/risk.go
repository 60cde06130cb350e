package generator

import (
	"fmt"

	"github.com/runonce/backfill/generator/model"
	"github.com/runonce/backfill/runtime/bftype"
)

// checkRisk refuses a manifest whose risk is lower than its Apply statement
// calls for without saying why. A DELETE loses rows a revert can only put
// back from before-images, so it is high risk (two approvers, each with a
// reason) unless the author writes down why it is not.
func checkRisk(name string, m *bftype.Manifest, a model.Apply) error {
	if a.Kind != model.KindDelete || m.Risk == "high" || m.RiskReason != "" {
		return nil
	}
	return fmt.Errorf("backfill %q: its Apply statement deletes rows (DELETE FROM %s), so backfill.yaml needs risk: high, "+
		"or, to keep risk: %s, a risk_reason: \"...\" saying why deleting them is not high risk", name, a.Table, m.Risk)
}
