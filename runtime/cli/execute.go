package cli

import (
	"context"
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
}

func (f *execFlags) register(fs *pflag.FlagSet, name string) {
	fs.StringVar(&f.logFile, "log-file", name+".log", "durable JSON log of the execution (appended)")
	fs.StringVar(&f.logStderr, "log-stderr", "auto", "also write the JSON log to stderr: yes, no, or auto (yes unless stderr is a terminal)")
	fs.DurationVar(&f.maxRetryTime, "max-retry-time", 5*time.Minute, "stop as partial when one batch keeps failing this long")
	fs.DurationVar(&f.targetBatch, "target-batch-time", 200*time.Millisecond, "batch duration the batch size adapts toward (never above batch.size)")
	fs.DurationVar(&f.maxReplicaLag, "max-replication-lag", 0, "pause while a replica lags more than this (0: do not check)")
	fs.StringVar(&f.alertWebhook, "alert-webhook", "", "POST a JSON alert here when the run completes, fails, stops or gets stuck (default: $"+webhookEnv+"); recorded as scheme and host only")
	fs.StringVar(&f.webhookFile, "alert-webhook-file", "", "read the --alert-webhook URL from this file, keeping its token out of the process list")
	fs.StringVar(&f.alertCommand, "alert-command", "", "run this shell command with the JSON alert on stdin on the same events; recorded as given unless it holds a secret-looking token (pass secrets as $VARIABLES)")
	fs.DurationVar(&f.stuckAfter, "stuck-after", 10*time.Minute, "alert when no batch commits for this long (0: never)")
	fs.IntVar(&f.lanes, "lanes", 0, "write at most this many key ranges at once, each on its own connection (0: batch.lanes of the manifest; never more); a dry-run estimates its ETA for as many")
}

// execute runs the preflight and the batches, drawing progress for the operator.
func execute(ctx context.Context, b Binary, m *bftype.Manifest, f dryRunFlags, args []string, stdout, stderr io.Writer) error {
	digest, err := Digest()
	if err != nil {
		return err
	}
	webhook, err := resolveWebhook(f.exec.alertWebhook, f.exec.webhookFile, os.Getenv)
	if err != nil {
		return err
	}
	dbURL, src := pgdb.Resolve(f.url)
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgdb.Connect(ctx, dbURL, src, b.Name+" execute") }
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	op := operator(args)
	logger, closeLog, err := openLog(f.exec.logFile, f.exec.logStderr, stderr, op)
	if err != nil {
		return err
	}
	defer closeLog()
	job := &engine.Job{Name: b.Name, Manifest: m, Digest: digest, RunSignature: b.RunSignature,
		SourceCommit: b.SourceCommit, CodeVersion: b.CodeVersion, Statements: b.Statements, Plan: b.Plan}
	fmt.Fprintf(stdout, "EXECUTE %s (sha256:%s)\n\nPreflight:\n", b.Name, digest)
	live := newProgressLine(stderr)
	alerts := newAlerter(webhook, f.exec.alertCommand, logger)
	defer alerts.wait()
	var runID atomic.Int64
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
			dog.touch()
			verb := "Started"
			if resumed {
				verb = "Resumed"
			}
			fmt.Fprintf(stdout, "\n%s run %d. Ctrl-C once stops after the current batch; twice stops at once.\n", verb, id)
		},
		Progress: func(p engine.Progress) { dog.touch(); live.update(p) },
		Note:     func(msg string) { live.note(msg) },
		Paused: func(id int64) {
			live.note(fmt.Sprintf("run %d paused through the ledger; waiting for resume or cancel", id))
		},
		Stopped: func(id int64, status, msg string) {
			live.done()
			alerts.fire(Alert{Event: status, Backfill: b.Name, RunID: id, Digest: digest, Message: msg})
		},
	}
	opts := engine.Options{Logger: logger, Connect: connect, Graceful: graceful(ctx), MaxRetryTime: f.exec.maxRetryTime,
		TargetBatchTime: f.exec.targetBatch, MaxReplicationLag: f.exec.maxReplicaLag, Lanes: f.exec.lanes}
	res, err := engine.Execute(ctx, conn, job, op, hooks, opts)
	live.done()
	if err != nil {
		logger.Error("execution ended", "event", "stop", "error", err.Error())
		return err
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

// openLog returns a JSON logger writing to the durable log file and, unless
// stderr is a terminal (where the live progress line is drawn instead), to
// stderr. Every line carries the launch parameters.
func openLog(path, toStderr string, stderr io.Writer, op engine.Operator) (*slog.Logger, func(), error) {
	if toStderr != "auto" && toStderr != "yes" && toStderr != "no" {
		return nil, nil, usageError{"--log-stderr must be yes, no or auto"}
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("error opening log file %q (set --log-file): %w", path, err)
	}
	var w io.Writer = file
	if toStderr == "yes" || (toStderr == "auto" && !isTerminal(stderr)) {
		w = io.MultiWriter(file, stderr)
	}
	logger := slog.New(slog.NewJSONHandler(w, nil)).With("args", op.Parameters["args"], "os_user", op.OSUser, "client_host", op.ClientHost)
	return logger, func() { file.Sync(); file.Close() }, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressLine draws one live line on a terminal, or a line a second otherwise.
type progressLine struct {
	w       io.Writer
	tty     bool
	started time.Time
	last    time.Time
	drawn   bool
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, tty: isTerminal(w), started: time.Now()}
}

// progressText is the live line of a committed batch: the whole run's
// counts against the count of its first preflight, and the rate and ETA of
// this process's recent batches.
func progressText(pr engine.Progress) string {
	eta := "-"
	if pr.ETA > 0 {
		eta = pr.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("batch %d  scanned %d/%d  changed %d  skipped %d  %.0f rows/s  ETA %s",
		pr.Batch, pr.Scanned, pr.Matched, pr.Changed, pr.Scanned-pr.Changed, pr.Rate, eta)
}

func (p *progressLine) update(pr engine.Progress) {
	if time.Since(p.last) < 200*time.Millisecond && pr.Scanned < pr.Matched {
		return
	}
	p.last = time.Now()
	line := progressText(pr)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	if pr.Scanned >= pr.Matched || time.Since(p.started) > time.Second {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progressLine) note(s string) {
	p.done()
	fmt.Fprintln(p.w, s)
}

func (p *progressLine) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
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
