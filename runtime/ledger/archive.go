package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RunsOfDigest lists every run of one binary, oldest first: refused
// attempts, the execution and its reverts all carry the binary's digest.
func RunsOfDigest(ctx context.Context, q Querier, digest string) ([]Run, error) {
	return queryRuns(ctx, q, "WHERE digest = $1 ORDER BY id", digest)
}

// DryRuns lists the dry-run reports saved for a digest, oldest first. Each
// report is its jsonb text exactly, the bytes its audit event's hash covers.
func DryRuns(ctx context.Context, q Querier, digest string) ([]DryRun, error) {
	rows, err := q.Query(ctx, `SELECT id, digest, report::text, created_by, created_at FROM backfill.dry_runs
		WHERE digest = $1 ORDER BY id`, digest)
	if err != nil {
		return nil, fmt.Errorf("error reading dry-run reports: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DryRun, error) {
		var d DryRun
		err := r.Scan(&d.ID, &d.Digest, &d.Report, &d.CreatedBy, &d.CreatedAt)
		return d, err
	})
}

// EventSpan returns the first and last seq of the audit events about some
// runs, approvals and dry-run reports (0, 0 when there are none). Every
// event between them is needed to check that they are linked in the chain.
func EventSpan(ctx context.Context, q Querier, runs, approvals, dryRuns []int64) (first, last int64, err error) {
	err = q.QueryRow(ctx, `SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM backfill.audit_events
		WHERE run_id = ANY($1)
		   OR (kind = 'approval' AND (payload->>'approval_id')::bigint = ANY($2))
		   OR (kind = 'dry_run' AND (payload->>'dry_run_id')::bigint = ANY($3))`, runs, approvals, dryRuns).Scan(&first, &last)
	if err != nil {
		return 0, 0, fmt.Errorf("error finding the audit events of runs %v: %w", runs, err)
	}
	return first, last, nil
}

// EventRange reads the audit events with seq from first to last, in order.
func EventRange(ctx context.Context, q Querier, first, last int64) ([]Event, error) {
	rows, err := q.Query(ctx, "SELECT "+eventColumns+" FROM backfill.audit_events WHERE seq BETWEEN $1 AND $2 ORDER BY seq", first, last)
	if err != nil {
		return nil, fmt.Errorf("error reading audit events %d to %d: %w", first, last, err)
	}
	return pgx.CollectRows(rows, scanEvent)
}

// Head is the last event of the chain (seq 0 and the genesis hash when the
// chain is empty).
func Head(ctx context.Context, q Querier) (seq int64, hash string, err error) {
	err = q.QueryRow(ctx, "SELECT coalesce(max(seq), 0), coalesce((SELECT hash FROM backfill.audit_events ORDER BY seq DESC LIMIT 1), $1) FROM backfill.audit_events",
		GenesisHash).Scan(&seq, &hash)
	if err != nil {
		return 0, "", fmt.Errorf("error reading the head of the audit chain: %w", err)
	}
	return seq, hash, nil
}

func scanEvent(r pgx.CollectableRow) (Event, error) {
	var e Event
	err := r.Scan(&e.Seq, &e.AtMicros, &e.RunID, &e.Kind, &e.Actor, &e.Payload, &e.PrevHash, &e.Hash)
	return e, err
}
