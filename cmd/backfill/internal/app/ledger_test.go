package app_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// tryExec runs sql as a login and returns the SQLSTATE of its error ("" if none).
func tryExec(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	require.NoError(t, err)
	return ""
}

const denied = "42501" // insufficient_privilege

// Each role does what it must through the ledger's functions, and writes
// no ledger table directly (ledger version 6): the grants are checked by
// logging in as each role.
func TestEachRoleCanDoWhatItMustAndNothingElse(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin) // alice's login submits an approval: allowed
	approval := func(who string) string {
		return `INSERT INTO backfill.approvals (backfill, digest, run_signature, environment, purpose, approver, reason, expires_at, statement, signature)
			VALUES ('fix_roles', repeat('a', 64), 's', 'demo', 'execute', '` + who + `', 'r', now() + interval '1 hour', '{}', 'x')`
	}
	pub, err := os.ReadFile(filepath.Join(x.keys, "alice.pub"))
	require.NoError(t, err)
	approver := `INSERT INTO backfill.approvers (name, login, public_key, key_id) VALUES ('eve', 'eve', 'k', 'id-eve')`
	addApprover := `SELECT backfill.add_approver('eve', 'eve', '` + string(pub) + `', 'id-eve')`
	run := `INSERT INTO backfill.runs (backfill, digest, run_signature, status, os_user, client_host, code_version, source_commit)
		VALUES ('x', 'd', 's', 'refused', 'u', 'h', 'v', 'c')`
	refuseRun := `SELECT backfill.refuse_run('x', 'd', 's', 'execute', '{}', '{}', 'u', 'h', 'v', 'c', 'not_approved', 'm')`
	event := `INSERT INTO backfill.audit_events (kind) VALUES ('note')`
	submit := `SELECT backfill.submit_approval('{}', 'x')`
	for _, c := range []struct {
		role, url string
		allowed   []string
		refused   []string
	}{
		{"runner", x.runner, []string{refuseRun, "SELECT count(*) FROM backfill.approvals"},
			[]string{run, event, approval("alice"), approver, addApprover, submit, "UPDATE backfill.runs SET message = 'm' WHERE backfill = 'x'",
				"UPDATE backfill.approvers SET revoked_at = now()", "DELETE FROM backfill.runs", "UPDATE backfill.audit_events SET kind = 'x'",
				"UPDATE users SET role = 'x'"}},
		{"approver", x.bob, []string{"SELECT count(*) FROM backfill.runs"},
			[]string{approval("bob"), approval("alice"), approver, addApprover, run, refuseRun, "DELETE FROM backfill.approvals",
				"UPDATE backfill.approvals SET reason = 'x'", "UPDATE users SET role = 'x'"}},
		{"observer", x.observer, []string{"SELECT count(*) FROM backfill.runs", "SELECT count(*) FROM backfill.audit_events"},
			[]string{run, event, refuseRun, submit, approval("alice"), approver, addApprover, "UPDATE backfill.runs SET message = 'x'", "TRUNCATE backfill.audit_events"}},
		{"admin", x.admin, []string{addApprover, "SELECT backfill.revoke_approver('eve')"},
			[]string{approval("alice"), approver, run, refuseRun, submit, "DELETE FROM backfill.approvers WHERE name = 'bob'",
				"UPDATE backfill.approvers SET login = 'x' WHERE name = 'bob'", "UPDATE backfill.approvers SET revoked_at = now()"}},
		// Even a superuser cannot rewrite history while the triggers stand.
		{"superuser", x.db, []string{"SELECT 1"},
			[]string{"UPDATE backfill.audit_events SET kind = 'x'", "DELETE FROM backfill.audit_events", "TRUNCATE backfill.audit_events",
				"UPDATE backfill.approvals SET reason = 'x'", "DELETE FROM backfill.approvals", "DELETE FROM backfill.approvers"}},
	} {
		for _, sql := range c.allowed {
			require.Equal(t, "", tryExec(t, c.url, sql), "%s must be able to: %s", c.role, sql)
		}
		for _, sql := range c.refused {
			require.Equal(t, denied, tryExec(t, c.url, sql), "%s must not be able to: %s", c.role, sql)
		}
	}
	// The log recorded the approval and the approver changes, and still verifies.
	require.Contains(t, pgtest.Query(t, x.db, "SELECT string_agg(kind, ',' ORDER BY seq) FROM backfill.audit_events"), "approver_added,approver_added,approval,refused,approver_added,approver_revoked")
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
}

func TestAuditVerifyNamesTheFirstBrokenLink(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	require.Equal(t, 0, x.execute(x.bin).code)
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")

	// A superuser edits an event behind the trigger's back.
	seq := pgtest.Query(t, x.db, "SELECT min(seq) FROM backfill.audit_events WHERE kind = 'approval'")
	pgtest.Exec(t, x.db, "ALTER TABLE backfill.audit_events DISABLE TRIGGER audit_append_only",
		"UPDATE backfill.audit_events SET payload = jsonb_set(payload, '{reason}', '\"nothing to see\"') WHERE seq = "+seq,
		"ALTER TABLE backfill.audit_events ENABLE TRIGGER audit_append_only")
	res := runBinary(t, nil, cliBin, "audit", "verify", "--database-url", x.observer)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "audit chain broken at event "+seq+": its content does not match its hash")

	// Deleting an event is found too, at the gap.
	x2 := newTarget(t)
	x2.approve("alice", x2.bin)
	pgtest.Exec(t, x2.db, "ALTER TABLE backfill.audit_events DISABLE TRIGGER audit_append_only",
		"DELETE FROM backfill.audit_events WHERE seq = 2",
		"ALTER TABLE backfill.audit_events ENABLE TRIGGER audit_append_only")
	res = runBinary(t, nil, cliBin, "audit", "verify", "--database-url", x2.observer)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "audit chain broken at event 2: event missing")
}

func TestLedgerVersionsAndEnvironment(t *testing.T) {
	t.Parallel()
	db := demoDB(t)
	bin := fixRoles
	// No ledger: execute refuses before anything else.
	res := runBinary(t, nil, bin, "--execute", "--database-url", db)
	require.Equal(t, int(bftype.ExitLedger), res.code, res.stderr)
	require.Contains(t, res.stderr, "There is no backfill ledger in this database.")

	res = runBinary(t, nil, cliBin, "ledger", "init", "--database-url", db)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "needs --environment the first time")
	for range 2 { // idempotent
		res = runBinary(t, nil, cliBin, "ledger", "init", "--environment", "demo", "--database-url", db)
		require.Equal(t, 0, res.code, res.stderr)
	}
	res = runBinary(t, nil, cliBin, "ledger", "init", "--environment", "production", "--database-url", db)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `this ledger is for environment "demo", not "production"`)

	// A ledger newer than the code is refused by both the CLI and the binary.
	pgtest.Exec(t, db, "INSERT INTO backfill.migrations (version, name) VALUES (999, 'future.sql')")
	res = runBinary(t, nil, cliBin, "ledger", "init", "--database-url", db)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "the ledger is at version 999, newer than this backfill")
	res = runBinary(t, nil, bin, "--execute", "--database-url", db)
	require.Equal(t, int(bftype.ExitLedger), res.code)
	require.Contains(t, res.stderr, "newer than this binary's")
}

// TestApprovalsInterworkWithOpenSSL proves the signature format with a tool
// that is not ours: an approver whose key openssl made signs with openssl,
// and openssl verifies a signature our CLI made.
func TestApprovalsInterworkWithOpenSSL(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "carol.pem"), filepath.Join(dir, "carol.pub")
	for _, args := range [][]string{
		{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key},
		{"ec", "-in", key, "-pubout", "-out", pub},
	} {
		out, err := exec.Command("openssl", args...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	login(t, "t_carol_"+x.suffix, "backfill_approver")
	x.cli("approvers", "add", "carol", "--key", pub, "--login", "t_carol_"+x.suffix, "--database-url", x.admin)
	carol := strings.Replace(x.bob, "t_bob_", "t_carol_", 1)

	stmtPath, sigPath := filepath.Join(dir, "stmt.json"), filepath.Join(dir, "stmt.sig")
	stmt := x.cli("approval", "statement", x.bin, "--approver", "carol", "--reason", "signed with openssl", "--database-url", x.observer)
	require.NoError(t, os.WriteFile(stmtPath, []byte(stmt), 0o644))
	der, err := exec.Command("openssl", "dgst", "-sha256", "-sign", key, stmtPath).Output()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sigPath, der, 0o644)) // raw DER is accepted as well as base64
	x.cli("approval", "submit", stmtPath, "--signature", sigPath, "--database-url", carol)

	// Our signature, checked by openssl.
	ours := x.sign(stmt, "alice")
	raw := filepath.Join(dir, "alice.der")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alice.b64"), []byte(ours), 0o644))
	out, err := exec.Command("bash", "-c", "base64 -d "+filepath.Join(dir, "alice.b64")+" > "+raw+
		" && openssl dgst -sha256 -verify "+filepath.Join(x.keys, "alice.pub")+" -signature "+raw+" "+stmtPath).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "Verified OK")

	// A submission whose signature does not match is refused before it is stored.
	require.NoError(t, os.WriteFile(stmtPath, []byte(strings.Replace(stmt, "openssl", "OpenSSL", 1)), 0o644))
	res := runBinary(t, keyEnv, cliBin, "approval", "submit", stmtPath, "--signature", sigPath, "--database-url", carol)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "the signature is not carol's over this statement")

	// Carol's openssl approval counts: with bob's, the run goes ahead.
	x.approve("bob", x.bin)
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "2 distinct approvers (carol, bob; 2 required)")
}

// TestLedgerInitByTheDatabaseOwner: from ledger version 6 only a superuser
// installs the ledger (it gives it to backfill_owner, which the database
// owner must not be able to act as); the owner is refused and nothing is
// created.
func TestLedgerInitByTheDatabaseOwner(t *testing.T) {
	t.Parallel()
	groupRoles(t)
	owner := "t_owner_" + rnd()
	login(t, owner)
	db := pgtest.NewDB(t)
	name := strings.SplitN(db[strings.LastIndex(db, "/")+1:], "?", 2)[0]
	pgtest.Exec(t, db, "ALTER DATABASE "+name+" OWNER TO "+owner)
	asOwner := strings.Replace(db, "postgres://postgres@", "postgres://"+owner+"@", 1)
	res := runBinary(t, nil, cliBin, "ledger", "init", "--environment", "demo", "--database-url", asOwner)
	require.Equal(t, 1, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stderr, "ledger version 6 must be installed by a superuser")
	require.Equal(t, "false", pgtest.Query(t, db, "SELECT to_regnamespace('backfill') IS NOT NULL"), "nothing is left half-made")
}

// ledger check names every login that can act as the ledger's owner or
// writer role, and init refuses to finish while one can. Not parallel: the
// roles are cluster-wide, and the other tests' ledger init would see the
// membership this test grants.
func TestLedgerCheckNamesLoginsThatCanActAsTheLedgersRoles(t *testing.T) {
	x := newTarget(t)
	res := runBinary(t, nil, cliBin, "ledger", "check", "--database-url", x.observer)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "owned by backfill_owner")
	require.Contains(t, res.stdout, "no other login can act as backfill_owner or backfill_writer")

	mallory := "t_mallory_" + x.suffix
	login(t, mallory)
	pgtest.Exec(t, pgtest.AdminURL(), "GRANT backfill_writer TO "+mallory)
	func() {
		defer pgtest.Exec(t, pgtest.AdminURL(), "REVOKE backfill_writer FROM "+mallory)
		res = runBinary(t, nil, cliBin, "ledger", "check", "--database-url", x.observer)
		require.Equal(t, 1, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stderr, mallory+" is a member of backfill_writer (REVOKE backfill_writer FROM "+mallory+")")
		res = runBinary(t, nil, cliBin, "ledger", "init", "--database-url", x.db)
		require.Equal(t, 1, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stderr, "logins can act as the ledger's owner or writer role")
	}()
	pgtest.Exec(t, pgtest.AdminURL(), "ALTER ROLE "+mallory+" CREATEROLE")
	func() {
		defer pgtest.Exec(t, pgtest.AdminURL(), "ALTER ROLE "+mallory+" NOCREATEROLE")
		res = runBinary(t, nil, cliBin, "ledger", "check", "--database-url", x.observer)
		require.Equal(t, 1, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stderr, mallory+" has CREATEROLE and can grant itself backfill_owner")
	}()
	res = runBinary(t, nil, cliBin, "ledger", "check", "--database-url", x.observer)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
}
