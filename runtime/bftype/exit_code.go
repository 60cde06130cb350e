package bftype

// ExitCode is the process exit status of a backfill binary. Each refusal has
// its own code so that an operator's script can tell them apart without
// parsing text; docs/operating.md lists them.
type ExitCode int

// Exit codes. Values are part of the public contract: never renumber them.
const (
	ExitOK           ExitCode = 0  // success, or a dry-run within bounds
	ExitFailure      ExitCode = 1  // an unexpected error
	ExitUsage        ExitCode = 2  // bad flags or arguments
	ExitConnection   ExitCode = 3  // the database could not be reached
	ExitExpectBounds ExitCode = 10 // counts outside the manifest's expect bounds
	ExitEnvironment  ExitCode = 11 // the database is not the manifest's target
	ExitNotApproved  ExitCode = 12 // no valid approvals for this binary's digest
	ExitAlreadyDone  ExitCode = 13 // this run signature already completed
	ExitLocked       ExitCode = 14 // another execution holds the run's lock
	ExitSchema       ExitCode = 15 // a statement does not match the live schema
	ExitLedger       ExitCode = 16 // the ledger is missing, too old or too new
	ExitTenant       ExitCode = 17 // a row in scope belongs to a tenant outside the allowlist
	ExitPermission   ExitCode = 18 // the login lacks a privilege the run needs
	ExitReplaced     ExitCode = 19 // the executable file was deleted or replaced while it runs
	ExitInterrupted  ExitCode = 20 // stopped by a signal or cancel; resumable
	ExitPartial      ExitCode = 21 // stopped by an error after some batches
	ExitValidation   ExitCode = 22 // a post-run check did not hold
)
