package ledger

import "github.com/runonce/backfill/runtime/bftype"

// The payloads of the audit events a process adds itself (Append), one Go
// type per kind: the engine writes them and the archive reads them back.
// The events the ledger's functions write (started, resumed, batch,
// revert_batch, finished, refused, control, lanes, dry_run, approval,
// approver_added, approver_revoked) are built by the database, from what it
// knows, with the fields operating.md section 13 lists.

// Event kinds a process adds with Append.
const (
	EventPreflight  = "preflight"
	EventValidated  = "validated"
	EventReconciled = "reconciled" // payload: Reconciliation
	EventAdaptive   = "adaptive"
	EventArchived   = "archived"
)

// CheckResult is what one of the manifest's checks returned. The results
// before the first write and after the last are kept in the audit log.
type CheckResult struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Equals string `json:"equals"`
	Got    string `json:"got"`
	Holds  bool   `json:"holds"`
}

// Preflight is the payload of a run's preflight event: the checks passed
// before its first write (or a resume's), in the transaction that starts it.
type Preflight struct {
	Result           string        `json:"result"` // passed
	Database         string        `json:"database"`
	Environment      string        `json:"environment"`
	SystemIdentifier string        `json:"system_identifier"`
	DBUser           string        `json:"db_user"`
	ApprovalIDs      []int64       `json:"approval_ids"` // the approvals the binary verified
	Matched          int64         `json:"matched"`
	ChecksBefore     []CheckResult `json:"checks_before"`
}

// Validated is the payload of a run's validated event: the manifest's
// checks after its last batch.
type Validated struct {
	When   string        `json:"when"` // after
	Checks []CheckResult `json:"checks"`
	Hold   bool          `json:"hold"`
}

// Adaptive is the payload of a run's adaptive event: the application's
// baseline and the bounds the run holds itself to.
type Adaptive struct {
	BaselineProbeMS float64          `json:"baseline_probe_ms"`
	MaxAppImpact    bftype.AppImpact `json:"max_app_impact"`
}

// Archived is the payload of an archived event: where the archive was
// written and the sha256 of its SHA256SUMS.
type Archived struct {
	File       string `json:"file"`
	SHA256Sums string `json:"sha256sums"`
}
