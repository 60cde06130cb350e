package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

func TestExecuteWithTwoApprovalsChangesEachRowOnceAndRefusesARerun(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	// A password in the URL (trust auth ignores it) must never reach the ledger.
	x.runner = strings.Replace(x.runner, "@", ":hunter2@", 1)
	res := x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "Completed run")
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.audit_events WHERE payload::text LIKE '%hunter2%'"))
	require.Equal(t, "0", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.runs WHERE parameters::text LIKE '%hunter2%'"))
	require.Contains(t, res.stdout, "scanned 1,000 rows, updated 333, in 3 batches")
	require.Equal(t, "0", pgtest.Query(t, x.db, `SELECT count(*) FROM users u WHERE created_at < '2026-01-01' AND role <>
		(SELECT g.role FROM role_grants g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1)`))
	require.Equal(t, "completed:", x.lastRun())

	before := x.state()
	x.requireRefused(x.execute(x.bin), before, bftype.ExitAlreadyDone, bftype.ReasonAlreadyDone, "already completed")

	runs := x.cli("runs", "--database-url", x.observer)
	require.Contains(t, runs, "completed")
	require.Contains(t, runs, "already_completed")
	require.Contains(t, x.cli("audit", "verify", "--database-url", x.observer), "audit chain verified")
}

func TestApprovalRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		setup   func(x *target) string // returns the binary to execute
		message string
	}{
		{"no approval", func(x *target) string { return x.bin }, "0 of 2 required distinct approvals are valid"},
		{"one of two approvals", func(x *target) string { x.approve("alice", x.bin); return x.bin }, "1 of 2 required"},
		{"the same approver twice", func(x *target) string { x.approve("alice", x.bin); x.approve("alice", x.bin); return x.bin }, "1 of 2 required"},
		{"approvals of another digest", func(x *target) string {
			other := appendByte(t, x.bin)
			x.approve("alice", other)
			x.approve("bob", other)
			return x.bin
		}, "0 of 2 required"},
		{"one byte appended after approval", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin)
			return appendByte(t, x.bin)
		}, "0 of 2 required"},
		{"expired approval", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin, "--expires", "1s")
			time.Sleep(1500 * time.Millisecond)
			return x.bin
		}, "it expired at"},
		{"revoked key", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin)
			x.cli("approvers", "revoke", "bob", "--database-url", x.admin)
			return x.bin
		}, "the approver's key was revoked"},
		{"approval for another environment", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin, "--environment", "production")
			return x.bin
		}, "it approves environment production, not demo"},
		{"approval for a revert, not an execution", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin, "--revert-run", "1")
			return x.bin
		}, "it approves revert:1, not execute"},
		{"signature over a modified statement", func(x *target) string {
			x.approve("alice", x.bin)
			// Bob signs a statement; his login then stores an edited copy with
			// that signature, straight into the table.
			stmt := x.cli("approval", "statement", x.bin, "--approver", "bob", "--reason", "small change", "--environment", "demo")
			sig := x.sign(stmt, "bob")
			insertApproval(t, x.bob, "bob", strings.Replace(stmt, "small change", "any change", 1), sig)
			return x.bin
		}, "the signature does not verify with the approver's key"},
		{"signature by an untrusted key", func(x *target) string {
			x.approve("alice", x.bin)
			x.cliIn(x.keys, "keys", "generate", "mallory")
			stmt := x.cli("approval", "statement", x.bin, "--approver", "bob", "--reason", "forged", "--environment", "demo")
			insertApproval(t, x.bob, "bob", stmt, x.sign(stmt, "mallory"))
			return x.bin
		}, "the signature does not verify with the approver's key"},
		{"the operator approved their own run", func(x *target) string {
			x.approve("alice", x.bin)
			x.approve("bob", x.bin)
			// Bob's login may also run backfills; his approval then cannot count.
			pgtest.Exec(t, pgtest.AdminURL(), "GRANT backfill_runner TO t_bob_"+x.suffix)
			x.runner = x.bob
			return x.bin
		}, "cannot approve their own run"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := newTarget(t)
			bin := c.setup(x)
			before := x.state()
			x.requireRefused(x.execute(bin), before, bftype.ExitNotApproved, bftype.ReasonNotApproved, c.message)
		})
	}
}

// insertApproval submits an approval straight to the ledger's function, as
// the CLI would, but without the CLI's own signature check: the database
// stores any signature text, and the runtime must catch it.
func insertApproval(t *testing.T, url, approver, stmt, sig string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT backfill.submit_approval($1, $2)", stmt, sig)
	require.NoError(t, err, "approver %s", approver)
}

// sign signs a statement with who's key through backfill approval sign.
func (x *target) sign(stmt, who string) string {
	x.t.Helper()
	path := filepath.Join(x.t.TempDir(), "stmt.json")
	require.NoError(x.t, os.WriteFile(path, []byte(stmt), 0o644))
	return strings.TrimSpace(x.cli("approval", "sign", path, "--key", filepath.Join(x.keys, who+".key")))
}

func TestEnvironmentRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		edits  []edit2
		setup  func(x *target)
		code   bftype.ExitCode
		reason bftype.StopReason
		msg    string
	}{
		{name: "wrong database",
			code: bftype.ExitEnvironment, reason: bftype.ReasonEnvironment, msg: "but the backfill targets \"elsewhere\""},
		{name: "wrong host", edits: []edit2{{"  environment: demo\n", "  environment: demo\n  host: db.prod.internal\n"}},
			code: bftype.ExitEnvironment, reason: bftype.ReasonEnvironment, msg: `but the backfill targets "db.prod.internal"`},
		{name: "wrong cluster", edits: []edit2{{"  environment: demo\n", "  environment: demo\n  system_identifier: \"1234567890\"\n"}},
			code: bftype.ExitEnvironment, reason: bftype.ReasonEnvironment, msg: "but the backfill targets 1234567890"},
		{name: "wrong environment", edits: []edit2{{"  environment: demo\n", "  environment: staging\n"}},
			code: bftype.ExitEnvironment, reason: bftype.ReasonEnvironment, msg: `ledger says it is environment "demo", but the backfill targets "staging"`},
		{name: "wrong canary value", setup: func(x *target) {
			pgtest.Exec(t, x.db, "UPDATE app_settings SET value = 'production' WHERE key = 'env'")
		},
			code: bftype.ExitEnvironment, reason: bftype.ReasonEnvironment, msg: `The canary query returned "production", but the backfill expects "demo"`},
		{name: "a dropped column", setup: func(x *target) { pgtest.Exec(t, x.db, "ALTER TABLE users DROP COLUMN tenant") },
			code: bftype.ExitSchema, reason: bftype.ReasonSchema, msg: "Statement ScopePage does not prepare against the live schema, " +
				"and no saved dry-run of this binary prepared it: column u.tenant does not exist (SQLSTATE 42703).\nNext: Fix the query named in queries/fix_roles/"},
		{name: "a column dropped after the dry-run", setup: func(x *target) {
			require.Equal(t, 0, runBinary(t, nil, x.bin, "--save", "--database-url", x.runner).code)
			pgtest.Exec(t, x.db, "ALTER TABLE users DROP COLUMN tenant")
		}, code: bftype.ExitSchema, reason: bftype.ReasonSchema, msg: "Statement ScopePage prepared in dry-run 1 but no longer does against the live schema: " +
			"column u.tenant does not exist (SQLSTATE 42703).\nNext: The schema changed since dry-run 1 (saved 20"},
		{name: "counts outside expect", setup: func(x *target) {
			pgtest.Exec(t, x.db, `INSERT INTO users (id, email, role, tenant, created_at)
				SELECT i, 'x' || i, 'member', 'acme', '2025-03-01' FROM generate_series(20001, 40000) i`,
				`INSERT INTO role_grants (user_id, role, granted_at) SELECT i, 'member', '2025-04-01' FROM generate_series(20001, 40000) i`)
		}, code: bftype.ExitExpectBounds, reason: bftype.ReasonExpectBounds, msg: "The scope holds 21000 rows, outside expect.matched [1, 15000]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := newTarget(t, c.edits...)
			if c.name == "wrong database" {
				x = retarget(t, x, "elsewhere")
			}
			x.approve("alice", x.bin)
			x.approve("bob", x.bin)
			if c.setup != nil {
				c.setup(x)
			}
			before := x.state()
			x.requireRefused(x.execute(x.bin), before, c.code, c.reason, c.msg)
		})
	}
}

// retarget rebuilds x's binary for another database name.
func retarget(t *testing.T, x *target, database string) *target {
	t.Helper()
	edit(t, filepath.Join(x.repo, "backfills/fix_roles/backfill.yaml"), "database: "+x.name, "database: "+database)
	out, err := run(x.repo, nil, cliBin, "build", "fix_roles", "--source-commit", "test")
	require.NoError(t, err, out)
	return x
}

func TestConcurrentExecutionsOneRunsOneIsRefused(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	x.approve("alice", x.bin)
	x.approve("bob", x.bin)

	// For real: two executions at once; one completes, the other is refused.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = x.execute(x.bin).code
		}()
	}
	wg.Wait()
	require.ElementsMatch(t, []int{0, 0}, []int{min(codes[0], codes[1]), 0}, "one execution must succeed: %v", codes)
	other := max(codes[0], codes[1])
	require.Contains(t, []int{int(bftype.ExitLocked), int(bftype.ExitAlreadyDone)}, other, "codes %v", codes)
	require.Equal(t, "1", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.runs WHERE status = 'completed'"))
	require.Equal(t, "333", pgtest.Query(t, x.db, "SELECT sum(changed) FROM backfill.runs"))
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	return s[:strings.Index(s, end)]
}

// The tenant allowlist is checked on the rows each batch reads, never by a
// walk of the scope in the preflight: a refusal reads no row of the scope,
// a batch that reads a row of another tenant is rolled back before it writes
// and stops the run (failed, resumable), and a resume reads only the rows
// after its checkpoint. The dry-run lists every such row before approval.
func TestTenantsAreCheckedInEachBatchAfterTheApprovals(t *testing.T) {
	t.Parallel()
	x := newTarget(t, edit2{"  environment: demo\n", "  environment: demo\n  tenants: [acme, globex]\n"})
	// initech users only from id 700 on: ids 701, 704, ..., 998 in scope.
	pgtest.Exec(t, x.db, "UPDATE users SET tenant = 'acme' WHERE tenant = 'initech' AND id < 700")

	dry := runBinary(t, nil, x.bin, "--database-url", x.runner)
	require.Equal(t, int(bftype.ExitTenant), dry.code, dry.stderr)
	require.Contains(t, dry.stdout, "OUTSIDE target.tenants [acme globex]: 100 rows in scope\n"+
		"    initech          100 rows, first id 701, 704, 707, 710, 713, 716, 719, 722, 725, 728, ...\n")
	require.Contains(t, dry.stderr, "REFUSED (tenant_not_allowed): 100 rows in scope belong to tenants outside target.tenants [acme globex]: initech (100 rows).")

	// Not approved, with users unreadable: refused for the approvals without
	// reading the scope (the preflight used to walk it first and refuse for
	// the tenant, or here for the privilege).
	pgtest.Exec(t, x.db, "REVOKE SELECT ON users FROM backfill_runner")
	before := x.state()
	x.requireRefused(x.execute(x.bin), before, bftype.ExitNotApproved, bftype.ReasonNotApproved, "This binary is not approved")
	pgtest.Exec(t, x.db, "GRANT SELECT ON users TO backfill_runner")

	x.approve("alice", x.bin)
	x.approve("bob", x.bin)
	res := x.execute(x.bin)
	require.Equal(t, int(bftype.ExitTenant), res.code, tail(res.stderr))
	require.NotContains(t, res.stdout, "tenants", "no preflight step reads the scope for tenants")
	require.Contains(t, res.stderr, `read the row with id 701 of tenant "initech", outside target.tenants [acme globex]; it was rolled back before it wrote.`)
	require.Contains(t, res.stderr, "REFUSED (tenant_not_allowed): Run ")
	require.Equal(t, "failed:tenant_not_allowed", x.lastRun())
	cursor := pgtest.Query(t, x.db, "SELECT cursor FROM backfill.runs WHERE status = 'failed'")
	require.Equal(t, "true", pgtest.Query(t, x.db, "SELECT $1::bigint BETWEEN 50 AND 700", cursor), "the canary batch and later ones before id 701 stay committed")
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles+" AND u.id <= $1::bigint", cursor))
	require.Equal(t, pgtest.Query(t, x.db, "SELECT count(*) FROM generate_series($1::bigint + 1, 1000) i WHERE i % 3 = 0", cursor),
		pgtest.Query(t, x.db, wrongRoles+" AND u.id > $1::bigint", cursor), "the batch with id 701 wrote nothing")

	// The data is fixed; and rows the run already wrote now belong to
	// initech, which a rescan from the start would refuse at id 2.
	pgtest.Exec(t, x.db, "UPDATE users SET tenant = 'acme' WHERE tenant = 'initech'", "UPDATE users SET tenant = 'initech' WHERE id <= 10")
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, tail(res.stderr))
	require.Contains(t, res.stdout, "resuming run ")
	require.Contains(t, res.stdout, "Resumed run ")
	require.Equal(t, "completed:", x.lastRun())
	require.Equal(t, "0", pgtest.Query(t, x.db, wrongRoles))
}
