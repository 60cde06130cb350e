package bftype

import "fmt"

// StopReason names why a run stopped or was refused. It is recorded in the
// ledger and printed to the operator, so values are stable snake_case words.
type StopReason string

// Stop reasons.
const (
	ReasonExpectBounds  StopReason = "expect_bounds"
	ReasonConnection    StopReason = "connection_failed"
	ReasonEnvironment   StopReason = "environment_mismatch"
	ReasonNotApproved   StopReason = "not_approved"
	ReasonAlreadyDone   StopReason = "already_completed"
	ReasonLocked        StopReason = "locked"
	ReasonSchema        StopReason = "schema_mismatch"
	ReasonLedger        StopReason = "ledger_unusable"
	ReasonTenant        StopReason = "tenant_not_allowed"
	ReasonPermission    StopReason = "permission_denied"
	ReasonFailed        StopReason = "batch_failed"
	ReasonInterrupted   StopReason = "interrupted"
	ReasonCancelled     StopReason = "cancelled"
	ReasonNotReversible StopReason = "not_reversible"
	ReasonValidation    StopReason = "validation_failed"
	ReasonReplaced      StopReason = "binary_replaced"
)

// Refusal is the error a backfill returns when it will not go on. It carries
// one sentence for the operator, what to do next, a stop reason and the exit
// code; it is the only error the CLI prints without a wrapping chain.
type Refusal struct {
	Reason StopReason
	Code   ExitCode
	Msg    string // what is wrong, one sentence
	Next   string // what the operator should do next, one sentence
	Err    error  // the underlying cause, for logs; may be nil
	RunID  int64  // the ledger's record of the refused attempt; 0 when not recorded
}

// Refuse builds a Refusal.
func Refuse(reason StopReason, code ExitCode, next string, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Code: code, Msg: fmt.Sprintf(format, args...), Next: next}
}

func (r *Refusal) Error() string {
	if r.Next == "" {
		return r.Msg
	}
	return r.Msg + " " + r.Next
}

// Unwrap returns the underlying cause.
func (r *Refusal) Unwrap() error { return r.Err }
