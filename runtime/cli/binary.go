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
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

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

// procExe names the running executable's file itself, whatever became of
// its path since exec.
const procExe = "/proc/self/exe"

// Digest returns the sha256 of the running executable, the digest reviewers
// approve. It hashes the file the kernel runs, through one descriptor
// (procExe), never a path read first and opened after: a file put in the
// executable's place after it started (say, the approved binary over a
// patched one) is not what runs, and must not lend its digest.
func Digest() (string, error) {
	me, err := readSelf()
	return me.digest, err
}

// executingDigest is Digest for commands that write (--execute and revert):
// they also refuse to run when the executable's path no longer names the
// file that runs, since then nobody can check the digest it reports against
// the file on disk.
func executingDigest() (string, error) {
	me, err := readSelf()
	if err != nil {
		return "", err
	}
	if me.replaced {
		return "", bftype.Refuse(bftype.ReasonReplaced, bftype.ExitReplaced,
			"Run the binary from a file that stays in place until it exits (check it with sha256sum -c SHA256SUMS first).",
			"This binary's file %s was deleted or replaced after it started, so the file there is not the one running (sha256:%s).", me.path, me.digest)
	}
	return me.digest, nil
}

// self is the running executable: its digest, its path and whether that path
// still names it.
type self struct {
	digest   string
	path     string
	replaced bool
}

func readSelf() (self, error) {
	f, err := openSelf()
	if err != nil {
		return self{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return self{}, fmt.Errorf("error reading own executable: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return self{}, fmt.Errorf("error hashing own executable: %w", err)
	}
	s := self{digest: hex.EncodeToString(h.Sum(nil))}
	s.path, s.replaced = selfPath(info)
	return s, nil
}

// openSelf opens the running executable: procExe where there is a /proc,
// else the path os.Executable reports.
func openSelf() (*os.File, error) {
	f, err := os.Open(procExe)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, fmt.Errorf("error opening own executable %q: %w", procExe, err)
		}
		return f, nil
	}
	path, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("error locating own executable: %w", err)
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("error opening own executable %q: %w", path, err)
	}
	return f, nil
}

// selfPath is the executable's path and whether it no longer names the file
// opened (info): Linux marks a deleted or renamed-over executable's link
// " (deleted)", and a path that now names another file was replaced.
func selfPath(info fs.FileInfo) (string, bool) {
	link, err := os.Readlink(procExe)
	if err != nil {
		link, err = os.Executable()
		if err != nil {
			return "", false
		}
	}
	path, deleted := strings.CutSuffix(link, " (deleted)")
	if deleted {
		return path, true
	}
	now, err := os.Stat(path)
	return path, err != nil || !os.SameFile(info, now)
}
