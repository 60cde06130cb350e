package bftype

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveParams(t *testing.T) {
	t.Parallel()
	def := "false"
	specs := map[string]ParamSpec{
		"cutoff":  {Type: ParamDate, Doc: "created before", Required: true, Min: "2020-01-01", Max: "2030-12-31"},
		"tenants": {Type: ParamTextArray, Doc: "tenants", Required: true, Allowed: []string{"acme", "globex", "initech"}},
		"dry":     {Type: ParamBoolean, Doc: "flag", Default: &def},
		"limit":   {Type: ParamBigint, Doc: "n", Required: true, Min: "1", Max: "100"},
		"at":      {Type: ParamTimestamptz, Doc: "t", Required: true},
	}
	v, err := ResolveParams(specs, map[string]any{"cutoff": "2026-08-01", "tenants": "globex, acme,globex", "limit": "7", "at": "2026-08-01T02:00:00+02:00"})
	require.NoError(t, err)
	require.Equal(t, `{"at":"2026-08-01T00:00:00Z","cutoff":"2026-08-01","dry":false,"limit":7,"tenants":["acme","globex"]}`, string(v.JSON()))
	require.Equal(t, "at=2026-08-01T00:00:00Z cutoff=2026-08-01 dry=false limit=7 tenants=acme,globex", v.String())
	require.True(t, v.Date("cutoff").Valid)
	require.Equal(t, []string{"acme", "globex"}, v.TextArray("tenants"))

	for _, tc := range []struct {
		given map[string]any
		name  string
		msg   string
	}{
		{map[string]any{"tenants": "acme", "limit": "1", "at": "2026-01-01"}, "cutoff", "is required"},
		{map[string]any{"cutoff": "2026-02-30", "tenants": "acme", "limit": "1", "at": "2026-01-01"}, "cutoff", "is not a date"},
		{map[string]any{"cutoff": "2031-01-01", "tenants": "acme", "limit": "1", "at": "2026-01-01"}, "cutoff", "after the maximum"},
		{map[string]any{"cutoff": "2026-01-01", "tenants": "umbrella", "limit": "1", "at": "2026-01-01"}, "tenants", "not allowed"},
		{map[string]any{"cutoff": "2026-01-01", "tenants": "acme", "limit": "0", "at": "2026-01-01"}, "limit", "below the minimum"},
		{map[string]any{"cutoff": "2026-01-01", "tenants": "acme", "limit": "1", "at": "2026-01-01", "x": "1"}, "x", "not declared"},
	} {
		_, err := ResolveParams(specs, tc.given)
		var pe *ParamError
		require.True(t, errors.As(err, &pe), "%v", err)
		require.Equal(t, tc.name, pe.Name)
		require.Contains(t, pe.Msg, tc.msg)
	}
}

func TestDiffParams(t *testing.T) {
	t.Parallel()
	require.Empty(t, DiffParams([]byte(`{"a":1}`), []byte(`{"a":1}`)))
	require.Empty(t, DiffParams(nil, []byte(`{}`)))
	require.Equal(t, `cutoff is "2026-08-01" here but "2025-01-01" there`, DiffParams([]byte(`{"cutoff":"2026-08-01"}`), []byte(`{"cutoff":"2025-01-01"}`)))
	require.Equal(t, `cutoff is "2026-08-01" here but (none) there`, DiffParams([]byte(`{"cutoff":"2026-08-01"}`), nil))
}

func TestParamsFromArgs(t *testing.T) {
	t.Parallel()
	specs := map[string]ParamSpec{
		"cutoff":  {Type: ParamDate, Doc: "d", Required: true},
		"tenants": {Type: ParamTextArray, Doc: "t", Required: true},
	}
	file := t.TempDir() + "/p.yaml"
	require.NoError(t, os.WriteFile(file, []byte("cutoff: 2025-01-01\ntenants: [globex, acme]\n"), 0o600))
	v, err := ParamsFromArgs(specs, []string{"cutoff=2026-08-01"}, file)
	require.NoError(t, err)
	require.Equal(t, `{"cutoff":"2026-08-01","tenants":["acme","globex"]}`, string(v.JSON()))
	json := t.TempDir() + "/p.json"
	require.NoError(t, os.WriteFile(json, []byte(`{"cutoff": "2025-01-01", "tenants": "acme"}`), 0o600))
	v, err = ParamsFromArgs(specs, nil, json)
	require.NoError(t, err)
	require.Equal(t, "cutoff=2025-01-01 tenants=acme", v.String())
	_, err = ParamsFromArgs(specs, []string{"cutoff=2026-08-01", "cutoff=2026-08-02"}, json)
	require.ErrorContains(t, err, "parameter cutoff: given twice")
	_, err = ParamsFromArgs(specs, []string{"cutoff"}, json)
	require.ErrorContains(t, err, "write NAME=VALUE")
}
