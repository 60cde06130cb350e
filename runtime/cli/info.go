package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/runonce/backfill/runtime/bftype"
)

// Info is what `info --json` prints: the binary's identity (bftype.Info,
// which the archive reads back without the CLI).
type Info = bftype.Info

func infoCommand(b Binary, m *bftype.Manifest, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info", "Usage: "+b.Name+" info [--output text|json]\n\nShows what this binary is: its sha256 digest (the value reviewers\napprove), run signature, source commit, source bundle digest, what it writes (UPDATE, INSERT or DELETE,\nand the table), its risk and embedded manifest.", stdout)
	output := OutputFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	digest, err := Digest()
	if err != nil {
		return err
	}
	info := Info{Name: b.Name, Digest: digest, RunSignature: b.RunSignature, SourceCommit: b.SourceCommit,
		SourceDigest: b.SourceDigest, CodeVersion: b.CodeVersion, GoVersion: goVersion(), Manifest: m, ManifestText: b.Manifest, Statements: b.Statements, Apply: b.Apply}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	fmt.Fprintf(stdout, "backfill       %s\n", info.Name)
	fmt.Fprintf(stdout, "digest         sha256:%s\n", info.Digest)
	fmt.Fprintf(stdout, "run signature  %s\n", info.RunSignature)
	fmt.Fprintf(stdout, "source commit  %s\n", info.SourceCommit)
	fmt.Fprintf(stdout, "source bundle  %s\n", info.SourceDigest)
	fmt.Fprintf(stdout, "code version   %s (%s)\n", info.CodeVersion, info.GoVersion)
	fmt.Fprintf(stdout, "scope          %s\n", m.Scope)
	if m.Supersedes != "" {
		fmt.Fprintf(stdout, "supersedes     %s\n", m.Supersedes)
	}
	fmt.Fprintf(stdout, "risk           %s\n", m.RiskText())
	fmt.Fprintf(stdout, "writes         %s (a run and its dry-run count the rows it will %s)\n", b.Apply.Statement(), b.Apply.Verb())
	for i, env := range targetsShown(m) {
		label := ""
		if i == 0 {
			label = "targets"
		}
		fmt.Fprintf(stdout, "%-14s %s\n", label, env)
	}
	if m.Promote != nil {
		fmt.Fprintf(stdout, "promote        from %s: an approval in another environment carries the archive of a completed %s run (approve --evidence)\n", m.Promote.From, m.Promote.From)
	}
	for i, p := range describeParams(m) {
		label := ""
		if i == 0 {
			label = "parameters"
		}
		fmt.Fprintf(stdout, "%-14s %s\n", label, p)
	}
	fmt.Fprintf(stdout, "\nmanifest:\n%s\n", b.Manifest)
	fmt.Fprintf(stdout, "statements:\n")
	for _, s := range b.Statements {
		fmt.Fprintf(stdout, "\n-- %s (%s)\n%s\n", s.Name, s.Role, s.SQL)
	}
	return nil
}

// printVersion is --version: what built this binary and what it runs. The
// digest is in info (hashing the executable takes a moment).
func printVersion(b Binary, w io.Writer) error {
	fmt.Fprintf(w, "%s (backfill binary; code version %s, source commit %s, %s)\nrun signature %s\n",
		b.Name, b.CodeVersion, b.SourceCommit, goVersion(), b.RunSignature)
	return nil
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

// targetsShown is one line per target of a manifest with targets:, "staging:
// database app_staging", so a reviewer sees every place the one digest may
// run; none for a manifest with one target (its manifest text shows it).
func targetsShown(m *bftype.Manifest) []string {
	var out []string
	for _, env := range m.Environments() {
		if len(m.Targets) == 0 {
			break
		}
		t := m.Targets[env]
		line := env + ": database " + t.Database
		if t.Host != "" {
			line += ", host " + t.Host
		}
		if t.SystemIdentifier != "" {
			line += ", cluster " + t.SystemIdentifier
		}
		if len(t.Tenants) > 0 {
			line += fmt.Sprintf(", tenants %v", t.Tenants)
		}
		out = append(out, line)
	}
	return out
}
