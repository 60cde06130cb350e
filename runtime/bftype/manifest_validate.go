package bftype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of an omitted batch policy, and the bounds Validate holds it to.
const (
	DefaultBatchSize        = 1000
	DefaultCanary           = 50
	DefaultLockTimeout      = Duration("2s")
	DefaultStatementTimeout = Duration("30s")
	// MaxBatchSize bounds batch.size.
	MaxBatchSize = 100000
	// MaxLanes bounds batch.lanes: each lane is one more connection.
	MaxLanes = 8
	// MaxSpotChecks bounds report.spot_check: spot checks are a few rows a
	// reviewer reads, not a second scope.
	MaxSpotChecks = 50
)

// Risks are the accepted risk levels, in increasing order.
var Risks = []string{"low", "medium", "high"}

// ManifestError is a manifest that Validate refuses: Path is the field as
// dotted keys of backfill.yaml (batch.lock_timeout, checks.1), so the
// generator can point at its line and the binary can name it.
type ManifestError struct {
	Path string
	Msg  string
}

func (e *ManifestError) Error() string { return e.Path + ": " + e.Msg }

func refuse(path, format string, args ...any) error {
	return &ManifestError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// ApplyDefaults fills the batch policy's omitted fields and trims the
// prose fields; the generator runs it before Validate and embeds the result,
// so the embedded manifest holds every value a run uses.
func (m *Manifest) ApplyDefaults() {
	if m.Batch.Size == 0 {
		m.Batch.Size = DefaultBatchSize
	}
	if m.Batch.Canary == 0 {
		m.Batch.Canary = min(DefaultCanary, m.Batch.Size)
	}
	if m.Batch.LockTimeout == "" {
		m.Batch.LockTimeout = DefaultLockTimeout
	}
	if m.Batch.StatementTimeout == "" {
		m.Batch.StatementTimeout = DefaultStatementTimeout
	}
	m.Scope = strings.TrimSpace(m.Scope)
	m.RiskReason = strings.TrimSpace(m.RiskReason)
}

// Validate is the one set of rules a manifest must follow: `make backfill`
// runs it on backfill.yaml (after ApplyDefaults) and DecodeManifest runs it
// on the embedded copy when the binary starts. It returns the first problem
// as a *ManifestError naming the field.
func (m *Manifest) Validate() error {
	for _, check := range []func() error{m.validateHeader, m.validateExpect, m.validateTarget, m.validatePromote,
		m.validateBatch, m.validateChecks, m.validateHealth, m.validateParams, m.validateReport} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// backfillName is a backfill's name: a Go package, a directory and a
// binary at once. A parameter name follows it too (sqlc.arg(name)).
var backfillName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// IsBackfillName reports whether name can name a backfill (the generator's
// CheckName, and the manifest's supersedes:).
func IsBackfillName(name string) bool { return backfillName.MatchString(name) }

func (m *Manifest) validateHeader() error {
	switch {
	case strings.TrimSpace(m.Scope) == "":
		return refuse("scope", "is required: one sentence saying which rows change and how")
	case strings.TrimSpace(m.Owner) == "":
		return refuse("owner", "is required: the team answerable for this backfill")
	case m.Supersedes != "" && !backfillName.MatchString(m.Supersedes):
		return refuse("supersedes", "must be the name of the backfill this one is a new version of, not %q", m.Supersedes)
	case !slices.Contains(Risks, m.Risk):
		return refuse("risk", "must be one of %s, not %q", strings.Join(Risks, ", "), m.Risk)
	}
	return nil
}

func (m *Manifest) validateExpect() error {
	if err := m.Expect.Matched.validate("expect.matched"); err != nil {
		return err
	}
	return m.Expect.Changed.validate("expect.changed")
}

func (b Bounds) validate(path string) error {
	switch {
	case b.Min == nil || b.Max == nil:
		return refuse(path, "needs both min and max, e.g. {min: 1, max: 5000}")
	case *b.Min < 0:
		return refuse(path, "min must not be negative (got %d)", *b.Min)
	case *b.Min > *b.Max:
		return refuse(path, "min (%d) is greater than max (%d)", *b.Min, *b.Max)
	}
	return nil
}

func (m *Manifest) validateTarget() error {
	switch {
	case len(m.Targets) > 0 && !reflect.ValueOf(m.Target).IsZero():
		return refuse("targets", "and target are exclusive: name one target, or several by environment under targets")
	case len(m.Targets) == 0:
		if m.Target.Environment == "" {
			return refuse("target.environment", "is required (e.g. production)")
		}
		return m.Target.validate("target")
	}
	for _, env := range m.Environments() {
		path := "targets." + env
		switch {
		case strings.TrimSpace(env) == "":
			return refuse("targets", "has an empty environment name")
		case m.Targets[env].Environment != "":
			return refuse(path+".environment", "is the key %q: leave it out of the entry", env)
		}
		if err := m.Targets[env].validate(path); err != nil {
			return err
		}
	}
	return nil
}

var systemIdentifier = regexp.MustCompile(`^[0-9]{1,20}$`)

// validate checks one target, at path (target, or targets.ENV).
func (t Target) validate(path string) error {
	switch {
	case t.Database == "":
		return refuse(path+".database", "is required: the database name the backfill may write to")
	case t.SystemIdentifier != "" && !systemIdentifier.MatchString(t.SystemIdentifier):
		return refuse(path+".system_identifier", "must be the decimal number from pg_control_system(), quoted")
	case t.Canary != nil && strings.TrimSpace(t.Canary.Query) == "":
		return refuse(path+".canary.query", "is required when a canary is set")
	}
	for i, tenant := range t.Tenants {
		if strings.TrimSpace(tenant) == "" {
			return refuse(fmt.Sprintf("%s.tenants.%d", path, i), "must not be empty")
		}
	}
	return nil
}

func (m *Manifest) validatePromote() error {
	p := m.Promote
	switch {
	case p == nil:
		return nil
	case p.From == "":
		return refuse("promote.from", "is required: the environment the binary must have completed a run in (e.g. staging)")
	case len(m.Targets) < 2:
		return refuse("promote", "needs targets: naming %s and the environment it promotes to: one binary runs in both", p.From)
	}
	if _, ok := m.Targets[p.From]; !ok {
		return refuse("promote.from", "names %q, which is not a key of targets", p.From)
	}
	return nil
}

func (m *Manifest) validateBatch() error {
	b := m.Batch
	switch {
	case b.Size < 1 || b.Size > MaxBatchSize:
		return refuse("batch.size", "must be between 1 and %d (got %d)", MaxBatchSize, b.Size)
	case b.Canary < 1 || b.Canary > b.Size:
		return refuse("batch.canary", "must be between 1 and batch.size (got %d)", b.Canary)
	case b.MaxRowsPerSecond < 0:
		return refuse("batch.max_rows_per_second", "must not be negative (0 means unlimited)")
	case b.Lanes < 0 || b.Lanes > MaxLanes:
		return refuse("batch.lanes", "must be between 1 and %d (got %d)", MaxLanes, b.Lanes)
	}
	if _, err := b.LockTimeout.Parse(); err != nil {
		return refuse("batch.lock_timeout", "%v", err)
	}
	if _, err := b.StatementTimeout.Parse(); err != nil {
		return refuse("batch.statement_timeout", "%v", err)
	}
	return b.MaxAppImpact.validate()
}

func (a *AppImpact) validate() error {
	if a == nil {
		return nil
	}
	const p = "batch.max_app_impact."
	switch {
	case a.ProbeRatio != 0 && a.ProbeRatio < 1:
		return refuse(p+"probe_ratio", "must be at least 1, a multiple of the probe's baseline latency (got %g)", a.ProbeRatio)
	case a.CommitRatio != 0 && a.CommitRatio < 1:
		return refuse(p+"commit_ratio", "must be at least 1, a multiple of the commit's baseline latency (got %g)", a.CommitRatio)
	case a.BatchRatio != 0 && a.BatchRatio < 1:
		return refuse(p+"batch_ratio", "must be at least 1 (or 0: not watched) (got %g)", a.BatchRatio)
	case a.MinRowsPerSecond < 0:
		return refuse(p+"min_rows_per_second", "must not be negative (got %d)", a.MinRowsPerSecond)
	}
	if a.LockWait != "" { // omitted: DefaultAppImpact's
		if _, err := a.LockWait.Parse(); err != nil {
			return refuse(p+"lock_wait", "%v", err)
		}
	}
	if a.CommitStall != "" {
		if v, err := time.ParseDuration(string(a.CommitStall)); err != nil || v < 0 {
			return refuse(p+"commit_stall", "must be a duration such as 50ms, or 0s: not watched (got %q)", string(a.CommitStall))
		}
	}
	return nil
}

func (m *Manifest) validateChecks() error {
	seen := map[string]bool{}
	for i, c := range m.Checks {
		path := fmt.Sprintf("checks.%d", i)
		switch {
		case c.Name == "":
			return refuse(path, "needs a name")
		case seen[c.Name]:
			return refuse(path, "name %q is used twice", c.Name)
		case strings.TrimSpace(c.Query) == "":
			return refuse(path, "needs a query")
		}
		seen[c.Name] = true
	}
	return nil
}

func (m *Manifest) validateHealth() error {
	if m.Health != nil && strings.TrimSpace(m.Health.Query) == "" {
		return refuse("health.query", "is required when health is set: a query returning one number")
	}
	return nil
}

func (m *Manifest) validateReport() error {
	r := m.Report
	if r == nil {
		return nil
	}
	seen := map[string]bool{}
	for i, g := range r.GroupBy {
		path := fmt.Sprintf("report.group_by.%d", i)
		switch {
		case strings.TrimSpace(g) == "":
			return refuse(path, "must name a column of the ScopePage rows")
		case seen[g]:
			return refuse(path, "names %q twice", g)
		}
		seen[g] = true
	}
	if len(r.SpotCheck) > MaxSpotChecks {
		return refuse("report.spot_check", "lists %d keys; at most %d", len(r.SpotCheck), MaxSpotChecks)
	}
	for i, k := range r.SpotCheck {
		if !isKey(k) {
			var shown bytes.Buffer // one line, however the JSON was indented
			if json.Compact(&shown, k) != nil {
				shown.Reset()
				shown.Write(k)
			}
			return refuse(fmt.Sprintf("report.spot_check.%d", i), "must be a key value (an integer or a string), not %s", shown.String())
		}
	}
	return nil
}

// isKey reports whether raw is a JSON string or integer.
func isKey(raw json.RawMessage) bool {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return false
	}
	switch x := v.(type) {
	case string:
		return true
	case json.Number:
		return !strings.ContainsAny(x.String(), ".eE")
	}
	return false
}
