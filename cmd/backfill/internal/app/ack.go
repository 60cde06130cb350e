package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

const ackAbout = `Records, in the audit log, why completed run RUN changed another number of rows
than the dry-run it reconciles with (the last dry-run of its digest saved before
it started) planned: say, rows fixed by hand between the dry-run and the run.
The backfill's verify then shows the difference and this reason instead of
failing, and the run's archive (REPORT.md) shows them too. It acknowledges this
very difference only: the dry-run and both counts are recorded with the reason.
Needs a login with backfill_runner; the login is recorded as who acknowledged.`

// ackCommand records an operator's explanation of a reconcile difference.
func ackCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "ack", "RUN --reason \"...\"", ackAbout)
	url := dbFlag(fs)
	reason := fs.String("reason", "", "why the run and its dry-run differ (required)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return usageError{fmt.Sprintf("run id %q is not a number", fs.Arg(0))}
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError{"ack needs --reason: say why the run and its dry-run differ"}
	}
	return withConn(ctx, *url, func(conn *pgx.Conn) error {
		var ack ledger.Ack
		err := pgdb.WithTx(ctx, conn, func(tx pgx.Tx) error {
			var err error
			ack, err = acknowledge(ctx, tx, id, strings.TrimSpace(*reason))
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return fmt.Errorf("this login may not acknowledge a run (%s): use a login with the backfill_runner role", pgErr.Message)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "acknowledged: run %d changed %d rows, dry-run %d planned %d: %s\n", id, ack.Changed, ack.DryRunID, ack.WillChange, ack.Reason)
		return nil
	})
}

// acknowledge checks that run id is a completed execution whose changed rows
// differ from its dry-run, and records the acknowledgement of that difference.
func acknowledge(ctx context.Context, tx pgx.Tx, id int64, reason string) (ledger.Ack, error) {
	run, err := ledger.GetRun(ctx, tx, id)
	if err != nil {
		return ledger.Ack{}, err
	}
	if run.Purpose != approval.PurposeExecute || run.Status != ledger.StatusCompleted {
		return ledger.Ack{}, usageError{fmt.Sprintf("run %d is %s (%s), not a completed execution; only those reconcile with a dry-run",
			id, run.Status, approval.DescribePurpose(run.Purpose))}
	}
	rec, err := engine.Reconcile(ctx, tx, run)
	switch {
	case err != nil:
		return ledger.Ack{}, err
	case rec.DryRunID == 0:
		return ledger.Ack{}, usageError{fmt.Sprintf("run %d has no dry-run of its digest saved before it started, so there is no difference to acknowledge", id)}
	case rec.Match:
		return ledger.Ack{}, usageError{fmt.Sprintf("run %d changed %d rows, as dry-run %d planned; there is no difference to acknowledge", id, rec.Changed, rec.DryRunID)}
	}
	ack := ledger.Ack{DryRunID: rec.DryRunID, WillChange: rec.WillChange, Changed: rec.Changed, Reason: reason}
	return ack, ledger.Acknowledge(ctx, tx, id, ack)
}
