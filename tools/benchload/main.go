// Command benchload measures what the application feels while fix_roles
// runs, side by side in one run: pgbench plays the application (a fixed rate
// of transactions, each reading and updating one random user of the table
// the backfill writes) (a) with nothing else running, (b) during --execute
// with the adaptive mode off, (c) during --execute with the defaults
// (adaptive mode on), (d) during one set-based UPDATE of the same rule and
// (e) during a plain loop of keyset batches of the same size in autocommit.
// It prints the application's p50, p99 and max latency, failed and late
// transactions, each backfill's time and rows per second, and the lock
// waits it caused (sessions whose pg_blocking_pids named it).
// Run it with make bench-load; it needs BENCH_DATABASE_URL or a local server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	var c config
	flag.IntVar(&c.rows, "rows", 1_000_000, "rows in the users table (every one changes)")
	flag.IntVar(&c.rate, "rate", 300, "application transactions a second (pgbench -R)")
	flag.IntVar(&c.clients, "clients", 4, "application clients (pgbench -c)")
	flag.IntVar(&c.size, "size", 500, "batch size of the backfill and of the plain loop")
	flag.IntVar(&c.lanes, "lanes", 1, "batch.lanes of the backfill")
	flag.IntVar(&c.maxRate, "max-rate", 0, "batch.max_rows_per_second of the backfill (0: none)")
	flag.DurationVar(&c.limit, "latency-limit", 100*time.Millisecond, "a transaction slower than this is late (pgbench --latency-limit)")
	flag.DurationVar(&c.settle, "settle", 20*time.Second, "how long to let the server's disk settle after seeding each scenario's table, before the application starts")
	flag.DurationVar(&c.idle, "idle", 30*time.Second, "how long to measure the idle application")
	flag.StringVar(&c.only, "only", "", "comma-separated scenarios to run, e.g. a,c (default: all)")
	flag.StringVar(&c.admin, "database-url", envOr("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "server to create the bench database on (superuser)")
	flag.StringVar(&c.pgbench, "pgbench", "", "pgbench to run (default: on PATH, else next to the server's binaries)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (pgbench's per-transaction logs, the runs' logs) and print where it is")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-load:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	rows, rate, clients, size, lanes, maxRate int
	limit, idle, settle                       time.Duration
	only, admin, pgbench                      string
	keep                                      bool
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// scenario is one line of the table.
type scenario struct {
	key    string
	name   string
	fn     func(b *bench) (backfill, error)
	ledger bool // it needs the ledger, approvals and a saved dry-run
}

var scenarios = []scenario{
	{"a", "(a) idle", (*bench).idle, false},
	{"b", "(b) --execute --adaptive=false", func(b *bench) (backfill, error) { return b.execute("--adaptive=false") }, true},
	{"c", "(c) --execute (adaptive, default)", func(b *bench) (backfill, error) { return b.execute() }, true},
	{"d", "(d) set-based UPDATE", (*bench).setBased, false},
	{"e", "(e) plain batched loop", (*bench).plainLoop, false},
}

func run(ctx context.Context, c config) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "backfill-bench-load-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Fprintln(os.Stderr, "bench-load: keeping", work)
	} else {
		defer os.RemoveAll(work)
	}
	if c.pgbench == "" {
		if c.pgbench, err = findPgbench(); err != nil {
			return err
		}
	}
	b := &bench{ctx: ctx, cfg: c, root: root, work: work}
	defer b.cleanup()
	if err := b.setup(); err != nil {
		return err
	}
	var lines []line
	for _, s := range scenarios {
		if !selected(c.only, s.key) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench-load: %s on %d rows, application at %d tx/s on %d clients...\n", s.name, c.rows, c.rate, c.clients)
		bf, app, err := b.measure(s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		lines = append(lines, line{name: s.name, app: app, bf: bf})
	}
	report(os.Stdout, c, lines)
	return nil
}

func selected(only, key string) bool {
	if only == "" {
		return true
	}
	for _, f := range strings.Split(only, ",") {
		if strings.TrimSpace(f) == key {
			return true
		}
	}
	return false
}

// findPgbench finds pgbench on PATH or in the PostgreSQL server package.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(matches) == 0 {
		return "", fmt.Errorf("pgbench not found on PATH nor in /usr/lib/postgresql/*/bin; pass -pgbench")
	}
	return matches[len(matches)-1], nil
}
