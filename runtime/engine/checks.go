// The manifest's checks, run before the first write and after the last.

package engine

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// Validate runs the manifest's checks; each must return its expected value.
func Validate(ctx context.Context, conn *pgx.Conn, m *bftype.Manifest) error {
	results, err := RunChecks(ctx, conn, m)
	if err != nil {
		return err
	}
	if r := failing(results); r != nil {
		return r
	}
	return nil
}

// CheckResult is the ledger's type of one check's result.
type CheckResult = ledger.CheckResult

// RunChecks runs the manifest's checks and returns what each returned. A
// check that cannot run is a refusal; one that returns another value is a
// result that does not hold.
func RunChecks(ctx context.Context, conn *pgx.Conn, m *bftype.Manifest) ([]CheckResult, error) {
	results := make([]CheckResult, 0, len(m.Checks))
	for _, c := range m.Checks {
		got, err := singleValue(ctx, conn, c.Query)
		if err != nil && pgdb.Classify(err) == pgdb.Permission {
			return nil, refuse(bftype.ReasonPermission, bftype.ExitPermission, "Use a login that may read the tables the checks read (the runner).",
				"Check %s may not run as this login: %s.", c.Name, pgdb.ErrorSentence(err))
		}
		if err != nil {
			return nil, refuse(bftype.ReasonValidation, bftype.ExitValidation, "Fix the check's query in backfill.yaml.",
				"Check %s failed to run: %s.", c.Name, pgdb.ErrorSentence(err))
		}
		results = append(results, CheckResult{Name: c.Name, Query: c.Query, Equals: c.Equals, Got: got, Holds: got == c.Equals})
	}
	return results, nil
}

// Hold reports whether every check holds.
func Hold(results []CheckResult) bool { return failing(results) == nil }

// failing is the refusal for the first check that does not hold, or nil.
func failing(results []CheckResult) *bftype.Refusal {
	for _, c := range results {
		if !c.Holds {
			return refuse(bftype.ReasonValidation, bftype.ExitValidation, "Investigate the data before anything else runs.",
				"Check %s returned %q after the run, not %q.", c.Name, c.Got, c.Equals)
		}
	}
	return nil
}
