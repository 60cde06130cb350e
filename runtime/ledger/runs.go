package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
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

// ErrCancelled is a start that found its unfinished run cancelled while no
// process ran it: the database ended it as cancelled instead.
var ErrCancelled = errors.New("the run was cancelled while no process ran it")

// Start starts a run through the ledger, or resumes the unfinished run of
// the same run signature, purpose and parameter values when no session of
// it is alive. The database checks, in the same transaction, the approvals
// (by its own clock, for its own environment, naming exactly these
// statements), run once, and that no live session holds the run; it sets
// the login, the approvals used and the start itself, and this session
// holds the run until it ends. required is the approvals the manifest's risk
// needs; the ledger's min_approvals setting may ask for more.
func Start(ctx context.Context, q Querier, r Run, statements []bftype.Statement, required int) (*Run, bool, error) {
	stmts, err := json.Marshal(statements)
	if err != nil {
		return nil, false, fmt.Errorf("error encoding the run's statements: %w", err)
	}
	var id int64
	var resumed bool
	var ids []int64
	err = q.QueryRow(ctx, `SELECT run_id, resumed, approval_ids FROM backfill.start_run($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7,
		$8::jsonb, $9, $10, $11, $12, $13)`,
		r.Backfill, r.Digest, r.RunSignature, r.Purpose, paramsArg(r.Params), string(stmts), required,
		parametersArg(r.Parameters), r.OSUser, r.ClientHost, r.CodeVersion, r.SourceCommit, r.Matched).Scan(&id, &resumed, &ids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, ErrCancelled
	}
	if err != nil {
		return nil, false, fmt.Errorf("error starting a run of %s: %w", r.Backfill, err)
	}
	got, err := GetRun(ctx, q, id)
	return got, resumed, err
}

// Join adds this session to run id, which its login holds: a lane's
// connection, or the run's own after the connection was lost.
func Join(ctx context.Context, q Querier, id int64) error {
	if _, err := q.Exec(ctx, "SELECT backfill.join_run($1)", id); err != nil {
		return fmt.Errorf("error joining run %d: %w", id, err)
	}
	return nil
}

// Held reports whether a session of run id's current attempt is alive.
func Held(ctx context.Context, q Querier, id int64) (bool, error) {
	var live bool
	if err := q.QueryRow(ctx, "SELECT backfill.run_live($1)", id).Scan(&live); err != nil {
		return false, fmt.Errorf("error reading whether run %d is live: %w", id, err)
	}
	return live, nil
}

func parametersArg(p json.RawMessage) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage("{}")
	}
	return p
}

// Refused records a refused attempt as its own run row with the stop reason,
// and logs it. It never touches a resumable run.
func Refused(ctx context.Context, q Querier, r Run, reason, message string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT backfill.refuse_run($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12)",
		r.Backfill, r.Digest, r.RunSignature, r.Purpose, paramsArg(r.Params), parametersArg(r.Parameters), r.OSUser, r.ClientHost,
		r.CodeVersion, r.SourceCommit, reason, message).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("error recording the refused run of %s: %w", r.Backfill, err)
	}
	return id, nil
}

// Finish ends a run with a status and, unless completed, a stop reason.
// The session holding the run finishes it; so may its login from a new
// session when none of the run's is alive.
func Finish(ctx context.Context, q Querier, id int64, status, reason, message string) error {
	if _, err := q.Exec(ctx, "SELECT backfill.finish_run($1, $2, $3, $4, '{}')", id, status, reason, message); err != nil {
		return fmt.Errorf("error finishing run %d as %s: %w", id, status, err)
	}
	return nil
}

// SaveDryRun stores a dry-run report. Its audit event carries the sha256 of
// the report as stored (jsonb text), which binds an archived copy to the chain.
func SaveDryRun(ctx context.Context, q Querier, backfill, digest, signature string, report any) (int64, error) {
	data, err := json.Marshal(report)
	if err != nil {
		return 0, fmt.Errorf("error encoding dry-run report: %w", err)
	}
	var id int64
	if err := q.QueryRow(ctx, "SELECT backfill.save_dry_run($1, $2, $3, $4::jsonb)", backfill, digest, signature, data).Scan(&id); err != nil {
		return 0, fmt.Errorf("error saving dry-run report: %w", err)
	}
	return id, nil
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

// BatchRecord is what a batch records beside its own writes: its progress
// row, the run's counters, its lane's checkpoint (moved forward from From,
// the cursor the batch started at, only), its before-images (encoded as
// backfill.undo holds them; nil when none are kept) and its audit event,
// whose batch, lane, cursor and counts the database sets.
type BatchRecord struct {
	RunID      int64
	Lane       int
	From       json.RawMessage // the lane's checkpoint the batch started after; nil: the start
	Cursor     json.RawMessage
	Last       bool // this batch ends its lane (or the run's one lane)
	Scanned    int
	Intended   int
	Size       int
	Attempts   int
	DurationMS float64
	Undo       []byte
	UndoKeys   []string // the keys of Undo's images, as text
	Kind       string   // batch, or revert_batch for a revert
	Event      map[string]any
}

// RecordBatch records a batch in its transaction, after its writes, and
// returns its number and the rows its writes changed as the database
// counted them (backfill.exec). The run's row stays locked until that
// transaction ends, so batch numbers follow commit order without gaps even
// when several lanes of one run commit batches at once. When the lane's
// checkpoint is no longer From (another process wrote it), it fails with
// ErrLaneMoved and the batch rolls back.
func RecordBatch(ctx context.Context, q Querier, r BatchRecord) (number, changed int64, err error) {
	event, err := json.Marshal(r.Event)
	if err != nil {
		return 0, 0, fmt.Errorf("error encoding the audit event of a batch of run %d: %w", r.RunID, err)
	}
	kind := r.Kind
	if kind == "" {
		kind = "batch"
	}
	var undo *string
	if r.Undo != nil {
		u := string(r.Undo)
		undo = &u
	}
	err = q.QueryRow(ctx, `SELECT batch, changed FROM backfill.record_batch($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)`,
		r.RunID, r.Lane, nullJSON(r.From), string(r.Cursor), r.Last, r.Scanned, r.Intended, r.Size, r.Attempts, r.DurationMS,
		undo, r.UndoKeys, kind, event).Scan(&number, &changed)
	if IsCode(err, CodeCheckpoint) {
		return 0, 0, fmt.Errorf("lane %d's checkpoint is no longer %s: another process is writing this run: %w", r.Lane, r.From, ErrLaneMoved)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("error recording a batch of run %d: %w", r.RunID, err)
	}
	return number, changed, nil
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

// SetControl asks a running run to pause, resume or cancel, and logs it. A
// cancel is final; a cancel of a run no process holds ends it at once.
func SetControl(ctx context.Context, q Querier, id int64, control string) error {
	if _, err := q.Exec(ctx, "SELECT backfill.set_control($1, $2)", id, control); err != nil {
		if IsCode(err, CodeFinal) {
			return fmt.Errorf("run %d is not running (%s): %w", id, pgMessage(err), ErrNotFound)
		}
		return fmt.Errorf("error setting run %d to %s: %w", id, control, err)
	}
	return nil
}

// PauseAfterCanary pauses a run in the transaction of its canary batch
// (--pause-after-canary), so that no process, this one or a rerun, goes past
// the canary before someone has checked it and run backfill resume. The
// control audit event says why ("canary": true), and a resume keeps that
// pause until someone resumes or cancels the run.
func PauseAfterCanary(ctx context.Context, q Querier, id, batch int64) error {
	if _, err := q.Exec(ctx, "SELECT backfill.pause_after_canary($1, $2)", id, batch); err != nil {
		return fmt.Errorf("error pausing run %d after its canary batch: %w", id, err)
	}
	return nil
}

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

// CreateLanes fixes a run's lanes before its first batch, and logs them
// with payload (none: the run goes on in one lane, and payload says why).
func CreateLanes(ctx context.Context, q Querier, runID int64, lanes []Lane, payload map[string]any) error {
	if lanes == nil {
		lanes = []Lane{}
	}
	data, err := json.Marshal(lanes)
	if err != nil {
		return fmt.Errorf("error encoding lanes of run %d: %w", runID, err)
	}
	if payload == nil {
		payload = map[string]any{"lanes": lanes}
	}
	event, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("error encoding lanes of run %d: %w", runID, err)
	}
	if _, err := q.Exec(ctx, "SELECT backfill.create_lanes($1, $2::jsonb, $3::jsonb)", runID, data, event); err != nil {
		return fmt.Errorf("error creating the lanes of run %d: %w", runID, err)
	}
	return nil
}

// LaneDone marks a lane whose last page held no rows of it.
func LaneDone(ctx context.Context, q Querier, runID int64, lane int) error {
	if _, err := q.Exec(ctx, "SELECT backfill.lane_done($1, $2)", runID, lane); err != nil {
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

// StatusText is a run's status as the lists print it: a running run asked to
// pause or cancel says so ("running, paused"), since its status stays
// running until its process stops.
func StatusText(status, control string) string {
	if status != StatusRunning {
		return status
	}
	switch control {
	case ControlPause:
		return status + ", paused"
	case ControlCancel:
		return status + ", cancel asked"
	}
	return status
}
