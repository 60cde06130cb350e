package bftype

import (
	"slices"
	"strings"
)

// Environments are the environment names the manifest may write to: the one
// of target:, or the keys of targets:, sorted.
func (m *Manifest) Environments() []string {
	if len(m.Targets) == 0 {
		return []string{m.Target.Environment}
	}
	names := make([]string, 0, len(m.Targets))
	for env := range m.Targets {
		names = append(names, env)
	}
	slices.Sort(names)
	return names
}

// EnvironmentsText is the environments as a refusal names them: "staging",
// or "production" or "staging".
func (m *Manifest) EnvironmentsText() string {
	envs := m.Environments()
	quoted := make([]string, len(envs))
	for i, env := range envs {
		quoted[i] = `"` + env + `"`
	}
	return strings.Join(quoted, " or ")
}

// Resolve is the manifest as it applies to environment env: for a manifest
// with targets:, a copy whose Target is env's entry (with Environment set to
// env). ok is false when the manifest does not target env; the manifest is
// then returned as it is, and the environment check refuses it. One binary
// with one digest so runs in each environment it names, each run checking
// only its own target.
func (m *Manifest) Resolve(env string) (resolved *Manifest, ok bool) {
	if len(m.Targets) == 0 {
		return m, m.Target.Environment == env
	}
	t, ok := m.Targets[env]
	if !ok {
		return m, false
	}
	c := *m
	t.Environment = env
	c.Target = t
	return &c, true
}

// ResolveDatabase is the manifest as it applies to the target that names
// database db, for a dry-run, which may read any copy of the data and does
// not know the ledger's environment. With no such target, ok is false and
// the manifest's Target is the union of the targets' tenants (so a dry-run
// off target still lists the rows of other tenants; none when a target
// has no allowlist), without a canary.
func (m *Manifest) ResolveDatabase(db string) (resolved *Manifest, ok bool) {
	if len(m.Targets) == 0 {
		return m, m.Target.Database == db
	}
	for _, env := range m.Environments() {
		if m.Targets[env].Database == db {
			return m.Resolve(env)
		}
	}
	c := *m
	c.Target = Target{}
	for _, env := range m.Environments() {
		if len(m.Targets[env].Tenants) == 0 { // one target allows every tenant
			c.Target.Tenants = nil
			break
		}
		for _, tenant := range m.Targets[env].Tenants {
			if !slices.Contains(c.Target.Tenants, tenant) {
				c.Target.Tenants = append(c.Target.Tenants, tenant)
			}
		}
	}
	return &c, false
}

// EvidenceFrom is the environment whose completed run an approval for env
// must carry evidence of (promote.from), or "" when it needs none: without
// promote:, in that environment itself, and for purposes other than
// execute (a revert writes back what a run wrote).
func (m *Manifest) EvidenceFrom(env, purpose string) string {
	if m.Promote == nil || env == m.Promote.From || purpose != "execute" {
		return ""
	}
	return m.Promote.From
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
