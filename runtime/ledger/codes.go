package ledger

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// The SQLSTATEs the ledger's functions raise when they refuse a change
// (migration 006), so that the binary can tell its refusals apart.
const (
	CodeNotApproved    = "BF001" // too few approvals count, by the database's checks
	CodeAlreadyDone    = "BF002" // run once: the run signature completed (or was cancelled)
	CodeHeld           = "BF003" // a live session holds the run
	CodeNotHeld        = "BF004" // this session does not hold the run
	CodeNotApprovedSQL = "BF005" // a statement the run's approvals do not name
	CodePaused         = "BF006" // the run is paused
	CodeFinal          = "BF007" // the run ended (or was cancelled); that is final
	CodeCheckpoint     = "BF008" // a checkpoint would not move forward from where it is
	CodeConflict       = "BF009" // a run and a revert of it, or another binary's run
	CodeMalformed      = "BF010" // a malformed statement, key or argument
	CodeKeys           = "BF011" // a batch writes a key its page did not read
	CodeUnrecorded     = "BF012" // a batch's writes were not recorded: its transaction cannot commit
	CodeUntrustedPath  = "BF013" // a login can create objects where the approved SQL runs as the writer
)

// IsCode reports whether err is a PostgreSQL error with SQLSTATE code.
func IsCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// Code is err's SQLSTATE when it is a ledger refusal (class BF), else "".
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "BF" {
		return pgErr.Code
	}
	return ""
}

// pgMessage is the database's sentence of err, or err's text.
func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}

// Message is the database's sentence of err, without SQLSTATE, or err's text.
func Message(err error) string { return pgMessage(err) }
