package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run statuses.
const (
	StatusRunning          = "running"
	StatusCompleted        = "completed"
	StatusFailed           = "failed"
	StatusRefused          = "refused"
	StatusInterrupted      = "interrupted"
	StatusPartial          = "partial"
	StatusCancelled        = "cancelled"
	StatusFailedValidation = "failed_validation"
)

// Run is one execution attempt of a binary, kept across resumes.
type Run struct {
	ID           int64           `json:"id"`
	Backfill     string          `json:"backfill"`
	Digest       string          `json:"digest"`
	RunSignature string          `json:"run_signature"`
	Purpose      string          `json:"purpose"`
	Status       string          `json:"status"`
	StopReason   *string         `json:"stop_reason"`
	Message      *string         `json:"message"`
	Parameters   json.RawMessage `json:"parameters"` // how the operator launched it (args)
	// Params are the canonical values of the backfill's declared parameters,
	// part of the run-once key; {} for a backfill without parameters.
	Params       json.RawMessage `json:"params"`
	OSUser       string          `json:"os_user"`
	DBUser       string          `json:"db_user"`
	ClientHost   string          `json:"client_host"`
	CodeVersion  string          `json:"code_version"`
	SourceCommit string          `json:"source_commit"`
	Environment  *string         `json:"environment"`
	ApprovalIDs  []int64         `json:"approval_ids"`
	Matched      *int64          `json:"matched"`
	Scanned      int64           `json:"scanned"`
	Changed      int64           `json:"changed"`
	Batches      int64           `json:"batches"`
	Cursor       json.RawMessage `json:"cursor"`
	Resumes      int             `json:"resumes"`
	StartedAt    time.Time       `json:"started_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	FinishedAt   *time.Time      `json:"finished_at"`
}

const runColumns = `id, backfill, digest, run_signature, purpose, status, stop_reason, message, parameters, os_user, db_user,
	client_host, code_version, source_commit, environment, approval_ids, matched, scanned, changed, batches, cursor, resumes,
	started_at, updated_at, finished_at, params`

func scanRun(r pgx.CollectableRow) (Run, error) {
	var x Run
	err := r.Scan(&x.ID, &x.Backfill, &x.Digest, &x.RunSignature, &x.Purpose, &x.Status, &x.StopReason, &x.Message,
		&x.Parameters, &x.OSUser, &x.DBUser, &x.ClientHost, &x.CodeVersion, &x.SourceCommit, &x.Environment, &x.ApprovalIDs,
		&x.Matched, &x.Scanned, &x.Changed, &x.Batches, &x.Cursor, &x.Resumes, &x.StartedAt, &x.UpdatedAt, &x.FinishedAt, &x.Params)
	return x, err
}

func queryRuns(ctx context.Context, q Querier, where string, args ...any) ([]Run, error) {
	rows, err := q.Query(ctx, "SELECT "+runColumns+" FROM backfill.runs "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("error reading runs: %w", err)
	}
	return pgx.CollectRows(rows, scanRun)
}

// Runs lists runs, newest first, at most limit.
func Runs(ctx context.Context, q Querier, limit int) ([]Run, error) {
	return queryRuns(ctx, q, "ORDER BY id DESC LIMIT $1", limit)
}

// GetRun returns one run.
func GetRun(ctx context.Context, q Querier, id int64) (*Run, error) {
	runs, err := queryRuns(ctx, q, "WHERE id = $1", id)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return &runs[0], nil
}

// Completed returns the completed run of a signature, purpose and parameter
// values (canonical JSON; nil: {}), or nil.
func Completed(ctx context.Context, q Querier, signature, purpose string, params json.RawMessage) (*Run, error) {
	runs, err := queryRuns(ctx, q, "WHERE run_signature = $1 AND purpose = $2 AND params = $3::jsonb AND status = 'completed'",
		signature, purpose, paramsArg(params))
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Ended returns the latest run of a signature, purpose and parameter values
// that ended for good (completed, cancelled, or failed its checks after the
// last batch), or nil. Such a signature never runs again with those values.
func Ended(ctx context.Context, q Querier, signature, purpose string, params json.RawMessage) (*Run, error) {
	runs, err := queryRuns(ctx, q, `WHERE run_signature = $1 AND purpose = $2 AND params = $3::jsonb
		AND status IN ('completed', 'cancelled', 'failed_validation') ORDER BY id DESC LIMIT 1`, signature, purpose, paramsArg(params))
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Unfinished returns the run of a signature, purpose and parameter values
// that can be resumed, or nil.
func Unfinished(ctx context.Context, q Querier, signature, purpose string, params json.RawMessage) (*Run, error) {
	runs, err := queryRuns(ctx, q, `WHERE run_signature = $1 AND purpose = $2 AND params = $3::jsonb
		AND status IN ('running', 'failed', 'interrupted', 'partial')`, signature, purpose, paramsArg(params))
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Start records a new running run, or marks an unfinished one running again
// as a resume. The caller holds the run's lock.
func Start(ctx context.Context, q Querier, r Run) (*Run, bool, error) {
	prev, err := Unfinished(ctx, q, r.RunSignature, r.Purpose, r.Params)
	if err != nil {
		return nil, false, err
	}
	if prev != nil {
		if _, err := q.Exec(ctx, `UPDATE backfill.runs SET status = 'running', stop_reason = NULL, message = NULL,
			resumes = resumes + 1, updated_at = now(), finished_at = NULL, digest = $2, approval_ids = $3, control = `+keepCanaryPause+`
			WHERE id = $1`,
			prev.ID, r.Digest, r.ApprovalIDs); err != nil {
			return nil, false, fmt.Errorf("error resuming run %d: %w", prev.ID, err)
		}
		if err := Append(ctx, q, prev.ID, "resumed", map[string]any{"from_status": prev.Status, "cursor": prev.Cursor,
			"os_user": r.OSUser, "client_host": r.ClientHost, "parameters": r.Parameters, "params": paramsArg(r.Params)}); err != nil {
			return nil, false, err
		}
		got, err := GetRun(ctx, q, prev.ID)
		return got, true, err
	}
	id, err := insertRun(ctx, q, r, StatusRunning)
	if err != nil {
		return nil, false, err
	}
	if err := Append(ctx, q, id, "started", map[string]any{"backfill": r.Backfill, "digest": r.Digest,
		"run_signature": r.RunSignature, "purpose": r.Purpose, "os_user": r.OSUser, "client_host": r.ClientHost,
		"approval_ids": r.ApprovalIDs, "parameters": r.Parameters, "params": paramsArg(r.Params)}); err != nil {
		return nil, false, err
	}
	got, err := GetRun(ctx, q, id)
	return got, false, err
}

func insertRun(ctx context.Context, q Querier, r Run, status string) (int64, error) {
	params := r.Parameters
	if params == nil {
		params = json.RawMessage("{}")
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO backfill.runs (backfill, digest, run_signature, purpose, status, stop_reason, message,
		parameters, os_user, client_host, code_version, source_commit, environment, approval_ids, matched, params)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, coalesce($14, '{}'::bigint[]), $15, $16::jsonb) RETURNING id`,
		r.Backfill, r.Digest, r.RunSignature, r.Purpose, status, r.StopReason, r.Message, params, r.OSUser, r.ClientHost,
		r.CodeVersion, r.SourceCommit, r.Environment, r.ApprovalIDs, r.Matched, paramsArg(r.Params)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("error recording run of %s: %w", r.Backfill, err)
	}
	return id, nil
}

// Refused records a refused attempt as its own run row with the stop reason,
// and logs it. It never touches a resumable run.
func Refused(ctx context.Context, q Querier, r Run, reason, message string) (int64, error) {
	r.StopReason, r.Message = &reason, &message
	id, err := insertRun(ctx, q, r, StatusRefused)
	if err != nil {
		return 0, err
	}
	if _, err := q.Exec(ctx, "UPDATE backfill.runs SET finished_at = now() WHERE id = $1", id); err != nil {
		return 0, fmt.Errorf("error finishing refused run: %w", err)
	}
	return id, Append(ctx, q, id, "refused", map[string]any{"backfill": r.Backfill, "digest": r.Digest,
		"stop_reason": reason, "message": message, "os_user": r.OSUser, "client_host": r.ClientHost, "params": paramsArg(r.Params)})
}

// Progress records a committed batch on its run and returns the batch's
// number; call it in the batch's transaction. The run's row stays locked
// until that transaction ends, so batch numbers follow commit order without
// gaps even when several lanes of one run commit batches at once.
func Progress(ctx context.Context, q Querier, id int64, cursor json.RawMessage, scanned, changed int64) (int64, error) {
	var batch int64
	err := q.QueryRow(ctx, `UPDATE backfill.runs SET cursor = $2, scanned = scanned + $3, changed = changed + $4,
		batches = batches + 1, updated_at = now() WHERE id = $1 RETURNING batches`, id, cursor, scanned, changed).Scan(&batch)
	if err != nil {
		return 0, fmt.Errorf("error recording progress of run %d: %w", id, err)
	}
	return batch, nil
}

// Finish ends a run with a status and, unless completed, a stop reason.
func Finish(ctx context.Context, q Querier, id int64, status, reason, message string) error {
	_, err := q.Exec(ctx, `UPDATE backfill.runs SET status = $2, stop_reason = nullif($3, ''), message = nullif($4, ''),
		updated_at = now(), finished_at = now() WHERE id = $1`, id, status, reason, message)
	if err != nil {
		return fmt.Errorf("error finishing run %d as %s: %w", id, status, err)
	}
	return Append(ctx, q, id, "finished", map[string]any{"status": status, "stop_reason": reason, "message": message})
}

// SaveDryRun stores a dry-run report. Its audit event carries the sha256 of
// the report as stored (jsonb text), which binds an archived copy to the chain.
func SaveDryRun(ctx context.Context, q Querier, backfill, digest, signature string, report any) (int64, error) {
	data, err := json.Marshal(report)
	if err != nil {
		return 0, fmt.Errorf("error encoding dry-run report: %w", err)
	}
	var id int64
	var sum string
	err = q.QueryRow(ctx, `INSERT INTO backfill.dry_runs (backfill, digest, run_signature, report) VALUES ($1, $2, $3, $4)
		RETURNING id, encode(sha256(convert_to(report::text, 'UTF8')), 'hex')`,
		backfill, digest, signature, data).Scan(&id, &sum)
	if err != nil {
		return 0, fmt.Errorf("error saving dry-run report: %w", err)
	}
	return id, Append(ctx, q, 0, "dry_run", map[string]any{"dry_run_id": id, "backfill": backfill, "digest": digest, "report_sha256": sum})
}

// IsNotFound reports whether err is a missing row.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Batch is one committed batch of a run.
type Batch struct {
	RunID      int64           `json:"run_id"`
	Batch      int64           `json:"batch"`
	Lane       int             `json:"lane"`
	Cursor     json.RawMessage `json:"cursor"`
	Scanned    int             `json:"scanned"`
	Intended   int             `json:"intended"`
	Changed    int64           `json:"changed"`
	Size       int             `json:"size"`
	Attempts   int             `json:"attempts"`
	DurationMS float64         `json:"duration_ms"`
	Committed  time.Time       `json:"committed_at"`
}

// insertBatch takes committed_at from the clock, not the transaction's start:
// it runs after Progress has locked the run's row, so with lanes the times
// follow the batch numbers, which follow commit order.
const insertBatch = `INSERT INTO backfill.batches (run_id, batch, lane, cursor, scanned, intended, changed, size, attempts, duration_ms, committed_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp())`

func (b Batch) args() []any {
	return []any{b.RunID, b.Batch, b.Lane, b.Cursor, b.Scanned, b.Intended, b.Changed, b.Size, b.Attempts, b.DurationMS}
}

// RecordBatch writes a batch's progress row; call it in the batch's transaction.
func RecordBatch(ctx context.Context, q Querier, b Batch) error {
	if _, err := q.Exec(ctx, insertBatch, b.args()...); err != nil {
		return fmt.Errorf("error recording batch %d of run %d: %w", b.Batch, b.RunID, err)
	}
	return nil
}

// BatchRecord is everything a batch records beside its own writes, after
// Progress has numbered it: its progress row, its lane's checkpoint when
// the run has lanes, its before-images (encoded as backfill.undo holds them)
// when the backfill is reversible, and its audit event.
type BatchRecord struct {
	Batch    Batch
	Lanes    bool   // the run has lanes: move this lane's checkpoint too
	LaneDone bool   // this batch ends its lane
	Undo     []byte // nil when no images are kept
	Event    map[string]any
}

// RecordBatchAll writes a BatchRecord in one round trip; call it in the
// batch's transaction, after Progress. A lane's checkpoint moves only from
// the cursor the batch started at: when another process moved it (a second
// copy of the run after its lock was lost), the batch fails and rolls back.
func RecordBatchAll(ctx context.Context, tx pgx.Tx, r BatchRecord, from json.RawMessage) error {
	event, err := json.Marshal(r.Event)
	if err != nil {
		return fmt.Errorf("error encoding audit event of batch %d: %w", r.Batch.Batch, err)
	}
	var p pgx.Batch
	p.Queue(insertBatch, r.Batch.args()...)
	if r.Lanes {
		p.Queue(`UPDATE backfill.lanes SET cursor = $3, done = $4
			WHERE run_id = $1 AND lane = $2 AND coalesce(cursor, after, 'null'::jsonb) = coalesce($5::jsonb, 'null'::jsonb)`,
			r.Batch.RunID, r.Batch.Lane, r.Batch.Cursor, r.LaneDone, from)
	}
	if r.Undo != nil {
		p.Queue("INSERT INTO backfill.undo (run_id, batch, items) VALUES ($1, $2, $3::json)", r.Batch.RunID, r.Batch.Batch, string(r.Undo))
	}
	p.Queue(insertEvent, r.Batch.RunID, "batch", event)
	res := tx.SendBatch(ctx, &p)
	err = func() error {
		if _, err := res.Exec(); err != nil {
			return err
		}
		if r.Lanes {
			tag, err := res.Exec()
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("lane %d's checkpoint is no longer %s: another process is writing this run: %w", r.Batch.Lane, from, ErrLaneMoved)
			}
		}
		if r.Undo != nil {
			if _, err := res.Exec(); err != nil {
				return err
			}
		}
		_, err := res.Exec()
		return err
	}()
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("error recording batch %d of run %d: %w", r.Batch.Batch, r.Batch.RunID, err)
	}
	return nil
}

// ErrLaneMoved is a lane checkpoint that moved under a batch.
var ErrLaneMoved = errors.New("lane checkpoint moved")

// Batches lists a run's committed batches in order.
func Batches(ctx context.Context, q Querier, runID int64) ([]Batch, error) {
	rows, err := q.Query(ctx, `SELECT run_id, batch, lane, cursor, scanned, intended, changed, size, attempts, duration_ms, committed_at
		FROM backfill.batches WHERE run_id = $1 ORDER BY batch`, runID)
	if err != nil {
		return nil, fmt.Errorf("error reading batches of run %d: %w", runID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Batch, error) {
		var b Batch
		err := r.Scan(&b.RunID, &b.Batch, &b.Lane, &b.Cursor, &b.Scanned, &b.Intended, &b.Changed, &b.Size, &b.Attempts, &b.DurationMS, &b.Committed)
		return b, err
	})
}

// Controls an operator can set on a running run.
const (
	ControlRun    = "run"
	ControlPause  = "pause"
	ControlCancel = "cancel"
)

// SetControl asks a running run to pause, resume or cancel, and logs it.
func SetControl(ctx context.Context, q Querier, id int64, control string) error {
	tag, err := q.Exec(ctx, `UPDATE backfill.runs SET control = $2, control_by = session_user, updated_at = now()
		WHERE id = $1 AND status = 'running'`, id, control)
	if err != nil {
		return fmt.Errorf("error setting run %d to %s: %w", id, control, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("run %d is not running: %w", id, ErrNotFound)
	}
	return Append(ctx, q, id, "control", map[string]any{"control": control})
}

// PauseAfterCanary pauses a run in the transaction of its canary batch
// (--pause-after-canary), so that no process, this one or a rerun, goes past
// the canary before someone has checked it and run backfill resume. The
// control audit event says why ("canary": true), which keepCanaryPause reads.
func PauseAfterCanary(ctx context.Context, q Querier, id, batch int64) error {
	if _, err := q.Exec(ctx, `UPDATE backfill.runs SET control = 'pause', control_by = session_user, updated_at = now()
		WHERE id = $1`, id); err != nil {
		return fmt.Errorf("error pausing run %d after its canary batch: %w", id, err)
	}
	return Append(ctx, q, id, "control", map[string]any{"control": ControlPause, "canary": true, "batch": batch})
}

// keepCanaryPause is the control a resumed run starts with: 'run', except
// that a run paused after its canary batch whose last control event is still
// that pause (nobody ran backfill resume or cancel since) stays paused.
const keepCanaryPause = `CASE WHEN control = 'pause' AND coalesce((SELECT (e.payload->>'canary')::boolean
			FROM backfill.audit_events e WHERE e.run_id = $1 AND e.kind = 'control' ORDER BY e.seq DESC LIMIT 1), false)
			THEN 'pause' ELSE 'run' END`

// Control reads a run's requested control.
func Control(ctx context.Context, q Querier, id int64) (string, error) {
	var c string
	if err := q.QueryRow(ctx, "SELECT control FROM backfill.runs WHERE id = $1", id).Scan(&c); err != nil {
		return "", fmt.Errorf("error reading control of run %d: %w", id, err)
	}
	return c, nil
}

// DryRun is a saved dry-run report.
type DryRun struct {
	ID        int64           `json:"id"`
	Digest    string          `json:"digest"`
	Report    json.RawMessage `json:"report"`
	CreatedBy string          `json:"created_by"`
	CreatedAt time.Time       `json:"created_at"`
}

// LatestDryRun returns the newest dry-run report saved for a digest, or nil.
// A report of a dry-run that read a database other than the manifest's
// target (off_target) describes that database, so it is never the one.
// Only a report of the same parameter values (canonical JSON; nil: none) counts.
func LatestDryRun(ctx context.Context, q Querier, digest string, params json.RawMessage) (*DryRun, error) {
	var d DryRun
	err := q.QueryRow(ctx, `SELECT id, digest, report, created_by, created_at FROM backfill.dry_runs
		WHERE digest = $1 AND (report->>'off_target') IS DISTINCT FROM 'true' AND `+sameParams+` ORDER BY id DESC LIMIT 1`,
		digest, paramsArg(params)).Scan(&d.ID, &d.Digest, &d.Report, &d.CreatedBy, &d.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading dry-run reports: %w", err)
	}
	return &d, nil
}

// DryRunBefore returns the dry-run report a run started at started is
// reconciled with: the last one saved for the digest before the run began,
// or nil. A dry-run saved during or after the run describes the data the run
// left behind, not what it planned to change, so it never counts.
// Only a report of the run's parameter values counts.
func DryRunBefore(ctx context.Context, q Querier, digest string, started time.Time, params json.RawMessage) (*DryRun, error) {
	var d DryRun
	err := q.QueryRow(ctx, `SELECT id, digest, report, created_by, created_at FROM backfill.dry_runs
		WHERE digest = $1 AND created_at < $3 AND `+sameParams+` ORDER BY created_at DESC, id DESC LIMIT 1`, digest, paramsArg(params), started).
		Scan(&d.ID, &d.Digest, &d.Report, &d.CreatedBy, &d.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading the dry-run reports of sha256:%s: %w", digest, err)
	}
	return &d, nil
}

// RunsFor lists the runs of any of purposes, oldest first.
func RunsFor(ctx context.Context, q Querier, purposes []string) ([]Run, error) {
	return queryRuns(ctx, q, "WHERE purpose = ANY($1) ORDER BY id", purposes)
}

// RunsOf lists the runs of a run signature, newest first.
func RunsOf(ctx context.Context, q Querier, signature string) ([]Run, error) {
	return queryRuns(ctx, q, "WHERE run_signature = $1 ORDER BY id DESC", signature)
}

// Lane is one key range of a run with lanes, and its checkpoint.
type Lane struct {
	Lane   int             `json:"lane"`
	After  json.RawMessage `json:"after"`  // exclusive lower bound; null: from the start
	Until  json.RawMessage `json:"until"`  // inclusive upper bound; null: to the end
	Cursor json.RawMessage `json:"cursor"` // the last committed key; null: none yet
	Done   bool            `json:"done"`
}

// Lanes lists a run's lanes in order; none means the run has one lane,
// whose checkpoint is the run's cursor.
func Lanes(ctx context.Context, q Querier, runID int64) ([]Lane, error) {
	rows, err := q.Query(ctx, "SELECT lane, after, until, cursor, done FROM backfill.lanes WHERE run_id = $1 ORDER BY lane", runID)
	if err != nil {
		return nil, fmt.Errorf("error reading lanes of run %d: %w", runID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Lane, error) {
		var l Lane
		err := r.Scan(&l.Lane, &l.After, &l.Until, &l.Cursor, &l.Done)
		return l, err
	})
}

// CreateLanes fixes a run's lanes before its first batch, and logs them.
func CreateLanes(ctx context.Context, q Querier, runID int64, lanes []Lane) error {
	for _, l := range lanes {
		if _, err := q.Exec(ctx, "INSERT INTO backfill.lanes (run_id, lane, after, until) VALUES ($1, $2, $3, $4)",
			runID, l.Lane, l.After, l.Until); err != nil {
			return fmt.Errorf("error creating lane %d of run %d: %w", l.Lane, runID, err)
		}
	}
	return Append(ctx, q, runID, "lanes", map[string]any{"lanes": lanes})
}

// LaneDone marks a lane whose last page held no rows of it.
func LaneDone(ctx context.Context, q Querier, runID int64, lane int) error {
	if _, err := q.Exec(ctx, "UPDATE backfill.lanes SET done = true WHERE run_id = $1 AND lane = $2", runID, lane); err != nil {
		return fmt.Errorf("error marking lane %d of run %d done: %w", lane, runID, err)
	}
	return nil
}

// paramsArg is canonical parameter values as a jsonb argument: {} when none.
func paramsArg(params json.RawMessage) json.RawMessage {
	if len(params) == 0 || string(params) == "null" {
		return json.RawMessage("{}")
	}
	return params
}

// sameParams matches a saved dry-run report whose parameter values ($2) are
// a run's; a report without params bound none.
const sameParams = `coalesce(report->'params', '{}'::jsonb) = $2::jsonb`
