package approval

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/ledger"
)

// ambiguous are edits of a valid statement that encoding/json alone reads
// one way and another parser may read another way; each must be refused.
var ambiguous = []struct {
	name, old, new, why string
}{
	{name: "duplicate predicate key", old: `"environment": "prod",`, new: `"environment": "staging", "environment": "prod",`,
		why: `key "environment" appears twice in $.predicate`},
	{name: "duplicate top-level key", old: `"predicateType":`, new: `"_type": "https://in-toto.io/Statement/v1", "predicateType":`,
		why: `key "_type" appears twice in $`},
	{name: "duplicate digest", old: `"sha256": "` + digest + `"`, new: `"sha256": "` + strings.Repeat("2", 64) + `", "sha256": "` + digest + `"`,
		why: `key "sha256" appears twice in $.subject[0].digest`},
	{name: "case-variant digest algorithm", old: `"sha256": "` + digest + `"`, new: `"SHA256": "` + strings.Repeat("2", 64) + `", "sha256": "` + digest + `"`,
		why: `keys "SHA256" and "sha256" in $.subject[0].digest differ only in case`},
	{name: "case-variant predicate", old: `"predicate":`, new: `"Predicate":`,
		why: `unknown key "Predicate" in $ (keys are case-sensitive)`},
	{name: "case-variant subject field", old: `"digest":`, new: `"Digest":`,
		why: `unknown key "Digest" in $.subject[0]`},
	{name: "case-variant pair", old: `"reason": "looks right",`, new: `"reason": "looks right", "Reason": "",`,
		why: `keys "reason" and "Reason" in $.predicate differ only in case`},
	{name: "unknown predicate key", old: `"reason":`, new: `"scope": "all", "reason":`,
		why: `unknown key "scope" in $.predicate`},
	{name: "trailing value", old: "}\n", new: "}\n{\"_type\": \"x\"}\n", why: "there is data after the JSON value"},
	{name: "trailing garbage", old: "}\n", new: "} x", why: "there is data after the JSON value"},
}

// TestParseRefusesAmbiguousStatements: Parse, which approve, the runtime and
// verify-archive all read statements with, refuses every ambiguous form.
func TestParseRefusesAmbiguousStatements(t *testing.T) {
	t.Parallel()
	stmt, err := New(request("alice"))
	require.NoError(t, err)
	_, err = Parse(stmt)
	require.NoError(t, err, "the unedited statement must parse")
	for _, c := range ambiguous {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			edited := replaceLast(string(stmt), c.old, c.new)
			require.NotEqual(t, string(stmt), edited, "the edit did not apply")
			_, err := Parse([]byte(edited))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.why)
		})
	}
}

func replaceLast(s, old, new string) string {
	i := strings.LastIndex(s, old)
	if i < 0 {
		return s
	}
	return s[:i] + new + s[i+len(old):]
}

// TestEvaluateRejectsSignedAmbiguousStatements: an approver's valid
// signature over an ambiguous statement does not make it count.
func TestEvaluateRejectsSignedAmbiguousStatements(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	sv, err := LoadPrivateKey(writeKey(t, priv), []byte("pw"))
	require.NoError(t, err)
	id, err := KeyID(pub)
	require.NoError(t, err)
	key := ledger.Approver{Name: "alice", Login: "alice_login", PublicKey: string(pub), KeyID: id}
	stmt, err := New(request("alice"))
	require.NoError(t, err)
	w := want()
	w.Required = 1
	for _, c := range ambiguous {
		edited := []byte(replaceLast(string(stmt), c.old, c.new))
		sig, err := Sign(sv, edited)
		require.NoError(t, err)
		v := Evaluate([]ledger.Approval{{ID: 1, Digest: digest, Approver: "alice", Statement: string(edited), Signature: sig}}, []ledger.Approver{key}, w)
		require.False(t, v.Enough(), c.name)
		require.Contains(t, v.Summary(), c.why, c.name)
	}
}

// TestParseEnvelopeRefusesAmbiguousEnvelopes: an envelope with two payloads
// (a verifier may check one, a reader show the other), case variants or
// trailing data is refused.
func TestParseEnvelopeRefusesAmbiguousEnvelopes(t *testing.T) {
	t.Parallel()
	_, _, stored := envelopeApproval(t, "alice")
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(stored), &env))
	for name, c := range map[string]struct{ text, why string }{
		"two payloads":     {strings.Replace(stored, `"payload":`, `"payload":"e30=","payload":`, 1), `key "payload" appears twice in $`},
		"case variant":     {strings.Replace(stored, `"payloadType":`, `"PayloadType":`, 1), `unknown key "PayloadType" in $`},
		"signature keys":   {strings.Replace(stored, `"sig":`, `"sig":"","SIG":`, 1), `keys "sig" and "SIG" in $.signatures[0] differ only in case`},
		"trailing data":    {stored + `{}`, "there is data after the JSON value"},
		"unknown envelope": {strings.Replace(stored, `"payload":`, `"extra":1,"payload":`, 1), `unknown key "extra" in $`},
	} {
		require.NotEqual(t, stored, c.text, name)
		_, err := ParseEnvelope([]byte(c.text))
		require.Error(t, err, name)
		require.Contains(t, err.Error(), c.why, name)
	}
}
