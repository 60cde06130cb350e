package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// ErrStillRunning is returned for a run whose process still holds its lock.
var ErrStillRunning = errors.New("still running")

// CollectOpts say which run to archive and where its binary is.
type CollectOpts struct {
	RunID int64
	// Dist is the build directory of the binary (dist/NAME): the binary,
	// build.json, manifest.json and source.tar that `backfill build` wrote.
	// Empty means dist/NAME under the current directory.
	Dist string
	Who  Who
	Now  time.Time
}

// Collect reads everything about one run from the ledger, in one snapshot,
// and the binary's build from its dist directory, and returns the archive,
// REPORT.md included. It refuses a run whose process is still running and a
// binary whose digest is not the run's.
func Collect(ctx context.Context, conn *pgx.Conn, o CollectOpts) (*Archive, error) {
	run, err := ledger.GetRun(ctx, conn, o.RunID)
	if err != nil {
		return nil, err
	}
	if run.Status == ledger.StatusRunning {
		if held, err := ledger.Held(ctx, conn, run.ID); err != nil || held {
			return nil, errors.Join(fmt.Errorf("run %d is %w (a live session of its process holds it in the ledger); archive it after it ends", run.ID, ErrStillRunning), err)
		}
	}
	a := newArchive()
	if err := a.readDist(o.Dist, run); err != nil {
		return nil, err
	}
	env, err := ledger.Check(ctx, conn)
	if err != nil {
		return nil, err
	}
	id, err := pgdb.ReadIdentity(ctx, conn)
	if err != nil {
		return nil, err
	}
	who := o.Who
	who.DBUser = id.SessionUser
	a.Index = Index{Format: Format, ReportFormat: ReportFormat, RunID: run.ID, Backfill: run.Backfill, Digest: run.Digest, CreatedAt: o.Now.UTC(), CreatedBy: who,
		Ledger: LedgerInfo{Database: id.Database, Server: server(id), SystemIdentifier: id.SystemIdentifier, Environment: env}}
	var recipe struct {
		SourceDigest string `json:"source_digest"`
	}
	if err := json.Unmarshal(a.Recipe, &recipe); err != nil {
		return nil, fmt.Errorf("error reading build.json of run %d's binary: %w", run.ID, err)
	}
	a.Index.SourceDigest = recipe.SourceDigest
	err = pgdb.ReadOnly(ctx, conn, 0, func(tx pgx.Tx) error { return a.readLedger(ctx, tx, run.Digest) })
	if err != nil {
		return nil, err
	}
	a.normalize()
	return a, a.render()
}

func server(id pgdb.Identity) string {
	if id.ServerAddress != "" {
		return id.ServerAddress
	}
	return id.DialedHost
}

// readDist reads the binary and its build files, and refuses a binary that
// is not the one the run ran. When dist/NAME holds another digest's build
// (the backfill was rebuilt since), it reads the copy `backfill build` kept
// in dist/NAME/sha256-DIGEST/.
func (a *Archive) readDist(dist string, run *ledger.Run) error {
	if dist == "" {
		dist = filepath.Join("dist", run.Backfill)
	}
	err := a.readBuild(dist, run)
	if err == nil && hexSHA256(a.Binary) == run.Digest {
		return nil
	}
	kept := filepath.Join(dist, "sha256-"+run.Digest)
	if _, statErr := os.Stat(filepath.Join(kept, run.Backfill)); statErr == nil {
		if err := a.readBuild(kept, run); err != nil || hexSHA256(a.Binary) != run.Digest {
			return errors.Join(fmt.Errorf("%s is not the binary run %d ran (sha256:%s)", filepath.Join(kept, run.Backfill), run.ID, run.Digest), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%s is sha256:%s, but run %d ran sha256:%s, and no build of that digest was kept in %s; pass --dist with the directory of the binary that ran",
		filepath.Join(dist, run.Backfill), hexSHA256(a.Binary), run.ID, run.Digest, kept)
}

// readBuild reads the binary and the build files in dir.
func (a *Archive) readBuild(dir string, run *ledger.Run) error {
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{run.Backfill, &a.Binary}, {"build.json", &a.Recipe}, {"manifest.json", &a.Manifest}, {"source.tar", &a.Source}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return fmt.Errorf("error reading the build of run %d's binary (pass --dist with the directory `backfill build` wrote it to): %w", run.ID, err)
		}
		*f.dst = data
	}
	return nil
}

// readLedger reads the records of every run of the digest.
func (a *Archive) readLedger(ctx context.Context, tx pgx.Tx, digest string) error {
	var err error
	if a.Runs, err = ledger.RunsOfDigest(ctx, tx, digest); err != nil {
		return err
	}
	var runIDs []int64
	for _, r := range a.Runs {
		runIDs = append(runIDs, r.ID)
		batches, err := ledger.Batches(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		a.Batches = append(a.Batches, batches...)
		if strings.HasPrefix(r.Purpose, "revert:") {
			skipped, err := ledger.SkippedOf(ctx, tx, r.ID)
			if err != nil {
				return err
			}
			for _, s := range skipped {
				a.Skipped = append(a.Skipped, Skipped{RunID: r.ID, Skipped: s})
			}
		}
	}
	dryRuns, err := ledger.DryRuns(ctx, tx, digest)
	if err != nil {
		return err
	}
	for _, d := range dryRuns {
		a.DryRuns = append(a.DryRuns, DryRunRow{ID: d.ID, Digest: d.Digest, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt})
		a.Reports[d.ID] = d.Report
	}
	if err := a.readApprovals(ctx, tx, digest); err != nil {
		return err
	}
	return a.readEvents(ctx, tx, runIDs)
}

func (a *Archive) readApprovals(ctx context.Context, tx pgx.Tx, digest string) error {
	approvals, err := ledger.ApprovalsFor(ctx, tx, digest)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, x := range approvals {
		a.Approvals = append(a.Approvals, ApprovalRow{ID: x.ID, Backfill: x.Backfill, Digest: x.Digest, RunSignature: x.RunSignature,
			Environment: x.Environment, Purpose: x.Purpose, Approver: x.Approver, Reason: x.Reason, ExpiresAt: x.ExpiresAt,
			SubmittedBy: x.SubmittedBy, SubmittedAt: x.SubmittedAt})
		a.Statements[x.ID] = []byte(x.Statement)
		a.Signatures[x.ID] = []byte(x.Signature + "\n")
		names[x.Approver] = true
	}
	approvers, err := ledger.Approvers(ctx, tx)
	if err != nil {
		return err
	}
	for _, k := range approvers {
		if names[k.Name] {
			a.Approvers = append(a.Approvers, ApproverRow{Name: k.Name, Login: k.Login, KeyID: k.KeyID, AddedBy: k.AddedBy,
				AddedAt: k.AddedAt, RevokedBy: k.RevokedBy, RevokedAt: k.RevokedAt})
			a.Keys[k.Name] = []byte(k.PublicKey)
		}
	}
	return nil
}

func (a *Archive) readEvents(ctx context.Context, tx pgx.Tx, runIDs []int64) error {
	approvalIDs := make([]int64, len(a.Approvals))
	for i, x := range a.Approvals {
		approvalIDs[i] = x.ID
	}
	dryRunIDs := make([]int64, len(a.DryRuns))
	for i, d := range a.DryRuns {
		dryRunIDs[i] = d.ID
	}
	first, last, err := ledger.EventSpan(ctx, tx, runIDs, approvalIDs, dryRunIDs)
	if err != nil {
		return err
	}
	if first > 0 {
		if a.Events, err = ledger.EventRange(ctx, tx, first, last); err != nil {
			return err
		}
	}
	head, hash, err := ledger.Head(ctx, tx)
	if err != nil {
		return err
	}
	a.Index.Audit = AuditSpan{FirstSeq: first, LastSeq: last, HeadSeq: head, HeadHash: hash}
	a.Checks = DeriveChecks(a.Events)
	return nil
}

// normalize puts every time in UTC, so that the files read the same on any
// machine.
func (a *Archive) normalize() {
	for i := range a.Runs {
		r := &a.Runs[i]
		r.StartedAt, r.UpdatedAt = r.StartedAt.UTC(), r.UpdatedAt.UTC()
		if r.FinishedAt != nil {
			t := r.FinishedAt.UTC()
			r.FinishedAt = &t
		}
	}
	for i := range a.Batches {
		a.Batches[i].Committed = a.Batches[i].Committed.UTC()
	}
	for i := range a.DryRuns {
		a.DryRuns[i].CreatedAt = a.DryRuns[i].CreatedAt.UTC()
	}
	for i := range a.Approvals {
		a.Approvals[i].ExpiresAt, a.Approvals[i].SubmittedAt = a.Approvals[i].ExpiresAt.UTC(), a.Approvals[i].SubmittedAt.UTC()
	}
	for i := range a.Approvers {
		a.Approvers[i].AddedAt = a.Approvers[i].AddedAt.UTC()
		if t := a.Approvers[i].RevokedAt; t != nil {
			u := t.UTC()
			a.Approvers[i].RevokedAt = &u
		}
	}
}

// render writes REPORT.md from the archive as its files will read, so that
// Verify, rendering it again from the files, gets the same bytes.
func (a *Archive) render() error {
	files, err := a.Files()
	if err != nil {
		return err
	}
	parsed, _ := Parse(files)
	a.Report = Report(parsed)
	return nil
}

// DeriveChecks extracts the results of the manifest's checks from the audit
// events: before the first write (the preflight event) and after the last
// (the validated event).
func DeriveChecks(events []ledger.Event) []Checks {
	out := []Checks{}
	for _, e := range events {
		if e.RunID == nil || (e.Kind != "preflight" && e.Kind != "validated") {
			continue
		}
		var p struct {
			Before []json.RawMessage `json:"checks_before"`
			After  []json.RawMessage `json:"checks"`
		}
		if json.Unmarshal([]byte(e.Payload), &p) != nil {
			continue
		}
		c := Checks{RunID: *e.RunID, Seq: e.Seq, When: "before", Results: p.Before}
		if e.Kind == "validated" {
			c.When, c.Results = "after", p.After
		}
		if c.Results == nil {
			c.Results = []json.RawMessage{}
		}
		out = append(out, c)
	}
	return out
}
