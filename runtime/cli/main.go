package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/runonce/backfill/runtime/bftype"
)

// Main runs the binary with args (without the program name) and returns the
// process exit code.
func Main(b Binary, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	tuneGC()
	ctx, sig := twoStage(stderr)
	defer sig.stop()
	err := run(context.WithValue(ctx, signalsKey{}, sig), b, args, stdout, stderr)
	return report(err, stderr)
}

// signals is the two-stage Ctrl-C: the first SIGINT or SIGTERM closes
// graceful (finish the current batch, then stop); the second cancels the
// context (stop at once; the open transaction rolls back).
type signals struct {
	graceful chan struct{}
	stop     func()
	mu       sync.Mutex
	say      func(string) // prints a message; a writing command routes it through its console
}

// tell prints what the signal handler does.
func (s *signals) tell(msg string) {
	s.mu.Lock()
	say := s.say
	s.mu.Unlock()
	say(msg)
}

// sayWith routes the signal handler's messages, e.g. onto their own line
// above the live line, or into the JSON log.
func sayWith(ctx context.Context, say func(string)) {
	if s, ok := ctx.Value(signalsKey{}).(*signals); ok {
		s.mu.Lock()
		s.say = say
		s.mu.Unlock()
	}
}

type signalsKey struct{}

func twoStage(stderr io.Writer) (context.Context, *signals) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	s := &signals{graceful: make(chan struct{}), say: func(msg string) { fmt.Fprintln(stderr, msg) }}
	done := make(chan struct{})
	s.stop = func() { signal.Stop(ch); close(done); cancel() }
	go func() {
		select {
		case <-ch:
		case <-done:
			return
		}
		close(s.graceful)
		s.tell("Stopping after the current batch; press Ctrl-C again to stop at once.")
		select {
		case <-ch:
			s.tell("Stopping now; the open batch rolls back.")
			cancel()
		case <-done:
		}
	}()
	return ctx, s
}

// softContext is ctx cancelled already at the first signal, for commands
// with no batch to finish.
func softContext(ctx context.Context) (context.Context, context.CancelFunc) {
	soft, cancel := context.WithCancel(ctx)
	if s, ok := ctx.Value(signalsKey{}).(*signals); ok {
		go func() {
			select {
			case <-s.graceful:
				cancel()
			case <-soft.Done():
			}
		}()
	}
	return soft, cancel
}

func graceful(ctx context.Context) <-chan struct{} {
	if s, ok := ctx.Value(signalsKey{}).(*signals); ok {
		return s.graceful
	}
	return nil
}

// usageError is a bad flag or argument.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, b Binary, args []string, stdout, stderr io.Writer) error {
	m, err := bftype.DecodeManifest([]byte(b.Manifest))
	if err != nil {
		return err
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		return printVersion(b, stdout)
	}
	cmd, rest := "", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "":
		return dryRunCommand(ctx, b, m, rest, stdout, stderr)
	case "info":
		return infoCommand(b, m, rest, stdout, stderr)
	case "status":
		return statusCommand(ctx, b, rest, stdout, stderr)
	case "verify":
		return verifyCommand(ctx, b, m, rest, stdout, stderr)
	case "revert":
		return revertCommand(ctx, b, m, rest, stdout, stderr)
	case "help":
		if len(rest) > 0 { // help CMD is CMD --help
			return run(ctx, b, []string{rest[0], "--help"}, stdout, stderr)
		}
		topUsage(b, stdout)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q; run %s --help", cmd, b.Name)}
	}
}

func topUsage(b Binary, w io.Writer) {
	fmt.Fprintf(w, `%[1]s: a run-once backfill binary.

Scope: %[2]s

Usage:
  %[1]s [flags]          dry-run: report what would change, write nothing
  %[1]s --execute        write, once, after every guardrail holds
  %[1]s info [--json]    show the embedded manifest, run signature, commit and digest
  %[1]s status           show this backfill's runs and progress from the ledger
  %[1]s verify           rerun the checks and reconcile changed rows with the dry-run
  %[1]s revert --run RUN [--execute]
                         write back the before-images of a run (reversible backfills)
  %[1]s help [COMMAND]   this help, or a command's
  %[1]s --version        name, code version, source commit, Go version, run signature

Run "%[1]s COMMAND --help" for a command's flags.
`, b.Name, wrapScope(b))
	if m, err := bftype.DecodeManifest([]byte(b.Manifest)); err == nil && len(m.Params) > 0 {
		fmt.Fprintf(w, "\nParameters (--param NAME=VALUE or --params-file FILE; approvals pin them):\n")
		for _, p := range describeParams(m) {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func wrapScope(b Binary) string {
	m, err := bftype.DecodeManifest([]byte(b.Manifest))
	if err != nil {
		return "(unreadable manifest)"
	}
	return m.Scope
}

// newFlags builds a command's flag set with a --help that prints usage to
// out (stdout: help is what was asked for, and pipes into a pager).
func newFlags(name, usage string, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	return fs
}

// parse parses flags; --help is reported as errHelp so the caller exits 0.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

var errHelp = errors.New("help requested")

// reportedError is an error the JSON log on stderr has already told; report
// returns its exit code without printing it again.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// report prints err as the operator should see it and returns the exit code.
func report(err error, stderr io.Writer) int {
	var refusal *bftype.Refusal
	var usage usageError
	if errors.As(err, new(reportedError)) {
		stderr = io.Discard
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return int(bftype.ExitOK)
	case errors.As(err, &refusal):
		fmt.Fprintf(stderr, "REFUSED (%s): %s\n", refusal.Reason, refusal.Msg)
		if refusal.Next != "" {
			fmt.Fprintf(stderr, "Next: %s\n", refusal.Next)
		}
		return int(refusal.Code)
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "error: %s\n", usage.msg)
		return int(bftype.ExitUsage)
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return int(bftype.ExitFailure)
	}
}
