package approval

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/ledger"
)

// otherKeys are keys sigstore would verify with, none of them ECDSA P-256.
func otherKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	return map[string]crypto.Signer{"RSA 1024": rsa1024, "RSA 2048": rsa2048, "Ed25519": ed, "ECDSA P-384": p384}
}

// TestOnlyP256KeysAreTrusted: a key of another type gets no key id (so
// approvers add refuses it), and an approval it validly signed never counts,
// with a reason that names the key type.
func TestOnlyP256KeysAreTrusted(t *testing.T) {
	t.Parallel()
	stmt, err := New(request("carol"))
	require.NoError(t, err)
	w := want()
	w.Required = 1
	for kind, priv := range otherKeys(t) {
		pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
		require.NoError(t, err)
		_, err = KeyID(pub)
		require.ErrorIs(t, err, ErrKeyType, kind)
		require.Contains(t, err.Error(), "the key is "+kind, kind)

		sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
		require.NoError(t, err, kind)
		sig, err := Sign(sv, stmt)
		require.NoError(t, err, kind)
		key := ledger.Approver{Name: "carol", Login: "carol_login", PublicKey: string(pub), KeyID: "registered-before-the-check"}
		for name, s := range map[string]string{"signature": sig, "envelope": envelopeOf(t, sv, stmt)} {
			v := Evaluate([]ledger.Approval{{ID: 1, Digest: digest, Approver: "carol", Statement: string(stmt), Signature: s}}, []ledger.Approver{key}, w)
			require.False(t, v.Enough(), "%s %s", kind, name)
			require.Contains(t, v.Summary(), "the approver's key never counts: the key is "+kind, "%s %s", kind, name)
			require.ErrorIs(t, Verify(pub, stmt, s), ErrKeyType, "%s %s", kind, name)
		}

		der, err := x509.MarshalPKCS8PrivateKey(priv)
		require.NoError(t, err)
		_, err = LoadPrivateKey(writeKey(t, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil)
		require.ErrorIs(t, err, ErrKeyType, kind)
	}
}

func envelopeOf(t *testing.T, sv signature.SignerVerifier, stmt []byte) string {
	t.Helper()
	env, err := SignEnvelope(sv, stmt)
	require.NoError(t, err)
	return string(env)
}
