package approval

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
)

// InTotoPayloadType is the DSSE payload type of an in-toto statement, the one
// `cosign attest-blob --statement` writes.
const InTotoPayloadType = "application/vnd.in-toto+json"

// IsEnvelope reports whether a stored signature is a DSSE envelope (JSON)
// rather than a plain base64 signature: the ledger keeps either in the same
// column, so an approval signed as an envelope verifies offline as it was
// signed.
func IsEnvelope(sig string) bool { return strings.HasPrefix(strings.TrimSpace(sig), "{") }

// SignEnvelope signs statement as a DSSE envelope of payload type in-toto,
// as `cosign attest-blob --statement` does, and returns the envelope JSON.
func SignEnvelope(sv signature.SignerVerifier, statement []byte) ([]byte, error) {
	env, err := sigdsse.WrapSigner(sv, InTotoPayloadType).SignMessage(bytes.NewReader(statement))
	if err != nil {
		return nil, fmt.Errorf("error signing envelope: %w", err)
	}
	return env, nil
}

// ParseEnvelope decodes a DSSE envelope strictly (decodeStrict: no
// duplicate, case-variant or unknown keys, nothing after it): exactly one
// signature (an approval is one approver's), payload type in-toto.
func ParseEnvelope(data []byte) (*ssldsse.Envelope, error) {
	var env ssldsse.Envelope
	if err := decodeStrict(data, &env); err != nil {
		return nil, fmt.Errorf("the DSSE envelope is not valid JSON of an envelope: %w", err)
	}
	switch {
	case env.PayloadType != InTotoPayloadType:
		return nil, fmt.Errorf("the DSSE envelope's payloadType is %q, not %q", env.PayloadType, InTotoPayloadType)
	case len(env.Signatures) != 1:
		return nil, fmt.Errorf("the DSSE envelope carries %d signatures; an approval carries exactly one, the approver's", len(env.Signatures))
	}
	return &env, nil
}

// CompactEnvelope re-encodes an envelope as one line of JSON, the form the
// ledger stores (the signature covers the payload, not the envelope's
// formatting).
func CompactEnvelope(env *ssldsse.Envelope) (string, error) {
	out, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("error encoding envelope: %w", err)
	}
	return string(out), nil
}

// verifyEnvelope checks that envelope's payload is exactly statement and
// that its one signature verifies over the DSSE pre-authentication encoding.
func verifyEnvelope(pubPEM, statement []byte, envelope string) error {
	env, err := ParseEnvelope([]byte(envelope))
	if err != nil {
		return err
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return fmt.Errorf("the DSSE envelope's payload is not base64: %w", err)
	}
	if !bytes.Equal(payload, statement) {
		return fmt.Errorf("the DSSE envelope's payload is not this statement byte for byte")
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		return err
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("error loading public key: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		return fmt.Errorf("the DSSE envelope's signature is not base64: %w", err)
	}
	// The envelope's keyid is a hint we ignore: the registered key decides.
	pae := ssldsse.PAE(env.PayloadType, payload)
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae)); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}
