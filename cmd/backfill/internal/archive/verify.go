package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/runonce/backfill/cmd/backfill/internal/repro"
	"github.com/runonce/backfill/generator/inspect"
	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// VerifyOpts choose the optional checks.
type VerifyOpts struct {
	// Rebuild builds the archived source with the archived recipe and
	// compares the result with the archived binary.
	Rebuild bool
	// GoCache is the Go build cache of the rebuild; empty means a new, empty
	// one, so that nothing cached on this machine can influence the result.
	GoCache string
	// Top is the directory the files were under in a .tar.gz ("" for a
	// directory archive); it must name the archive's backfill and run.
	Top string
}

// Verified is what Verify checked and what it found wrong.
type Verified struct {
	Checked  []string  // one line per check that passed
	Notes    []string  // what could not be checked, and why (not a failure)
	Problems []Problem // empty when the archive holds
}

// Verify checks an archive offline: checksums, signatures against the
// archived keys, the digests of binary, approvals and runs, the build
// recipe, the audit chain, the records' consistency and REPORT.md, and with
// Rebuild that the source rebuilds to the same sha256.
func Verify(ctx context.Context, files map[string][]byte, o VerifyOpts) Verified {
	v := &verifier{files: files}
	v.sums()
	a, ps := Parse(files)
	v.problems = append(v.problems, ps...)
	v.a = a
	if o.Top != "" && o.Top != Top(a) {
		v.problems.add(IndexFile, "is about run %d of %s, but the archive's directory is %s", a.Index.RunID, a.Index.Backfill, o.Top)
	}
	v.layout()
	v.binary()
	v.build()
	v.approvals()
	v.runs()
	v.audit()
	v.bindings()
	v.consistency()
	v.report()
	if o.Rebuild && len(v.problems) == 0 {
		v.rebuild(ctx, o.GoCache)
	}
	return Verified{Checked: v.checked, Notes: v.notes, Problems: v.problems}
}

type verifier struct {
	files    map[string][]byte
	a        *Archive
	problems problems
	checked  []string
	notes    []string
	info     bftype.Info
	recipe   *repro.Recipe // the standard recipe of the archived build, the only one a rebuild runs
}

func (v *verifier) ok(format string, args ...any) {
	v.checked = append(v.checked, fmt.Sprintf(format, args...))
}

// sums checks SHA256SUMS: every file listed and matching, nothing unlisted.
func (v *verifier) sums() {
	data, ok := v.files[SumsFile]
	if !ok {
		v.problems.add(SumsFile, "is missing: the archive's files cannot be checked")
		return
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	before := len(v.problems)
	for line := 1; sc.Scan(); line++ {
		sum, path, found := strings.Cut(sc.Text(), "  ")
		if !found || len(sum) != 64 {
			v.problems.add(SumsFile, "line %d is not \"SHA256  PATH\"", line)
			continue
		}
		listed[path] = true
		content, ok := v.files[path]
		switch {
		case !ok:
			v.problems.add(path, "is listed in %s but missing from the archive", SumsFile)
		case hexSHA256(content) != sum:
			v.problems.add(path, "does not match its sha256 in %s (changed after archiving)", SumsFile)
		}
	}
	for _, p := range sortedPaths(v.files) {
		if p != SumsFile && !listed[p] {
			v.problems.add(p, "is not listed in %s (added after archiving)", SumsFile)
		}
	}
	if len(v.problems) == before {
		v.ok("%d files match %s", len(listed), SumsFile)
	}
}

// layout refuses files an archive never holds: anything added, even if
// listed in SHA256SUMS, is a problem.
func (v *verifier) layout() {
	a := v.a
	want := map[string]bool{IndexFile: true, ReportFile: true, SumsFile: true, ManifestFile: true, RecipeFile: true, SourceFile: true,
		RunsFile: true, BatchesFile: true, DryRunsFile: true, ApprovalsFile: true, ApproversFile: true, EventsFile: true, ChecksFile: true,
		SkippedFile: true, BinaryFile(a.Index.Backfill): true}
	for _, x := range a.Approvals {
		want[StatementFile(x.ID)], want[SignatureFile(x.ID)] = true, true
	}
	for _, k := range a.Approvers {
		want[KeyFile(k.Name)] = true
	}
	for _, d := range a.DryRuns {
		want[DryRunFile(d.ID)] = true
		if a.Reports[d.ID] == nil {
			v.problems.add(DryRunFile(d.ID), "is missing: the report of dry-run %d", d.ID)
		}
	}
	for _, p := range sortedPaths(v.files) {
		if !want[p] {
			v.problems.add(p, "is not part of this archive (no record refers to it; added after archiving)")
		}
	}
}

// binary checks that the binary, its manifest, the recipe, the index and
// every run name the same digest.
func (v *verifier) binary() {
	a := v.a
	bin := BinaryFile(a.Index.Backfill)
	if a.Binary == nil {
		return
	}
	digest := hexSHA256(a.Binary)
	if digest != a.Index.Digest {
		v.problems.add(bin, "is sha256:%s, but %s says the run's binary is sha256:%s (binary swapped)", digest, IndexFile, a.Index.Digest)
		return
	}
	if err := json.Unmarshal(a.Manifest, &v.info); err != nil {
		v.problems.add(ManifestFile, "is not valid: %v", err)
	} else if v.info.Digest != digest || v.info.Name != a.Index.Backfill {
		v.problems.add(ManifestFile, "describes %s sha256:%s, not the archived binary", v.info.Name, v.info.Digest)
	} else {
		v.manifestInBinary()
	}
	for _, r := range a.Runs {
		if r.Digest != digest || r.Backfill != a.Index.Backfill {
			v.problems.add(RunsFile, "run %d ran %s sha256:%s, not the archived binary", r.ID, r.Backfill, r.Digest)
		}
	}
	if a.run(a.Index.RunID) == nil {
		v.problems.add(RunsFile, "does not hold run %d, the run this archive is about", a.Index.RunID)
	}
	v.ok("binary %s is sha256:%s, the digest of run %d", bin, digest, a.Index.RunID)
}

// applyMatchesSQL checks that what manifest.json says the binary writes
// (the kind and table REPORT.md words every count with) is what its Apply
// statement, checked above to be in the binary, does. An archive made
// before the kind was recorded has none to check.
func (v *verifier) applyMatchesSQL() bool {
	claimed := v.info.Apply
	if claimed.Kind == "" {
		return true
	}
	for _, st := range v.info.Statements {
		if st.Role != "apply" {
			continue
		}
		read, err := inspect.ApplyKind(st.SQL)
		if err != nil || read.Kind != claimed.Kind || read.Upsert != claimed.Upsert || read.Table != claimed.Table {
			v.problems.add(ManifestFile, "says the binary writes %s, which its Apply statement does not", claimed.Statement())
			return false
		}
		return true
	}
	v.problems.add(ManifestFile, "says the binary writes %s but lists no Apply statement", claimed.Statement())
	return false
}

// manifestInBinary checks that what manifest.json says the binary embeds
// (manifest, statements, run signature, versions) is in the binary's bytes,
// so that the file cannot say something the approved binary does not.
func (v *verifier) manifestInBinary() {
	info, bin := v.info, v.a.Binary
	if info.Manifest == nil || info.ManifestText == "" {
		v.problems.add(ManifestFile, "has no manifest")
		return
	}
	decoded, err := bftype.DecodeManifest([]byte(info.ManifestText))
	want, _ := json.Marshal(decoded)
	got, _ := json.Marshal(info.Manifest)
	if err != nil || !bytes.Equal(want, got) {
		v.problems.add(ManifestFile, "its manifest is not the manifest text it quotes")
	}
	embedded := []string{info.ManifestText, info.RunSignature, info.CodeVersion, info.SourceCommit, info.SourceDigest}
	for _, st := range info.Statements {
		embedded = append(embedded, st.SQL)
	}
	for _, text := range embedded {
		if text == "" || !bytes.Contains(bin, []byte(text)) {
			v.problems.add(ManifestFile, "says the binary embeds %q, which it does not", abbreviate(text))
			return
		}
	}
	if !v.applyMatchesSQL() {
		return
	}
	v.ok("the manifest, %d statements and run signature in %s are the ones embedded in the binary", len(info.Statements), ManifestFile)
}

func abbreviate(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// build checks the recipe against the binary's own build information and
// the source bundle's digest.
func (v *verifier) build() {
	a := v.a
	var r repro.Recipe
	if err := json.Unmarshal(a.Recipe, &r); err != nil || len(r.Args) == 0 {
		v.problems.add(RecipeFile, "is not a build recipe: %v", err)
		return
	}
	if r.Backfill != a.Index.Backfill || r.SHA256 != a.Index.Digest {
		v.problems.add(RecipeFile, "is the recipe of %s sha256:%s, not of the archived binary", r.Backfill, r.SHA256)
	}
	std, bad := r.Standardize()
	for _, b := range bad {
		v.problems.add(RecipeFile, "is not the standard recipe, and is never run: %s", b)
	}
	v.recipe = std
	if got := repro.Digest(a.Source); got != r.SourceDigest || got != a.Index.SourceDigest {
		v.problems.add(SourceFile, "is %s, but the recipe names %s and %s names %s", got, r.SourceDigest, IndexFile, a.Index.SourceDigest)
	}
	tmp, err := os.CreateTemp("", "backfill-archive-binary-")
	if err != nil {
		v.problems.add(BinaryFile(a.Index.Backfill), "cannot be inspected: %v", err)
		return
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(a.Binary)
	tmp.Close()
	if err != nil {
		v.problems.add(BinaryFile(a.Index.Backfill), "cannot be inspected: %v", err)
		return
	}
	e, err := repro.ReadEmbedded(tmp.Name())
	if err != nil {
		v.problems.add(BinaryFile(a.Index.Backfill), "has no Go build information: %v", err)
		return
	}
	mismatch := r.Check(e)
	for _, b := range mismatch {
		v.problems.add(RecipeFile, "%s", b)
	}
	if len(mismatch) == 0 && len(bad) == 0 {
		v.ok("the binary embeds source bundle %s and was built with %s as %s says", r.SourceDigest, e.GoVersion, RecipeFile)
	}
}

// approvals verifies every signature with the archived key of its approver
// and checks that each statement approves the archived binary.
func (v *verifier) approvals() {
	a := v.a
	keys := map[string]ApproverRow{}
	for _, k := range a.Approvers {
		keys[k.Name] = k
		pub, ok := a.Keys[k.Name]
		if !ok {
			v.problems.add(KeyFile(k.Name), "is missing: approver %s's key", k.Name)
			continue
		}
		if id, err := approval.KeyID(pub); err != nil || id != k.KeyID {
			v.problems.add(KeyFile(k.Name), "is not the key registered for %s (key id %s in %s)", k.Name, k.KeyID, ApproversFile)
		}
	}
	good := 0
	for _, x := range a.Approvals {
		st, sig := a.Statements[x.ID], a.Signatures[x.ID]
		switch {
		case st == nil:
			v.problems.add(StatementFile(x.ID), "is missing: the statement of approval %d", x.ID)
			continue
		case sig == nil:
			v.problems.add(SignatureFile(x.ID), "is missing: the signature of approval %d", x.ID)
			continue
		}
		if _, ok := keys[x.Approver]; !ok {
			v.problems.add(ApproversFile, "has no key for approver %s of approval %d", x.Approver, x.ID)
			continue
		}
		if err := approval.Verify(a.Keys[x.Approver], st, strings.TrimSpace(string(sig))); err != nil {
			v.problems.add(StatementFile(x.ID), "signature %s does not verify with %s: forged or modified", SignatureFile(x.ID), KeyFile(x.Approver))
			continue
		}
		s, err := approval.Parse(st)
		if err != nil {
			v.problems.add(StatementFile(x.ID), "is not an approval statement: %v", err)
			continue
		}
		p := s.Predicate
		if s.Digest() != a.Index.Digest {
			v.problems.add(StatementFile(x.ID), "approves sha256:%s, not the archived binary sha256:%s", s.Digest(), a.Index.Digest)
			continue
		}
		if p.Backfill != a.Index.Backfill || (v.info.RunSignature != "" && p.RunSignature != v.info.RunSignature) {
			v.problems.add(StatementFile(x.ID), "approves backfill %s with run signature %s, not the archived binary's", p.Backfill, p.RunSignature)
			continue
		}
		if p.Approver != x.Approver || p.Purpose != x.Purpose || p.Environment != x.Environment || p.Reason != x.Reason ||
			!p.ExpiresAt.Equal(x.ExpiresAt) || x.Digest != a.Index.Digest || x.Backfill != p.Backfill || x.RunSignature != p.RunSignature {
			v.problems.add(ApprovalsFile, "approval %d does not say what its signed statement says", x.ID)
			continue
		}
		good++
	}
	for id := range a.Statements {
		if !slices.ContainsFunc(a.Approvals, func(x ApprovalRow) bool { return x.ID == id }) {
			v.problems.add(StatementFile(id), "is not an approval listed in %s", ApprovalsFile)
		}
	}
	if good == len(a.Approvals) {
		v.ok("all %d approval signatures verify with the archived keys and approve the archived binary", good)
	}
}

// runs checks, for every run that was not refused, that the approvals it
// counted are archived and were enough when it started.
func (v *verifier) runs() {
	a := v.a
	if v.info.Manifest == nil {
		v.problems.add(ManifestFile, "has no manifest, so the approvals the runs needed cannot be checked")
		return
	}
	var rows []ledger.Approval
	for _, x := range a.Approvals {
		rows = append(rows, ledger.Approval{ID: x.ID, Backfill: x.Backfill, Digest: x.Digest, RunSignature: x.RunSignature,
			Environment: x.Environment, Purpose: x.Purpose, Approver: x.Approver, Reason: x.Reason, ExpiresAt: x.ExpiresAt,
			Statement: string(a.Statements[x.ID]), Signature: strings.TrimSpace(string(a.Signatures[x.ID]))})
	}
	for _, r := range a.Runs {
		if r.Status == ledger.StatusRefused {
			continue
		}
		var used []ledger.Approval
		for _, id := range r.ApprovalIDs {
			i := slices.IndexFunc(rows, func(x ledger.Approval) bool { return x.ID == id })
			if i < 0 {
				v.problems.add(ApprovalsFile, "approval %d, counted by run %d, is missing", id, r.ID)
				continue
			}
			used = append(used, rows[i])
		}
		var approvers []ledger.Approver
		for _, k := range a.Approvers {
			x := ledger.Approver{Name: k.Name, Login: k.Login, PublicKey: string(a.Keys[k.Name]), KeyID: k.KeyID}
			if k.RevokedAt != nil && !k.RevokedAt.After(r.StartedAt) {
				x.RevokedAt = k.RevokedAt
			}
			approvers = append(approvers, x)
		}
		risk := v.info.Manifest.Risk
		verdict := approval.Evaluate(used, approvers, approval.Want{Backfill: r.Backfill, Digest: r.Digest, RunSignature: r.RunSignature,
			Environment: deref(r.Environment), Purpose: r.Purpose, Required: approval.Required(risk), NeedReason: risk == "high",
			Operator: r.DBUser, Now: r.StartedAt})
		if !verdict.Enough() {
			v.problems.add(RunsFile, "run %d started without enough valid approvals in the archive: %s", r.ID, verdict.Summary())
			continue
		}
		v.ok("run %d (%s, %s) was approved by %d distinct approvers when it started", r.ID, r.Purpose, r.Status, verdict.Distinct)
	}
}

// audit checks the archived stretch of the hash chain and that it holds the
// events of every run, approval and dry-run in the archive.
func (v *verifier) audit() {
	a := v.a
	if len(a.Events) == 0 {
		v.problems.add(EventsFile, "holds no audit events")
		return
	}
	first, last := a.Events[0], a.Events[len(a.Events)-1]
	if !hashPattern.MatchString(first.PrevHash) {
		v.problems.add(EventsFile, "the first event's prev_hash %q is not a sha256 (event %d)", abbreviate(first.PrevHash), first.Seq)
		return
	}
	if err := ledger.VerifyChain(a.Events, first.PrevHash); err != nil {
		v.problems.add(EventsFile, "%v", err)
		return
	}
	if first.Seq != a.Index.Audit.FirstSeq || last.Seq != a.Index.Audit.LastSeq {
		v.problems.add(EventsFile, "holds events %d to %d, but %s says %d to %d (events removed)", first.Seq, last.Seq,
			IndexFile, a.Index.Audit.FirstSeq, a.Index.Audit.LastSeq)
	}
	if a.Index.Audit.HeadSeq == last.Seq && a.Index.Audit.HeadHash != last.Hash {
		v.problems.add(IndexFile, "names head hash %s for event %d, which hashes to %s", a.Index.Audit.HeadHash, last.Seq, last.Hash)
	}
	has := func(kind string, match func(ledger.Event) bool) bool {
		return slices.ContainsFunc(a.Events, func(e ledger.Event) bool { return e.Kind == kind && match(e) })
	}
	for _, r := range a.Runs {
		kind := "started"
		if r.Status == ledger.StatusRefused {
			kind = "refused"
		}
		if !has(kind, func(e ledger.Event) bool { return e.RunID != nil && *e.RunID == r.ID }) {
			v.problems.add(EventsFile, "has no %q event of run %d", kind, r.ID)
		}
	}
	for _, x := range a.Approvals {
		if !has("approval", func(e ledger.Event) bool { return payloadID(e, "approval_id") == x.ID }) {
			v.problems.add(EventsFile, "has no event of approval %d", x.ID)
		}
	}
	for _, d := range a.DryRuns {
		if !has("dry_run", func(e ledger.Event) bool { return payloadID(e, "dry_run_id") == d.ID }) {
			v.problems.add(EventsFile, "has no event of dry-run report %d", d.ID)
		}
	}
	v.ok("audit events %d to %d form an unbroken hash chain from %s", first.Seq, last.Seq, abbreviate(first.PrevHash))
}

func payloadID(e ledger.Event, field string) int64 {
	var p map[string]json.RawMessage
	if json.Unmarshal([]byte(e.Payload), &p) != nil {
		return 0
	}
	var id int64
	if json.Unmarshal(p[field], &id) != nil {
		return 0
	}
	return id
}

// consistency checks that the records agree with each other and with the
// audit events: batches sum to the run's counts, every committed batch has
// its event, the check results are those of the events.
func (v *verifier) consistency() {
	a := v.a
	for _, r := range a.Runs {
		var n, changed int64
		for _, b := range a.Batches {
			if b.RunID == r.ID {
				n++
				changed += b.Changed
				if b.Batch != n {
					v.problems.add(BatchesFile, "run %d's batch %d is out of order or one before it is missing", r.ID, b.Batch)
				}
			}
		}
		if n != r.Batches || changed != r.Changed {
			v.problems.add(BatchesFile, "run %d has %d batches changing %d rows, but its record says %d batches, %d rows", r.ID, n, changed, r.Batches, r.Changed)
		}
		kind := "batch"
		if strings.HasPrefix(r.Purpose, "revert:") {
			kind = "revert_batch"
		}
		if got := int64(len(a.eventsOf(r.ID, kind))); got != r.Batches {
			v.problems.add(EventsFile, "has %d %s events of run %d, which committed %d batches", got, kind, r.ID, r.Batches)
		}
	}
	derived, _ := json.Marshal(DeriveChecks(a.Events))
	stored, _ := json.Marshal(a.Checks)
	if !bytes.Equal(derived, stored) {
		v.problems.add(ChecksFile, "does not match the check results in the audit events")
	}
	for _, d := range a.DryRuns {
		if d.Digest != a.Index.Digest {
			v.problems.add(DryRunsFile, "dry-run report %d is of sha256:%s, not the archived binary", d.ID, d.Digest)
		}
	}
	v.ok("%d batch rows and the check results agree with the runs and the audit events", len(a.Batches))
}

// report renders REPORT.md from the files and compares.
func (v *verifier) report() {
	if v.a.Report == nil {
		return
	}
	if f := v.a.Index.ReportFormat; f < ReportFormat {
		v.notes = append(v.notes, fmt.Sprintf("%s is in report format %d, older than the %d this tool writes, so it was not compared with the records; "+
			"its checksum verified, but read the records (runs.json, batches.json, events.json), not its wording", ReportFile, f, ReportFormat))
		return
	}
	if !bytes.Equal(Report(v.a), v.a.Report) {
		v.problems.add(ReportFile, "does not say what the archived records say (edited, or made from other records)")
		return
	}
	v.ok("%s says what the archived records say", ReportFile)
}

// rebuild builds the archived source with the recipe in a new directory and
// an empty build cache, and compares the sha256 with the archived binary.
func (v *verifier) rebuild(ctx context.Context, cache string) {
	a := v.a
	r := v.recipe
	if r == nil {
		v.problems.add(RecipeFile, "is not a standard recipe; nothing was rebuilt")
		return
	}
	work, err := os.MkdirTemp("", "backfill-rebuild-")
	if err != nil {
		v.problems.add(SourceFile, "cannot be rebuilt: %v", err)
		return
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "src")
	if _, err := repro.Extract(a.Source, src); err != nil {
		v.problems.add(SourceFile, "%v", err)
		return
	}
	if cache == "" {
		cache = filepath.Join(work, "gocache")
	}
	out := filepath.Join(work, r.Binary)
	if err := repro.Build(ctx, r, src, out, repro.Opts{GoCache: cache, Toolchain: true}); err != nil {
		v.problems.add(SourceFile, "does not build with %s: %v", RecipeFile, err)
		return
	}
	data, err := os.ReadFile(out)
	if err != nil {
		v.problems.add(SourceFile, "rebuilt binary cannot be read: %v", err)
		return
	}
	if got := hexSHA256(data); got != a.Index.Digest {
		v.problems.add(SourceFile, "rebuilds to sha256:%s, not the archived binary's sha256:%s", got, a.Index.Digest)
		return
	}
	v.ok("the source rebuilds, in a new directory with an empty build cache, to sha256:%s", a.Index.Digest)
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func hexSHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
