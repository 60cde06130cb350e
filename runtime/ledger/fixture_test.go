package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// ledgerDB is a test database with a ledger of environment "test", a table
// t(id bigint, v text) of 10 rows the writer role may update, and logins
// for a runner and two approvers (cluster-wide roles, named per test).
type ledgerDB struct {
	t       testing.TB
	url     string
	admin   *pgx.Conn // superuser
	suffix  string
	runner  string // login names
	alice   string
	bob     string
	outside string // a login with CONNECT and no backfill role
}

func newLedgerDB(t testing.TB) *ledgerDB {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = Init(ctx, conn, "test")
	require.NoError(t, err)
	s := fmt.Sprintf("%d", time.Now().UnixNano()%1e12)
	d := &ledgerDB{t: t, url: url, admin: conn, suffix: s,
		runner: "l_runner_" + s, alice: "l_alice_" + s, bob: "l_bob_" + s, outside: "l_outside_" + s}
	for login, group := range map[string]string{d.runner: "backfill_runner", d.alice: "backfill_approver", d.bob: "backfill_approver", d.outside: ""} {
		pgtest.Exec(t, pgtest.AdminURL(), "CREATE ROLE "+login+" LOGIN")
		if group != "" {
			pgtest.Exec(t, pgtest.AdminURL(), "GRANT "+group+" TO "+login)
		}
		t.Cleanup(func() { dropLogin(url, login) })
	}
	pgtest.Exec(t, url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)", "INSERT INTO t SELECT g, 'old' FROM generate_series(1, 10) g",
		"GRANT SELECT ON t TO backfill_runner", "GRANT SELECT, UPDATE (v) ON t TO backfill_writer")
	for _, who := range []string{d.alice, d.bob} {
		addTestApprover(t, conn, who)
	}
	return d
}

// addTestApprover registers a new P-256 key for login who, as approver who.
func addTestApprover(t testing.TB, conn *pgx.Conn, who string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	require.NoError(t, AddApprover(context.Background(), conn, Approver{Name: who, Login: who, PublicKey: pemText, KeyID: who}))
}

// as connects as login.
func (d *ledgerDB) as(login string) *pgx.Conn {
	d.t.Helper()
	conn, err := pgx.Connect(context.Background(), strings.Replace(d.url, "postgres://postgres@", "postgres://"+login+"@", 1))
	require.NoError(d.t, err)
	d.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

const (
	testApply = "UPDATE t SET v = u.v FROM unnest($1::bigint[], $2::text[]) AS u(id, v) WHERE t.id = u.id"
	testRead  = "SELECT id, v FROM t WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"
	testPage  = "SELECT id, v FROM t WHERE id > $1 ORDER BY id LIMIT $2"
)

func testStatements() []bftype.Statement {
	return []bftype.Statement{{Name: "Apply", Role: "apply", SQL: testApply, KeyParam: 1},
		{Name: "RevertRead", Role: "revert_read", SQL: testRead, KeyParam: 1},
		{Name: "ScopePage", Role: "page", SQL: testPage, CursorParam: 1, KeyColumn: 1}}
}

// statement is an approval statement as `backfill approve` writes it.
func statement(approver, purpose string, stmts []bftype.Statement, expires time.Duration) string {
	type hash struct {
		Name        string `json:"name"`
		Role        string `json:"role"`
		SHA256      string `json:"sha256"`
		KeyParam    int    `json:"key_param,omitempty"`
		CursorParam int    `json:"cursor_param,omitempty"`
		KeyColumn   int    `json:"key_column,omitempty"`
	}
	var hs []hash
	for _, s := range stmts {
		var sum string
		for _, b := range sha256Sum(s.SQL) {
			sum += fmt.Sprintf("%02x", b)
		}
		hs = append(hs, hash{s.Name, s.Role, sum, s.KeyParam, s.CursorParam, s.KeyColumn})
	}
	now := time.Now().UTC().Truncate(time.Second)
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "b", "digest": map[string]string{"sha256": strings.Repeat("d", 64)}}},
		"predicateType": "https://github.com/runonce/backfill/approval/v1",
		"predicate": map[string]any{"backfill": "b", "run_signature": "sig", "environment": "test", "purpose": purpose,
			"statements": hs, "approver": approver, "reason": "ok", "issued_at": now, "expires_at": now.Add(expires)},
	}
	out, _ := json.Marshal(st)
	return string(out)
}

// approve submits an approval of digest dddd... for purpose as login who.
func (d *ledgerDB) approve(who, purpose string) int64 {
	d.t.Helper()
	id, err := AddApproval(context.Background(), d.as(who), Approval{Approver: who, Statement: statement(who, purpose, testStatements(), time.Hour), Signature: "sig"})
	require.NoError(d.t, err)
	return id
}

func testRun(purpose string) Run {
	return Run{Backfill: "b", Digest: strings.Repeat("d", 64), RunSignature: "sig", Purpose: purpose, OSUser: "u", ClientHost: "h",
		CodeVersion: "v", SourceCommit: "c"}
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// dropLogin drops a test login and what it owns in the test database (the
// database itself, for a test that made it the owner).
func dropLogin(url, login string) {
	ctx := context.Background()
	for _, c := range []struct{ url, sql string }{
		{url, "REASSIGN OWNED BY " + login + " TO postgres"}, {url, "DROP OWNED BY " + login},
		{pgtest.AdminURL(), "DROP ROLE IF EXISTS " + login},
	} {
		if conn, err := pgx.Connect(ctx, c.url); err == nil {
			_, _ = conn.Exec(ctx, c.sql)
			conn.Close(ctx)
		}
	}
}

// page reads the test scope's page of run after key after, in tx, through
// the ledger, and returns its keys: the ones the batch may write.
func page(t *testing.T, tx pgx.Tx, run int64, after int64, limit int32) []int64 {
	t.Helper()
	rows, err := Gate{Tx: tx, RunID: run}.Query(context.Background(), testPage, after, limit)
	require.NoError(t, err)
	var keys []int64
	for rows.Next() {
		var id int64
		var v *string
		require.NoError(t, rows.Scan(&id, &v))
		keys = append(keys, id)
	}
	require.NoError(t, rows.Err())
	return keys
}

// gone closes conn and waits until its session has left pg_stat_activity,
// as a killed process's does a moment after it dies.
func (d *ledgerDB) gone(conn *pgx.Conn) {
	d.t.Helper()
	pid := conn.PgConn().PID()
	require.NoError(d.t, conn.Close(context.Background()))
	require.Eventually(d.t, func() bool {
		return pgtest.Query(d.t, d.url, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid)) == "0"
	}, 10*time.Second, 10*time.Millisecond)
}
