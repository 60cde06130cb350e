package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Undo is one row a run changed, with its before and after images.
type Undo struct {
	Key    json.RawMessage            `json:"key"`
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
}

// UndoBatch is the images of one batch of a run.
type UndoBatch struct {
	Batch int64
	Items []Undo
}

// NextUndo returns the images of the first batch of a run after batch, or nil.
func NextUndo(ctx context.Context, q Querier, runID, afterBatch int64) (*UndoBatch, error) {
	return scanUndo(q.QueryRow(ctx, "SELECT batch, items FROM backfill.undo WHERE run_id = $1 AND batch > $2 ORDER BY batch LIMIT 1",
		runID, afterBatch), runID)
}

// NextRevertUndo returns, for the revert run revertID that this session
// holds, the next batch of images of the run it reverts after the revert's
// checkpoint, or nil; the ledger records its keys as the only ones the
// revert batch may write. Call it in the revert batch's transaction.
func NextRevertUndo(ctx context.Context, q Querier, revertID int64) (*UndoBatch, error) {
	return scanUndo(q.QueryRow(ctx, "SELECT batch, items FROM backfill.next_undo($1)", revertID), revertID)
}

func scanUndo(row pgx.Row, runID int64) (*UndoBatch, error) {
	var u UndoBatch
	var data []byte
	err := row.Scan(&u.Batch, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading before-images for run %d: %w", runID, err)
	}
	if err := json.Unmarshal(data, &u.Items); err != nil {
		return nil, fmt.Errorf("error decoding before-images for run %d batch %d: %w", runID, u.Batch, err)
	}
	return &u, nil
}

// CountUndo is how many rows a run changed with before-images kept.
func CountUndo(ctx context.Context, q Querier, runID int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT coalesce(sum(json_array_length(items)), 0) FROM backfill.undo WHERE run_id = $1", runID).Scan(&n); err != nil {
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
	if len(skipped) == 0 {
		return nil
	}
	data, err := json.Marshal(skipped)
	if err != nil {
		return fmt.Errorf("error encoding the rows the revert left alone: %w", err)
	}
	if _, err := q.Exec(ctx, "SELECT backfill.record_skipped($1, $2::jsonb)", runID, data); err != nil {
		return fmt.Errorf("error recording the rows the revert left alone: %w", err)
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
