package bftype

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveTargets(t *testing.T) {
	t.Parallel()

	m := &Manifest{Targets: map[string]Target{
		"staging":    {Database: "app_staging", Tenants: []string{"acme"}},
		"production": {Database: "app", Tenants: []string{"acme", "globex"}},
	}}
	require.Equal(t, []string{"production", "staging"}, m.Environments())
	require.Equal(t, `"production" or "staging"`, m.EnvironmentsText())

	r, ok := m.Resolve("staging")
	require.True(t, ok)
	require.Equal(t, Target{Environment: "staging", Database: "app_staging", Tenants: []string{"acme"}}, r.Target)
	require.Empty(t, m.Target.Environment, "the manifest itself is not changed")

	_, ok = m.Resolve("demo")
	require.False(t, ok)

	r, ok = m.ResolveDatabase("app")
	require.True(t, ok)
	require.Equal(t, "production", r.Target.Environment)

	r, ok = m.ResolveDatabase("copy")
	require.False(t, ok)
	require.Equal(t, Target{Tenants: []string{"acme", "globex"}}, r.Target, "off target: every target's tenants")

	one := &Manifest{Target: Target{Environment: "demo", Database: "d"}}
	r, ok = one.Resolve("demo")
	require.True(t, ok)
	require.Same(t, one, r)
	_, ok = one.ResolveDatabase("other")
	require.False(t, ok)
	require.Equal(t, `"demo"`, one.EnvironmentsText())
}

func TestEvidenceFrom(t *testing.T) {
	t.Parallel()

	m := &Manifest{Promote: &Promote{From: "staging"}}
	require.Equal(t, "staging", m.EvidenceFrom("production", "execute"))
	require.Empty(t, m.EvidenceFrom("staging", "execute"), "the environment the evidence comes from needs none")
	require.Empty(t, m.EvidenceFrom("production", "revert:3"), "a revert needs none")
	require.Empty(t, (&Manifest{}).EvidenceFrom("production", "execute"))
}
