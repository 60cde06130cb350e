package bftype

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validManifest is the smallest manifest Validate accepts, with defaults
// applied as the generator embeds it.
func validManifest() *Manifest {
	lo, hi := int64(0), int64(10)
	m := &Manifest{
		Scope:  "Set t.x from t.y where x is NULL.",
		Owner:  "team",
		Risk:   "low",
		Expect: Expect{Matched: Bounds{Min: &lo, Max: &hi}, Changed: Bounds{Min: &lo, Max: &hi}},
		Target: Target{Environment: "test", Database: "app"},
	}
	m.ApplyDefaults()
	return m
}

func TestValidateAcceptsTheMinimalManifest(t *testing.T) {
	t.Parallel()
	require.NoError(t, validManifest().Validate())
}

// TestValidateRefuses is the table of malformed manifests the one Validate
// refuses, each naming the field: the generator points at its line, the
// binary names it at start.
func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	day := "2026-01-01"
	tests := []struct {
		name string
		edit func(m *Manifest)
		path string
		msg  string
	}{
		{"lock_timeout with a space", func(m *Manifest) { m.Batch.LockTimeout = "2 s" }, "batch.lock_timeout", `must be a positive duration such as 2s or 500ms (got "2 s")`},
		{"negative lock_timeout", func(m *Manifest) { m.Batch.LockTimeout = "-1s" }, "batch.lock_timeout", `(got "-1s")`},
		{"zero lock_timeout", func(m *Manifest) { m.Batch.LockTimeout = "0s" }, "batch.lock_timeout", `must be a positive duration`},
		{"empty lock_timeout", func(m *Manifest) { m.Batch.LockTimeout = "" }, "batch.lock_timeout", `(got "")`},
		{"statement_timeout in words", func(m *Manifest) { m.Batch.StatementTimeout = "abc" }, "batch.statement_timeout", `(got "abc")`},
		{"statement_timeout without unit", func(m *Manifest) { m.Batch.StatementTimeout = "30" }, "batch.statement_timeout", `(got "30")`},
		{"zero lock_wait", func(m *Manifest) { m.Batch.MaxAppImpact = &AppImpact{LockWait: "0s"} }, "batch.max_app_impact.lock_wait", `must be a positive duration`},
		{"lock_wait in words", func(m *Manifest) { m.Batch.MaxAppImpact = &AppImpact{LockWait: "soon"} }, "batch.max_app_impact.lock_wait", `(got "soon")`},
		{"probe ratio below 1", func(m *Manifest) { m.Batch.MaxAppImpact = &AppImpact{ProbeRatio: 0.5} }, "batch.max_app_impact.probe_ratio", "must be at least 1"},
		{"negative commit_stall", func(m *Manifest) { m.Batch.MaxAppImpact = &AppImpact{CommitStall: "-1ms"} }, "batch.max_app_impact.commit_stall", `or 0s: not watched (got "-1ms")`},
		{"commit_stall in words", func(m *Manifest) { m.Batch.MaxAppImpact = &AppImpact{CommitStall: "long"} }, "batch.max_app_impact.commit_stall", `(got "long")`},
		{"no scope", func(m *Manifest) { m.Scope = " " }, "scope", "is required"},
		{"no owner", func(m *Manifest) { m.Owner = "" }, "owner", "is required"},
		{"unknown risk", func(m *Manifest) { m.Risk = "extreme" }, "risk", `must be one of low, medium, high, not "extreme"`},
		{"bad supersedes", func(m *Manifest) { m.Supersedes = "Fix-Roles" }, "supersedes", "must be the name of the backfill"},
		{"bounds without max", func(m *Manifest) { m.Expect.Changed.Max = nil }, "expect.changed", "needs both min and max"},
		{"no environment", func(m *Manifest) { m.Target.Environment = "" }, "target.environment", "is required"},
		{"no database", func(m *Manifest) { m.Target.Database = "" }, "target.database", "is required"},
		{"target and targets", func(m *Manifest) { m.Targets = map[string]Target{"staging": {Database: "a"}} }, "targets", "and target are exclusive"},
		{"promote without targets", func(m *Manifest) { m.Promote = &Promote{From: "test"} }, "promote", "needs targets"},
		{"letters in system_identifier", func(m *Manifest) { m.Target.SystemIdentifier = "73x" }, "target.system_identifier", "decimal number"},
		{"empty tenant", func(m *Manifest) { m.Target.Tenants = []string{"acme", " "} }, "target.tenants.1", "must not be empty"},
		{"batch size 0", func(m *Manifest) { m.Batch.Size = 0 }, "batch.size", "must be between 1 and 100000 (got 0)"},
		{"canary above size", func(m *Manifest) { m.Batch.Canary = m.Batch.Size + 1 }, "batch.canary", "must be between 1 and batch.size"},
		{"too many lanes", func(m *Manifest) { m.Batch.Lanes = MaxLanes + 1 }, "batch.lanes", "must be between 1 and 8"},
		{"duplicate check", func(m *Manifest) { m.Checks = []Check{{Name: "a", Query: "q"}, {Name: "a", Query: "q"}} }, "checks.1", `name "a" is used twice`},
		{"health without query", func(m *Manifest) { m.Health = &Health{Max: 1} }, "health.query", "is required"},
		{"param of unknown type", func(m *Manifest) {
			m.Params = map[string]ParamSpec{"cutoff": {Type: "datetime", Doc: "d", Required: true}}
		}, "params.cutoff", "type must be one of"},
		{"param neither required nor defaulted", func(m *Manifest) { m.Params = map[string]ParamSpec{"cutoff": {Type: ParamDate, Doc: "d"}} }, "params.cutoff", "required: false needs a default"},
		{"param default outside its bounds", func(m *Manifest) {
			m.Params = map[string]ParamSpec{"cutoff": {Type: ParamDate, Doc: "d", Default: &day, Min: "2027-01-01"}}
		}, "params.cutoff", "default: 2026-01-01 is outside min and max"},
		{"timestamp bounds reversed by a fraction", func(m *Manifest) {
			m.Params = map[string]ParamSpec{"at": {Type: ParamTimestamptz, Doc: "d", Required: true, Min: "2026-01-01T00:00:00.5Z", Max: "2026-01-01T00:00:00Z"}}
		}, "params.at", "is after max"},
		{"group_by twice", func(m *Manifest) { m.Report = &ReportSpec{GroupBy: []string{"tenant", "tenant"}} }, "report.group_by.1", `names "tenant" twice`},
		{"fractional spot key", func(m *Manifest) {
			m.Report = &ReportSpec{SpotCheck: SpotKeys{json.RawMessage(`1`), json.RawMessage(`1.5`)}}
		}, "report.spot_check.1", "must be a key value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := validManifest()
			tc.edit(m)
			err := m.Validate()
			var merr *ManifestError
			require.True(t, errors.As(err, &merr), "want a *ManifestError, got %v", err)
			require.Equal(t, tc.path, merr.Path)
			require.Contains(t, merr.Msg, tc.msg)
			require.True(t, strings.HasPrefix(err.Error(), tc.path+": "), "the message names the field: %s", err)
		})
	}
}

// TestDecodeManifestValidates is the binary's side: an embedded manifest
// whose lock_timeout does not parse used to decode and run with a lock
// timeout of 0 (off); now the binary refuses to start, naming the field.
func TestDecodeManifestValidates(t *testing.T) {
	t.Parallel()
	good := validManifest().JSON()
	m, err := DecodeManifest(good)
	require.NoError(t, err)
	require.Equal(t, "2s", string(m.Batch.LockTimeout))
	require.Equal(t, int64(2000), m.Batch.LockTimeoutDuration().Milliseconds())

	for _, bad := range []string{"2 s", "-1s", "abc", "0s", ""} {
		data := strings.Replace(string(good), `"lock_timeout": "2s"`, `"lock_timeout": "`+bad+`"`, 1)
		require.NotEqual(t, string(good), data)
		_, err := DecodeManifest([]byte(data))
		require.ErrorContains(t, err, `batch.lock_timeout: must be a positive duration such as 2s or 500ms (got "`+bad+`")`)
	}
}

// A Duration that never went through Validate panics rather than reading
// as 0, which for lock_timeout would switch the timeout off.
func TestDurationValueOfAnUnvalidatedManifestPanics(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { Batch{LockTimeout: "2 s"}.LockTimeoutDuration() })
	require.Equal(t, int64(500), Duration("500ms").Value().Milliseconds())
}
