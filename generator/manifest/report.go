package manifest

import (
	"fmt"
	"strings"
)

// Report is the manifest's optional report section: how the dry-run breaks
// its counts down, and which keys it always shows.
type Report struct {
	// GroupBy names columns of the ScopePage rows (snake_case, as the
	// query names them); the generator checks them against the row type.
	GroupBy []string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	// SpotCheck are keys (scalars of the key's type) whose before and after
	// the dry-run shows, and whose values after the run verify shows.
	SpotCheck []any `yaml:"spot_check,omitempty" json:"spot_check,omitempty"`
}

// maxSpotChecks bounds report.spot_check: spot checks are a few rows a
// reviewer reads, not a second scope.
const maxSpotChecks = 50

func (m *Manifest) validateReport(l lines) error {
	r := m.Report
	if r == nil {
		return nil
	}
	seen := map[string]bool{}
	for i, g := range r.GroupBy {
		path := fmt.Sprintf("report.group_by.%d", i)
		switch {
		case strings.TrimSpace(g) == "":
			return l.errorf(path, "must name a column of the ScopePage rows")
		case seen[g]:
			return l.errorf(path, "names %q twice", g)
		}
		seen[g] = true
	}
	if len(r.SpotCheck) > maxSpotChecks {
		return l.errorf("report.spot_check", "lists %d keys; at most %d", len(r.SpotCheck), maxSpotChecks)
	}
	for i, k := range r.SpotCheck {
		switch k.(type) {
		case string, int, int64, uint64:
		default:
			return l.errorf(fmt.Sprintf("report.spot_check.%d", i), "must be a key value (an integer or a string), not %v", k)
		}
	}
	return nil
}
