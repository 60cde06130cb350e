package archive

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// REPORT.md compares a run with the last dry-run before it of the target
// database: a later report of a dry-run of another database is not it.
func TestReportIgnoresADryRunOfAnotherDatabase(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	a := &Archive{
		DryRuns: []DryRunRow{{ID: 1, CreatedAt: start.Add(-2 * time.Hour)}, {ID: 2, CreatedAt: start.Add(-time.Hour)}},
		Reports: map[int64][]byte{
			1: []byte(`{"counts": {"matched": 1000, "will_change": 333, "scanned": 1000}, "off_target": false}`),
			2: []byte(`{"counts": {"matched": 7, "will_change": 5, "scanned": 7}, "off_target": true}`),
		},
	}
	var w strings.Builder
	a.reportCounts(&w, &ledger.Run{ID: 1, StartedAt: start, Changed: 333}, &bftype.Manifest{}, bftype.Apply{})
	require.Contains(t, w.String(), "| rows updated | [-inf, +inf] | 333 (dry-run 1) | 333 |")
	require.NotContains(t, w.String(), "dry-run 2")
}

// REPORT.md names the backfill a new version supersedes, and says nothing
// of it for a backfill that supersedes none.
func TestReportNamesWhatTheBackfillSupersedes(t *testing.T) {
	t.Parallel()
	var w strings.Builder
	reportSupersedes(&w, &bftype.Manifest{})
	require.Empty(t, w.String())
	reportSupersedes(&w, &bftype.Manifest{Supersedes: "fix_roles"})
	require.Equal(t, "- supersedes: fix_roles (this backfill is a new version of it; that backfill's runs are archived on their own)\n", w.String())
}
