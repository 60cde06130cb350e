package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/pgdb"
)

// Querier is what ledger functions need: a connection or a transaction.
type Querier = pgdb.DBTX

// Event is one audit log entry as stored. Payload is the jsonb's text form,
// exactly what the hash covers.
type Event struct {
	Seq      int64  `json:"seq"`
	AtMicros int64  `json:"at_us"`
	RunID    *int64 `json:"run_id"`
	Kind     string `json:"kind"`
	Actor    string `json:"actor"`
	Payload  string `json:"payload"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// GenesisHash is the prev_hash of the first event.
var GenesisHash = strings.Repeat("0", 64)

// Hash recomputes an event's hash exactly as backfill.audit_hash does.
func Hash(e Event) string {
	run := ""
	if e.RunID != nil {
		run = strconv.FormatInt(*e.RunID, 10)
	}
	text := strings.Join([]string{"backfill-audit/v1", strconv.FormatInt(e.Seq, 10), strconv.FormatInt(e.AtMicros, 10),
		run, e.Kind, e.Actor, e.Payload, e.PrevHash}, "\n")
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// ChainError names the first broken link of an audit chain.
type ChainError struct {
	Seq     int64
	Problem string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at event %d: %s", e.Seq, e.Problem)
}

// VerifyChain checks that events, in seq order, form an unbroken chain:
// contiguous numbers from first, each linked to the previous hash, and each
// hash matching its content. prev is the hash before the first event
// (GenesisHash for a chain that starts at 1).
func VerifyChain(events []Event, prev string) error {
	for i, e := range events {
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			return &ChainError{Seq: events[i-1].Seq + 1, Problem: fmt.Sprintf("event missing (next is %d)", e.Seq)}
		}
		if i == 0 && prev == GenesisHash && e.Seq != 1 {
			return &ChainError{Seq: 1, Problem: fmt.Sprintf("the chain starts at %d, not 1", e.Seq)}
		}
		if e.PrevHash != prev {
			return &ChainError{Seq: e.Seq, Problem: "prev_hash does not match the hash of the event before it"}
		}
		if got := Hash(e); got != e.Hash {
			return &ChainError{Seq: e.Seq, Problem: "its content does not match its hash (changed after it was written)"}
		}
		prev = e.Hash
	}
	return nil
}

const eventColumns = `seq, (extract(epoch FROM at) * 1000000)::bigint, run_id, kind, actor, payload::text, prev_hash, hash`

// Events reads audit events in seq order; runID 0 means all.
func Events(ctx context.Context, q Querier, runID int64) ([]Event, error) {
	sql := "SELECT " + eventColumns + " FROM backfill.audit_events"
	var args []any
	if runID != 0 {
		sql += " WHERE run_id = $1"
		args = append(args, runID)
	}
	rows, err := q.Query(ctx, sql+" ORDER BY seq", args...)
	if err != nil {
		return nil, fmt.Errorf("error reading audit events: %w", err)
	}
	return pgx.CollectRows(rows, scanEvent)
}

// eventFunctions maps the kinds of audit event a process may add itself to
// the ledger function that checks and writes them; every other kind is
// written by the function of the change it logs (started, batch, finished,
// approval, ...), and the database refuses it from anyone else.
var eventFunctions = map[string]string{
	EventPreflight:    "SELECT backfill.run_event($1, 'preflight', $2)",
	EventValidated:    "SELECT backfill.run_event($1, 'validated', $2)",
	EventReconciled:   "SELECT backfill.run_event($1, 'reconciled', $2)",
	EventAdaptive:     "SELECT backfill.run_event($1, 'adaptive', $2)",
	EventAcknowledged: "SELECT backfill.acknowledge($1, $2)",
	EventArchived:     "SELECT backfill.archived($1, $2)",
}

// Append writes an audit event of one of the kinds a process adds itself
// (preflight, validated, reconciled and adaptive of the run this session
// holds; acknowledged; archived); the database sets its place in the chain,
// its time and its actor.
func Append(ctx context.Context, q Querier, runID int64, kind string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("error encoding audit event %q: %w", kind, err)
	}
	sql, ok := eventFunctions[kind]
	if !ok {
		return fmt.Errorf("audit events of kind %q are written by the ledger itself", kind)
	}
	if _, err := q.Exec(ctx, sql, runID, data); err != nil {
		return fmt.Errorf("error writing audit event %q: %w", kind, err)
	}
	return nil
}
