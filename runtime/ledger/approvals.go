package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Approval is a signed statement stored in the ledger.
type Approval struct {
	ID           int64  `json:"id"`
	Backfill     string `json:"backfill"`
	Digest       string `json:"digest"`
	RunSignature string `json:"run_signature"`
	Environment  string `json:"environment"`
	Purpose      string `json:"purpose"`
	Approver     string `json:"approver"`
	Reason       string `json:"reason"`
	// Params are the parameter values the statement pins, canonical JSON;
	// {} (or absent, in an older archive) for a backfill without parameters.
	Params      json.RawMessage `json:"params,omitempty"`
	ExpiresAt   time.Time       `json:"expires_at"`
	Statement   string          `json:"statement"`
	Signature   string          `json:"signature"`
	SubmittedBy string          `json:"submitted_by"`
	SubmittedAt time.Time       `json:"submitted_at"`
}

// AddApproval stores an approval through the ledger: the database derives
// the row from the signed statement itself (strict JSON; a.Statement and
// a.Signature are all it reads), checks that the submitting login owns the
// approver's key and logs it in the audit chain.
func AddApproval(ctx context.Context, q Querier, a Approval) (int64, error) {
	var id int64
	if err := q.QueryRow(ctx, "SELECT backfill.submit_approval($1, $2)", a.Statement, a.Signature).Scan(&id); err != nil {
		return 0, fmt.Errorf("error storing approval by %q: %w", a.Approver, err)
	}
	return id, nil
}

// ApprovalsFor returns every approval stored for a digest, oldest first.
func ApprovalsFor(ctx context.Context, q Querier, digest string) ([]Approval, error) {
	return approvals(ctx, q, "WHERE digest = $1", digest)
}

// ApprovalsByID returns the approvals with the given ids.
func ApprovalsByID(ctx context.Context, q Querier, ids []int64) ([]Approval, error) {
	return approvals(ctx, q, "WHERE id = ANY($1)", ids)
}

func approvals(ctx context.Context, q Querier, where string, args ...any) ([]Approval, error) {
	rows, err := q.Query(ctx, `SELECT id, backfill, digest, run_signature, environment, purpose, approver, reason,
		expires_at, statement, signature, submitted_by, submitted_at, params FROM backfill.approvals `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("error reading approvals: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Approval, error) {
		var a Approval
		err := r.Scan(&a.ID, &a.Backfill, &a.Digest, &a.RunSignature, &a.Environment, &a.Purpose, &a.Approver, &a.Reason,
			&a.ExpiresAt, &a.Statement, &a.Signature, &a.SubmittedBy, &a.SubmittedAt, &a.Params)
		return a, err
	})
}

// nullJSON is raw as a query argument: nil when empty, so the column's
// default applies.
func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}
