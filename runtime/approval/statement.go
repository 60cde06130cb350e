// Package approval builds, signs and verifies approvals: in-toto Statements
// about one binary digest, signed with ECDSA P-256 through sigstore in the
// same format as `cosign sign-blob` (base64 of an ASN.1 DER signature over
// the SHA-256 of the statement file), or as a DSSE envelope of the statement
// (`cosign attest-blob --statement`), so reviewers may sign with our CLI or
// with cosign keys they already have.
package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// In-toto types of an approval statement.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://github.com/runonce/backfill/approval/v1"
	// PurposeExecute approves running the binary with --execute.
	PurposeExecute = "execute"
)

// RevertPurpose approves reverting run id.
func RevertPurpose(runID int64) string { return fmt.Sprintf("revert:%d", runID) }

// RevertedRun is the run a revert purpose reverts; false for any other purpose.
func RevertedRun(purpose string) (int64, bool) {
	rest, ok := strings.CutPrefix(purpose, "revert:")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

// DescribePurpose is a purpose in words: "execute", or "revert of run 5".
func DescribePurpose(purpose string) string {
	if id, ok := RevertedRun(purpose); ok {
		return fmt.Sprintf("revert of run %d", id)
	}
	return purpose
}

// Statement is an in-toto Statement v1 approving one binary.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is the binary: its name and sha256 digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what the approver asserts about the subject.
type Predicate struct {
	Backfill     string `json:"backfill"`
	RunSignature string `json:"run_signature"`
	Environment  string `json:"environment"`
	Purpose      string `json:"purpose"`
	// Params are the exact parameter values approved, canonical JSON
	// (bftype.ParamValues.JSON); absent for a backfill without parameters,
	// so statements made before parameters existed stay valid.
	Params json.RawMessage `json:"params,omitempty"`
	// Evidence is the sha256 (hex) of the SHA256SUMS file of the archive
	// of a completed run of this digest in the environment the manifest
	// promotes from (promote.from), which `backfill approve --evidence`
	// verified before signing; absent when the approval carries none.
	Evidence string `json:"evidence,omitempty"`
	// Statements name every SQL text the approved binary runs by its
	// sha256; the ledger refuses a run whose submitted statements do not
	// hash to these (ledger version 6). Absent in statements made before.
	Statements []StatementHash `json:"statements,omitempty"`
	Approver   string          `json:"approver"`
	Reason     string          `json:"reason"`
	IssuedAt   time.Time       `json:"issued_at"`
	ExpiresAt  time.Time       `json:"expires_at"`
}

// Request is what an approver fills in.
type Request struct {
	Backfill     string
	Digest       string
	RunSignature string
	Environment  string
	Purpose      string
	Params       json.RawMessage // canonical parameter values; nil or {}: none
	Evidence     string          // sha256 of a verified evidence archive's SHA256SUMS; "": none
	Statements   []StatementHash // every SQL text the binary runs (Hashes of its info's statements)
	Approver     string
	Reason       string
	Now          time.Time
	TTL          time.Duration
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// MaxTTL bounds how long an approval may stay valid.
const MaxTTL = 30 * 24 * time.Hour

// New builds the statement bytes to sign. They are stored and verified as
// they are, byte for byte.
func New(r Request) ([]byte, error) {
	switch {
	case !hexDigest.MatchString(r.Digest):
		return nil, fmt.Errorf("digest %q is not a hex sha256", r.Digest)
	case r.RunSignature == "" || r.Backfill == "" || r.Approver == "" || r.Environment == "":
		return nil, fmt.Errorf("an approval needs a backfill, run signature, approver and environment")
	case r.Evidence != "" && !hexDigest.MatchString(r.Evidence):
		return nil, fmt.Errorf("evidence %q is not a hex sha256", r.Evidence)
	case len(bytes.TrimSpace([]byte(r.Reason))) == 0:
		return nil, fmt.Errorf("an approval needs a reason (--reason)")
	case r.TTL <= 0 || r.TTL > MaxTTL:
		return nil, fmt.Errorf("--expires must be between 1s and %s, not %s", MaxTTL, r.TTL)
	}
	if r.Purpose == "" {
		r.Purpose = PurposeExecute
	}
	now := r.Now.UTC().Truncate(time.Second)
	s := Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: r.Backfill, Digest: map[string]string{"sha256": r.Digest}}},
		PredicateType: PredicateType,
		Predicate: Predicate{Backfill: r.Backfill, RunSignature: r.RunSignature, Environment: r.Environment,
			Purpose: r.Purpose, Params: pinned(r.Params), Evidence: r.Evidence, Statements: r.Statements, Approver: r.Approver, Reason: r.Reason, IssuedAt: now, ExpiresAt: now.Add(r.TTL)},
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("error encoding statement: %w", err)
	}
	return append(out, '\n'), nil
}

// Parse decodes statement bytes strictly (decodeStrict): every reader of a
// statement (approve, the runtime's evaluation, verify-archive) goes
// through it, so none of them reads a statement another would read otherwise.
func Parse(data []byte) (*Statement, error) {
	var s Statement
	if err := decodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("error decoding approval statement: %w", err)
	}
	if s.Type != StatementType || s.PredicateType != PredicateType {
		return nil, fmt.Errorf("not a backfill approval statement (type %q, predicate %q)", s.Type, s.PredicateType)
	}
	if len(s.Subject) != 1 || !hexDigest.MatchString(s.Subject[0].Digest["sha256"]) {
		return nil, fmt.Errorf("an approval statement must have exactly one subject with a sha256 digest")
	}
	return &s, nil
}

// Digest is the approved binary's sha256.
func (s *Statement) Digest() string { return s.Subject[0].Digest["sha256"] }

// pinned is the parameter values a statement records: none for {}.
func pinned(params json.RawMessage) json.RawMessage {
	if len(params) == 0 || string(params) == "{}" || string(params) == "null" {
		return nil
	}
	return params
}

// StatementHash is one SQL text an approval names: the statement's name and
// role, and the sha256 (hex) of its text as the binary embeds it.
type StatementHash struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	SHA256 string `json:"sha256"`
	// Where the statement binds the batch's keys (bftype.Statement): the
	// ledger checks each batch's keys by them, so approvals sign them too.
	KeyParam    int `json:"key_param,omitempty"`
	CursorParam int `json:"cursor_param,omitempty"`
	KeyColumn   int `json:"key_column,omitempty"`
}

// Hashes are the StatementHashes of a binary's statements, by name.
func Hashes(stmts []bftype.Statement) []StatementHash {
	out := make([]StatementHash, len(stmts))
	for i, s := range stmts {
		sum := sha256.Sum256([]byte(s.SQL))
		out[i] = StatementHash{Name: s.Name, Role: s.Role, SHA256: hex.EncodeToString(sum[:]),
			KeyParam: s.KeyParam, CursorParam: s.CursorParam, KeyColumn: s.KeyColumn}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sameHashes reports whether two lists name the same statements.
func sameHashes(a, b []StatementHash) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Slice(x, func(i, j int) bool { return x[i].Name < x[j].Name })
	sort.Slice(y, func(i, j int) bool { return y[i].Name < y[j].Name })
	return slices.Equal(x, y)
}
