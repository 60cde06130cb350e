package sigformat_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/cmd/backfill/internal/sigformat"
	"github.com/runonce/backfill/runtime/approval"
)

var statement = []byte(`{"_type":"https://in-toto.io/Statement/v1"}` + "\n")

func newSigner(t testing.TB) (signature.SignerVerifier, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	require.NoError(t, err)
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	require.NoError(t, err)
	return sv, pub
}

// TestRoundTrip: every form we write decodes to a signature that verifies.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	sv, pub := newSigner(t)
	sig, err := approval.Sign(sv, statement)
	require.NoError(t, err)
	sigstore, err := sigformat.WriteSigstoreBundle(statement, sig, pub)
	require.NoError(t, err)
	cosign, err := sigformat.WriteCosignBundle(sig)
	require.NoError(t, err)
	env, err := approval.SignEnvelope(sv, statement)
	require.NoError(t, err)
	for want, data := range map[sigformat.Format][]byte{
		sigformat.Plain: []byte(sig), sigformat.SigstoreBundle: sigstore, sigformat.CosignBundle: cosign, sigformat.Envelope: env,
	} {
		got, format, err := sigformat.Decode(data, statement)
		require.NoError(t, err, want)
		require.Equal(t, want, format)
		require.NoError(t, approval.Verify(pub, statement, got), want)
		require.Error(t, approval.Verify(pub, append([]byte{' '}, statement...), got), want)
	}
}

// FuzzDecode: no submitted file makes Decode, or Verify of what it decoded,
// panic.
func FuzzDecode(f *testing.F) {
	sv, pub := newSigner(f)
	sig, err := approval.Sign(sv, statement)
	require.NoError(f, err)
	sigstore, err := sigformat.WriteSigstoreBundle(statement, sig, pub)
	require.NoError(f, err)
	env, err := approval.SignEnvelope(sv, statement)
	require.NoError(f, err)
	for _, seed := range [][]byte{[]byte(sig), sigstore, env, []byte(`{"base64Signature":""}`), []byte("{"), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := sigformat.Decode(data, statement)
		if err == nil {
			_ = approval.Verify(pub, statement, got)
		}
	})
}
