package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// promotionEvidence verifies the archive at path offline, as verify-archive
// does, and that it proves what promote: asks of an approval for env: a
// completed run of this very digest, with the same parameter values, in
// the environment the manifest promotes from (a completed run is one whose
// checks held after its last batch). It returns the sha256 of the
// archive's SHA256SUMS, which covers every other file of the archive, for
// the signed statement; "" when the approval needs no evidence.
func promotionEvidence(ctx context.Context, subj *subject, env, purpose string, params json.RawMessage, path string) (string, error) {
	from := subj.Manifest.EvidenceFrom(env, purpose)
	switch {
	case path == "" || from == "":
		if path != "" {
			return "", usageError{fmt.Sprintf("--evidence is for an execute approval in an environment this binary promotes to (promote.from); this is %s in %s", purpose, env)}
		}
		return "", nil
	}
	files, top, err := archive.Read(path)
	if err != nil {
		return "", err
	}
	if v := archive.Verify(ctx, files, archive.VerifyOpts{Top: top}); len(v.Problems) > 0 {
		ps := make([]string, len(v.Problems))
		for i, p := range v.Problems {
			ps[i] = p.String()
		}
		return "", fmt.Errorf("the evidence archive %s does not verify (run backfill verify-archive on it): %s", path, strings.Join(ps, "; "))
	}
	a, _ := archive.Parse(files)
	if why := provesRun(a, subj, from, params); why != "" {
		return "", fmt.Errorf("the evidence archive %s is not evidence for this approval: %s", path, why)
	}
	sum := sha256.Sum256(files[archive.SumsFile])
	return hex.EncodeToString(sum[:]), nil
}

// provesRun is why the archive a does not prove a completed execution of
// subj in environment from with params, or "" when it does.
func provesRun(a *archive.Archive, subj *subject, from string, params json.RawMessage) string {
	run := a.Run()
	switch {
	case run == nil:
		return "it holds no record of its run"
	case a.Index.Digest != subj.Digest || run.Digest != subj.Digest:
		return fmt.Sprintf("it is a run of another binary (digest %s), not of sha256:%s", abbrev(run.Digest), subj.Digest)
	case run.Purpose != approval.PurposeExecute:
		return fmt.Sprintf("run %d is a %s, not an execution", run.ID, approval.DescribePurpose(run.Purpose))
	case run.Status != ledger.StatusCompleted:
		return fmt.Sprintf("run %d ended %s, not completed", run.ID, run.Status)
	case run.Environment == nil || *run.Environment != from || a.Index.Ledger.Environment != from:
		return fmt.Sprintf("run %d ran in environment %q, not %q (promote.from)", run.ID, a.Index.Ledger.Environment, from)
	case bftype.DiffParams(params, run.Params) != "":
		return fmt.Sprintf("run %d ran with other parameter values: %s", run.ID, bftype.DiffParams(params, run.Params))
	}
	return ""
}

func abbrev(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}
