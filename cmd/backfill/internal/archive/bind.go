package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/runonce/backfill/runtime/ledger"
)

// Payloads of the audit events the records are bound to.
type (
	originPayload struct { // started and refused
		Backfill     string          `json:"backfill"`
		Digest       string          `json:"digest"`
		RunSignature string          `json:"run_signature"`
		Purpose      string          `json:"purpose"`
		OSUser       string          `json:"os_user"`
		ClientHost   string          `json:"client_host"`
		Parameters   json.RawMessage `json:"parameters"`
		Params       json.RawMessage `json:"params"` // the declared parameters' values; absent before ledger version 5
		StopReason   string          `json:"stop_reason"`
		Message      string          `json:"message"`
	}
	finishedPayload struct {
		Status     string `json:"status"`
		StopReason string `json:"stop_reason"`
		Message    string `json:"message"`
	}
	preflightPayload struct {
		Database         string  `json:"database"`
		Environment      string  `json:"environment"`
		SystemIdentifier string  `json:"system_identifier"`
		DBUser           string  `json:"db_user"`
		ApprovalIDs      []int64 `json:"approval_ids"`
		Matched          int64   `json:"matched"`
	}
	batchPayload struct {
		Batch    int64           `json:"batch"`
		Lane     int             `json:"lane"`
		Cursor   json.RawMessage `json:"cursor"`
		Scanned  int             `json:"scanned"`
		Intended int             `json:"intended"`
		Changed  int64           `json:"changed"`
	}
	approvalPayload struct {
		ApprovalID  int64     `json:"approval_id"`
		Backfill    string    `json:"backfill"`
		Digest      string    `json:"digest"`
		Approver    string    `json:"approver"`
		Environment string    `json:"environment"`
		Purpose     string    `json:"purpose"`
		Reason      string    `json:"reason"`
		ExpiresAt   time.Time `json:"expires_at"`
	}
	dryRunPayload struct {
		DryRunID     int64  `json:"dry_run_id"`
		Digest       string `json:"digest"`
		ReportSHA256 string `json:"report_sha256"`
	}
)

// slack is how far a record's time may be from its event's: the row takes
// the transaction's time, the event the clock's a moment later.
const slack = time.Minute

// bindings ties the records to the audit events, which the hash chain
// protects: every run, approval and dry-run report of this binary that the
// archived events mention is in the archive, and each record says what its
// events say. Editing a record therefore means rewriting the chain too.
func (v *verifier) bindings() {
	before := len(v.problems)
	v.bindMentions()
	for i := range v.a.Runs {
		v.bindRun(&v.a.Runs[i])
	}
	if len(v.problems) == before {
		v.ok("every run, approval and dry-run report of this binary in the audit events is archived, and says what its events say")
	}
}

// bindMentions checks the events that name this binary's digest.
func (v *verifier) bindMentions() {
	a := v.a
	for _, e := range a.Events {
		switch e.Kind {
		case "started", "refused":
			var p originPayload
			if decodePayload(e, &p) != nil || p.Digest != a.Index.Digest || e.RunID == nil {
				continue
			}
			if a.run(*e.RunID) == nil {
				v.problems.add(RunsFile, "run %d of this binary (audit event %d, %s) is missing", *e.RunID, e.Seq, e.Kind)
			}
		case "approval":
			var p approvalPayload
			if decodePayload(e, &p) != nil || p.Digest != a.Index.Digest {
				continue
			}
			i := slices.IndexFunc(a.Approvals, func(x ApprovalRow) bool { return x.ID == p.ApprovalID })
			if i < 0 {
				v.problems.add(ApprovalsFile, "approval %d of this binary (audit event %d, by %s) is missing", p.ApprovalID, e.Seq, p.Approver)
				continue
			}
			x := a.Approvals[i]
			if x.Approver != p.Approver || x.Reason != p.Reason || x.Environment != p.Environment || x.Purpose != p.Purpose ||
				x.Backfill != p.Backfill || !x.ExpiresAt.Equal(p.ExpiresAt) || actor(e) != x.SubmittedBy {
				v.problems.add(ApprovalsFile, "approval %d does not say what its audit event %d says", x.ID, e.Seq)
			}
		case "dry_run":
			var p dryRunPayload
			if decodePayload(e, &p) != nil || p.Digest != a.Index.Digest {
				continue
			}
			report, ok := a.Reports[p.DryRunID]
			switch {
			case !ok || !slices.ContainsFunc(a.DryRuns, func(d DryRunRow) bool { return d.ID == p.DryRunID }):
				v.problems.add(DryRunsFile, "dry-run report %d of this binary (audit event %d) is missing", p.DryRunID, e.Seq)
			case p.ReportSHA256 != "" && hexSHA256(report) != p.ReportSHA256:
				v.problems.add(DryRunFile(p.DryRunID), "is not the report whose sha256 audit event %d records", e.Seq)
			}
		}
	}
}

func actor(e ledger.Event) string { return e.Actor }

// bindRun compares one run's record and batches with its events.
func (v *verifier) bindRun(r *ledger.Run) {
	a := v.a
	var origin, finished, preflight, first *ledger.Event // first: the first preflight, whose count the run keeps as matched
	resumes := 0
	batches := map[int64]batchPayload{}
	for i := range a.Events {
		e := &a.Events[i]
		if e.RunID == nil || *e.RunID != r.ID {
			continue
		}
		switch e.Kind {
		case "started", "refused":
			if origin == nil {
				origin = e
			}
		case "finished":
			finished = e
		case "preflight":
			preflight = e
			if first == nil {
				first = e
			}
		case "resumed":
			resumes++
		case "batch":
			var p batchPayload
			if decodePayload(*e, &p) == nil {
				batches[p.Batch] = p
			}
		}
	}
	if origin == nil {
		return // audit() names the missing event
	}
	var o originPayload
	_ = decodePayload(*origin, &o)
	same := o.Backfill == r.Backfill && o.Digest == r.Digest && o.OSUser == r.OSUser && o.ClientHost == r.ClientHost &&
		origin.Actor == r.DBUser && near(r.StartedAt, origin.AtMicros) && sameJSON(noParams(o.Params), noParams(r.Params))
	if origin.Kind == "started" {
		same = same && o.RunSignature == r.RunSignature && o.Purpose == r.Purpose && sameJSON(o.Parameters, r.Parameters)
	} else {
		same = same && r.Status == ledger.StatusRefused && o.StopReason == deref0(r.StopReason) && o.Message == deref0(r.Message)
	}
	if !same {
		v.problems.add(RunsFile, "run %d does not say what its %s event %d says (who, where, when, what or with which parameter values)", r.ID, origin.Kind, origin.Seq)
	}
	v.bindEnd(r, finished)
	if resumes != r.Resumes {
		v.problems.add(RunsFile, "run %d says it resumed %d times; its events say %d", r.ID, r.Resumes, resumes)
	}
	if preflight != nil {
		var p, f preflightPayload
		_ = decodePayload(*preflight, &p)
		_ = decodePayload(*first, &f)
		if !slices.Equal(p.ApprovalIDs, r.ApprovalIDs) || (r.Matched != nil && f.Matched != *r.Matched) ||
			p.Environment != deref0(r.Environment) || p.DBUser != r.DBUser {
			v.problems.add(RunsFile, "run %d does not say what its preflight events %d and %d say (approvals, scope count of the first, environment or login)",
				r.ID, first.Seq, preflight.Seq)
		}
		if p.Database != a.Index.Ledger.Database || p.SystemIdentifier != a.Index.Ledger.SystemIdentifier || p.Environment != a.Index.Ledger.Environment {
			v.problems.add(IndexFile, "names database %s, cluster %s, environment %s; run %d's preflight event %d says %s, %s, %s",
				a.Index.Ledger.Database, a.Index.Ledger.SystemIdentifier, a.Index.Ledger.Environment, r.ID, preflight.Seq, p.Database, p.SystemIdentifier, p.Environment)
		}
	}
	for _, b := range a.Batches {
		if b.RunID != r.ID || r.Purpose != "execute" {
			continue
		}
		p, ok := batches[b.Batch]
		if !ok || p.Lane != b.Lane || p.Changed != b.Changed || p.Scanned != b.Scanned || p.Intended != b.Intended || !sameJSON(p.Cursor, b.Cursor) {
			v.problems.add(BatchesFile, "batch %d of run %d does not say what its audit event says", b.Batch, r.ID)
		}
	}
}

// bindEnd compares how a run ended with its last finished event.
func (v *verifier) bindEnd(r *ledger.Run, finished *ledger.Event) {
	switch {
	case r.Status == ledger.StatusRefused:
		return
	case r.Status == ledger.StatusRunning:
		return // no finished event after its last start: the process died
	case finished == nil:
		v.problems.add(RunsFile, "run %d says it is %s, but it has no finished event", r.ID, r.Status)
		return
	}
	var f finishedPayload
	_ = decodePayload(*finished, &f)
	if f.Status != r.Status || f.StopReason != deref0(r.StopReason) || f.Message != deref0(r.Message) ||
		r.FinishedAt == nil || !near(*r.FinishedAt, finished.AtMicros) {
		v.problems.add(RunsFile, "run %d says it ended %s; its finished event %d says %s", r.ID, r.Status, finished.Seq, f.Status)
	}
}

func decodePayload(e ledger.Event, v any) error {
	if err := json.Unmarshal([]byte(e.Payload), v); err != nil {
		return fmt.Errorf("error decoding audit event %d: %w", e.Seq, err)
	}
	return nil
}

func near(t time.Time, micros int64) bool {
	d := time.UnixMicro(micros).Sub(t)
	return d > -slack && d < slack
}

// sameJSON compares two JSON texts by value.
// noParams reads absent parameter values (an event or run from before
// ledger version 5) as none, {}.
func noParams(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return json.RawMessage("{}")
	}
	return v
}

func sameJSON(x, y json.RawMessage) bool {
	var a, b bytes.Buffer
	if json.Compact(&a, x) != nil || json.Compact(&b, y) != nil {
		return bytes.Equal(x, y)
	}
	var vx, vy any
	if json.Unmarshal(a.Bytes(), &vx) != nil || json.Unmarshal(b.Bytes(), &vy) != nil {
		return false
	}
	ax, _ := json.Marshal(vx)
	ay, _ := json.Marshal(vy)
	return bytes.Equal(ax, ay)
}

func deref0(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
