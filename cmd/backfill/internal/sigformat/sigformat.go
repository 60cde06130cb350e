// Package sigformat reads and writes the forms a reviewer's signature of an
// approval statement comes in: a plain signature (cosign sign-blob, openssl),
// a sigstore bundle (cosign 2.x --bundle, or the protobuf-specs bundle JSON
// of cosign --new-bundle-format) and a DSSE envelope (cosign attest-blob
// --statement). Each is reduced to what the ledger stores and the runtime
// verifies offline with the approver's registered key: a base64 signature
// over the statement, or a DSSE envelope whose payload is the statement.
//
// Verification is key-based and offline: transparency-log entries, signed
// timestamps and certificates in a bundle are neither required nor trusted;
// only the signature, checked against the key the ledger holds for the
// approver, counts. The package lives in the operator CLI, so the backfill
// binaries never link the protobuf bundle types.
package sigformat

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/runonce/backfill/runtime/approval"
)

// Format names the form a signature was submitted in.
type Format string

// The accepted forms.
const (
	Plain          Format = "signature"
	CosignBundle   Format = "cosign bundle"
	SigstoreBundle Format = "sigstore bundle"
	Envelope       Format = "DSSE envelope"
)

// BundleMediaType is the media type of the sigstore bundles we write (v0.3,
// what cosign 3.x --new-bundle-format writes).
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

const bundleMediaPrefix = "application/vnd.dev.sigstore.bundle"

// Decode reads a submitted signature file in any accepted form and returns
// the signature the ledger stores for statement. It checks what needs no key
// (the bundle's digest is the statement's sha256, the envelope's payload is
// the statement); the caller verifies the result with approval.Verify.
func Decode(data, statement []byte) (string, Format, error) {
	text := bytes.TrimSpace(data)
	if len(text) == 0 || text[0] != '{' {
		sig, err := approval.NormalizeSignature(data)
		return sig, Plain, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(text, &fields); err != nil {
		return "", "", fmt.Errorf("the signature file is not valid JSON (a truncated bundle or envelope?): %w", err)
	}
	switch {
	case fields["mediaType"] != nil:
		return decodeSigstore(text, statement)
	case fields["base64Signature"] != nil:
		return decodeCosign(text)
	case fields["payloadType"] != nil:
		sig, err := decodeEnvelope(text, statement)
		return sig, Envelope, err
	}
	return "", "", fmt.Errorf("the signature file is JSON but neither a sigstore bundle nor a DSSE envelope")
}

// cosignBundle is the file cosign 2.x `sign-blob --bundle` writes.
type cosignBundle struct {
	Base64Signature string          `json:"base64Signature"`
	Cert            string          `json:"cert,omitempty"`
	RekorBundle     json.RawMessage `json:"rekorBundle,omitempty"`
}

func decodeCosign(text []byte) (string, Format, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var b cosignBundle
	if err := dec.Decode(&b); err != nil {
		return "", "", fmt.Errorf("the cosign bundle is not valid: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(b.Base64Signature)
	if err != nil || len(raw) == 0 {
		return "", "", fmt.Errorf("the cosign bundle's base64Signature is not base64")
	}
	return base64.StdEncoding.EncodeToString(raw), CosignBundle, nil
}

func decodeSigstore(text, statement []byte) (string, Format, error) {
	var b protobundle.Bundle
	if err := protojson.Unmarshal(text, &b); err != nil {
		return "", "", fmt.Errorf("the sigstore bundle is not valid: %w", err)
	}
	if !strings.HasPrefix(b.GetMediaType(), bundleMediaPrefix) {
		return "", "", fmt.Errorf("the bundle's mediaType %q is not a sigstore bundle's", b.GetMediaType())
	}
	if env := b.GetDsseEnvelope(); env != nil {
		sig, err := fromProtoEnvelope(env, statement)
		return sig, SigstoreBundle, err
	}
	ms := b.GetMessageSignature()
	if ms == nil || len(ms.GetSignature()) == 0 {
		return "", "", fmt.Errorf("the sigstore bundle holds no message signature")
	}
	sum := sha256.Sum256(statement)
	d := ms.GetMessageDigest()
	if d == nil || d.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 {
		return "", "", fmt.Errorf("the sigstore bundle's message digest is not a SHA2_256 digest")
	}
	if !bytes.Equal(d.GetDigest(), sum[:]) {
		return "", "", fmt.Errorf("the sigstore bundle signs sha256 %s, not this statement's sha256 %s", hex.EncodeToString(d.GetDigest()), hex.EncodeToString(sum[:]))
	}
	return base64.StdEncoding.EncodeToString(ms.GetSignature()), SigstoreBundle, nil
}

func fromProtoEnvelope(env *protodsse.Envelope, statement []byte) (string, error) {
	e := ssldsse.Envelope{PayloadType: env.GetPayloadType(), Payload: base64.StdEncoding.EncodeToString(env.GetPayload())}
	for _, s := range env.GetSignatures() {
		e.Signatures = append(e.Signatures, ssldsse.Signature{KeyID: s.GetKeyid(), Sig: base64.StdEncoding.EncodeToString(s.GetSig())})
	}
	text, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("error encoding envelope: %w", err)
	}
	return decodeEnvelope(text, statement)
}

func decodeEnvelope(text, statement []byte) (string, error) {
	env, err := approval.ParseEnvelope(text)
	if err != nil {
		return "", err
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return "", fmt.Errorf("the DSSE envelope's payload is not base64: %w", err)
	}
	if !bytes.Equal(payload, statement) {
		return "", fmt.Errorf("the DSSE envelope's payload is not this statement byte for byte")
	}
	return approval.CompactEnvelope(env)
}

// WriteCosignBundle is the bundle cosign 2.x `sign-blob --bundle` writes for
// a key and no transparency log: the base64 signature alone.
func WriteCosignBundle(sig string) ([]byte, error) {
	out, err := json.Marshal(cosignBundle{Base64Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("error encoding bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// WriteSigstoreBundle is a v0.3 sigstore bundle (protobuf-specs JSON) of a
// message signature over statement with the key pubPEM, no transparency-log
// entry: what cosign 3.x writes with --key and --tlog-upload=false.
func WriteSigstoreBundle(statement []byte, sig string, pubPEM []byte) ([]byte, error) {
	raw, err := approval.DecodeSignature([]byte(sig))
	if err != nil {
		return nil, err
	}
	hint, err := keyHint(pubPEM)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(statement)
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signature:     raw,
		}},
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("error encoding bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// keyHint is cosign's hint for a public key: base64 of the sha256 of its DER.
func keyHint(pubPEM []byte) (string, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return "", fmt.Errorf("error reading public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("error encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
