package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/pgdb"
)

// execute runs the preflight and the batches, drawing progress on stdout.
func execute(ctx context.Context, b Binary, m *bftype.Manifest, f dryRunFlags, args []string, stdout io.Writer) error {
	digest, err := Digest()
	if err != nil {
		return err
	}
	url, src := pgdb.Resolve(f.url)
	conn, err := pgdb.Connect(ctx, url, src, b.Name+" execute")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	job := &engine.Job{Name: b.Name, Manifest: m, Digest: digest, RunSignature: b.RunSignature,
		SourceCommit: b.SourceCommit, CodeVersion: b.CodeVersion, Statements: b.Statements, Plan: b.Plan}
	fmt.Fprintf(stdout, "EXECUTE %s (sha256:%s)\n\nPreflight:\n", b.Name, digest)
	last := time.Time{}
	hooks := engine.Hooks{
		Check: func(c engine.Check) { fmt.Fprintf(stdout, "  ok  %-16s %s\n", c.Name, c.Detail) },
		Started: func(id int64, resumed bool) {
			verb := "Started"
			if resumed {
				verb = "Resumed"
			}
			fmt.Fprintf(stdout, "\n%s run %d.\n", verb, id)
		},
		Progress: func(p engine.Progress) {
			if time.Since(last) < time.Second && p.Scanned < p.Matched {
				return
			}
			last = time.Now()
			fmt.Fprintf(stdout, "  batch %d: scanned %d of %d, changed %d\n", p.Batch, p.Scanned, p.Matched, p.Changed)
		},
	}
	res, err := engine.Execute(ctx, conn, job, operator(args), hooks)
	if err != nil {
		return err
	}
	r := res.Run
	fmt.Fprintf(stdout, "\nCompleted run %d: scanned %d rows, changed %d, in %d batches (%s).\n",
		r.ID, r.Scanned, r.Changed, r.Batches, r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	return nil
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

// redact hides passwords in connection URLs among the arguments, which are
// recorded in the ledger and its audit log.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		prefix, value, found := strings.Cut(a, "=")
		if !found || !strings.HasPrefix(a, "--") {
			prefix, value = "", a
		}
		if u, err := url.Parse(value); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "REDACTED")
				value = u.String()
			}
		}
		if prefix != "" {
			value = prefix + "=" + value
		}
		out[i] = value
	}
	return out
}
