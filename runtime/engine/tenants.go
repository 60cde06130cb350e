package engine

import (
	"encoding/json"
	"slices"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/plan"
)

// tenantsAllowed refuses a batch that read a row of a tenant outside the
// allowlist, before the batch writes. The check is on the rows each batch
// reads, not on a walk of the scope in the preflight: refusals and resumes
// then never read the whole scope, and the dry-run has listed every such
// row for the reviewers (Report.OutsideTenants).
func tenantsAllowed(job *Job, b *plan.Batch, cursor json.RawMessage) error {
	allowed := job.Manifest.Target.Tenants
	if len(allowed) == 0 {
		return nil
	}
	for i, t := range b.Tenants {
		if !slices.Contains(allowed, t) {
			return refuse(bftype.ReasonTenant, bftype.ExitTenant,
				"Earlier batches stay committed. Move the rows of other tenants out of the scope (the dry-run lists them) and rerun the same binary to resume; "+
					"or allow the tenant in target.tenants, which is a new build, approved again, and a new run.",
				"The batch %s read the row with %s %s of tenant %q, outside target.tenants %v; it was rolled back before it wrote",
				batchStart(cursor), job.Plan.Names().Key, b.Key(i), t, allowed)
		}
	}
	return nil
}

// batchStart is "after key 550", or "from the start of the scope".
func batchStart(cursor json.RawMessage) string {
	if len(cursor) == 0 || string(cursor) == "null" {
		return "from the start of the scope"
	}
	return "after key " + string(cursor)
}
