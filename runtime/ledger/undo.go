package ledger

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Undo is one row a run changed, with its before and after images.
type Undo struct {
	Seq    int64           `json:"seq"`
	Key    json.RawMessage `json:"key"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// RecordUndo stores the images of a batch's changed rows; call it in the
// batch's transaction.
func RecordUndo(ctx context.Context, q Querier, runID, batch int64, keys, before, after []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO backfill.undo (run_id, batch, key, before, after)
		SELECT $1, $2, k::jsonb, b::jsonb, a::jsonb FROM ROWS FROM (unnest($3::text[]), unnest($4::text[]), unnest($5::text[])) AS v (k, b, a)`,
		runID, batch, keys, before, after)
	if err != nil {
		return fmt.Errorf("error recording before-images of batch %d: %w", batch, err)
	}
	return nil
}

// UndoPage returns up to limit images of a run after seq, in order.
func UndoPage(ctx context.Context, q Querier, runID, afterSeq int64, limit int) ([]Undo, error) {
	rows, err := q.Query(ctx, `SELECT seq, key, before, after FROM backfill.undo WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		runID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("error reading before-images of run %d: %w", runID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Undo, error) {
		var u Undo
		err := r.Scan(&u.Seq, &u.Key, &u.Before, &u.After)
		return u, err
	})
}

// CountUndo is how many rows a run changed with before-images kept.
func CountUndo(ctx context.Context, q Querier, runID int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM backfill.undo WHERE run_id = $1", runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting before-images of run %d: %w", runID, err)
	}
	return n, nil
}

// Skipped is a row a revert left alone.
type Skipped struct {
	Key     json.RawMessage `json:"key"`
	Why     string          `json:"why"`
	Current json.RawMessage `json:"current,omitempty"`
}

// RecordSkipped stores rows a revert batch left alone.
func RecordSkipped(ctx context.Context, q Querier, runID int64, skipped []Skipped) error {
	for _, s := range skipped {
		if _, err := q.Exec(ctx, `INSERT INTO backfill.revert_skipped (run_id, key, why, current) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, runID, s.Key, s.Why, s.Current); err != nil {
			return fmt.Errorf("error recording a row the revert left alone: %w", err)
		}
	}
	return nil
}

// SkippedOf lists the rows a revert run left alone.
func SkippedOf(ctx context.Context, q Querier, runID int64) ([]Skipped, error) {
	rows, err := q.Query(ctx, "SELECT key, why, current FROM backfill.revert_skipped WHERE run_id = $1 ORDER BY key", runID)
	if err != nil {
		return nil, fmt.Errorf("error reading rows the revert left alone: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Skipped, error) {
		var s Skipped
		err := r.Scan(&s.Key, &s.Why, &s.Current)
		return s, err
	})
}
