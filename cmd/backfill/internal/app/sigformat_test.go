package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// signers load the test approvers' keys to sign in-process, as a reviewer's
// own tool would.
func (x *target) signer(who string) signature.SignerVerifier {
	x.t.Helper()
	sv, err := approval.LoadPrivateKey(filepath.Join(x.keys, who+".key"), []byte("test-password"))
	require.NoError(x.t, err)
	return sv
}

// sigstoreBundle is the protobuf-specs bundle of a message signature, built
// with sigstore's own types (what cosign --new-bundle-format writes).
func sigstoreBundle(t *testing.T, sv signature.SignerVerifier, stmt []byte, digestOf []byte) []byte {
	t.Helper()
	sig, err := sv.SignMessage(strings.NewReader(string(stmt)))
	require.NoError(t, err)
	sum := sha256.Sum256(digestOf)
	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "test"}},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signature:     sig,
		}},
	}
	out, err := protojson.Marshal(b)
	require.NoError(t, err)
	return out
}

// envelope is a DSSE envelope signed with go-securesystemslib's signer over
// payload, of payloadType, once per signer.
func envelope(t *testing.T, payloadType string, payload []byte, svs ...signature.SignerVerifier) []byte {
	t.Helper()
	var signers []ssldsse.Signer
	for _, sv := range svs {
		pub, err := sv.PublicKey()
		require.NoError(t, err)
		signers = append(signers, &sigdsse.SignerAdapter{SignatureSigner: sv, Pub: pub})
	}
	es, err := ssldsse.NewEnvelopeSigner(signers...)
	require.NoError(t, err)
	env, err := es.SignPayload(context.Background(), payloadType, payload)
	require.NoError(t, err)
	out, err := json.Marshal(env)
	require.NoError(t, err)
	return out
}

// bundledEnvelope is a sigstore bundle carrying a DSSE envelope (cosign
// attest-blob --new-bundle-format).
func bundledEnvelope(t *testing.T, env []byte) []byte {
	t.Helper()
	var e ssldsse.Envelope
	require.NoError(t, json.Unmarshal(env, &e))
	payload, err := e.DecodeB64Payload()
	require.NoError(t, err)
	sig, err := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	require.NoError(t, err)
	b := &protobundle.Bundle{
		MediaType:            "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{}}},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: e.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	out, err := protojson.Marshal(b)
	require.NoError(t, err)
	return out
}

// TestApprovalSubmitAcceptsSigstoreFormats: a plain signature, a cosign 2.x
// bundle, a sigstore (protobuf) bundle and a DSSE envelope of our statement
// are each accepted and verified with the approver's key; forged, mismatched
// and malformed ones are refused with one sentence and nothing is stored.
// The DSSE approvals alone let the binary run, and the archive of that run
// verifies offline.
func TestApprovalSubmitAcceptsSigstoreFormats(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	dir := t.TempDir()
	alice, bob := x.signer("alice"), x.signer("bob")
	statement := func(who string) []byte {
		return []byte(x.cli("approval", "statement", x.bin, "--approver", who, "--reason", "signed elsewhere", "--database-url", x.observer))
	}
	stmtA, stmtB := statement("alice"), statement("bob")
	stmtPath := filepath.Join(dir, "alice.json")
	require.NoError(t, os.WriteFile(stmtPath, stmtA, 0o644))
	count := func() string { return pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.approvals") }
	submit := func(url, stmtPath string, sig []byte) result {
		path := filepath.Join(t.TempDir(), "sig")
		require.NoError(t, os.WriteFile(path, sig, 0o644))
		return runBinary(t, nil, cliBin, "approval", "submit", stmtPath, "--signature", path, "--database-url", url)
	}

	// Refused, each before anything is stored.
	other := append([]byte(nil), stmtA...)
	other[len(other)-2] = ' ' // same length, other bytes
	wrongType := envelope(t, "application/json", stmtA, alice)
	for name, c := range map[string]struct {
		sig  []byte
		want string
	}{
		"bundle by another key":      {sigstoreBundle(t, bob, stmtA, stmtA), "the signature is not alice's over this statement"},
		"bundle over another digest": {sigstoreBundle(t, alice, stmtA, other), "the sigstore bundle signs sha256 "},
		"DSSE of another payload":    {envelope(t, approval.InTotoPayloadType, other, alice), "the DSSE envelope's payload is not this statement byte for byte"},
		"DSSE of another type":       {wrongType, `the DSSE envelope's payloadType is "application/json", not "application/vnd.in-toto+json"`},
		"DSSE by another key":        {envelope(t, approval.InTotoPayloadType, stmtA, bob), "the signature is not alice's over this statement"},
		"DSSE with two signatures":   {envelope(t, approval.InTotoPayloadType, stmtA, alice, bob), "the DSSE envelope carries 2 signatures; an approval carries exactly one, the approver's"},
		"DSSE with payload swapped": {[]byte(strings.Replace(string(envelope(t, approval.InTotoPayloadType, stmtA, alice)),
			base64.StdEncoding.EncodeToString(stmtA), base64.StdEncoding.EncodeToString(other), 1)), "the DSSE envelope's payload is not this statement"},
		"truncated bundle":          {sigstoreBundle(t, alice, stmtA, stmtA)[:100], "the signature file is not valid JSON (a truncated bundle or envelope?)"},
		"cosign bundle, bad base64": {[]byte(`{"base64Signature":"not base64!"}`), "the cosign bundle's base64Signature is not base64"},
		"unknown JSON":              {[]byte(`{"sig":"x"}`), "the signature file is JSON but neither a sigstore bundle nor a DSSE envelope"},
	} {
		res := submit(x.alice, stmtPath, c.sig)
		require.Equal(t, 1, res.code, name+": "+res.stdout+res.stderr)
		require.Contains(t, res.stderr, c.want, name)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(res.stderr), "\n")+1, name+": one line: "+res.stderr)
	}
	require.Equal(t, "0", count())

	// Alice's DSSE envelope and Bob's DSSE-in-a-bundle are the only approvals:
	// the binary verifies both and runs.
	res := submit(x.alice, stmtPath, envelope(t, approval.InTotoPayloadType, stmtA, alice))
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	stmtBPath := filepath.Join(dir, "bob.json")
	require.NoError(t, os.WriteFile(stmtBPath, stmtB, 0o644))
	res = submit(x.bob, stmtBPath, bundledEnvelope(t, envelope(t, approval.InTotoPayloadType, stmtB, bob)))
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	res = x.execute(x.bin)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "2 distinct approvers (alice, bob; 2 required)")

	// Every other format is accepted too and stored as a verifiable signature.
	sig, err := approval.Sign(alice, stmtA)
	require.NoError(t, err)
	for name, s := range map[string][]byte{
		"plain":          []byte(sig + "\n"),
		"cosign bundle":  []byte(`{"base64Signature":"` + sig + `"}`),
		"sigstore":       sigstoreBundle(t, alice, stmtA, stmtA),
		"ours, sigstore": []byte(x.cli("approval", "sign", stmtPath, "--key", filepath.Join(x.keys, "alice.key"), "--format", "sigstore")),
		"ours, cosign":   []byte(x.cli("approval", "sign", stmtPath, "--key", filepath.Join(x.keys, "alice.key"), "--format", "cosign")),
		"ours, dsse":     []byte(x.cli("approval", "sign", stmtPath, "--key", filepath.Join(x.keys, "alice.key"), "--format", "dsse")),
	} {
		res := submit(x.alice, stmtPath, s)
		require.Equal(t, 0, res.code, name+": "+res.stdout+res.stderr)
	}
	require.Equal(t, "8", count())
	require.Equal(t, "3", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.approvals WHERE signature LIKE '{%'"))

	// The archive carries the envelopes and verifies offline.
	run := pgtest.Query(t, x.db, "SELECT max(id) FROM backfill.runs WHERE status = 'completed'")
	path := x.archiveRun(run)
	res = verifyArchive(t, path)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "approval signatures verify")
}

// TestApproveWritesABundle: approve --bundle writes a bundle and the signed
// statement that submit accepts again, in both bundle formats.
func TestApproveWritesABundle(t *testing.T) {
	t.Parallel()
	x := newTarget(t)
	dir := t.TempDir()
	for _, format := range []string{"sigstore", "cosign"} {
		bundle, stmt := filepath.Join(dir, format+".bundle"), filepath.Join(dir, format+".json")
		x.approve("alice", x.bin, "--bundle", bundle, "--bundle-format", format, "--statement-out", stmt)
		x.cli("approval", "submit", stmt, "--bundle", bundle, "--database-url", x.alice)
	}
	require.Equal(t, "4", pgtest.Query(t, x.db, "SELECT count(*) FROM backfill.approvals"))
}
