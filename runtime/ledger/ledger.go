// Package ledger is the run-once ledger kept in schema backfill of the target
// database: trusted approver keys, approvals, runs, dry-run reports and the
// hash-chained audit log, with the roles that split access to them.
//
// Migrations are embedded and versioned; Init applies the missing ones and
// refuses a ledger newer than the code, and Check tells a backfill binary
// whether it can rely on the ledger it found.
package ledger

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/bftype"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded, numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []Migration
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			panic("migration file without a number: " + e.Name())
		}
		data, _ := migrationFiles.ReadFile("migrations/" + e.Name())
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(data)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Version is the ledger version this code expects.
func Version() int {
	m := Migrations()
	return m[len(m)-1].Version
}

// migrationLock serialises concurrent ledger init calls on one database.
const migrationLock = 7305811741290602

const versionTable = `CREATE TABLE IF NOT EXISTS backfill.migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_by text NOT NULL DEFAULT session_user,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// InitResult says what Init did.
type InitResult struct {
	From, To    int
	Environment string
}

// Init creates or migrates the ledger and records the environment name the
// database stands for. It is idempotent; it refuses a ledger newer than this
// code and an environment different from the one already recorded.
func Init(ctx context.Context, conn *pgx.Conn, environment string) (*InitResult, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("error beginning ledger migration: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("error locking ledger migration: %w", err)
	}
	from, err := currentVersion(ctx, tx)
	if err != nil {
		return nil, err
	}
	if from > Version() {
		return nil, fmt.Errorf("the ledger is at version %d, newer than this backfill (%d); use a newer bin/backfill", from, Version())
	}
	for _, m := range Migrations() {
		if m.Version <= from {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("error applying ledger migration %s: %w", m.Name, err)
		}
		if m.Version == 1 {
			if _, err := tx.Exec(ctx, versionTable+"; GRANT SELECT ON backfill.migrations TO backfill_runner, backfill_approver, backfill_observer, backfill_admin"); err != nil {
				return nil, fmt.Errorf("error creating ledger version table: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO backfill.migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("error recording ledger migration %s: %w", m.Name, err)
		}
	}
	env, err := setEnvironment(ctx, tx, environment)
	if err != nil {
		return nil, err
	}
	// From version 6 the roles exist; a ledger that logins can write
	// around is not finished.
	exposed, err := Exposures(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(exposed) > 0 {
		return nil, &ExposureError{Exposures: exposed}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("error committing ledger migration: %w", err)
	}
	return &InitResult{From: from, To: Version(), Environment: env}, nil
}

func setEnvironment(ctx context.Context, tx pgx.Tx, environment string) (string, error) {
	var have string
	err := tx.QueryRow(ctx, "SELECT value FROM backfill.settings WHERE key = 'environment'").Scan(&have)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && environment == "":
		return "", fmt.Errorf("the ledger needs --environment the first time: the name of what this database is (e.g. production)")
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, "INSERT INTO backfill.settings (key, value) VALUES ('environment', $1)", environment)
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO backfill.audit_events (kind, payload) VALUES ('ledger_environment', jsonb_build_object('environment', $1::text))", environment)
		}
		if err != nil {
			return "", fmt.Errorf("error recording environment: %w", err)
		}
		return environment, nil
	case err != nil:
		return "", fmt.Errorf("error reading environment: %w", err)
	case environment != "" && environment != have:
		return "", fmt.Errorf("this ledger is for environment %q, not %q; an environment is set once", have, environment)
	}
	return have, nil
}

// currentVersion is the applied ledger version, 0 when there is none.
func currentVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('backfill.migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("error reading ledger version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM backfill.migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("error reading ledger version: %w", err)
	}
	return v, nil
}

// Check refuses a ledger that is missing, older or newer than this code, and
// returns the environment the ledger records.
func Check(ctx context.Context, conn *pgx.Conn) (string, error) {
	v, err := currentVersion(ctx, conn)
	if err != nil {
		return "", ledgerRefusal(err)
	}
	switch {
	case v == 0:
		return "", bftype.Refuse(bftype.ReasonLedger, bftype.ExitLedger,
			"Ask an administrator to run: bin/backfill ledger init --environment NAME.",
			"There is no backfill ledger in this database.")
	case v < Version():
		return "", bftype.Refuse(bftype.ReasonLedger, bftype.ExitLedger,
			"Ask an administrator to run: bin/backfill ledger init (it migrates).",
			"The ledger is at version %d, older than this binary's %d.", v, Version())
	case v > Version():
		return "", bftype.Refuse(bftype.ReasonLedger, bftype.ExitLedger,
			"Rebuild the backfill with the current runtime.",
			"The ledger is at version %d, newer than this binary's %d.", v, Version())
	}
	var env string
	if err := conn.QueryRow(ctx, "SELECT value FROM backfill.settings WHERE key = 'environment'").Scan(&env); err != nil {
		return "", ledgerRefusal(fmt.Errorf("error reading the ledger's environment: %w", err))
	}
	return env, nil
}

func ledgerRefusal(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		r := bftype.Refuse(bftype.ReasonLedger, bftype.ExitLedger,
			"Grant this login one of the roles backfill_runner, backfill_observer, backfill_approver or backfill_admin.",
			"This login may not read the backfill ledger: %s.", pgErr.Message)
		r.Err = err
		return r
	}
	return err
}

// Exposure is a login that can act as the ledger's owner or writer role,
// which the ledger's guarantees rule out: through membership, or through
// CREATEROLE, with which a PostgreSQL 15 login may grant itself any role
// that is not a superuser's. Superusers can always; that is PostgreSQL's
// rule, and docs/operating.md says so.
type Exposure struct {
	Login string `json:"login"`
	Role  string `json:"role"` // backfill_owner or backfill_writer
	How   string `json:"how"`  // "member", "createrole", "the role can log in"
}

// Exposures lists the logins that can act as backfill_owner or
// backfill_writer, superusers excepted.
func Exposures(ctx context.Context, q Querier) ([]Exposure, error) {
	rows, err := q.Query(ctx, `SELECT l.rolname, r.rolname,
			CASE WHEN l.oid = r.oid THEN 'the role can log in'
			     WHEN pg_has_role(l.oid, r.oid, 'MEMBER') THEN 'member'
			     ELSE 'createrole' END
		FROM pg_roles l CROSS JOIN pg_roles r
		WHERE r.rolname IN ('backfill_owner', 'backfill_writer') AND l.rolcanlogin AND NOT l.rolsuper
		  AND (l.oid = r.oid OR pg_has_role(l.oid, r.oid, 'MEMBER') OR l.rolcreaterole)
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("error reading which logins can act as the ledger's roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Exposure, error) {
		var e Exposure
		err := r.Scan(&e.Login, &e.Role, &e.How)
		return e, err
	})
	if err != nil {
		return nil, err
	}
	// A login that can create in a schema the writer's functions search can
	// shadow a function the approved SQL calls, and so act as the writer.
	rows, err = q.Query(ctx, "SELECT login, schema FROM backfill._shadowers()")
	if err != nil {
		return nil, fmt.Errorf("error reading which logins can create where the approved SQL runs: %w", err)
	}
	shadow, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Exposure, error) {
		var e Exposure
		var schema string
		err := r.Scan(&e.Login, &schema)
		e.Role, e.How = "backfill_writer", "create in schema "+schema
		return e, err
	})
	return append(out, shadow...), err
}

// ExposureError is a ledger that logins can write around.
type ExposureError struct{ Exposures []Exposure }

func (e *ExposureError) Error() string {
	var parts []string
	for _, x := range e.Exposures {
		switch schema, create := strings.CutPrefix(x.How, "create in schema "); {
		case create:
			parts = append(parts, fmt.Sprintf("%s can create objects in schema %s, where the approved SQL runs as backfill_writer, and so shadow a function it calls (ALTER SCHEMA %s OWNER TO a superuser; REVOKE CREATE ON SCHEMA %s FROM %s)",
				x.Login, schema, schema, schema, x.Login))
		case x.How == "member":
			parts = append(parts, fmt.Sprintf("%s is a member of %s (REVOKE %s FROM %s)", x.Login, x.Role, x.Role, x.Login))
		case x.How == "createrole":
			parts = append(parts, fmt.Sprintf("%s has CREATEROLE and can grant itself %s (ALTER ROLE %s NOCREATEROLE)", x.Login, x.Role, x.Login))
		default:
			parts = append(parts, fmt.Sprintf("%s can log in (ALTER ROLE %s NOLOGIN)", x.Login, x.Login))
		}
	}
	return "logins can act as the ledger's owner or writer role, which would let them change the ledger or the target tables outside an approved run: " +
		strings.Join(parts, "; ")
}
