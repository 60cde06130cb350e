package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/manifest"
	"github.com/runonce/backfill/runtime/bftype"
)

// The runtime decodes the embedded manifest strictly and validates it, so
// every key the generator writes, risk_reason included, must be one it
// knows and every value one it accepts, through the generator's YAML reader
// and the binary's DecodeManifest end to end.
func TestRuntimeDecodesEveryManifestKeyTheGeneratorWrites(t *testing.T) {
	t.Parallel()
	m, err := manifest.Parse("backfill.yaml", []byte(`scope: Delete expired sessions.
owner: team
risk: medium
risk_reason: sessions expired a month ago and nothing reads them
reversible: false
expect:
  matched: {min: 0, max: 10}
  changed: {min: 0, max: 10}
target:
  environment: test
  database: app
  host: db.internal
  system_identifier: "7301234567890123456"
  canary: {query: SELECT 1, equals: "1"}
  tenants: [acme]
batch:
  {size: 10, canary: 5, max_rows_per_second: 100, lanes: 2,
   max_app_impact: {probe_ratio: 1.5, lock_wait: 50ms, commit_ratio: 4, commit_stall: 0s, batch_ratio: 3, min_rows_per_second: 20}}
checks:
  - {name: a, query: SELECT 0, equals: 0}
health: {query: SELECT 0, max: 1}
`))
	require.NoError(t, err)
	decoded, err := bftype.DecodeManifest(m.JSON())
	require.NoError(t, err)
	require.Equal(t, "medium", decoded.Risk)
	require.Equal(t, "sessions expired a month ago and nothing reads them", decoded.RiskReason)
	require.Equal(t, "medium (reason: sessions expired a month ago and nothing reads them)", decoded.RiskText())
	require.Equal(t, bftype.AppImpact{ProbeRatio: 1.5, LockWait: "50ms", CommitRatio: 4, CommitStall: "0s", BatchRatio: 3, MinRowsPerSecond: 20}, decoded.Batch.AppImpact())
	require.Zero(t, decoded.Batch.AppImpact().CommitStallDuration(), "0s: not watched")
}

// A manifest without batch.max_app_impact embeds none (so binaries built
// before it keep their digests) and runs with the runtime's defaults; one
// that sets a field keeps the defaults of the others.
func TestMaxAppImpactDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, bftype.DefaultAppImpact, bftype.Batch{}.AppImpact())
	require.Equal(t, 2.0, bftype.DefaultAppImpact.ProbeRatio)
	part := bftype.Batch{MaxAppImpact: &bftype.AppImpact{ProbeRatio: 3}}.AppImpact()
	require.Equal(t, 3.0, part.ProbeRatio)
	require.Equal(t, bftype.DefaultAppImpact.LockWait, part.LockWait)
	require.Equal(t, 50*time.Millisecond, part.CommitStallDuration(), "commit_stall defaults to 50ms")
	require.NotContains(t, string(manifestJSON(t, "batch: {size: 10}")), "max_app_impact")
}

func manifestJSON(t *testing.T, batch string) []byte {
	t.Helper()
	m, err := manifest.Parse("backfill.yaml", []byte("scope: x.\nowner: team\nrisk: low\nreversible: false\nexpect:\n  matched: {min: 0, max: 10}\n"+
		"  changed: {min: 0, max: 10}\ntarget: {environment: test, database: app}\n"+batch+"\n"))
	require.NoError(t, err)
	return m.JSON()
}
