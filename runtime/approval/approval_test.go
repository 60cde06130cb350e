package approval

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/ledger"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const digest = "1111111111111111111111111111111111111111111111111111111111111111"

func writeKey(t *testing.T, pem []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.key")
	require.NoError(t, os.WriteFile(path, pem, 0o600))
	return path
}

func request(approver string) Request {
	return Request{Backfill: "fix_roles", Digest: digest, RunSignature: "sig", Environment: "prod",
		Approver: approver, Reason: "looks right", Now: now, TTL: time.Hour}
}

// signed makes an approval row for approver with a fresh key, and its approver record.
func signed(t *testing.T, approver, login string, r Request) (ledger.Approval, ledger.Approver) {
	t.Helper()
	priv, pub, err := GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	sv, err := LoadPrivateKey(writeKey(t, priv), []byte("pw"))
	require.NoError(t, err)
	stmt, err := New(r)
	require.NoError(t, err)
	sig, err := Sign(sv, stmt)
	require.NoError(t, err)
	s, err := Parse(stmt)
	require.NoError(t, err)
	id, err := KeyID(pub)
	require.NoError(t, err)
	return ledger.Approval{ID: int64(len(approver)), Digest: s.Digest(), Approver: approver, Statement: string(stmt), Signature: sig},
		ledger.Approver{Name: approver, Login: login, PublicKey: string(pub), KeyID: id}
}

func want() Want {
	return Want{Backfill: "fix_roles", Digest: digest, RunSignature: "sig", Environment: "prod", Purpose: PurposeExecute,
		Required: 2, NeedReason: true, Operator: "runner", Now: now.Add(time.Minute)}
}

func TestTwoDistinctApproversAreEnough(t *testing.T) {
	t.Parallel()
	a1, k1 := signed(t, "alice", "alice_login", request("alice"))
	a2, k2 := signed(t, "bob", "bob_login", request("bob"))
	v := Evaluate([]ledger.Approval{a1, a2}, []ledger.Approver{k1, k2}, want())
	require.True(t, v.Enough(), v.Summary())
	require.Empty(t, v.Rejected)
}

func TestEvaluateRejections(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		req   func(*Request)                                  // changes what is signed
		after func(*ledger.Approval, *ledger.Approver, *Want) // changes what is stored or wanted
		why   string
	}{
		{name: "untrusted", after: func(_ *ledger.Approval, k *ledger.Approver, _ *Want) { k.Name = "other" }, why: "not trusted"},
		{name: "revoked", after: func(_ *ledger.Approval, k *ledger.Approver, _ *Want) { k.RevokedAt = &now }, why: "revoked"},
		{name: "tampered statement", after: func(a *ledger.Approval, _ *ledger.Approver, _ *Want) {
			a.Statement = strings.Replace(a.Statement, "looks right", "looks fine", 1)
		}, why: "does not verify"},
		{name: "another digest", req: func(r *Request) { r.Digest = strings.Repeat("2", 64) }, why: "another binary"},
		{name: "row digest differs from statement", after: func(a *ledger.Approval, _ *ledger.Approver, _ *Want) { a.Digest = "x" }, why: "another binary"},
		{name: "another signature", req: func(r *Request) { r.RunSignature = "other" }, why: "another backfill or run signature"},
		{name: "another environment", req: func(r *Request) { r.Environment = "staging" }, why: "environment staging"},
		{name: "another purpose", req: func(r *Request) { r.Purpose = RevertPurpose(3) }, why: "revert:3"},
		{name: "expired", after: func(_ *ledger.Approval, _ *ledger.Approver, w *Want) { w.Now = now.Add(2 * time.Hour) }, why: "expired"},
		{name: "issued in the future", req: func(r *Request) { r.Now = now.Add(time.Hour) }, why: "future"},
		{name: "no evidence of the promoted-from run", after: func(_ *ledger.Approval, _ *ledger.Approver, w *Want) { w.EvidenceFrom = "staging" }, why: "no evidence of a completed staging run"},
		{name: "the operator", after: func(_ *ledger.Approval, k *ledger.Approver, w *Want) { w.Operator = k.Login }, why: "cannot approve their own run"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, w := request("alice"), want()
			if c.req != nil {
				c.req(&r)
			}
			a, k := signed(t, "alice", "alice_login", r)
			if c.after != nil {
				c.after(&a, &k, &w)
			}
			v := Evaluate([]ledger.Approval{a}, []ledger.Approver{k}, w)
			require.Empty(t, v.Counted)
			require.Len(t, v.Rejected, 1)
			require.Contains(t, v.Rejected[0].Why, c.why)
		})
	}
}

func TestEvidenceIsSignedAndCounts(t *testing.T) {
	t.Parallel()
	r := request("alice")
	r.Evidence = strings.Repeat("e", 64)
	a, k := signed(t, "alice", "alice_login", r)
	w := want()
	w.EvidenceFrom = "staging"
	v := Evaluate([]ledger.Approval{a}, []ledger.Approver{k}, w)
	require.Len(t, v.Counted, 1, v.Summary())
	require.Contains(t, a.Statement, `"evidence": "`+r.Evidence+`"`)

	r.Evidence = "not-a-digest"
	_, err := New(r)
	require.ErrorContains(t, err, "is not a hex sha256")
}

func TestOneLoginWithTwoKeysCountsOnce(t *testing.T) {
	t.Parallel()
	a1, k1 := signed(t, "alice", "same_login", request("alice"))
	a2, k2 := signed(t, "alice2", "same_login", request("alice2"))
	v := Evaluate([]ledger.Approval{a1, a2}, []ledger.Approver{k1, k2}, want())
	require.Len(t, v.Counted, 2)
	require.Equal(t, 1, v.Distinct)
	require.False(t, v.Enough())
}

func TestCosignKeyFormatsLoad(t *testing.T) {
	t.Parallel()
	priv, _, err := GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(priv, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")))
	// Older cosign releases label the same encrypted key differently.
	legacy := bytes.ReplaceAll(priv, []byte("ENCRYPTED SIGSTORE PRIVATE KEY"), []byte("ENCRYPTED COSIGN PRIVATE KEY"))
	for _, pem := range [][]byte{priv, legacy} {
		sv, err := LoadPrivateKey(writeKey(t, pem), []byte("pw"))
		require.NoError(t, err)
		sig, err := Sign(sv, []byte("statement"))
		require.NoError(t, err)
		pub, err := PublicKeyPEM(sv)
		require.NoError(t, err)
		require.NoError(t, Verify(pub, []byte("statement"), sig))
		require.Error(t, Verify(pub, []byte("statement!"), sig))
	}
	_, err = LoadPrivateKey(writeKey(t, priv), []byte("wrong"))
	require.ErrorContains(t, err, "wrong password?")
}

func TestStatementsAreStrict(t *testing.T) {
	t.Parallel()
	stmt, err := New(request("alice"))
	require.NoError(t, err)
	s, err := Parse(stmt)
	require.NoError(t, err)
	require.Equal(t, digest, s.Digest())
	require.Equal(t, now.Add(time.Hour), s.Predicate.ExpiresAt)
	_, err = Parse([]byte(strings.Replace(string(stmt), `"reason"`, `"reason2"`, 1)))
	require.Error(t, err)
	_, err = Parse([]byte(strings.Replace(string(stmt), StatementType, "https://in-toto.io/Statement/v0.1", 1)))
	require.Error(t, err)
	bad := request("alice")
	bad.Reason = " "
	_, err = New(bad)
	require.ErrorContains(t, err, "needs a reason")
	bad = request("alice")
	bad.TTL = 31 * 24 * time.Hour
	_, err = New(bad)
	require.ErrorContains(t, err, "--expires")
}
