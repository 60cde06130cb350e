package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/runtime/bftype"
)

// Roles of the manifest's own queries among the statements a run prepares;
// the binary's queries carry the roles the generator gave them (count, page,
// apply, revert_read).
const (
	RoleCanary = "canary"
	RoleCheck  = "check"
	RoleHealth = "health"
)

// Statements is every statement a run of the binary may execute, each in
// the form the engine sends it: the binary's queries as sqlc wrote them, and
// the manifest's canary, checks and health query wrapped as valueSQL and
// healthSQL wrap them. The dry-run prepares all of them, so a mistake in any
// is caught before review rather than at --execute.
func Statements(queries []bftype.Statement, m *bftype.Manifest) []bftype.Statement {
	out := append([]bftype.Statement(nil), queries...)
	if c := m.Target.Canary; c != nil {
		out = append(out, bftype.Statement{Role: RoleCanary, Name: "target.canary", SQL: valueSQL(c.Query)})
	}
	for _, c := range m.Checks {
		out = append(out, bftype.Statement{Role: RoleCheck, Name: c.Name, SQL: valueSQL(c.Query)})
	}
	if h := m.Health; h != nil {
		out = append(out, bftype.Statement{Role: RoleHealth, Name: "health", SQL: healthSQL(h.Query)})
	}
	return out
}

// valueSQL is a canary's or a check's query as it runs: its one value as text.
func valueSQL(query string) string { return "SELECT (" + trimQuery(query) + ")::text" }

// healthSQL is the health query as it runs: its one value as a number.
func healthSQL(query string) string { return "SELECT (" + trimQuery(query) + ")::float8" }

func trimQuery(query string) string { return strings.TrimRight(strings.TrimSpace(query), ";") }

// Label names a statement for an operator: "Apply", "check no_null_roles",
// "target.canary.query", "health.query".
func Label(s bftype.Statement) string {
	switch s.Role {
	case RoleCheck:
		return "check " + s.Name
	case RoleCanary, RoleHealth:
		return s.Name + ".query"
	}
	return s.Name
}

// Unprepared is a statement the live schema rejects, with the server's
// message and SQLSTATE.
type Unprepared struct {
	Statement bftype.Statement
	Message   string
	Code      string
}

func (u Unprepared) String() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", Label(u.Statement), u.Message, u.Code)
}

// Prepare parses and plans every statement in tx without running one, and
// returns those the server rejects. PREPARE only parses and plans, so it
// works for an UPDATE inside a READ ONLY transaction too. Each statement is
// prepared under its own savepoint, so one rejection neither aborts tx nor
// hides the next; it uses the unnamed prepared statement, which the next
// one replaces, so nothing is left behind in the session.
func Prepare(ctx context.Context, tx pgx.Tx, statements []bftype.Statement) ([]Unprepared, error) {
	var bad []Unprepared
	for _, s := range statements {
		if _, err := tx.Exec(ctx, "SAVEPOINT backfill_prepare"); err != nil {
			return nil, fmt.Errorf("error setting a savepoint before preparing %s: %w", Label(s), err)
		}
		_, err := tx.Conn().PgConn().Prepare(ctx, "", s.SQL, nil)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code != "42501":
			bad = append(bad, Unprepared{Statement: s, Message: pgErr.Message, Code: pgErr.Code})
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT backfill_prepare"); err != nil {
				return nil, fmt.Errorf("error rolling back the failed prepare of %s: %w", Label(s), err)
			}
		case err != nil:
			return nil, fmt.Errorf("error preparing %s: %w", Label(s), err)
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT backfill_prepare"); err != nil {
			return nil, fmt.Errorf("error releasing the savepoint after preparing %s: %w", Label(s), err)
		}
	}
	return bad, nil
}

// UnpreparedRefusal is the dry-run's refusal of statements that do not
// prepare: they never matched the live schema, so the query is what to fix.
func UnpreparedRefusal(backfill string, bad []Unprepared) *bftype.Refusal {
	return refuse(bftype.ReasonSchema, bftype.ExitSchema, fixNext(backfill, bad, ""),
		"%s against the live schema: %s.", doNot(bad, "does not prepare"), joinUnprepared(bad))
}

// fixNext says where to fix the statements named: the query set (checked
// by sqlc against queries/schema, which may be out of date) or backfill.yaml.
func fixNext(backfill string, bad []Unprepared, then string) string {
	var queries, manifest bool
	for _, u := range bad {
		switch u.Statement.Role {
		case RoleCanary, RoleCheck, RoleHealth:
			manifest = true
		default:
			queries = true
		}
	}
	var where string
	switch {
	case queries && manifest:
		where = fmt.Sprintf("Fix the queries named, in queries/%s/ (then make sqlc) and in backfill.yaml, and rebuild", backfill)
	case manifest:
		where = "Fix the query named in backfill.yaml and rebuild"
	default:
		where = fmt.Sprintf("Fix the query named in queries/%s/, run make sqlc and rebuild (if the live schema is right, refresh queries/schema too: sqlc checked the query against that copy)", backfill)
	}
	return where + then + "."
}

// doNot is "Statement Apply does not prepare" for one, "2 statements do not
// prepare" for more.
func doNot(bad []Unprepared, verb string) string {
	if len(bad) == 1 {
		return "Statement " + Label(bad[0].Statement) + " " + verb
	}
	return fmt.Sprintf("%d statements %s", len(bad), strings.Replace(verb, "does", "do", 1))
}

// joinUnprepared is the server's reason for each statement; for one, the
// label is already in the sentence.
func joinUnprepared(bad []Unprepared) string {
	if len(bad) == 1 {
		return fmt.Sprintf("%s (SQLSTATE %s)", bad[0].Message, bad[0].Code)
	}
	parts := make([]string, len(bad))
	for i, u := range bad {
		parts[i] = u.String()
	}
	return strings.Join(parts, "; ")
}
