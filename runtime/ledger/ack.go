package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventAcknowledged is the kind of the audit event an acknowledgement is.
const EventAcknowledged = "acknowledged"

// Ack is an operator's explanation of why a completed run changed another
// number of rows than the dry-run it reconciles with planned (say, rows
// fixed by hand between the two). It names the comparison it explains, so
// it stops explaining as soon as the comparison is another. It is an audit
// event of the run, written by the login that acknowledges: append-only,
// hash-chained and archived with the run.
type Ack struct {
	DryRunID   int64  `json:"dry_run_id"`
	WillChange int64  `json:"will_change"`
	Changed    int64  `json:"changed"`
	Reason     string `json:"reason"`
	// By and At come from the event (its actor, the session's login, and
	// its time), never from the payload.
	By  string    `json:"-"`
	At  time.Time `json:"-"`
	Seq int64     `json:"-"`
}

// Acknowledge records an acknowledgement of run id as the session's login.
// It is the one write of an acknowledgement.
func Acknowledge(ctx context.Context, q Querier, id int64, a Ack) error {
	return Append(ctx, q, id, EventAcknowledged, a)
}

// Acks lists the acknowledgements of run id, oldest first.
func Acks(ctx context.Context, q Querier, id int64) ([]Ack, error) {
	rows, err := q.Query(ctx, "SELECT "+eventColumns+" FROM backfill.audit_events WHERE run_id = $1 AND kind = $2 ORDER BY seq", id, EventAcknowledged)
	if err != nil {
		return nil, fmt.Errorf("error reading the acknowledgements of run %d: %w", id, err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("error reading the acknowledgements of run %d: %w", id, err)
	}
	var acks []Ack
	for _, e := range events {
		if a, ok := AckOf(e); ok {
			acks = append(acks, a)
		}
	}
	return acks, nil
}

// AckOf reads an acknowledgement from its audit event.
func AckOf(e Event) (Ack, bool) {
	var a Ack
	if e.Kind != EventAcknowledged || json.Unmarshal([]byte(e.Payload), &a) != nil {
		return Ack{}, false
	}
	a.By, a.At, a.Seq = e.Actor, time.UnixMicro(e.AtMicros).UTC(), e.Seq
	return a, true
}
