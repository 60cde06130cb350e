package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/pgdb"
)

// execFlags tune --execute.
type execFlags struct {
	logFile       string
	logStderr     string
	maxRetryTime  time.Duration
	targetBatch   time.Duration
	maxReplicaLag time.Duration
	alertWebhook  string
	webhookFile   string
	alertCommand  string
	stuckAfter    time.Duration
	lanes         int
	adaptive      bool
	pauseCanary   bool
}

func (f *execFlags) register(fs *pflag.FlagSet, name string) {
	fs.StringVar(&f.logFile, "log-file", name+".log", "durable JSON log of the execution (appended)")
	fs.StringVar(&f.logStderr, "log-stderr", "human", "what stderr carries while the run writes: human (a live line and messages) or json (the JSON log, and nothing else); the log file always gets the JSON")
	fs.DurationVar(&f.maxRetryTime, "max-retry-time", 5*time.Minute, "stop as partial when one batch keeps failing this long")
	fs.DurationVar(&f.targetBatch, "target-batch-time", 200*time.Millisecond, "batch duration the batch size adapts toward (never above batch.size)")
	fs.DurationVar(&f.maxReplicaLag, "max-replication-lag", 0, "pause while a replica lags more than this (0: do not check)")
	fs.StringVar(&f.alertWebhook, "alert-webhook", "", "POST a JSON alert here when the run completes, fails, stops or gets stuck (default: $"+webhookEnv+"); recorded as scheme and host only")
	fs.StringVar(&f.webhookFile, "alert-webhook-file", "", "read the --alert-webhook URL from this file, keeping its token out of the process list")
	fs.StringVar(&f.alertCommand, "alert-command", "", "run this shell command with the JSON alert on stdin on the same events; recorded as given unless it holds a secret-looking token (pass secrets as $VARIABLES)")
	fs.DurationVar(&f.stuckAfter, "stuck-after", 10*time.Minute, "alert when no batch commits for this long (0: never)")
	fs.BoolVar(&f.adaptive, "adaptive", true, "slow down (and wait) when the application feels the run: sessions waiting on its locks, a stalled commit, a probe's or the commits' latency over batch.max_app_impact (latency only while other sessions are connected); --adaptive=false keeps batch.size and max_rows_per_second")
	fs.BoolVar(&f.pauseCanary, "pause-after-canary", false, "commit the canary batch, print its keys and diffs, and wait paused until backfill resume RUN (or cancel); a rerun of a run paused so stays paused")
	fs.IntVar(&f.lanes, "lanes", 0, "write at most this many key ranges at once, each on its own connection (0: batch.lanes of the manifest; never more); a dry-run estimates its ETA for as many")
}

// execute runs the preflight and the batches, drawing progress for the operator.
func execute(ctx context.Context, b Binary, m *bftype.Manifest, f dryRunFlags, args []string, stdout, stderr io.Writer) error {
	digest, err := executingDigest()
	if err != nil {
		return err
	}
	webhook, err := resolveWebhook(f.exec.alertWebhook, f.exec.webhookFile, os.Getenv)
	if err != nil {
		return err
	}
	dbURL, src := pgdb.Resolve(f.url)
	var runID atomic.Int64
	// Sessions are named "PGAPPNAME backfill NAME run N" once the run is
	// known; the first one gets " run N" from the engine when the run starts.
	connect := func(ctx context.Context) (*pgx.Conn, error) {
		return pgdb.Connect(ctx, dbURL, src, sessionName(b.Name, runID.Load()))
	}
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	op := operator(args)
	logger, con, closeLog, err := openLog(f.exec, stderr, b, digest, op)
	if err != nil {
		return err
	}
	defer closeLog()
	sayWith(ctx, con.note)
	job := &engine.Job{Name: b.Name, Manifest: m, Digest: digest, RunSignature: b.RunSignature,
		SourceCommit: b.SourceCommit, CodeVersion: b.CodeVersion, Statements: b.Statements, Plan: b.Plan}
	fmt.Fprintf(stdout, "EXECUTE %s (sha256:%s)\n\nPreflight:\n", b.Name, digest)
	alerts := newAlerter(webhook, f.exec.alertCommand, logger)
	defer alerts.wait()
	dog := startWatchdog(f.exec.stuckAfter, func(idle time.Duration) {
		logger.Warn("no progress", "event", "stuck", "run_id", runID.Load(), "idle_ms", ms(idle))
		alerts.fire(Alert{Event: "stuck", Backfill: b.Name, RunID: runID.Load(), Digest: digest,
			Message: fmt.Sprintf("no batch committed for %s", idle.Round(time.Second))})
	})
	defer dog.close()
	hooks := engine.Hooks{
		Check: func(c engine.Check) {
			fmt.Fprintf(stdout, "  ok  %-16s %s\n", c.Name, c.Detail)
			logger.Info("preflight check passed", "event", "preflight", "check", c.Name, "detail", c.Detail)
		},
		Started: func(id int64, resumed bool) {
			runID.Store(id)
			con.runID.Store(id)
			dog.touch()
			verb := "Started"
			if resumed {
				verb = "Resumed"
			}
			fmt.Fprintf(stdout, "\n%s run %d. Ctrl-C once stops after the current batch; twice stops at once.\n", verb, id)
		},
		Progress: func(p engine.Progress) { dog.touch(); con.progress(p) },
		Note:     con.note,
		Wait:     con.wait,
		Paused:   con.paused,
		Canary:   func(c engine.Canary) { dog.touch(); renderCanary(stdout, b, c) },
		Stopped: func(id int64, status, msg string) {
			con.done()
			alerts.fire(Alert{Event: status, Backfill: b.Name, RunID: id, Digest: digest, Message: msg})
		},
	}
	opts := engine.Options{Logger: logger, Connect: connect, Graceful: graceful(ctx), MaxRetryTime: f.exec.maxRetryTime,
		TargetBatchTime: f.exec.targetBatch, MaxReplicationLag: f.exec.maxReplicaLag, Lanes: f.exec.lanes,
		NoAdaptive: !f.exec.adaptive, PauseAfterCanary: f.exec.pauseCanary}
	res, err := engine.Execute(ctx, conn, job, op, hooks, opts)
	con.done()
	if err != nil {
		var refusal *bftype.Refusal
		if errors.As(err, &refusal) && refusal.RunID != 0 && runID.Load() == 0 {
			runID.Store(refusal.RunID)
			alerts.fire(Alert{Event: "refused", Backfill: b.Name, RunID: refusal.RunID, Digest: digest, StopReason: string(refusal.Reason),
				Message: refusal.Msg})
		}
		return con.ended(err, runID.Load())
	}
	r := res.Run
	alerts.fire(Alert{Event: "completed", Backfill: b.Name, RunID: r.ID, Digest: digest,
		Message: fmt.Sprintf("scanned %s, %s %s in %s", bftype.Thousands(r.Scanned), b.Apply.Past(), bftype.Thousands(r.Changed),
			plural(r.Batches, "batch", "batches"))})
	fmt.Fprintf(stdout, "\nCompleted run %d: scanned %s, %s %s, in %s (%s). Log: %s\n",
		r.ID, plural(r.Scanned, "row", "rows"), b.Apply.Past(), bftype.Thousands(r.Changed), plural(r.Batches, "batch", "batches"),
		r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond), f.exec.logFile)
	fmt.Fprintf(stdout, "checks: all %d hold after the run\n", len(m.Checks))
	fmt.Fprintln(stdout, reconcileSentence(b.Apply, res.Reconciled))
	return nil
}

// openLog returns the JSON logger of a writing command, which appends to the
// durable log file and, with --log-stderr json, writes to stderr too, and the
// console that stderr is. Every line names the backfill and the digest
// (the engine adds the run id once the run exists); the first line, launch,
// records the arguments and who ran them, once.
func openLog(f execFlags, stderr io.Writer, b Binary, digest string, op engine.Operator) (*slog.Logger, *console, func(), error) {
	var asJSON bool
	switch f.logStderr {
	case "human", "no", "auto": // no and auto: the spellings before json and human
	case "json", "yes":
		asJSON = true
	default:
		return nil, nil, nil, usageError{"--log-stderr must be human or json"}
	}
	file, err := os.OpenFile(f.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("error opening log file %q (set --log-file): %w", f.logFile, err)
	}
	var w io.Writer = file
	if asJSON {
		w = io.MultiWriter(file, stderr)
	}
	logger := slog.New(slog.NewJSONHandler(w, nil)).With("backfill", b.Name, "digest", digest)
	logger.Info("launched", "event", "launch", "args", op.Parameters["args"], "os_user", op.OSUser, "client_host", op.ClientHost,
		"pid", os.Getpid(), "code_version", b.CodeVersion, "source_commit", b.SourceCommit, "run_signature", b.RunSignature)
	return logger, newConsole(stderr, asJSON, logger), func() { file.Sync(); file.Close() }, nil
}

// ended logs how a writing command ended and returns err. With the JSON log
// on stderr, that line is the operator's message: err comes back marked as
// reported, so it is not printed again in prose.
func (c *console) ended(err error, runID int64) error {
	attrs := []any{"event", "stop", "error", err.Error()}
	if runID != 0 {
		attrs = append(attrs, "run_id", runID)
	}
	var refusal *bftype.Refusal
	if errors.As(err, &refusal) {
		attrs = append(attrs, "stop_reason", string(refusal.Reason), "exit_code", int(refusal.Code), "next", refusal.Next)
	}
	c.log.Error("execution ended", attrs...)
	if c.json {
		return reportedError{err}
	}
	return err
}

// sessionName is the application_name of a run's sessions, after the
// operator's PGAPPNAME: "backfill NAME", then "backfill NAME run N".
func sessionName(name string, runID int64) string {
	if runID == 0 {
		return "backfill " + name
	}
	return fmt.Sprintf("backfill %s run %d", name, runID)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// operator is who runs the binary, from the operating system, never typed in.
func operator(args []string) engine.Operator {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return engine.Operator{OSUser: name, ClientHost: host, Parameters: map[string]any{"args": redact(args)}}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
