package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/cmd/backfill/internal/archive"
	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

func archiveCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "archive", "RUN [--out FILE.tar.gz | --dir DIR]", "Bundles run RUN for audit into one file an auditor can check offline: the binary\n"+
		"and the exact source it was built from, its dry-run reports, every approval with\n"+
		"its signature and the approvers' keys, every run of the binary (refusals, resumes,\n"+
		"reverts), the batches, the audit events with their chain, the checks before and\n"+
		"after, SHA256SUMS and REPORT.md. The archive is checked before it is written, is\n"+
		"never overwritten, and its digest is recorded in the ledger's audit log.\n"+
		"Needs any backfill_* role; docs/auditing.md explains the contents.")
	url := dbFlag(fs)
	out := fs.String("out", "", "write a .tar.gz (default: NAME-run-RUN.tar.gz in the current directory)")
	dir := fs.String("dir", "", "write the files into this new or empty directory instead (e.g. write-once storage)")
	dist := fs.String("dist", "", "directory of the binary that ran, as `backfill build` wrote it (default: dist/NAME)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return usageError{fmt.Sprintf("RUN must be a run id (see backfill runs), not %q", fs.Arg(0))}
	}
	if *out != "" && *dir != "" {
		return usageError{"use --out or --dir, not both"}
	}
	if err := writable(*out, *dir); err != nil {
		return err
	}
	return withConn(ctx, *url, func(conn *pgx.Conn) error {
		a, err := archive.Collect(ctx, conn, archive.CollectOpts{RunID: id, Dist: *dist, Who: operator(), Now: time.Now()})
		if err != nil {
			return err
		}
		files, err := a.Files()
		if err != nil {
			return err
		}
		if v := archive.Verify(ctx, files, archive.VerifyOpts{}); len(v.Problems) > 0 {
			for _, p := range v.Problems {
				fmt.Fprintf(e.stderr, "  %s\n", p)
			}
			return fmt.Errorf("the archive of run %d does not verify (nothing was written); the problems are listed above", id)
		}
		dest, err := writeArchive(a, files, *out, *dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "archived run %d of %s (%s) to %s: %d files and SHA256SUMS\nsha256 of SHA256SUMS: %s\nverify it with: backfill verify-archive %s --rebuild\n",
			id, a.Index.Backfill, a.Run().Status, dest, len(files)-1, hexSum(files[archive.SumsFile]), dest)
		recordArchive(ctx, e, conn, id, dest, hexSum(files[archive.SumsFile]))
		return nil
	})
}

// writable refuses, before any work, a destination that exists: archives
// are written once.
func writable(out, dir string) error {
	if out != "" {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("error writing archive %q: it exists; archives are written once, choose another name", out)
		}
	}
	if dir != "" {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("error writing archive into %q: the directory is not empty; archives are written once", dir)
		}
	}
	return nil
}

// writeArchive writes the files and reads them back to make sure what is on
// disk is what was verified.
func writeArchive(a *archive.Archive, files map[string][]byte, out, dir string) (string, error) {
	dest := dir
	if dir != "" {
		if err := archive.WriteDir(dir, files); err != nil {
			return "", err
		}
	} else {
		if out == "" {
			out = archive.Top(a) + ".tar.gz"
		}
		dest = out
		if err := archive.WriteTarGz(out, archive.Top(a), files); err != nil {
			return "", err
		}
	}
	back, _, err := archive.Read(dest)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(archive.Sums(back), files[archive.SumsFile]) || !bytes.Equal(back[archive.SumsFile], files[archive.SumsFile]) {
		return "", fmt.Errorf("error writing archive %q: what was written reads back differently", dest)
	}
	return dest, nil
}

// recordArchive logs the archive in the audit chain, anchoring its content
// in the ledger. A login that may not append (an observer) gets a note.
func recordArchive(ctx context.Context, e *env, conn *pgx.Conn, run int64, dest, sums string) {
	abs, _ := filepath.Abs(dest)
	err := ledger.Append(ctx, conn, run, ledger.EventArchived, ledger.Archived{File: abs, SHA256Sums: sums})
	if err == nil {
		fmt.Fprintf(e.stdout, "recorded in the ledger's audit log (event archived, run %d)\n", run)
		return
	}
	if pgdb.Classify(err) == pgdb.Permission {
		fmt.Fprintf(e.stderr, "note: this login may not append to the audit log, so the archive is not recorded there; archive as a backfill_runner login to record it\n")
		return
	}
	fmt.Fprintf(e.stderr, "note: the archive was written but could not be recorded in the audit log: %v\n", err)
}

func verifyArchiveCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "verify-archive", "FILE.tar.gz|DIR [--rebuild]", "Checks an archive offline, without the database: every file against SHA256SUMS,\n"+
		"every approval signature against the archived keys, that the approvals and the\n"+
		"runs name the archived binary's digest, the binary's build information against\n"+
		"build.json and the source bundle, the audit hash chain, the records against each\n"+
		"other and REPORT.md. With --rebuild it also builds the archived source with the\n"+
		"recorded command, in a new directory with an empty build cache, and compares the\n"+
		"sha256 with the archived binary (needs Go; the Go toolchain and modules come from\n"+
		"the module proxy if this machine lacks them). Exits 1 naming every file that is wrong.")
	rebuild := fs.Bool("rebuild", false, "rebuild the binary from the archived source and compare digests")
	cache := fs.String("gocache", "", "Go build cache for --rebuild (default: a new, empty one)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	files, top, err := archive.Read(fs.Arg(0))
	if err != nil {
		return err
	}
	if *rebuild {
		fmt.Fprintf(e.stderr, "will rebuild from the archived source with an empty build cache (a few minutes)...\n")
	}
	v := archive.Verify(ctx, files, archive.VerifyOpts{Rebuild: *rebuild, GoCache: *cache, Top: top})
	for _, c := range v.Checked {
		fmt.Fprintf(e.stdout, "ok    %s\n", c)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(e.stdout, "note  %s\n", n)
	}
	for _, p := range v.Problems {
		fmt.Fprintf(e.stdout, "FAIL  %s\n", p)
	}
	if len(v.Problems) > 0 {
		return fmt.Errorf("archive %s does not verify: %d problem(s), each names its file above", fs.Arg(0), len(v.Problems))
	}
	if *rebuild {
		fmt.Fprintf(e.stdout, "archive %s verifies, and its source rebuilds to the archived binary\n", fs.Arg(0))
	} else {
		fmt.Fprintf(e.stdout, "archive %s verifies (add --rebuild to rebuild the binary from its source)\n", fs.Arg(0))
	}
	return nil
}

func operator() archive.Who {
	w := archive.Who{OSUser: "unknown"}
	if u, err := user.Current(); err == nil {
		w.OSUser = u.Username
	}
	w.Host, _ = os.Hostname()
	return w
}

func hexSum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
