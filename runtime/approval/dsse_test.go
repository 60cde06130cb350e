package approval

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/ledger"
)

// envelopeApproval turns a signed approval into one stored as a DSSE
// envelope of the same statement, by the same key.
func envelopeApproval(t *testing.T, approver string) (ledger.Approval, ledger.Approver, string) {
	t.Helper()
	priv, pub, err := GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	sv, err := LoadPrivateKey(writeKey(t, priv), []byte("pw"))
	require.NoError(t, err)
	stmt, err := New(request(approver))
	require.NoError(t, err)
	env, err := SignEnvelope(sv, stmt)
	require.NoError(t, err)
	parsed, err := ParseEnvelope(env)
	require.NoError(t, err)
	stored, err := CompactEnvelope(parsed)
	require.NoError(t, err)
	id, err := KeyID(pub)
	require.NoError(t, err)
	return ledger.Approval{ID: 7, Digest: digest, Approver: approver, Statement: string(stmt), Signature: stored},
		ledger.Approver{Name: approver, Login: approver + "_login", PublicKey: string(pub), KeyID: id}, stored
}

// TestEnvelopeApprovalsCountLikeSignatures: an approval stored as a DSSE
// envelope counts, and stops counting when its envelope or statement is
// altered.
func TestEnvelopeApprovalsCountLikeSignatures(t *testing.T) {
	t.Parallel()
	a, k, stored := envelopeApproval(t, "alice")
	w := want()
	w.Required = 1
	require.True(t, Evaluate([]ledger.Approval{a}, []ledger.Approver{k}, w).Enough())

	var env map[string]any
	require.NoError(t, json.Unmarshal([]byte(stored), &env))
	other := strings.Replace(a.Statement, "looks right", "looks wrong", 1)
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(other))
	swapped, err := json.Marshal(env)
	require.NoError(t, err)
	for name, row := range map[string]ledger.Approval{
		"statement altered": {ID: 7, Digest: digest, Approver: "alice", Statement: other, Signature: stored},
		"payload swapped":   {ID: 7, Digest: digest, Approver: "alice", Statement: other, Signature: string(swapped)},
	} {
		v := Evaluate([]ledger.Approval{row}, []ledger.Approver{k}, w)
		require.False(t, v.Enough(), name)
		require.Contains(t, v.Summary(), "the signature does not verify with the approver's key", name)
	}
}
