package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Approver is a trusted key and the login of its owner.
type Approver struct {
	Name      string     `json:"name"`
	Login     string     `json:"login"`
	PublicKey string     `json:"public_key"`
	KeyID     string     `json:"key_id"`
	AddedBy   string     `json:"added_by"`
	AddedAt   time.Time  `json:"added_at"`
	RevokedBy *string    `json:"revoked_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ErrNotFound is returned for a missing approver or run.
var ErrNotFound = errors.New("not found")

// AddApprover trusts a key; the database records who added it.
func AddApprover(ctx context.Context, q Querier, a Approver) error {
	_, err := q.Exec(ctx, "SELECT backfill.add_approver($1, $2, $3, $4)", a.Name, a.Login, a.PublicKey, a.KeyID)
	if err != nil {
		return fmt.Errorf("error adding approver %q: %w", a.Name, err)
	}
	return nil
}

// RevokeApprover stops trusting a key; its approvals stop counting.
func RevokeApprover(ctx context.Context, q Querier, name string) error {
	var found bool
	if err := q.QueryRow(ctx, "SELECT backfill.revoke_approver($1)", name).Scan(&found); err != nil {
		return fmt.Errorf("error revoking approver %q: %w", name, err)
	}
	if !found {
		return fmt.Errorf("error revoking approver %q: %w", name, ErrNotFound)
	}
	return nil
}

// Approvers lists every approver, revoked ones included, by name.
func Approvers(ctx context.Context, q Querier) ([]Approver, error) {
	rows, err := q.Query(ctx, `SELECT name, login, public_key, key_id, added_by, added_at, revoked_by, revoked_at
		FROM backfill.approvers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("error listing approvers: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Approver, error) {
		var a Approver
		err := r.Scan(&a.Name, &a.Login, &a.PublicKey, &a.KeyID, &a.AddedBy, &a.AddedAt, &a.RevokedBy, &a.RevokedAt)
		return a, err
	})
}
