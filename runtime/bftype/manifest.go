package bftype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Manifest is a backfill's backfill.yaml, declared once for both sides: the
// generator decodes it from YAML (generator/manifest, which adds file and
// line to errors) and embeds it as JSON; the binary decodes that JSON with
// DecodeManifest. Both run the one Validate, so the generator and the binary
// cannot disagree about what a manifest may say. Field names in JSON are the
// same as in YAML so the embedded copy reads like the file the reviewer
// approved; the field order is the embedded order and part of every digest.
type Manifest struct {
	Scope string `yaml:"scope" json:"scope"`
	Owner string `yaml:"owner" json:"owner"`
	Risk  string `yaml:"risk" json:"risk"`
	// RiskReason is the author's reason for a risk lower than the Apply
	// statement's kind calls for: a DELETE below high needs one.
	RiskReason string `yaml:"risk_reason,omitempty" json:"risk_reason,omitempty"`
	Reversible bool   `yaml:"reversible" json:"reversible"`
	Expect     Expect `yaml:"expect" json:"expect"`
	Target     Target `yaml:"target,omitempty" json:"target,omitzero"`
	// Targets name several targets by environment, exclusive with Target:
	// one binary, one digest, each run checking the target of its ledger's
	// environment (Resolve). The key is the environment; an entry has none.
	Targets map[string]Target `yaml:"targets,omitempty" json:"targets,omitempty"`
	// Promote, when set, makes the approvals of every environment but
	// Promote.From carry evidence of a completed run there (EvidenceFrom).
	Promote *Promote `yaml:"promote,omitempty" json:"promote,omitempty"`
	Batch   Batch    `yaml:"batch" json:"batch"`
	Checks  []Check  `yaml:"checks" json:"checks"`
	Health  *Health  `yaml:"health,omitempty" json:"health,omitempty"`
	// Params are the declared parameters, by name; see ParamSpec.
	Params map[string]ParamSpec `yaml:"params,omitempty" json:"params,omitempty"`
	Report *ReportSpec          `yaml:"report,omitempty" json:"report,omitempty"`
	// Supersedes names the backfill this one is a new version of (`backfill
	// new NAME --from OLD` writes it), so reviewers and auditors see the
	// lineage in the dry-run, info and the archive's report.
	Supersedes string `yaml:"supersedes,omitempty" json:"supersedes,omitempty"`
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
	Query string  `yaml:"query" json:"query"`
	Max   float64 `yaml:"max" json:"max"`
}

// Expect bounds the counts a dry-run and a preflight must observe.
type Expect struct {
	Matched Bounds `yaml:"matched" json:"matched"`
	Changed Bounds `yaml:"changed" json:"changed"`
}

// Bounds is an inclusive range.
type Bounds struct {
	Min *int64 `yaml:"min" json:"min"`
	Max *int64 `yaml:"max" json:"max"`
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
	Environment      string   `yaml:"environment,omitempty" json:"environment,omitempty"`
	Database         string   `yaml:"database" json:"database"`
	Host             string   `yaml:"host,omitempty" json:"host,omitempty"`
	SystemIdentifier string   `yaml:"system_identifier,omitempty" json:"system_identifier,omitempty"`
	Canary           *Canary  `yaml:"canary,omitempty" json:"canary,omitempty"`
	Tenants          []string `yaml:"tenants,omitempty" json:"tenants,omitempty"`
}

// Promote names the environment a binary must have completed a run in
// before other environments' approvals count.
type Promote struct {
	From string `yaml:"from" json:"from"`
}

// Canary is a query whose single value must equal Equals on the target.
type Canary struct {
	Query  string `yaml:"query" json:"query"`
	Equals string `yaml:"equals" json:"equals"`
}

// Batch is the write policy of the engine.
type Batch struct {
	Size             int      `yaml:"size" json:"size"`
	Canary           int      `yaml:"canary" json:"canary"`
	MaxRowsPerSecond int      `yaml:"max_rows_per_second" json:"max_rows_per_second"`
	LockTimeout      Duration `yaml:"lock_timeout" json:"lock_timeout"`
	StatementTimeout Duration `yaml:"statement_timeout" json:"statement_timeout"`
	// Lanes is how many disjoint key ranges a run may write at once, each
	// on its own connection with its own checkpoint; 0 or 1: one lane.
	Lanes int `yaml:"lanes,omitempty" json:"lanes,omitempty"`
	// MaxAppImpact bounds what the application may feel from the run; the
	// engine's adaptive mode slows down to stay within it. Omitted fields
	// take DefaultAppImpact, so they are left out of the embedded manifest.
	MaxAppImpact *AppImpact `yaml:"max_app_impact,omitempty" json:"max_app_impact,omitempty"`
}

// AppImpact is batch.max_app_impact: how much worse the application's view
// of the database may get while the run writes, measured against baselines
// the run takes before its first batch. A zero field takes its default
// (DefaultAppImpact); a ratio of 0 in BatchRatio leaves that signal off.
type AppImpact struct {
	// ProbeRatio is the allowed latency of a probe query on another
	// connection, as a multiple of its baseline.
	ProbeRatio float64 `yaml:"probe_ratio,omitempty" json:"probe_ratio,omitempty"`
	// LockWait is how long another session may wait on a lock the run's
	// sessions hold (a duration such as 100ms).
	LockWait Duration `yaml:"lock_wait,omitempty" json:"lock_wait,omitempty"`
	// CommitRatio is the allowed latency of a batch's COMMIT, as a multiple
	// of its baseline (the first batches' median).
	CommitRatio float64 `yaml:"commit_ratio,omitempty" json:"commit_ratio,omitempty"`
	// CommitStall is the longest a commit (the probe's or a batch's) may
	// wait (a duration such as 50ms); "0s" does not watch it.
	CommitStall Duration `yaml:"commit_stall,omitempty" json:"commit_stall,omitempty"`
	// BatchRatio is the allowed time per row of a batch, as a multiple of
	// its baseline; 0 (the default) does not watch it.
	BatchRatio float64 `yaml:"batch_ratio,omitempty" json:"batch_ratio,omitempty"`
	// MinRowsPerSecond is the slowest the run goes before it waits instead
	// (and, waiting past --stuck-after, alerts as stuck).
	MinRowsPerSecond int `yaml:"min_rows_per_second,omitempty" json:"min_rows_per_second,omitempty"`
}

// DefaultAppImpact is batch.max_app_impact when the manifest leaves a field out.
var DefaultAppImpact = AppImpact{ProbeRatio: 2, LockWait: "100ms", CommitRatio: 3, CommitStall: "50ms", MinRowsPerSecond: 100}

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
	if m.CommitStall != "" {
		a.CommitStall = m.CommitStall
	}
	a.BatchRatio = m.BatchRatio
	if m.MinRowsPerSecond > 0 {
		a.MinRowsPerSecond = m.MinRowsPerSecond
	}
	return a
}

// LockWaitDuration is LockWait as a time.Duration (see Duration.Value).
func (a AppImpact) LockWaitDuration() time.Duration { return a.LockWait.Value() }

// CommitStallDuration is CommitStall as a time.Duration; 0 ("0s"): not
// watched. Validation refused anything else that is not a positive duration.
func (a AppImpact) CommitStallDuration() time.Duration {
	v, err := time.ParseDuration(string(a.CommitStall))
	if err != nil || v < 0 {
		panic(fmt.Sprintf("unvalidated manifest duration: commit_stall %q", a.CommitStall))
	}
	return v
}

// LockTimeoutDuration is LockTimeout as a time.Duration (see Duration.Value).
func (b Batch) LockTimeoutDuration() time.Duration { return b.LockTimeout.Value() }

// StatementTimeoutDuration is StatementTimeout as a time.Duration (see Duration.Value).
func (b Batch) StatementTimeoutDuration() time.Duration { return b.StatementTimeout.Value() }

// Check is a sanity query whose single value must equal Equals after the run.
type Check struct {
	Name   string `yaml:"name" json:"name"`
	Query  string `yaml:"query" json:"query"`
	Equals string `yaml:"equals" json:"equals"`
}

// DecodeManifest decodes an embedded manifest strictly (a field the runtime
// does not know is an error, not a silent default) and validates it with
// the same Validate the generator ran, so a binary never starts on a
// manifest the generator would have refused.
func DecodeManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("error decoding embedded manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("error validating embedded manifest: %w", err)
	}
	return &m, nil
}

// JSON is the canonical, deterministic encoding the generator embeds in the
// binary and DecodeManifest reads back.
func (m *Manifest) JSON() []byte {
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil { // strings, numbers, bools and raw JSON keys only
		panic(fmt.Sprintf("error encoding manifest: %v", err))
	}
	return append(out, '\n')
}
