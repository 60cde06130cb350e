// Package cli is the command line of every generated backfill binary: the
// dry-run, info and (with the guardrails) execute. Generated main functions
// are one line that hands a Binary to Main.
//
// It is the only part of the runtime that prints; the plan and the adapters
// return values and errors, and this package draws them for the operator.
package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/plan"
)

// Binary is everything the generator embeds in one backfill binary.
type Binary struct {
	Name         string             // the backfill's name, e.g. fix_roles
	Manifest     string             // the manifest as canonical JSON
	RunSignature string             // hash over manifest, queries, transform and code version
	SourceCommit string             // the commit the binary was built from, set at link time
	SourceDigest string             // sha256 of the source bundle it was built from, set at link time
	CodeVersion  string             // the generator and runtime version
	Statements   []bftype.Statement // every statement the binary may run
	Apply        bftype.Apply       // what the Apply statement writes: its kind and table, for every count shown
	Plan         plan.Plan          // the typed queries and transform
}

// Digest returns the sha256 of the running executable, the digest reviewers
// approve. It hashes the file on disk, so a binary changed after approval
// has a different digest.
func Digest() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("error locating own executable: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("error opening own executable %q: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("error hashing own executable %q: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
