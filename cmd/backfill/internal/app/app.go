// Package app is the operator CLI behind bin/backfill. It is the one place
// that uses both the generator (new, generate, build) and, for the ledger
// commands, the runtime; the two never import each other.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// Exit codes of the operator CLI.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// flagSet, when set, receives every flag set a command builds: the
	// completion scripts learn each command's flags from it.
	flagSet func(*pflag.FlagSet)
}

var commands = map[string]command{
	"new":            {"scaffold a backfill: query set, manifest and transform", newCommand},
	"generate":       {"regenerate the wiring of backfills (--check: fail on drift, write nothing)", generateCommand},
	"build":          {"generate and build the reproducible binary dist/NAME/NAME", buildCommand},
	"ledger":         {"ledger init|check: create or migrate the ledger and its roles; check who can act as them", ledgerCommand},
	"keys":           {"keys generate NAME: write an approver key pair (cosign format)", keysCommand},
	"approvers":      {"approvers add|list|revoke: manage trusted approver keys", approversCommand},
	"approve":        {"approve BINARY: sign and store an approval of a binary's digest", approveCommand},
	"approval":       {"approval statement|submit: approve with cosign or another signer", approvalCommand},
	"runs":           {"list runs in the ledger", runsCommand},
	"approvals":      {"list approvals (--digest D, --backfill NAME)", approvalsCommand},
	"dry-runs":       {"dry-runs [NAME]: list saved dry-run reports (--digest D)", dryRunsCommand},
	"pause":          {"pause RUN: a running run waits after its current batch", controlCommand("pause")},
	"resume":         {"resume RUN: a paused run goes on", controlCommand("run")},
	"cancel":         {"cancel RUN: a running run stops after its current batch, for good", controlCommand("cancel")},
	"serve":          {"serve: a read-only web page of the runs with live progress, and Prometheus /metrics", serveCommand},
	"show":           {"show RUN: one run and its audit events", showCommand},
	"ack":            {"ack RUN --reason ...: record why a run's changed rows differ from its dry-run (verify then passes)", ackCommand},
	"audit":          {"audit verify: recompute the audit hash chain", auditCommand},
	"archive":        {"archive RUN: bundle a run for audit, verifiable offline (--out FILE.tar.gz | --dir DIR)", archiveCommand},
	"verify-archive": {"verify-archive FILE: check an archive offline; --rebuild rebuilds the binary from its source", verifyArchiveCommand},
}

// Run runs the CLI and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || (args[0] == "help" && len(args) == 1) {
		usage(stdout)
		return exitOK
	}
	if args[0] == "--version" || args[0] == "version" {
		printVersion(stdout)
		return exitOK
	}
	if args[0] == "help" {
		args = append(args[1:], "--help") // help CMD [SUB] is CMD [SUB] --help
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "error: unknown command %q; run backfill --help\n", args[0])
		return exitUsage
	}
	if g, ok := groups[args[0]]; ok && wantsGroupHelp(args[1:]) {
		g.usage(stdout, args[0])
		return exitOK
	}
	err := cmd.run(ctx, e, args[1:])
	var u usageError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintf(stderr, "error: %s\n", u.msg)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "error: %s\n", errorSentence(err))
		return exitFailure
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "backfill: build audited, signed, run-once backfill binaries for PostgreSQL.\n\nUsage:\n  backfill COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun \"backfill COMMAND --help\" for a command's flags. docs/ explains authoring, reviewing and operating.\n")
}

// usageError is a bad flag or argument.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flags builds a command's flag set. Its --help prints to stdout, as asked
// for output; errors go to stderr.
func flags(e *env, name, args, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stdout)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: backfill %s %s\n\n%s\n", name, args, about)
		if fs.HasFlags() {
			fmt.Fprintf(e.stdout, "\nFlags:\n%s", fs.FlagUsages())
		}
	}
	if e.flagSet != nil {
		e.flagSet(fs)
	}
	return fs
}

// parse parses flags and checks the number of positional arguments.
func parse(fs *pflag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if n := fs.NArg(); n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		return usageError{fmt.Sprintf("%s: wrong number of arguments (%d); run backfill %s --help", fs.Name(), n, fs.Name())}
	}
	return nil
}

// findRoot walks up from the working directory to the repository root: the
// directory with go.mod and backfills/.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("error finding working directory: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if isRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root (a directory with go.mod and backfills/) at or above %s", dir)
		}
	}
}

func isRoot(d string) bool {
	_, errMod := os.Stat(filepath.Join(d, "go.mod"))
	st, errDir := os.Stat(filepath.Join(d, "backfills"))
	return errMod == nil && errDir == nil && st.IsDir()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(word, "s"))
}
