package bftype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Manifest is the runtime's view of the backfill.yaml the binary was built
// from. The generator embeds it as JSON; the runtime decodes it strictly so a
// field the runtime does not know about is an error, not a silent default.
type Manifest struct {
	Scope      string `json:"scope"`
	Owner      string `json:"owner"`
	Risk       string `json:"risk"`
	RiskReason string `json:"risk_reason,omitempty"` // why the risk is lower than the Apply kind calls for
	Reversible bool   `json:"reversible"`
	Expect     Expect `json:"expect"`
	Target     Target `json:"target,omitzero"`
	// Targets are the targets of a manifest that names several, by
	// environment (targets: in backfill.yaml, exclusive with target:);
	// Resolve picks the one of the ledger's environment.
	Targets map[string]Target `json:"targets,omitempty"`
	// Promote, when set, makes the approvals of every environment but
	// Promote.From carry evidence of a completed run there (EvidenceFrom).
	Promote *Promote `json:"promote,omitempty"`
	Batch   Batch    `json:"batch"`
	Checks  []Check  `json:"checks"`
	Health  *Health  `json:"health,omitempty"`
	// Params are the declared parameters, by name; see ParamSpec.
	Params map[string]ParamSpec `json:"params,omitempty"`
	Report *ReportSpec          `json:"report,omitempty"`
	// Supersedes names the backfill this one is a new version of, if any.
	Supersedes string `json:"supersedes,omitempty"`
}

// RiskText is the risk as a reviewer reads it: "high", or "medium (reason:
// sessions expire within a day anyway)" when the manifest gives a reason.
func (m *Manifest) RiskText() string {
	if m.RiskReason == "" {
		return m.Risk
	}
	return m.Risk + " (reason: " + m.RiskReason + ")"
}

// Health is a database health query; batches wait while its value is above Max.
type Health struct {
	Query string  `json:"query"`
	Max   float64 `json:"max"`
}

// Expect bounds the counts a dry-run and a preflight must observe.
type Expect struct {
	Matched Bounds `json:"matched"`
	Changed Bounds `json:"changed"`
}

// Bounds is an inclusive range.
type Bounds struct {
	Min *int64 `json:"min"`
	Max *int64 `json:"max"`
}

// Contains reports whether n lies within the bounds.
func (b Bounds) Contains(n int64) bool {
	return (b.Min == nil || n >= *b.Min) && (b.Max == nil || n <= *b.Max)
}

func (b Bounds) String() string {
	lo, hi := "-inf", "+inf"
	if b.Min != nil {
		lo = fmt.Sprint(*b.Min)
	}
	if b.Max != nil {
		hi = fmt.Sprint(*b.Max)
	}
	return "[" + lo + ", " + hi + "]"
}

// Target pins the database a backfill may write to.
type Target struct {
	Environment      string   `json:"environment"`
	Database         string   `json:"database"`
	Host             string   `json:"host,omitempty"`
	SystemIdentifier string   `json:"system_identifier,omitempty"`
	Canary           *Canary  `json:"canary,omitempty"`
	Tenants          []string `json:"tenants,omitempty"`
}

// Promote names the environment a binary must have completed a run in
// before other environments' approvals count.
type Promote struct {
	From string `json:"from"`
}

// Canary is a query whose single value must equal Equals on the target.
type Canary struct {
	Query  string `json:"query"`
	Equals string `json:"equals"`
}

// Batch is the write policy of the engine.
type Batch struct {
	Size             int    `json:"size"`
	Canary           int    `json:"canary"`
	MaxRowsPerSecond int    `json:"max_rows_per_second"`
	LockTimeout      string `json:"lock_timeout"`
	StatementTimeout string `json:"statement_timeout"`
	Lanes            int    `json:"lanes,omitempty"` // 0 or 1: one lane
	// MaxAppImpact bounds what the application may feel from the run; the
	// engine's adaptive mode slows down to stay within it. Omitted: defaults.
	MaxAppImpact *AppImpact `json:"max_app_impact,omitempty"`
}

// AppImpact is batch.max_app_impact: how much worse the application's view
// of the database may get while the run writes, measured against baselines
// the run takes before its first batch. A zero field takes its default
// (DefaultAppImpact); a ratio of 0 in BatchRatio leaves that signal off.
type AppImpact struct {
	// ProbeRatio is the allowed latency of a probe query on another
	// connection, as a multiple of its baseline.
	ProbeRatio float64 `json:"probe_ratio,omitempty"`
	// LockWait is how long another session may wait on a lock the run's
	// sessions hold (a duration such as 100ms).
	LockWait string `json:"lock_wait,omitempty"`
	// CommitRatio is the allowed latency of a batch's COMMIT, as a multiple
	// of its baseline (the first batches' median).
	CommitRatio float64 `json:"commit_ratio,omitempty"`
	// BatchRatio is the allowed time per row of a batch, as a multiple of
	// its baseline; 0 (the default) does not watch it.
	BatchRatio float64 `json:"batch_ratio,omitempty"`
	// MinRowsPerSecond is the slowest the run goes before it waits instead
	// (and, waiting past --stuck-after, alerts as stuck).
	MinRowsPerSecond int `json:"min_rows_per_second,omitempty"`
}

// DefaultAppImpact is batch.max_app_impact when the manifest leaves a field out.
var DefaultAppImpact = AppImpact{ProbeRatio: 2, LockWait: "100ms", CommitRatio: 3, MinRowsPerSecond: 100}

// AppImpact is the manifest's batch.max_app_impact with defaults filled in.
func (b Batch) AppImpact() AppImpact {
	a := DefaultAppImpact
	if b.MaxAppImpact == nil {
		return a
	}
	m := *b.MaxAppImpact
	if m.ProbeRatio > 0 {
		a.ProbeRatio = m.ProbeRatio
	}
	if m.LockWait != "" {
		a.LockWait = m.LockWait
	}
	if m.CommitRatio > 0 {
		a.CommitRatio = m.CommitRatio
	}
	a.BatchRatio = m.BatchRatio
	if m.MinRowsPerSecond > 0 {
		a.MinRowsPerSecond = m.MinRowsPerSecond
	}
	return a
}

// LockWaitDuration parses LockWait; the generator validated it.
func (a AppImpact) LockWaitDuration() time.Duration { return mustDuration(a.LockWait) }

// LockTimeoutDuration parses LockTimeout; the generator validated it.
func (b Batch) LockTimeoutDuration() time.Duration { return mustDuration(b.LockTimeout) }

// StatementTimeoutDuration parses StatementTimeout; the generator validated it.
func (b Batch) StatementTimeoutDuration() time.Duration { return mustDuration(b.StatementTimeout) }

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d
}

// Check is a sanity query whose single value must equal Equals.
type Check struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Equals string `json:"equals"`
}

// DecodeManifest decodes an embedded manifest strictly.
func DecodeManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("error decoding embedded manifest: %w", err)
	}
	return &m, nil
}
