package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListFilter narrows the approvals and dry-runs an observer lists
// (backfill approvals, backfill dry-runs). Empty fields match everything;
// Digest matches a prefix of the hex digest, with or without "sha256:", so
// the 16 characters a table shows are enough.
type ListFilter struct {
	Backfill string
	Digest   string
	Limit    int
}

func (f ListFilter) args() (string, string, int) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	return f.Backfill, strings.ToLower(strings.TrimPrefix(f.Digest, "sha256:")), limit
}

// ListApprovals lists the approvals of the filter, newest first.
func ListApprovals(ctx context.Context, q Querier, f ListFilter) ([]Approval, error) {
	name, digest, limit := f.args()
	list, err := approvals(ctx, q, `WHERE id IN (SELECT id FROM backfill.approvals
		WHERE ($1 = '' OR backfill = $1) AND starts_with(digest, $2) ORDER BY id DESC LIMIT $3)`, name, digest, limit)
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list, err
}

// DryRunSummary is one saved dry-run report as a list shows it: who saved
// what, and its counts, without the report's samples and statements.
type DryRunSummary struct {
	ID           int64           `json:"id"`
	Backfill     string          `json:"backfill"`
	Digest       string          `json:"digest"`
	RunSignature string          `json:"run_signature"`
	Params       json.RawMessage `json:"params,omitempty"`
	Database     string          `json:"database"`
	OffTarget    bool            `json:"off_target"`
	Matched      int64           `json:"matched"`
	WillChange   int64           `json:"will_change"`
	Violations   int             `json:"violations"`
	CreatedBy    string          `json:"created_by"`
	CreatedAt    time.Time       `json:"created_at"`
}

// ListDryRuns lists the saved dry-run reports of the filter, newest first.
func ListDryRuns(ctx context.Context, q Querier, f ListFilter) ([]DryRunSummary, error) {
	name, digest, limit := f.args()
	rows, err := q.Query(ctx, `SELECT id, backfill, digest, run_signature, report->'params', coalesce(report->>'database', ''),
		coalesce((report->>'off_target')::boolean, false), coalesce((report->'counts'->>'matched')::bigint, 0),
		coalesce((report->'counts'->>'will_change')::bigint, 0),
		coalesce(jsonb_array_length(CASE jsonb_typeof(report->'violations') WHEN 'array' THEN report->'violations' END), 0),
		created_by, created_at
		FROM backfill.dry_runs WHERE ($1 = '' OR backfill = $1) AND starts_with(digest, $2) ORDER BY id DESC LIMIT $3`, name, digest, limit)
	if err != nil {
		return nil, fmt.Errorf("error reading dry-run reports: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DryRunSummary, error) {
		var d DryRunSummary
		err := r.Scan(&d.ID, &d.Backfill, &d.Digest, &d.RunSignature, &d.Params, &d.Database, &d.OffTarget, &d.Matched,
			&d.WillChange, &d.Violations, &d.CreatedBy, &d.CreatedAt)
		return d, err
	})
}
