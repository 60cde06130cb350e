package approval

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// GenerateKeyPair makes an ECDSA P-256 key pair in cosign's file format: the
// private key encrypted with password as "ENCRYPTED SIGSTORE PRIVATE KEY",
// the public key as PKIX "PUBLIC KEY".
func GenerateKeyPair(password []byte) (privPEM, pubPEM []byte, err error) {
	privPEM, pubPEM, err = cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		return nil, nil, fmt.Errorf("error generating key pair: %w", err)
	}
	return privPEM, pubPEM, nil
}

// LoadPrivateKey reads a private key file: ours, cosign's encrypted
// cosign.key, or an unencrypted PKCS#8 / SEC 1 PEM.
func LoadPrivateKey(path string, password []byte) (signature.SignerVerifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading private key %q: %w", path, err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		return nil, fmt.Errorf("error loading private key %q (wrong password?): %w", path, err)
	}
	if k, ok := priv.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		var pub crypto.PublicKey
		if s, ok := priv.(crypto.Signer); ok {
			pub = s.Public()
		}
		return nil, fmt.Errorf("error loading private key %q: the key is %s: %w", path, keyKind(pub), ErrKeyType)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("error loading private key %q: %w", path, err)
	}
	return sv, nil
}

// PublicKeyPEM returns the PEM public key of a signer.
func PublicKeyPEM(sv signature.SignerVerifier) ([]byte, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("error reading public key: %w", err)
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// ParsePublicKey reads a PEM public key and accepts only ECDSA P-256, the
// one key type approvals are specified with: sigstore would also verify
// RSA (of any size, 1024 bits included), Ed25519 and other curves, so a weak
// or unexpected key registered by mistake would otherwise count.
func ParsePublicKey(pubPEM []byte) (*ecdsa.PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("error reading public key: %w", err)
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
		return k, nil
	}
	return nil, fmt.Errorf("the key is %s: %w (make one with backfill keys generate or cosign generate-key-pair)", keyKind(pub), ErrKeyType)
}

// ErrKeyType marks a key ParsePublicKey refuses for its type.
var ErrKeyType = errors.New("approver keys must be ECDSA P-256")

func keyKind(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("a %T", pub)
}

// KeyID is the hex sha256 of the public key's PKIX DER, a stable name for a
// key whatever its PEM formatting. It refuses keys that are not ECDSA P-256
// (ParsePublicKey), so no other key gets a name to be trusted by.
func KeyID(pubPEM []byte) (string, error) {
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		return "", err
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("error encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Sign signs message and returns the signature as cosign writes it: base64
// of the ASN.1 DER ECDSA signature over SHA-256(message).
func Sign(sv signature.SignerVerifier, message []byte) (string, error) {
	sig, err := sv.SignMessage(bytes.NewReader(message))
	if err != nil {
		return "", fmt.Errorf("error signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a signature over message with a PEM public key: base64 as
// cosign sign-blob writes it (or raw DER), or a DSSE envelope whose payload
// is message (IsEnvelope).
func Verify(pubPEM []byte, message []byte, sig string) error {
	if IsEnvelope(sig) {
		return verifyEnvelope(pubPEM, message, sig)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		return err
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("error loading public key: %w", err)
	}
	raw, err := DecodeSignature([]byte(sig))
	if err != nil {
		return err
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(message)); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}

// DecodeSignature accepts a cosign .sig file (base64, maybe with a newline)
// or a raw DER signature.
func DecodeSignature(data []byte) ([]byte, error) {
	text := strings.TrimSpace(string(data))
	if raw, err := base64.StdEncoding.DecodeString(text); err == nil && len(raw) > 0 {
		return raw, nil
	}
	if len(data) > 0 && data[0] == 0x30 { // ASN.1 SEQUENCE: raw DER
		return data, nil
	}
	return nil, fmt.Errorf("the signature is neither base64 (cosign sign-blob) nor DER")
}

// NormalizeSignature returns the base64 form the ledger stores.
func NormalizeSignature(data []byte) (string, error) {
	raw, err := DecodeSignature(data)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}
