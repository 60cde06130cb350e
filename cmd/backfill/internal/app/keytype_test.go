package app_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestApproversAddRefusesKeysOtherThanP256: an admin cannot trust an RSA
// (1024 or 2048 bits), Ed25519 or P-384 key; the ledger gets no row.
func TestApproversAddRefusesKeysOtherThanP256(t *testing.T) {
	t.Parallel()
	groupRoles(t)
	db := pgtest.NewDB(t)
	require.Equal(t, 0, runBinary(t, nil, cliBin, "ledger", "init", "--environment", "demo", "--database-url", db).code)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	dir := t.TempDir()
	for kind, pub := range map[string]crypto.PublicKey{"RSA 1024": rsa1024.Public(), "RSA 2048": rsa2048.Public(), "Ed25519": edPub, "ECDSA P-384": p384.Public()} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		require.NoError(t, err)
		path := filepath.Join(dir, "carol.pub")
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
		res := runBinary(t, nil, cliBin, "approvers", "add", "carol", "--key", path, "--login", "postgres", "--database-url", db)
		require.NotEqual(t, 0, res.code, kind)
		require.Contains(t, res.stderr, "the key is "+kind+": approver keys must be ECDSA P-256", kind)
	}
	require.Equal(t, "0", pgtest.Query(t, db, "SELECT count(*) FROM backfill.approvers"))
}
