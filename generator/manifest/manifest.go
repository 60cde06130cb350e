// Package manifest parses and validates a backfill's backfill.yaml.
//
// The manifest is the reviewer-facing contract of a backfill: what it touches,
// where it may run and how many rows it may change. It is parsed strictly
// (unknown keys are errors) because a misspelt guardrail that is silently
// ignored is worse than no guardrail at all. Every error names the file and
// the line so the author can fix it without guessing.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Manifest is the parsed backfill.yaml. Field names in JSON are the same as in
// YAML so the embedded copy reads like the file the reviewer approved.
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
	// environment. The key is the environment; an entry has no environment.
	Targets map[string]Target `yaml:"targets,omitempty" json:"targets,omitempty"`
	// Promote makes an approval for any environment but Promote.From carry
	// evidence: the archive of a completed run of the same binary there.
	Promote *Promote `yaml:"promote,omitempty" json:"promote,omitempty"`
	Batch   Batch    `yaml:"batch" json:"batch"`
	Checks  []Check  `yaml:"checks" json:"checks"`
	Health  *Health  `yaml:"health,omitempty" json:"health,omitempty"`
	// Params are the declared parameters, by name (see params.go).
	Params map[string]Param `yaml:"params,omitempty" json:"params,omitempty"`
	Report *Report          `yaml:"report,omitempty" json:"report,omitempty"`
	// Supersedes names the backfill this one is a new version of (`backfill
	// new NAME --from OLD` writes it), so reviewers and auditors see the
	// lineage in the dry-run, info and the archive's report.
	Supersedes string `yaml:"supersedes,omitempty" json:"supersedes,omitempty"`
}

// Health is a database health query; batches wait while its single numeric
// value is above Max (e.g. sessions waiting on locks).
type Health struct {
	Query string  `yaml:"query" json:"query"`
	Max   float64 `yaml:"max" json:"max"`
}

// Expect bounds the counts the dry-run and the preflight must observe.
type Expect struct {
	Matched Bounds `yaml:"matched" json:"matched"`
	Changed Bounds `yaml:"changed" json:"changed"`
}

// Bounds is an inclusive range of row counts.
type Bounds struct {
	Min *int64 `yaml:"min" json:"min"`
	Max *int64 `yaml:"max" json:"max"`
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

// Promote is promote: {from: ENV}: the environment a run must have
// completed in before another environment's approvals count.
type Promote struct {
	From string `yaml:"from" json:"from"`
}

// Canary is a query whose single value must equal Equals on the target.
type Canary struct {
	Query  string `yaml:"query" json:"query"`
	Equals string `yaml:"equals" json:"equals"`
}

// Batch is the write policy of the execution engine.
type Batch struct {
	Size             int    `yaml:"size" json:"size"`
	Canary           int    `yaml:"canary" json:"canary"`
	MaxRowsPerSecond int    `yaml:"max_rows_per_second" json:"max_rows_per_second"`
	LockTimeout      string `yaml:"lock_timeout" json:"lock_timeout"`
	StatementTimeout string `yaml:"statement_timeout" json:"statement_timeout"`
	// Lanes is how many disjoint key ranges a run may write at once, each
	// on its own connection with its own checkpoint; omitted means one.
	Lanes int `yaml:"lanes,omitempty" json:"lanes,omitempty"`
	// MaxAppImpact bounds what the application may feel while the run
	// writes (the engine's adaptive mode); omitted fields take the
	// runtime's defaults, so they are left out of the embedded manifest.
	MaxAppImpact *AppImpact `yaml:"max_app_impact,omitempty" json:"max_app_impact,omitempty"`
}

// AppImpact is batch.max_app_impact: allowed probe latency and commit
// latency as multiples of their baselines, allowed lock wait of other
// sessions behind the run, and the slowest rate before the run waits.
type AppImpact struct {
	ProbeRatio       float64 `yaml:"probe_ratio,omitempty" json:"probe_ratio,omitempty"`
	LockWait         string  `yaml:"lock_wait,omitempty" json:"lock_wait,omitempty"`
	CommitRatio      float64 `yaml:"commit_ratio,omitempty" json:"commit_ratio,omitempty"`
	BatchRatio       float64 `yaml:"batch_ratio,omitempty" json:"batch_ratio,omitempty"`
	MinRowsPerSecond int     `yaml:"min_rows_per_second,omitempty" json:"min_rows_per_second,omitempty"`
}

// Check is a sanity query whose single value must equal Equals after the run.
type Check struct {
	Name   string `yaml:"name" json:"name"`
	Query  string `yaml:"query" json:"query"`
	Equals string `yaml:"equals" json:"equals"`
}

// Defaults applied to an omitted batch policy.
const (
	DefaultBatchSize        = 1000
	DefaultCanary           = 50
	DefaultLockTimeout      = "2s"
	DefaultStatementTimeout = "30s"
	// MaxLanes bounds batch.lanes: each lane is one more connection.
	MaxLanes     = 8
	maxBatchSize = 100000
)

// Risks are the accepted risk levels, in increasing order.
var Risks = []string{"low", "medium", "high"}

// Error is a manifest problem at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and validates the manifest at path.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error loading manifest %q: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly and validates it; name is used in errors.
func Parse(name string, data []byte) (*Manifest, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: name, Msg: "the manifest is empty; it needs at least scope, owner, risk, expect and target"}
	}
	if err := rejectDuplicates(name, root.Content[0]); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "a manifest is one YAML document; remove the second one (after ---)"}
	}
	l := lines{name: name, root: root.Content[0]}
	for _, key := range []string{"batch.size", "batch.canary", "batch.lanes"} {
		if n := l.node(key); n != nil && n.Value == "0" {
			return nil, l.errorf(key, "must be at least 1 (omit it for the default)")
		}
	}
	m.applyDefaults()
	if err := m.validate(l); err != nil {
		return nil, err
	}
	return &m, nil
}

// JSON is the canonical, deterministic encoding embedded in the binary.
func (m *Manifest) JSON() []byte {
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil { // only plain strings, ints and bools: cannot fail
		panic(fmt.Sprintf("error encoding manifest: %v", err))
	}
	return append(out, '\n')
}

func (m *Manifest) applyDefaults() {
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

// supersedesName is the backfill name rule (generator.CheckName), repeated
// because the generator imports this package.
var supersedesName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's multi-line errors into one "file:line: message".
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	if sub := yamlLine.FindStringSubmatch(first); sub != nil {
		var line int
		fmt.Sscanf(sub[1], "%d", &line)
		return &Error{File: name, Line: line, Msg: friendlyYAML(sub[2])}
	}
	return &Error{File: name, Msg: friendlyYAML(first)}
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type manifest\.(\w+)`)

func friendlyYAML(msg string) string {
	if sub := unknownField.FindStringSubmatch(msg); sub != nil {
		return fmt.Sprintf("unknown key %q in %s (see docs/authoring.md for the accepted keys)", sub[1], strings.ToLower(sub[2]))
	}
	return msg
}

func rejectDuplicates(name string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				return &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("key %q appears twice", k.Value)}
			}
			seen[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if err := rejectDuplicates(name, c); err != nil {
			return err
		}
	}
	return nil
}

// lines finds the line of a dotted key path for error messages.
type lines struct {
	name string
	root *yaml.Node
}

func (l lines) errorf(path, format string, args ...any) error {
	return &Error{File: l.name, Line: l.line(path), Msg: path + ": " + fmt.Sprintf(format, args...)}
}

// line is the line of the deepest key of path that exists: the key itself,
// or, for a missing key, the parent it belongs under.
func (l lines) line(path string) int {
	n, best := l.root, l.root.Line
	for _, key := range strings.Split(path, ".") {
		keyLine, next := child(n, key)
		if next == nil {
			return best
		}
		n, best = next, keyLine
	}
	return best
}

// node is the value node at path, or nil.
func (l lines) node(path string) *yaml.Node {
	n := l.root
	for _, key := range strings.Split(path, ".") {
		if _, n = child(n, key); n == nil {
			return nil
		}
	}
	return n
}

// child returns the line of key in n and its value node.
func child(n *yaml.Node, key string) (int, *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		var i int
		if _, err := fmt.Sscanf(key, "%d", &i); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i].Line, n.Content[i]
		}
		return 0, nil
	}
	if n.Kind != yaml.MappingNode {
		return 0, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line, n.Content[i+1]
		}
	}
	return 0, nil
}

func (m *Manifest) validate(l lines) error {
	checks := []func(lines) error{m.validateHeader, m.validateExpect, m.validateTarget, m.validatePromote, m.validateBatch, m.validateChecks, m.validateHealth, m.validateParams, m.validateReport}
	for _, check := range checks {
		if err := check(l); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validateHeader(l lines) error {
	switch {
	case m.Scope == "":
		return l.errorf("scope", "is required: one sentence saying which rows change and how")
	case strings.TrimSpace(m.Owner) == "":
		return l.errorf("owner", "is required: the team answerable for this backfill")
	}
	if l.node("supersedes") != nil && !supersedesName.MatchString(m.Supersedes) {
		return l.errorf("supersedes", "must be the name of the backfill this one is a new version of, not %q", m.Supersedes)
	}
	if l.node("risk_reason") != nil && m.RiskReason == "" {
		return l.errorf("risk_reason", "must say why the risk is what it is, or be left out")
	}
	for _, r := range Risks {
		if m.Risk == r {
			return nil
		}
	}
	return l.errorf("risk", "must be one of %s, not %q", strings.Join(Risks, ", "), m.Risk)
}

func (m *Manifest) validateExpect(l lines) error {
	if err := m.Expect.Matched.validate(l, "expect.matched"); err != nil {
		return err
	}
	return m.Expect.Changed.validate(l, "expect.changed")
}

func (b Bounds) validate(l lines, path string) error {
	switch {
	case b.Min == nil || b.Max == nil:
		return l.errorf(path, "needs both min and max, e.g. {min: 1, max: 5000}")
	case *b.Min < 0:
		return l.errorf(path, "min must not be negative (got %d)", *b.Min)
	case *b.Min > *b.Max:
		return l.errorf(path, "min (%d) is greater than max (%d)", *b.Min, *b.Max)
	}
	return nil
}

var sysID = regexp.MustCompile(`^[0-9]{1,20}$`)

func (m *Manifest) validateTarget(l lines) error {
	switch {
	case len(m.Targets) > 0 && l.node("target") != nil:
		return l.errorf("targets", "and target are exclusive: name one target, or several by environment under targets")
	case len(m.Targets) == 0 && l.node("targets") != nil:
		return l.errorf("targets", "must name at least one environment, e.g. {staging: {database: app}}")
	case len(m.Targets) == 0:
		if m.Target.Environment == "" {
			return l.errorf("target.environment", "is required (e.g. production)")
		}
		return m.Target.validate(l, "target")
	}
	envs := make([]string, 0, len(m.Targets))
	for env := range m.Targets {
		envs = append(envs, env)
	}
	sort.Strings(envs)
	for _, env := range envs {
		path := "targets." + env
		switch {
		case strings.TrimSpace(env) == "":
			return l.errorf("targets", "has an empty environment name")
		case m.Targets[env].Environment != "":
			return l.errorf(path+".environment", "is the key %q: leave it out of the entry", env)
		}
		if err := m.Targets[env].validate(l, path); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validatePromote(l lines) error {
	p := m.Promote
	switch {
	case p == nil:
		return nil
	case p.From == "":
		return l.errorf("promote.from", "is required: the environment the binary must have completed a run in (e.g. staging)")
	case len(m.Targets) < 2:
		return l.errorf("promote", "needs targets: naming %s and the environment it promotes to: one binary runs in both", p.From)
	}
	if _, ok := m.Targets[p.From]; !ok {
		return l.errorf("promote.from", "names %q, which is not a key of targets", p.From)
	}
	return nil
}

// validate checks one target, at path (target, or targets.ENV).
func (t Target) validate(l lines, path string) error {
	switch {
	case t.Database == "":
		return l.errorf(path+".database", "is required: the database name the backfill may write to")
	case t.SystemIdentifier != "" && !sysID.MatchString(t.SystemIdentifier):
		return l.errorf(path+".system_identifier", "must be the decimal number from pg_control_system(), quoted")
	case t.Canary != nil && strings.TrimSpace(t.Canary.Query) == "":
		return l.errorf(path+".canary.query", "is required when a canary is set")
	}
	for i, tenant := range t.Tenants {
		if strings.TrimSpace(tenant) == "" {
			return l.errorf(fmt.Sprintf("%s.tenants.%d", path, i), "must not be empty")
		}
	}
	return nil
}

// HasTenants reports whether a target (any of targets:) has a tenant
// allowlist, which needs a tenant column in the ScopePage rows.
func (m *Manifest) HasTenants() bool {
	if len(m.Target.Tenants) > 0 {
		return true
	}
	for _, t := range m.Targets {
		if len(t.Tenants) > 0 {
			return true
		}
	}
	return false
}

func (m *Manifest) validateBatch(l lines) error {
	b := m.Batch
	switch {
	case b.Size < 1 || b.Size > maxBatchSize:
		return l.errorf("batch.size", "must be between 1 and %d (got %d)", maxBatchSize, b.Size)
	case b.Canary < 1 || b.Canary > b.Size:
		return l.errorf("batch.canary", "must be between 1 and batch.size (got %d)", b.Canary)
	case b.MaxRowsPerSecond < 0:
		return l.errorf("batch.max_rows_per_second", "must not be negative (0 means unlimited)")
	case b.Lanes < 0 || b.Lanes > MaxLanes:
		return l.errorf("batch.lanes", "must be between 1 and %d (got %d)", MaxLanes, b.Lanes)
	}
	for _, f := range [][2]string{{"batch.lock_timeout", b.LockTimeout}, {"batch.statement_timeout", b.StatementTimeout}} {
		d, err := time.ParseDuration(f[1])
		if err != nil || d <= 0 {
			return l.errorf(f[0], "must be a positive duration such as 2s or 500ms (got %q)", f[1])
		}
	}
	return b.MaxAppImpact.validate(l)
}

func (a *AppImpact) validate(l lines) error {
	if a == nil {
		return nil
	}
	const p = "batch.max_app_impact."
	switch {
	case a.ProbeRatio != 0 && a.ProbeRatio < 1:
		return l.errorf(p+"probe_ratio", "must be at least 1, a multiple of the probe's baseline latency (got %g)", a.ProbeRatio)
	case a.CommitRatio != 0 && a.CommitRatio < 1:
		return l.errorf(p+"commit_ratio", "must be at least 1, a multiple of the commit's baseline latency (got %g)", a.CommitRatio)
	case a.BatchRatio != 0 && a.BatchRatio < 1:
		return l.errorf(p+"batch_ratio", "must be at least 1 (or 0: not watched) (got %g)", a.BatchRatio)
	case a.MinRowsPerSecond < 0:
		return l.errorf(p+"min_rows_per_second", "must not be negative (got %d)", a.MinRowsPerSecond)
	}
	if a.LockWait != "" {
		if d, err := time.ParseDuration(a.LockWait); err != nil || d <= 0 {
			return l.errorf(p+"lock_wait", "must be a positive duration such as 100ms (got %q)", a.LockWait)
		}
	}
	return nil
}

func (m *Manifest) validateHealth(l lines) error {
	if m.Health != nil && strings.TrimSpace(m.Health.Query) == "" {
		return l.errorf("health.query", "is required when health is set: a query returning one number")
	}
	return nil
}

func (m *Manifest) validateChecks(l lines) error {
	seen := map[string]bool{}
	for i, c := range m.Checks {
		path := fmt.Sprintf("checks.%d", i)
		switch {
		case c.Name == "":
			return l.errorf(path, "needs a name")
		case seen[c.Name]:
			return l.errorf(path, "name %q is used twice", c.Name)
		case strings.TrimSpace(c.Query) == "":
			return l.errorf(path, "needs a query")
		}
		seen[c.Name] = true
	}
	return nil
}
