package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/generator/manifest"
	"github.com/runonce/backfill/runtime/bftype"
)

// The runtime decodes the embedded manifest strictly, so every key the
// generator writes, risk_reason included, must be one it knows. The test
// lives here because the generator and the runtime never import each other.
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
batch: {size: 10, canary: 5, max_rows_per_second: 100, lanes: 2}
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
}
