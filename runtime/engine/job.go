// Package engine runs a backfill for real: the preflight that refuses unless
// every guardrail holds, then the batches, each committing its writes and its
// checkpoint in one transaction.
//
// It never prints: it reports progress through a callback and returns typed
// refusals, and the CLI draws both for the operator.
package engine

import (
	"encoding/json"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/plan"
)

// Job is one backfill binary's identity and plan.
type Job struct {
	Name         string
	Manifest     *bftype.Manifest
	Digest       string
	RunSignature string
	SourceCommit string
	CodeVersion  string
	Statements   []bftype.Statement
	Plan         plan.Plan
}

// params are the canonical JSON of the parameter values the plan binds:
// what approvals must pin and what the run-once key includes.
func (j *Job) params() json.RawMessage {
	if j.Plan == nil {
		return json.RawMessage("{}")
	}
	return j.Plan.Params().JSON()
}

// Operator says who runs the job and how it was launched.
type Operator struct {
	OSUser     string
	ClientHost string
	Parameters map[string]any
}

// Check is one preflight step's outcome, reported as it passes.
type Check struct {
	Name   string // environment, approval, run_once, lock, schema, expected_counts
	Detail string
}

// Progress is one committed batch.
type Progress struct {
	RunID   int64
	Batch   int64
	Scanned int64 // rows read in this run so far, by every process that ran it
	Changed int64 // rows written in this run so far
	// Matched is the scope count of the run's first preflight (for a
	// revert, the before-images it started with); a resume keeps it, so
	// Scanned/Matched is the whole run's progress even when the scope
	// shrinks as rows are fixed.
	Matched int64
	// Rate is rows read per second by this process's recent batches (about
	// the last 10 seconds), never the whole run's rows over this process's age.
	Rate float64
	// ETA is the rows left of Matched at Rate; 0 when unknown.
	ETA time.Duration
}

// Hooks receive what the engine does; any may be nil.
type Hooks struct {
	Check    func(Check)
	Started  func(runID int64, resumed bool)
	Progress func(Progress)
	Paused   func(runID int64)
	Stopped  func(runID int64, status, message string)
	// Note receives what the operator should know that is not an error,
	// such as a run going on in one lane where the manifest allows more.
	Note func(message string)
	// Wait receives each time the run waits instead of committing: a retry,
	// a lock wait, a reconnect, a lagging replica, an unhealthy database,
	// and the end of a pause. The next Progress means the wait is over.
	Wait func(Wait)
	// Canary receives the committed canary batch of a run that pauses after
	// it (Options.PauseAfterCanary), for a person to check.
	Canary func(Canary)
}

// Canary is what a person checks before a run paused after its canary
// batch goes on: the keys and diffs of the batch, and the manifest's spot
// checks as the rows hold them now.
type Canary struct {
	RunID   int64
	Batch   int64
	Cursor  json.RawMessage
	Scanned int
	Changed int64
	Samples []bftype.Sample
	// Spots are the report.spot_check keys beside the prediction of the
	// dry-run DryRunID the run reconciles with (0: none, nothing predicted).
	Spots    []SpotResult
	DryRunID int64
}

// Wait is one wait of a run, as it begins.
type Wait struct {
	Kind   string // retry, lock_wait, reconnect, replica_lag, unhealthy, resumed
	Detail string // for a reader: "replica lag 12s", "attempt 3: deadlock detected"
}

func (h Hooks) wait(kind, detail string) {
	if h.Wait != nil {
		h.Wait(Wait{Kind: kind, Detail: detail})
	}
}

func (h Hooks) check(name, detail string) {
	if h.Check != nil {
		h.Check(Check{Name: name, Detail: detail})
	}
}
