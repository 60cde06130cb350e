package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Alert is what the alert hooks receive, as JSON. Text is one sentence for
// a person: Slack and Microsoft Teams incoming webhooks show it as the
// message (and require it); the other fields are for machines.
type Alert struct {
	Text       string    `json:"text"`
	Event      string    `json:"event"` // completed, failed, partial, interrupted, cancelled, failed_validation, stuck, refused
	Backfill   string    `json:"backfill"`
	RunID      int64     `json:"run_id"`
	Digest     string    `json:"digest"`
	StopReason string    `json:"stop_reason,omitempty"` // why a run was refused or stopped
	Message    string    `json:"message"`
	At         time.Time `json:"at"`
}

// sentence is the alert's Text: "backfill fix_roles run 42 completed:
// scanned 1,000, updated 333 in 3 batches."
func (a Alert) sentence() string {
	what := strings.ReplaceAll(a.Event, "_", " ")
	if a.Event == "refused" {
		what = "was REFUSED"
		if a.StopReason != "" {
			what += " (" + a.StopReason + ")"
		}
	} else if a.Event != "completed" && a.Event != "stuck" {
		what = "stopped: " + what
	} else if a.Event == "stuck" {
		what = "is stuck"
	}
	run := ""
	if a.RunID != 0 {
		run = fmt.Sprintf(" run %d", a.RunID)
	}
	msg := strings.TrimSuffix(a.Message, ".")
	if msg != "" {
		msg = ": " + msg
	}
	return fmt.Sprintf("Backfill %s%s %s%s.", a.Backfill, run, what, msg)
}

// alerter fires the --alert-webhook and --alert-command hooks. A failing
// hook is logged and never stops the run. What it logs never holds the
// webhook's path or query, nor what looks like a secret in the command.
type alerter struct {
	webhook, command string
	log              *slog.Logger
	secrets          scrubber
	wg               sync.WaitGroup
}

func newAlerter(webhook, command string, log *slog.Logger) *alerter {
	secrets := append(webhookSecrets(webhook), secretsIn(command)...)
	return &alerter{webhook: webhook, command: command, log: log, secrets: secrets}
}

// webhookEnv names the environment variable that may hold the webhook URL,
// which keeps its token out of the process list and the shell history.
const webhookEnv = "BACKFILL_ALERT_WEBHOOK"

// resolveWebhook returns the alert webhook URL: --alert-webhook, else the
// file --alert-webhook-file names, else $BACKFILL_ALERT_WEBHOOK, else "".
// Its messages never quote the URL.
func resolveWebhook(flag, file string, getenv func(string) string) (string, error) {
	hook, from := flag, "--alert-webhook"
	switch {
	case flag != "" && file != "":
		return "", usageError{"give the alert webhook with --alert-webhook or --alert-webhook-file, not both"}
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{fmt.Sprintf("cannot read --alert-webhook-file: %v", err)}
		}
		hook, from = strings.TrimSpace(string(data)), "the file "+file
	case flag == "":
		hook, from = getenv(webhookEnv), webhookEnv
	}
	if hook == "" {
		return "", nil
	}
	u, err := url.Parse(hook)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError{fmt.Sprintf("the alert webhook from %s is not one http(s) URL; give the URL alone, e.g. https://hooks.example.com/...", from)}
	}
	return hook, nil
}

func (a *alerter) fire(ev Alert) {
	if a.webhook == "" && a.command == "" {
		return
	}
	ev.At = time.Now().UTC()
	if ev.Text == "" {
		ev.Text = ev.sentence()
	}
	body, _ := json.Marshal(ev)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if a.webhook != "" {
			if err := post(a.webhook, body); err != nil {
				a.log.Warn("alert webhook failed", "event", "alert", "run_id", ev.RunID, "alert", ev.Event, "to", webhookOrigin(a.webhook),
					"error", a.secrets.scrub(err.Error()))
			} else {
				a.log.Info("alert sent", "event", "alert", "run_id", ev.RunID, "alert", ev.Event, "hook", "webhook", "to", webhookOrigin(a.webhook))
			}
		}
		if a.command != "" {
			if err := runHook(a.command, body, ev); err != nil {
				a.log.Warn("alert command failed", "event", "alert", "run_id", ev.RunID, "alert", ev.Event, "error", a.secrets.scrub(err.Error()))
			} else {
				a.log.Info("alert sent", "event", "alert", "run_id", ev.RunID, "alert", ev.Event, "hook", "command")
			}
		}
	}()
}

// wait lets in-flight alerts finish, up to a bound.
func (a *alerter) wait() {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
}

// post sends the alert. Its error names the webhook by scheme and host
// only: net/http's own errors quote the whole URL, token and all.
func post(hook string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("error building the request to %s: %w", webhookOrigin(hook), withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("error posting to %s: %w", webhookOrigin(hook), withoutURL(err))
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// withoutURL drops the URL a *url.Error quotes, keeping its cause.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// runHook runs the alert command with the JSON on stdin and the event in
// BACKFILL_ALERT_EVENT and BACKFILL_RUN_ID.
func runHook(command string, body []byte, ev Alert) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), "BACKFILL_ALERT_EVENT="+ev.Event, fmt.Sprintf("BACKFILL_RUN_ID=%d", ev.RunID), "BACKFILL_NAME="+ev.Backfill)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// watchdog fires a stuck alert when no batch commits for a while.
type watchdog struct {
	last  atomic.Int64 // unix nanos of the last progress
	fired atomic.Bool
	stop  chan struct{}
}

func startWatchdog(after time.Duration, onStuck func(idle time.Duration)) *watchdog {
	w := &watchdog{stop: make(chan struct{})}
	w.touch()
	if after <= 0 {
		return w
	}
	go func() {
		t := time.NewTicker(min(after/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				idle := time.Since(time.Unix(0, w.last.Load()))
				if idle >= after && w.fired.CompareAndSwap(false, true) {
					onStuck(idle)
				}
			}
		}
	}()
	return w
}

func (w *watchdog) touch() {
	w.last.Store(time.Now().UnixNano())
	w.fired.Store(false)
}

func (w *watchdog) close() { close(w.stop) }
