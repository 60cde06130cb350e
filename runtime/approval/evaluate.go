package approval

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// Want is what a binary needs approved: its own digest, signature and
// environment, for a purpose, by enough distinct approvers who are not the
// operator.
type Want struct {
	Backfill     string
	Digest       string
	RunSignature string
	Environment  string
	Purpose      string
	Params       json.RawMessage // canonical parameter values; nil or {}: none
	Required     int             // distinct approvers needed
	NeedReason   bool            // every counted approval must give a reason
	Operator     string          // the executing database login; never counts
	// EvidenceFrom, when set, is the environment (promote.from) whose
	// completed run every counted approval must carry evidence of.
	EvidenceFrom string
	// Statements are the SQL texts the binary runs, which every counted
	// approval must name (Hashes of the binary's statements); nil: unchecked.
	Statements []StatementHash
	Now        time.Time // for expiry
}

// Counted is an approval that holds.
type Counted struct {
	ID       int64
	Approver string
	Login    string
}

// Rejected is an approval that does not hold, and why.
type Rejected struct {
	ID       int64
	Approver string
	Why      string
}

// Verdict is the outcome of checking every approval stored for a digest.
type Verdict struct {
	Counted  []Counted
	Rejected []Rejected
	Distinct int // distinct approver logins among Counted
	Required int
}

// Enough reports whether the approvals suffice.
func (v Verdict) Enough() bool { return v.Distinct >= v.Required }

// IDs are the ids of the counted approvals.
func (v Verdict) IDs() []int64 {
	ids := make([]int64, len(v.Counted))
	for i, c := range v.Counted {
		ids[i] = c.ID
	}
	return ids
}

// Summary is one sentence on why approvals do not suffice.
func (v Verdict) Summary() string {
	s := fmt.Sprintf("%d of %d required distinct approvals are valid", v.Distinct, v.Required)
	if len(v.Rejected) > 0 {
		var why []string
		for _, r := range v.Rejected {
			why = append(why, fmt.Sprintf("#%d by %s: %s", r.ID, r.Approver, r.Why))
		}
		s += " (rejected: " + strings.Join(why, "; ") + ")"
	}
	return s
}

// Evaluate checks each stored approval against the trusted keys and what the
// binary wants. It trusts nothing in the row but the statement bytes and the
// signature: every field it counts on comes from the verified statement.
func Evaluate(approvals []ledger.Approval, approvers []ledger.Approver, w Want) Verdict {
	byName := map[string]ledger.Approver{}
	for _, a := range approvers {
		byName[a.Name] = a
	}
	v := Verdict{Required: w.Required}
	logins := map[string]bool{}
	for _, a := range approvals {
		key, why := check(a, byName, w)
		if why != "" {
			v.Rejected = append(v.Rejected, Rejected{ID: a.ID, Approver: a.Approver, Why: why})
			continue
		}
		v.Counted = append(v.Counted, Counted{ID: a.ID, Approver: key.Name, Login: key.Login})
		logins[key.Login] = true
	}
	v.Distinct = len(logins)
	sort.Slice(v.Counted, func(i, j int) bool { return v.Counted[i].ID < v.Counted[j].ID })
	return v
}

func check(a ledger.Approval, keys map[string]ledger.Approver, w Want) (ledger.Approver, string) {
	key, ok := keys[a.Approver]
	switch {
	case !ok:
		return key, "approver is not trusted in this ledger"
	case key.RevokedAt != nil:
		return key, "the approver's key was revoked"
	}
	if _, err := ParsePublicKey([]byte(key.PublicKey)); err != nil {
		return key, "the approver's key never counts: " + err.Error()
	}
	if err := Verify([]byte(key.PublicKey), []byte(a.Statement), a.Signature); err != nil {
		return key, "the signature does not verify with the approver's key (forged or modified statement)"
	}
	s, err := Parse([]byte(a.Statement))
	if err != nil {
		return key, err.Error()
	}
	p := s.Predicate
	switch {
	case s.Digest() != w.Digest || a.Digest != w.Digest:
		return key, "it approves another binary (digest " + short(s.Digest()) + ")"
	case p.Approver != a.Approver:
		return key, "the statement names approver " + p.Approver
	case p.Backfill != w.Backfill || p.RunSignature != w.RunSignature:
		return key, "it approves another backfill or run signature"
	case p.Environment != w.Environment:
		return key, "it approves environment " + p.Environment + ", not " + w.Environment
	case p.Purpose != w.Purpose:
		return key, "it approves " + p.Purpose + ", not " + w.Purpose
	case bftype.DiffParams(w.Params, p.Params) != "":
		return key, "it approves other parameter values: " + bftype.DiffParams(w.Params, p.Params)
	case w.Statements != nil && len(p.Statements) == 0:
		return key, "it does not name the sha256 of the SQL the binary runs (made before ledger version 6); approve the binary again"
	case w.Statements != nil && !sameHashes(w.Statements, p.Statements):
		return key, "it names other SQL texts than the binary runs"
	case w.EvidenceFrom != "" && !hexDigest.MatchString(p.Evidence):
		return key, "it carries no evidence of a completed " + w.EvidenceFrom + " run (approve with --evidence ARCHIVE)"
	case !w.Now.Before(p.ExpiresAt):
		return key, "it expired at " + p.ExpiresAt.Format(time.RFC3339)
	case p.IssuedAt.After(w.Now.Add(5 * time.Minute)):
		return key, "it is issued in the future"
	case w.NeedReason && strings.TrimSpace(p.Reason) == "":
		return key, "it records no reason"
	case key.Login == w.Operator:
		return key, "the operator (" + w.Operator + ") cannot approve their own run"
	}
	return key, ""
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// Required is how many distinct approvers a risk level needs.
func Required(risk string) int {
	if risk == "high" {
		return 2
	}
	return 1
}
