// Package archive bundles one run of a backfill binary into a file an
// auditor can check offline, months later, without the database: the binary
// and the exact source it was built from, the approvals with their
// signatures and keys, the run records, batches and dry-run reports, the
// audit events with what is needed to check their chain, and a REPORT.md.
// Verify checks all of it and names the file of every problem.
package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/ledger"
)

// Format is the version of the archive layout.
const Format = "backfill-archive/v1"

// ReportFormat is the version of REPORT.md's wording this code writes and
// re-renders to verify. It goes up whenever the wording changes (2: counts
// say what Apply does, "updated", "inserted", "deleted"); an archive of an
// older format keeps its REPORT.md, which verify-archive then says it could
// not compare rather than failing an archive nobody changed.
const ReportFormat = 2

// Paths of the archive's files. The binary is binary/NAME.
const (
	IndexFile     = "archive.json"
	ReportFile    = "REPORT.md"
	SumsFile      = "SHA256SUMS"
	ManifestFile  = "binary/manifest.json"
	RecipeFile    = "binary/build.json"
	SourceFile    = "binary/source.tar"
	RunsFile      = "ledger/runs.json"
	BatchesFile   = "ledger/batches.json"
	DryRunsFile   = "ledger/dry_runs.json"
	ApprovalsFile = "ledger/approvals.json"
	ApproversFile = "ledger/approvers.json"
	EventsFile    = "ledger/audit_events.jsonl"
	ChecksFile    = "ledger/checks.json"
	SkippedFile   = "ledger/revert_skipped.json"
)

// BinaryFile is the path of the binary of backfill name.
func BinaryFile(name string) string { return "binary/" + name }

// StatementFile is the path of an approval's signed statement; SignatureFile
// is its signature. Together with KeyFile they verify with
// `cosign verify-blob --key KEY --signature SIG --insecure-ignore-tlog=true
// STATEMENT`, except for an approval submitted as a DSSE envelope, whose
// SignatureFile is that envelope (approval.IsEnvelope).
func StatementFile(id int64) string { return "approvals/" + strconv.FormatInt(id, 10) + ".json" }

// SignatureFile is the path of an approval's signature: base64, or a DSSE envelope.
func SignatureFile(id int64) string { return "approvals/" + strconv.FormatInt(id, 10) + ".sig" }

// DryRunFile is the path of a dry-run report, its jsonb text exactly.
func DryRunFile(id int64) string { return "dry_runs/" + strconv.FormatInt(id, 10) + ".json" }

// KeyFile is the path of an approver's public key.
func KeyFile(approver string) string { return "keys/" + approver + ".pub" }

// Index is archive.json: what the archive is about and where it came from.
type Index struct {
	Format       string     `json:"format"`
	ReportFormat int        `json:"report_format,omitempty"` // REPORT.md's wording version; absent (0) before version 2
	RunID        int64      `json:"run_id"`
	Backfill     string     `json:"backfill"`
	Digest       string     `json:"digest"`
	SourceDigest string     `json:"source_digest"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    Who        `json:"created_by"`
	Ledger       LedgerInfo `json:"ledger"`
	Audit        AuditSpan  `json:"audit"`
}

// Who made the archive.
type Who struct {
	OSUser string `json:"os_user"`
	DBUser string `json:"db_user"`
	Host   string `json:"host"`
}

// LedgerInfo names the database the records came from.
type LedgerInfo struct {
	Database         string `json:"database"`
	Server           string `json:"server"`
	SystemIdentifier string `json:"system_identifier"`
	Environment      string `json:"environment"`
}

// AuditSpan is the archived stretch of the audit chain and the chain's head
// when the archive was made (compare it with the live ledger to anchor the
// archive).
type AuditSpan struct {
	FirstSeq int64  `json:"first_seq"`
	LastSeq  int64  `json:"last_seq"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
}

// ApprovalRow is an approval as the ledger stored it, without the statement
// and signature (their own files).
type ApprovalRow struct {
	ID           int64     `json:"id"`
	Backfill     string    `json:"backfill"`
	Digest       string    `json:"digest"`
	RunSignature string    `json:"run_signature"`
	Environment  string    `json:"environment"`
	Purpose      string    `json:"purpose"`
	Approver     string    `json:"approver"`
	Reason       string    `json:"reason"`
	ExpiresAt    time.Time `json:"expires_at"`
	SubmittedBy  string    `json:"submitted_by"`
	SubmittedAt  time.Time `json:"submitted_at"`
}

// DryRunRow is a saved dry-run report's ledger row; the report is its own
// file, whose sha256 the report's audit event carries.
type DryRunRow struct {
	ID        int64     `json:"id"`
	Digest    string    `json:"digest"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// ApproverRow is an approver key registration, without the key (its own file).
type ApproverRow struct {
	Name      string     `json:"name"`
	Login     string     `json:"login"`
	KeyID     string     `json:"key_id"`
	AddedBy   string     `json:"added_by"`
	AddedAt   time.Time  `json:"added_at"`
	RevokedBy *string    `json:"revoked_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Checks are the results of the manifest's checks recorded in one event.
type Checks struct {
	RunID   int64             `json:"run_id"`
	Seq     int64             `json:"seq"`
	When    string            `json:"when"` // before, after
	Results []json.RawMessage `json:"results"`
}

// Skipped is a row a revert run left alone.
type Skipped struct {
	RunID int64 `json:"run_id"`
	ledger.Skipped
}

// Archive is an archive's content, parsed.
type Archive struct {
	Index      Index
	Binary     []byte
	Manifest   []byte // the binary's info --json
	Recipe     []byte // build.json
	Source     []byte // the source bundle
	Runs       []ledger.Run
	Batches    []ledger.Batch
	DryRuns    []DryRunRow
	Reports    map[int64][]byte // dry-run reports by id
	Approvals  []ApprovalRow
	Statements map[int64][]byte
	Signatures map[int64][]byte
	Approvers  []ApproverRow
	Keys       map[string][]byte
	Events     []ledger.Event
	Checks     []Checks
	Skipped    []Skipped
	Report     []byte
}

// Files renders the archive as files, path to content, REPORT.md and
// SHA256SUMS included.
func (a *Archive) Files() (map[string][]byte, error) {
	files := map[string][]byte{
		BinaryFile(a.Index.Backfill): a.Binary, ManifestFile: a.Manifest, RecipeFile: a.Recipe, SourceFile: a.Source,
		ReportFile: a.Report,
	}
	for path, v := range map[string]any{IndexFile: a.Index, RunsFile: a.Runs, BatchesFile: a.Batches, DryRunsFile: a.DryRuns,
		ApprovalsFile: a.Approvals, ApproversFile: a.Approvers, ChecksFile: a.Checks, SkippedFile: a.Skipped} {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("error encoding %s: %w", path, err)
		}
		files[path] = append(data, '\n')
	}
	var events bytes.Buffer
	for _, e := range a.Events {
		line, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("error encoding audit event %d: %w", e.Seq, err)
		}
		events.Write(append(line, '\n'))
	}
	files[EventsFile] = events.Bytes()
	for id, s := range a.Statements {
		files[StatementFile(id)] = s
	}
	for id, s := range a.Signatures {
		files[SignatureFile(id)] = s
	}
	for id, r := range a.Reports {
		files[DryRunFile(id)] = r
	}
	for name, k := range a.Keys {
		files[KeyFile(name)] = k
	}
	files[SumsFile] = Sums(files)
	return files, nil
}

// Sums is SHA256SUMS over every file but itself, in path order, in the
// format of sha256sum(1).
func Sums(files map[string][]byte) []byte {
	var b strings.Builder
	for _, p := range sortedPaths(files) {
		if p != SumsFile {
			fmt.Fprintf(&b, "%s  %s\n", hexSHA256(files[p]), p)
		}
	}
	return []byte(b.String())
}

func sortedPaths(files map[string][]byte) []string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
