package manifest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

// minimal is the smallest valid manifest. Error cases are written as edits of
// it that keep its line numbers, so a case's expected line can be read off
// this listing:
//
//	1 scope   2 owner   3 risk   4 reversible   5 expect   6 matched
//	7 changed   8 target   9 environment   10 database   11+ appended lines
const minimal = `scope: Set t.x from t.y where x is NULL.
owner: team
risk: low
reversible: false
expect:
  matched: {min: 0, max: 10}
  changed: {min: 0, max: 10}
target:
  environment: test
  database: app
`

// edit returns minimal with its first old replaced by replacement. It panics on
// a stale fixture so that a broken case cannot silently test the valid file.
func edit(old, replacement string) string {
	if !strings.Contains(minimal, old) {
		panic("fixture: minimal does not contain " + old)
	}
	return strings.Replace(minimal, old, replacement, 1)
}

// appendLines returns minimal followed by lines, the first of which is line 11.
func appendLines(lines ...string) string {
	return minimal + strings.Join(lines, "\n") + "\n"
}

// errorCase is an invalid manifest and the *Error it must produce.
type errorCase struct {
	name string
	yaml string
	line int    // line the error must point at; 0 means "no line"
	msg  string // a substring of Error.Msg, normally the offending key
}

// errorCases are shared by TestParseErrors and the FuzzParse seed corpus.
var errorCases = []errorCase{
	// Parameters.
	{"param unknown type", appendLines("params:", "  cutoff: {type: datetime, doc: d}"), 12, `type must be one of`},
	{"param without doc", appendLines("params:", "  cutoff: {type: date}"), 12, `doc is required`},
	{"param bad min", appendLines("params:", "  cutoff: {type: date, doc: d, min: 2026-13-01}"), 12, `min: "2026-13-01" is not a date`},
	{"param min after max", appendLines("params:", "  n: {type: bigint, doc: d, min: 5, max: 1}"), 12, `min (5) is after max (1)`},
	{"param allowed on date", appendLines("params:", "  cutoff: {type: date, doc: d, allowed: [x]}"), 12, `allowed applies to text`},
	{"param optional without default", appendLines("params:", "  cutoff: {type: date, doc: d, required: false}"), 12, `required: false needs a default`},
	{"param default not allowed", appendLines("params:", "  t: {type: 'text[]', doc: d, default: 'acme,x', allowed: [acme]}"), 12, `default: "x" is not in allowed`},
	{"param bad name", appendLines("params:", "  Cutoff: {type: date, doc: d}"), 12, `a parameter name is lower case`},
	{"param unknown key", appendLines("params:", "  cutoff: {type: date, doc: d, maximum: 1}"), 12, `unknown key "maximum" in param`},
	// Strict decoding.
	{"unknown top-level key", appendLines("color: blue"), 11, `unknown key "color" in manifest`},
	{"unknown batch key", appendLines("batch: {size: 10, sise: 3}"), 11, `unknown key "sise" in batch`},
	{"unknown target key", edit("  database: app\n", "  database: app\n  hots: db1\n"), 11, `unknown key "hots" in target`},
	{"unknown bounds key", edit("matched: {min: 0, max: 10}", "matched: {min: 0, max: 10, mx: 3}"), 6, `unknown key "mx" in bounds`},
	{"unknown check key", appendLines("checks:", "  - name: a", "    query: SELECT 0", "    equal: 0"), 14, `unknown key "equal" in check`},
	{"wrong type", edit("risk: low", "risk: [low]"), 3, "cannot unmarshal !!seq into string"},
	{"integer overflow", appendLines("batch: {size: 99999999999999999999}"), 11, "into int"},
	{"duplicate top-level key", appendLines("owner: other"), 11, `key "owner" appears twice`},
	{"duplicate nested key", appendLines("batch: {size: 10, size: 20}"), 11, `key "size" appears twice`},
	{"duplicate key in a check", appendLines("checks:", "  - {name: a, query: SELECT 0, name: b}"), 12, `key "name" appears twice`},

	// Empty and malformed files.
	{"empty file", "", 0, "the manifest is empty"},
	{"only comments", "# nothing here\n", 0, "the manifest is empty"},
	{"not a mapping", "just text\n", 1, "into bftype.Manifest"},
	{"a list", "- a\n- b\n", 1, "into bftype.Manifest"},
	{"invalid UTF-8", "scope: \xff\n", 0, "UTF-8"},

	// Header. A missing key points at the mapping that should hold it.
	{"missing scope", edit("scope: Set t.x from t.y where x is NULL.", "# no scope"), 2, "scope: is required"},
	{"empty scope", edit("scope: Set t.x from t.y where x is NULL.", `scope: "  "`), 1, "scope: is required"},
	{"blank folded scope", edit("scope: Set t.x from t.y where x is NULL.", "scope: >-\n"), 1, "scope: is required"},
	{"missing owner", edit("owner: team", "# no owner"), 1, "owner: is required"},
	{"blank owner", edit("owner: team", `owner: " "`), 2, "owner: is required"},
	{"bad risk", edit("risk: low", "risk: extreme"), 3, `risk: must be one of low, medium, high, not "extreme"`},
	{"risk is case sensitive", edit("risk: low", "risk: High"), 3, `risk: must be one of`},
	{"missing risk", edit("risk: low", "# no risk"), 1, `risk: must be one of low, medium, high, not ""`},
	{"blank risk_reason", edit("risk: low", "risk: low\nrisk_reason: ' '"), 4, "risk_reason: must say why"},
	{"bad supersedes", edit("risk: low", "risk: low\nsupersedes: Fix-Roles"), 4, `supersedes: must be the name of the backfill this one is a new version of, not "Fix-Roles"`},

	// Expect.
	{"matched without max", edit("matched: {min: 0, max: 10}", "matched: {min: 0}"), 6, "expect.matched: needs both min and max"},
	{"changed without min", edit("changed: {min: 0, max: 10}", "changed: {max: 10}"), 7, "expect.changed: needs both min and max"},
	{"missing expect", edit("expect:\n  matched: {min: 0, max: 10}\n  changed: {min: 0, max: 10}\n", "\n\n\n"), 1, "expect.matched: needs both"},
	{"min greater than max", edit("changed: {min: 0, max: 10}", "changed: {min: 11, max: 10}"), 7, "expect.changed: min (11) is greater than max (10)"},
	{"negative min", edit("matched: {min: 0, max: 10}", "matched: {min: -1, max: 10}"), 6, "expect.matched: min must not be negative (got -1)"},

	// Target.
	{"missing target", edit("target:\n  environment: test\n  database: app\n", ""), 1, "target.environment: is required"},
	// A missing key is reported at the key it belongs under.
	{"missing environment", edit("  environment: test", "  # no environment"), 8, "target.environment: is required"},
	{"missing database", edit("  database: app", "  # no database"), 8, "target.database: is required"},
	{"target and targets", appendLines("targets: {staging: {database: app}}"), 11, "targets: and target are exclusive"},
	{"empty targets", edit("target:\n  environment: test\n  database: app\n", "targets: {}\n"), 8, "targets: must name at least one environment"},
	{"targets entry names its environment", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {environment: staging, database: app}\n"), 9, "targets.staging.environment: is the key"},
	{"targets entry without database", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {database: app}\n  production: {host: db}\n"), 10, "targets.production.database: is required"},
	{"promote without targets", appendLines("promote: {from: staging}"), 11, "promote: needs targets"},
	{"promote from an unknown environment", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {database: a}\n  production: {database: b}\npromote: {from: qa}\n"), 11, `promote.from: names "qa"`},
	{"promote without from", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {database: a}\n  production: {database: b}\npromote: {}\n"), 11, "promote.from: is required"},
	{"targets entry with bad cluster", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {database: app, system_identifier: x1}\n"), 9, "targets.staging.system_identifier: must be"},
	{"explicit batch size 0", edit("target:", "batch: {size: 0}\ntarget:"), 8, "batch.size: must be at least 1"},
	{"explicit canary 0", edit("target:", "batch:\n  canary: 0\ntarget:"), 9, "batch.canary: must be at least 1"},
	{"health without query", edit("target:", "health: {max: 3}\ntarget:"), 8, "health.query: is required"},
	{"second document", minimal + "---\nscope: other\n", 11, "a manifest is one YAML document"},
	{"system_identifier with letters", appendLines(`  system_identifier: "73x"`), 11, "target.system_identifier: must be the decimal number"},
	{"system_identifier too long", appendLines(`  system_identifier: "123456789012345678901"`), 11, "target.system_identifier"},
	{"system_identifier with spaces", appendLines(`  system_identifier: " 7301234567890123456"`), 11, "target.system_identifier"},
	{"canary without query", appendLines("  canary: {equals: test}"), 11, "target.canary.query: is required"},
	{"canary with blank query", appendLines("  canary:", "    query: ' '", "    equals: test"), 12, "target.canary.query: is required"},
	{"empty tenant", appendLines("  tenants:", "    - acme", `    - ""`), 13, "target.tenants.1: must not be empty"},
	{"blank tenant in flow list", appendLines(`  tenants: [acme, " "]`), 11, "target.tenants.1: must not be empty"},

	// Batch.
	{"negative size", appendLines("batch: {size: -1}"), 11, "batch.size: must be between 1 and 100000 (got -1)"},
	{"size too large", appendLines("batch:", "  size: 100001"), 12, "batch.size: must be between 1 and 100000 (got 100001)"},
	{"canary larger than size", appendLines("batch: {size: 10, canary: 11}"), 11, "batch.canary: must be between 1 and batch.size (got 11)"},
	{"negative canary", appendLines("batch: {canary: -5}"), 11, "batch.canary"},
	{"explicit lanes 0", edit("target:", "batch: {lanes: 0}\ntarget:"), 8, "batch.lanes: must be at least 1"},
	{"too many lanes", appendLines("batch: {lanes: 9}"), 11, "batch.lanes: must be between 1 and 8 (got 9)"},
	{"negative lanes", appendLines("batch: {lanes: -1}"), 11, "batch.lanes: must be between 1 and 8 (got -1)"},
	{"negative rate", appendLines("batch:", "  size: 10", "  max_rows_per_second: -1"), 13, "batch.max_rows_per_second: must not be negative"},
	{"duration in words", appendLines("batch: {lock_timeout: 2 seconds}"), 11, `batch.lock_timeout: must be a positive duration such as 2s or 500ms (got "2 seconds")`},
	{"negative duration", appendLines("batch:", "  statement_timeout: -1s"), 12, `batch.statement_timeout: must be a positive duration such as 2s or 500ms (got "-1s")`},
	{"zero duration", appendLines("batch: {lock_timeout: 0s}"), 11, "batch.lock_timeout"},
	{"duration without unit", appendLines("batch: {statement_timeout: 30}"), 11, `batch.statement_timeout: must be a positive duration such as 2s or 500ms (got "30")`},
	{"probe ratio below 1", appendLines("batch:", "  max_app_impact: {probe_ratio: 0.5}"), 12, "batch.max_app_impact.probe_ratio: must be at least 1"},
	{"commit ratio below 1", appendLines("batch:", "  max_app_impact:", "    commit_ratio: 0.9"), 13, "batch.max_app_impact.commit_ratio: must be at least 1"},
	{"bad lock wait", appendLines("batch: {max_app_impact: {lock_wait: soon}}"), 11, `batch.max_app_impact.lock_wait: must be a positive duration such as 2s or 500ms (got "soon")`},
	{"commit stall without unit", appendLines("batch: {max_app_impact: {commit_stall: 50}}"), 11, `batch.max_app_impact.commit_stall: must be a duration such as 50ms, or 0s: not watched (got "50")`},
	{"negative floor", appendLines("batch: {max_app_impact: {min_rows_per_second: -1}}"), 11, "batch.max_app_impact.min_rows_per_second: must not be negative"},
	{"unknown app impact key", appendLines("batch: {max_app_impact: {p99: 2}}"), 11, "p99"},

	// Report.
	{"spot check key 1.0", appendLines("report:", "  spot_check: [1, 1.0]"), 12, "report.spot_check.1: must be a key value (an integer or a string), not 1.0"},
	{"spot check key true", appendLines("report:", "  spot_check:", "    - 1", "    - true"), 14, "report.spot_check.1: must be a key value (an integer or a string), not true"},
	{"spot check key a list", appendLines("report: {spot_check: [[1]]}"), 11, "report.spot_check.0: must be a key value"},
	{"group_by twice", appendLines("report: {group_by: [tenant, tenant]}"), 11, `report.group_by.1: names "tenant" twice`},

	// Checks.
	{"check without name", appendLines("checks:", "  - {query: SELECT 0, equals: 0}"), 12, "checks.0: needs a name"},
	{"duplicate check names", appendLines("checks:", "  - {name: a, query: SELECT 0, equals: 0}", "  - {name: a, query: SELECT 1, equals: 1}"), 13, `checks.1: name "a" is used twice`},
	{"check without query", appendLines("checks:", "  - name: a", "    equals: 0"), 12, "checks.0: needs a query"},
	{"check with blank query", appendLines("checks:", "  - {name: a, query: SELECT 0, equals: 0}", "  - {name: b, query: '  ', equals: 0}"), 13, "checks.1: needs a query"},
}

// syntaxErrorCases are YAML that does not parse. Their lines come from
// yaml.v3, which reports the line of the construct being parsed and, for
// parser (not scanner) errors, gives it 0-based, so they are pinned to ±1.
var syntaxErrorCases = []errorCase{
	{"bad indentation", edit("owner: team", "  owner: team"), 2, "mapping values are not allowed"},
	{"unclosed flow", edit("matched: {min: 0, max: 10}", "matched: {min: 0, max: 10"), 6, "did not find expected ',' or '}'"},
	{"tab indentation", edit("  database: app", "\tdatabase: app"), 10, "tab character"},
	{"unclosed quote", edit("owner: team", `owner: "team`), 2, "found unexpected end of stream"},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			m, err := Parse("dir/backfill.yaml", []byte(tc.yaml))
			require.Nil(t, m)
			var merr *Error
			require.ErrorAs(t, err, &merr)
			require.Equal(t, "dir/backfill.yaml", merr.File)
			require.Equal(t, tc.line, merr.Line, "line of %q", merr.Msg)
			require.Contains(t, merr.Msg, tc.msg)
			require.NotContains(t, merr.Msg, "\n", "errors are one line")
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	t.Parallel()

	for _, tc := range syntaxErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			m, err := Parse("dir/backfill.yaml", []byte(tc.yaml))
			require.Nil(t, m)
			var merr *Error
			require.ErrorAs(t, err, &merr)
			require.Equal(t, "dir/backfill.yaml", merr.File)
			require.InDelta(t, tc.line, merr.Line, 1, "line of %q", merr.Msg)
			require.Contains(t, merr.Msg, tc.msg)
		})
	}
}

// validManifests are the manifests that must parse, keyed by name: the
// checked-in example, the scaffold new backfills start from, and minimal.
func validManifests(t testing.TB) map[string][]byte {
	t.Helper()

	fixRoles, err := os.ReadFile(filepath.Join("..", "..", "backfills", "fix_roles", "backfill.yaml"))
	require.NoError(t, err)
	return map[string][]byte{
		"fix_roles": fixRoles,
		"scaffold":  renderScaffold(t),
		"minimal":   []byte(minimal),
	}
}

// renderScaffold renders templates/scaffold/backfill.yaml.tmpl for backfill x.
// The template's only action is {{.Name}} in a comment, so a string
// replacement is enough and keeps this package free of the scaffolder.
func renderScaffold(t testing.TB) []byte {
	t.Helper()

	tmpl, err := os.ReadFile(filepath.Join("..", "..", "templates", "scaffold", "backfill.yaml.tmpl"))
	require.NoError(t, err)
	out := strings.ReplaceAll(string(tmpl), "{{.Name}}", "x")
	require.NotContains(t, out, "{{", "the scaffold gained a template action this test does not render")
	return []byte(out)
}

func TestParseFixRoles(t *testing.T) {
	t.Parallel()

	m, err := Load(filepath.Join("..", "..", "backfills", "fix_roles", "backfill.yaml"))
	require.NoError(t, err)
	require.Equal(t, "Set users.role to the role of the user's latest grant in role_grants, for "+
		"users created before 2026-01-01 whose role differs; leave everyone else unchanged.", m.Scope)
	require.Equal(t, "identity-team", m.Owner)
	require.Equal(t, "high", m.Risk)
	require.True(t, m.Reversible)
	require.Equal(t, bftype.Expect{Matched: bounds(1, 15000), Changed: bounds(1, 15000)}, m.Expect)
	require.Equal(t, bftype.Target{
		Environment: "demo",
		Database:    "backfill_demo",
		Canary:      &bftype.Canary{Query: "SELECT value FROM app_settings WHERE key = 'env'", Equals: "demo"},
	}, m.Target)
	require.Equal(t, bftype.Batch{Size: 500, Canary: 50, MaxRowsPerSecond: 20000, LockTimeout: "2s", StatementTimeout: "30s"}, m.Batch)
	require.Equal(t, []bftype.Check{{Name: "no_null_roles", Query: "SELECT count(*) FROM users WHERE role IS NULL", Equals: "0"}}, m.Checks)
}

func TestParseScaffold(t *testing.T) {
	t.Parallel()

	m, err := Parse("backfill.yaml", renderScaffold(t))
	require.NoError(t, err)
	require.Equal(t, "medium", m.Risk)
	require.Equal(t, bftype.Target{Environment: "production", Database: "app"}, m.Target)
	require.Equal(t, bftype.Batch{Size: 1000, Canary: 50, MaxRowsPerSecond: 5000, LockTimeout: "2s", StatementTimeout: "30s"}, m.Batch)
	require.Len(t, m.Checks, 1)
}

func TestParseBatchDefaults(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		yaml  string
		batch bftype.Batch
	}{
		{"omitted", minimal, bftype.Batch{Size: 1000, Canary: 50, LockTimeout: "2s", StatementTimeout: "30s"}},
		{"null", appendLines("batch:"), bftype.Batch{Size: 1000, Canary: 50, LockTimeout: "2s", StatementTimeout: "30s"}},
		{"empty", appendLines("batch: {}"), bftype.Batch{Size: 1000, Canary: 50, LockTimeout: "2s", StatementTimeout: "30s"}},
		{"canary capped by a small size", appendLines("batch: {size: 10}"), bftype.Batch{Size: 10, Canary: 10, LockTimeout: "2s", StatementTimeout: "30s"}},
		{"only a rate", appendLines("batch: {max_rows_per_second: 7}"), bftype.Batch{Size: 1000, Canary: 50, MaxRowsPerSecond: 7, LockTimeout: "2s", StatementTimeout: "30s"}},
		{"explicit values kept", appendLines("batch: {size: 100000, canary: 1, lock_timeout: 500ms, statement_timeout: 1m}"), bftype.Batch{Size: 100000, Canary: 1, LockTimeout: "500ms", StatementTimeout: "1m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			m, err := Parse("backfill.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			require.Equal(t, tc.batch, m.Batch)
		})
	}
}

func TestParseMinimal(t *testing.T) {
	t.Parallel()

	m, err := Parse("backfill.yaml", []byte(minimal))
	require.NoError(t, err)
	require.Equal(t, &bftype.Manifest{
		Scope:  "Set t.x from t.y where x is NULL.",
		Owner:  "team",
		Risk:   "low",
		Expect: bftype.Expect{Matched: bounds(0, 10), Changed: bounds(0, 10)},
		Target: bftype.Target{Environment: "test", Database: "app"},
		Batch:  bftype.Batch{Size: 1000, Canary: 50, LockTimeout: "2s", StatementTimeout: "30s"},
	}, m)
}

func TestParseValidEdges(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, m *bftype.Manifest)
	}{
		{"folded scope is trimmed", edit("scope: Set t.x from t.y where x is NULL.", "scope: >\n  Set t.x.\n\n"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, "Set t.x.", m.Scope)
		}},
		{"unquoted system_identifier", appendLines("  system_identifier: 7301234567890123456"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, "7301234567890123456", m.Target.SystemIdentifier)
		}},
		{"tenants and host", appendLines("  host: db.internal", "  tenants: [acme, globex]"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, "db.internal", m.Target.Host)
			require.Equal(t, []string{"acme", "globex"}, m.Target.Tenants)
		}},
		{"targets by environment", edit("target:\n  environment: test\n  database: app\n", "targets:\n  staging: {database: app_staging, tenants: [acme]}\n  production: {database: app, host: db}\n"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, bftype.Target{}, m.Target)
			require.Equal(t, map[string]bftype.Target{"staging": {Database: "app_staging", Tenants: []string{"acme"}}, "production": {Database: "app", Host: "db"}}, m.Targets)
			require.True(t, m.HasTenants())
			require.JSONEq(t, `{"production": {"database": "app", "host": "db"}, "staging": {"database": "app_staging", "tenants": ["acme"]}}`, string(jsonField(t, m, "targets")))
			require.Nil(t, jsonField(t, m, "target"), "no target: key in the embedded manifest")
		}},
		{"risk_reason is trimmed", edit("risk: low", "risk_reason: >\n  sessions expire within a day anyway\nrisk: low"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, "sessions expire within a day anyway", m.RiskReason)
		}},
		{"supersedes", edit("risk: low", "risk: low\nsupersedes: fix_roles"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, "fix_roles", m.Supersedes)
			require.Contains(t, string(m.JSON()), `"supersedes": "fix_roles"`)
		}},
		{"equal bounds", edit("matched: {min: 0, max: 10}", "matched: {min: 5, max: 5}"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, bounds(5, 5), m.Expect.Matched)
		}},
		{"check values are strings", appendLines("checks:", "  - {name: a, query: SELECT 0, equals: 0}", "  - {name: b, query: SELECT true, equals: true}"), func(t *testing.T, m *bftype.Manifest) {
			require.Equal(t, []bftype.Check{{Name: "a", Query: "SELECT 0", Equals: "0"}, {Name: "b", Query: "SELECT true", Equals: "true"}}, m.Checks)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			m, err := Parse("backfill.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			tc.check(t, m)
		})
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()

	for name, data := range validManifests(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			m, err := Parse("backfill.yaml", data)
			require.NoError(t, err)
			again, err := Parse("backfill.yaml", data)
			require.NoError(t, err)
			require.Equal(t, string(m.JSON()), string(again.JSON()), "JSON must not depend on the parse")
			require.Equal(t, string(m.JSON()), string(m.JSON()), "JSON must be deterministic")

			var back bftype.Manifest
			require.NoError(t, json.Unmarshal(m.JSON(), &back))
			require.Equal(t, *m, back)
		})
	}
}

// TestJSONCanonical pins the embedded encoding: it is what `info --json`
// shows, so a change to it is a change reviewers see.
func TestJSONCanonical(t *testing.T) {
	t.Parallel()

	m, err := Parse("backfill.yaml", []byte(minimal))
	require.NoError(t, err)
	require.Equal(t, `{
  "scope": "Set t.x from t.y where x is NULL.",
  "owner": "team",
  "risk": "low",
  "reversible": false,
  "expect": {
    "matched": {
      "min": 0,
      "max": 10
    },
    "changed": {
      "min": 0,
      "max": 10
    }
  },
  "target": {
    "environment": "test",
    "database": "app"
  },
  "batch": {
    "size": 1000,
    "canary": 50,
    "max_rows_per_second": 0,
    "lock_timeout": "2s",
    "statement_timeout": "30s"
  },
  "checks": null
}
`, string(m.JSON()))
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()

	_, err := Load(filepath.Join(t.TempDir(), "backfill.yaml"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	var merr *Error
	require.False(t, errors.As(err, &merr), "an unreadable file is not a manifest error")
}

func TestErrorString(t *testing.T) {
	t.Parallel()

	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a/backfill.yaml", Line: 3, Msg: "risk: bad"}, "a/backfill.yaml:3: risk: bad"},
		{Error{File: "a/backfill.yaml", Msg: "the manifest is empty"}, "a/backfill.yaml: the manifest is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tc.want, tc.err.Error())
		})
	}
}

// FuzzParse checks that no input makes Parse panic, that every refusal is a
// *Error naming the file, and that every accepted manifest has a JSON
// encoding that the binary's DecodeManifest accepts, and that decodes, and
// re-parses as a manifest, to the same bytes.
func FuzzParse(f *testing.F) {
	for _, data := range validManifests(f) {
		f.Add(data)
	}
	for _, tc := range slices.Concat(errorCases, syntaxErrorCases) {
		f.Add([]byte(tc.yaml))
	}
	// Escapes and anchors reach code paths the fixtures do not.
	f.Add([]byte(edit("scope: Set t.x from t.y where x is NULL.", `scope: "a\x01\u2028<b>&\"\\ c"`)))
	f.Add([]byte(appendLines("batch: &b {size: 3}", "checks:", "  - {name: n, query: q, equals: *b}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Parallel()

		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			var merr *Error
			require.ErrorAs(t, err, &merr)
			require.Equal(t, "fuzz.yaml", merr.File)
			require.Nil(t, m)
			return
		}
		back, err := bftype.DecodeManifest(m.JSON())
		require.NoError(t, err, "the binary must start on every manifest the generator accepts")
		require.Equal(t, string(m.JSON()), string(back.JSON()))

		// JSON is YAML, so the canonical form must itself be a manifest that
		// validates and encodes to the same bytes: defaults are a fixed point.
		again, err := Parse("fuzz.json", m.JSON())
		require.NoError(t, err)
		require.Equal(t, string(m.JSON()), string(again.JSON()))
	})
}

// bounds returns the Bounds {min, max}.
func bounds(lo, hi int64) bftype.Bounds {
	return bftype.Bounds{Min: &lo, Max: &hi}
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	m, err := Parse("backfill.yaml", []byte(appendLines("params:",
		"  cutoff: {type: date, doc: created before, min: 2020-01-01, max: 2030-12-31, required: true}",
		"  tenants: {type: 'text[]', doc: which tenants, allowed: [acme, globex], default: 'acme,globex'}",
		"  n: {type: bigint, doc: how many, min: 1}")))
	require.NoError(t, err)
	require.Equal(t, []string{"cutoff", "n", "tenants"}, m.ParamNames())
	require.True(t, m.Params["cutoff"].Required)
	require.True(t, m.Params["n"].Required)
	require.False(t, m.Params["tenants"].Required)
	require.Equal(t, "2020-01-01", m.Params["cutoff"].Min)
	require.Contains(t, string(m.JSON()), `"params": {`)
}

// jsonField is one top-level field of the embedded manifest, nil if absent.
func jsonField(t *testing.T, m *bftype.Manifest, key string) json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(m.JSON(), &fields))
	return fields[key]
}
