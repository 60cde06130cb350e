package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/runonce/backfill/runtime/ledger"
)

// Problem is one thing wrong with an archive: the file and what is wrong.
type Problem struct {
	File string
	What string
}

func (p Problem) String() string { return p.File + ": " + p.What }

// problems collects Problems.
type problems []Problem

func (ps *problems) add(file, format string, args ...any) {
	*ps = append(*ps, Problem{File: file, What: fmt.Sprintf(format, args...)})
}

// Parse reads an archive's files into an Archive. Files it cannot read are
// problems; Parse reads as much as it can so that Verify can report more.
func Parse(files map[string][]byte) (*Archive, []Problem) {
	var ps problems
	a := newArchive()
	decode(files, IndexFile, &a.Index, &ps)
	if a.Index.Format != Format {
		ps.add(IndexFile, "format is %q, not %q (not an archive of this tool, or a newer one)", a.Index.Format, Format)
	}
	name := a.Index.Backfill
	a.Binary = need(files, BinaryFile(name), &ps)
	a.Manifest = need(files, ManifestFile, &ps)
	a.Recipe = need(files, RecipeFile, &ps)
	a.Source = need(files, SourceFile, &ps)
	a.Report = need(files, ReportFile, &ps)
	decode(files, RunsFile, &a.Runs, &ps)
	decode(files, BatchesFile, &a.Batches, &ps)
	decode(files, DryRunsFile, &a.DryRuns, &ps)
	decode(files, ApprovalsFile, &a.Approvals, &ps)
	decode(files, ApproversFile, &a.Approvers, &ps)
	decode(files, ChecksFile, &a.Checks, &ps)
	decode(files, SkippedFile, &a.Skipped, &ps)
	a.Events = parseEvents(need(files, EventsFile, &ps), &ps)
	for path, data := range files {
		switch {
		case strings.HasPrefix(path, "approvals/") && strings.HasSuffix(path, ".json"):
			if id, ok := fileID(path, ".json"); ok {
				a.Statements[id] = data
			} else {
				ps.add(path, "is not named after an approval id")
			}
		case strings.HasPrefix(path, "approvals/") && strings.HasSuffix(path, ".sig"):
			if id, ok := fileID(path, ".sig"); ok {
				a.Signatures[id] = data
			} else {
				ps.add(path, "is not named after an approval id")
			}
		case strings.HasPrefix(path, "dry_runs/") && strings.HasSuffix(path, ".json"):
			if id, ok := fileID(strings.TrimPrefix(path, "dry_runs/"), ".json"); ok {
				a.Reports[id] = data
			} else {
				ps.add(path, "is not named after a dry-run report id")
			}
		case strings.HasPrefix(path, "keys/") && strings.HasSuffix(path, ".pub"):
			a.Keys[strings.TrimSuffix(strings.TrimPrefix(path, "keys/"), ".pub")] = data
		}
	}
	return a, ps
}

func newArchive() *Archive {
	return &Archive{Statements: map[int64][]byte{}, Signatures: map[int64][]byte{}, Keys: map[string][]byte{}, Reports: map[int64][]byte{}}
}

func fileID(path, ext string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "approvals/"), ext), 10, 64)
	return id, err == nil && id > 0
}

func need(files map[string][]byte, path string, ps *problems) []byte {
	data, ok := files[path]
	if !ok {
		ps.add(path, "is missing")
	}
	return data
}

// decode reads one JSON file strictly: an unknown field is a problem.
func decode(files map[string][]byte, path string, v any, ps *problems) {
	data := need(files, path, ps)
	if data == nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		ps.add(path, "is not valid: %v", err)
	}
}

func parseEvents(data []byte, ps *problems) []ledger.Event {
	var events []ledger.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	for line := 1; sc.Scan(); line++ {
		var e ledger.Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			ps.add(EventsFile, "line %d is not an audit event: %v", line, err)
			continue
		}
		events = append(events, e)
	}
	return events
}
