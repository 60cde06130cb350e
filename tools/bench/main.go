// Command bench measures fix_roles side by side in one run, on a generated
// table where every in-scope row changes: (1) one set-based UPDATE of the
// same rule, (2) the binary's --execute with every guardrail on, (3) its
// dry-run, (4) the same execute at a tenth of the rows, (5) without
// before-images, (6) in one lane, and (7) held to a rate limit where a third
// of the rows change. It prints rows/second, the ratios to (1), batch
// transaction percentiles, peak RSS, and for every execute the time its
// saved dry-run predicted beside the real time.
// Run it with make bench; it needs BENCH_DATABASE_URL or a local server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
)

func main() {
	rows := flag.Int("rows", 2_000_000, "rows in the large table")
	small := flag.Int("small", 200_000, "rows in the small table")
	admin := flag.String("database-url", envOr("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "server to create the bench databases on (superuser)")
	only := flag.String("only", "", "comma-separated configurations to run, e.g. 1,3 (default: all; (1) always runs, as the baseline)")
	flag.Parse()
	if err := run(context.Background(), *admin, *rows, *small, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// result is one measured configuration.
type result struct {
	name     string
	rows     int
	took     time.Duration
	rssKiB   int64
	cpu      time.Duration // the binary's user and system CPU time
	server   time.Duration // the server's CPU time meanwhile, when it runs on this machine
	p50, p99 float64
	// predicted is the ETA of the dry-run saved before an execute.
	predicted time.Duration
}

func (r result) rate() float64 { return float64(r.rows) / r.took.Seconds() }

func run(ctx context.Context, admin string, rows, small int, only string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "backfill-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{ctx: ctx, admin: admin, root: root, work: work}
	defer b.cleanup()
	if err := b.setup(); err != nil {
		return err
	}
	results := map[int]result{}
	for i, step := range []struct {
		name string
		n    int
		fn   func(int) (result, error)
	}{
		{"(1) set-based UPDATE", rows, b.setBased},
		{"(2) --execute, all guardrails", rows, b.execute},
		{"(3) dry-run", rows, b.dryRun},
		{"(4) --execute", small, b.execute},
		{"(5) --execute, no before-images", rows, b.executeIrreversible},
		{"(6) --execute, one lane", rows, b.executeOneLane},
		{"(7) --execute, rate limit", small, b.executeThrottled},
	} {
		if !selected(only, i+1) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s on %d rows...\n", step.name, step.n)
		r, err := step.fn(step.n)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		r.name = step.name
		results[i+1] = r
	}
	report(results)
	return nil
}

// selected reports whether configuration n is to run: all by default, and
// (1) always, since every ratio is to it.
func selected(only string, n int) bool {
	if only == "" || n == 1 {
		return true
	}
	for _, f := range strings.Split(only, ",") {
		if strings.TrimSpace(f) == strconv.Itoa(n) {
			return true
		}
	}
	return false
}

func report(results map[int]result) {
	var rs []result
	for n := 1; n <= 7; n++ {
		if r, ok := results[n]; ok {
			rs = append(rs, r)
		}
	}
	base := rs[0]
	fmt.Printf("\n%-32s %10s %10s %12s %10s %10s %10s %10s %10s %10s %10s %8s\n", "configuration", "rows", "seconds", "rows/s", "vs (1)",
		"p50 ms", "p99 ms", "peak RSS", "client CPU", "server CPU", "predicted", "error")
	for _, r := range rs {
		rss, p50, p99, cpu, server, predicted, miss := "-", "-", "-", "-", "-", "-", "-"
		if r.predicted > 0 {
			predicted = fmt.Sprintf("%.2f s", r.predicted.Seconds())
			miss = fmt.Sprintf("%+.0f%%", 100*(r.predicted.Seconds()/r.took.Seconds()-1))
		}
		if r.server > 0 {
			server = fmt.Sprintf("%.1f s", r.server.Seconds())
		}
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.1f s", r.cpu.Seconds())
		}
		if r.rssKiB > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.rssKiB)/1024)
		}
		if r.p99 > 0 {
			p50, p99 = fmt.Sprintf("%.1f", r.p50), fmt.Sprintf("%.1f", r.p99)
		}
		fmt.Printf("%-32s %10d %10.2f %12.0f %9.2fx %10s %10s %10s %10s %10s %10s %8s\n", r.name, r.rows, r.took.Seconds(), r.rate(), r.rate()/base.rate(),
			p50, p99, rss, cpu, server, predicted, miss)
	}
	var summary []string
	if r, ok := results[2]; ok {
		summary = append(summary, fmt.Sprintf("throughput (2)/(1): %.2fx", r.rate()/base.rate()))
	}
	if r, ok := results[3]; ok {
		summary = append(summary, fmt.Sprintf("time (3)/(1): %.3fx", r.took.Seconds()/base.took.Seconds()))
	}
	if r2, ok := results[2]; ok {
		if r4, ok := results[4]; ok {
			summary = append(summary, fmt.Sprintf("peak RSS (4) vs (2): %.1f vs %.1f MiB", float64(r4.rssKiB)/1024, float64(r2.rssKiB)/1024))
		}
	}
	if r, ok := results[5]; ok {
		summary = append(summary, fmt.Sprintf("throughput (5)/(1): %.2fx", r.rate()/base.rate()))
	}
	if r, ok := results[6]; ok {
		summary = append(summary, fmt.Sprintf("throughput (6)/(1): %.2fx", r.rate()/base.rate()))
	}
	fmt.Printf("\n%s\n", strings.Join(summary, "   "))
}

// bench holds the databases, logins and binary of one run.
type bench struct {
	ctx   context.Context
	admin string
	root  string
	work  string
	bin   string // fix_roles as written: reversible, so it keeps before-images
	plain string // the same with reversible: false
	slow  string // the same held to throttleRate rows a second
	cli   string
	extra []string // more arguments for --execute (and its dry-run)
	// prepare is SQL run on the seeded table before an execute's dry-run.
	prepare string
}

const target = "backfill_bench_target"

// throttleRate is the max_rows_per_second of (7).
const throttleRate = 50_000

func (b *bench) url(db, user string) string {
	u := strings.Replace(b.admin, "/postgres?", "/"+db+"?", 1)
	if user != "" {
		u = strings.Replace(u, "postgres://postgres@", "postgres://"+user+"@", 1)
	}
	return u
}

func (b *bench) exec(url string, sqls ...string) error {
	conn, err := pgx.Connect(b.ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(b.ctx)
	for _, s := range sqls {
		if _, err := conn.Exec(b.ctx, s); err != nil {
			return fmt.Errorf("%.60s: %w", s, err)
		}
	}
	return nil
}

func (b *bench) cmd(env []string, name string, args ...string) (string, *os.ProcessState, error) {
	c := exec.CommandContext(b.ctx, name, args...)
	c.Dir = b.work
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), c.ProcessState, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(string(out)))
	}
	return string(out), c.ProcessState, nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// setup builds the CLI and a fix_roles variant that targets the bench
// database with bounds for millions of rows, and makes logins and keys.
func (b *bench) setup() error {
	b.cli = filepath.Join(b.work, "backfill")
	if _, _, err := b.cmd(nil, "go", "-C", b.root, "build", "-o", b.cli, "./cmd/backfill"); err != nil {
		return err
	}
	repo := filepath.Join(b.work, "repo")
	if out, _, err := b.cmd(nil, "bash", "-c", "mkdir -p "+repo+" && cd "+b.root+
		" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "+repo); err != nil {
		return fmt.Errorf("copying the repository: %w %s", err, out)
	}
	manifest := filepath.Join(repo, "backfills/fix_roles/backfill.yaml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	m := strings.NewReplacer("database: backfill_demo", "database: "+target,
		"matched: {min: 1, max: 15000}", "matched: {min: 1, max: 10000000}",
		"changed: {min: 1, max: 15000}", "changed: {min: 1, max: 10000000}",
		"batch: {size: 500, canary: 50, max_rows_per_second: 20000,", "batch: {size: 1000, canary: 50, max_rows_per_second: 0, lanes: 2,").Replace(string(data))
	if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
		return err
	}
	build := func(dist string) (string, error) {
		c := exec.Command(b.cli, "build", "fix_roles", "--source-commit", "bench", "--dist", dist)
		c.Dir = repo
		if out, err := c.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the bench binary: %w\n%s", err, out)
		}
		return filepath.Join(repo, dist, "fix_roles/fix_roles"), nil
	}
	if b.bin, err = build("dist"); err != nil {
		return err
	}
	if err := os.WriteFile(manifest, []byte(strings.Replace(m, "reversible: true", "reversible: false", 1)), 0o644); err != nil {
		return err
	}
	if b.plain, err = build("dist-plain"); err != nil {
		return err
	}
	throttled := strings.Replace(m, "max_rows_per_second: 0,", fmt.Sprintf("max_rows_per_second: %d,", throttleRate), 1)
	if err := os.WriteFile(manifest, []byte(throttled), 0o644); err != nil {
		return err
	}
	if b.slow, err = build("dist-slow"); err != nil {
		return err
	}
	for _, who := range []string{"alice", "bob"} {
		if _, _, err := b.cmd(keyEnv, b.cli, "keys", "generate", "bench_"+who); err != nil {
			return err
		}
	}
	return b.exec(b.admin, roles...)
}

var keyEnv = []string{"BACKFILL_KEY_PASSWORD=bench"}

var roles = []string{
	`DO $$ DECLARE r text; BEGIN
		FOREACH r IN ARRAY ARRAY['backfill_runner','backfill_approver','backfill_observer','backfill_admin'] LOOP
			BEGIN EXECUTE format('CREATE ROLE %I NOLOGIN', r); EXCEPTION WHEN duplicate_object THEN NULL; END;
		END LOOP;
		FOREACH r IN ARRAY ARRAY['bench_alice','bench_bob','bench_runner'] LOOP
			BEGIN EXECUTE format('CREATE ROLE %I LOGIN', r); EXCEPTION WHEN duplicate_object THEN NULL; END;
		END LOOP; END $$`,
	"GRANT backfill_approver TO bench_alice, bench_bob",
	"GRANT backfill_runner TO bench_runner",
}

func (b *bench) cleanup() {
	_ = b.exec(b.admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE)")
}

// seed recreates the target database with n users, every in-scope one
// with a wrong role, and their grants.
func (b *bench) seed(n int) error {
	if err := b.exec(b.admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE)", "CREATE DATABASE "+target); err != nil {
		return err
	}
	schema, err := os.ReadFile(filepath.Join(b.root, "queries/schema/schema.sql"))
	if err != nil {
		return err
	}
	return b.exec(b.url(target, ""), string(schema),
		"INSERT INTO app_settings VALUES ('env', 'demo')",
		fmt.Sprintf(`INSERT INTO users (id, email, role, tenant, created_at)
			SELECT i, 'u' || i || '@example.com', 'member', 'acme', '2025-01-01' FROM generate_series(1, %d) i`, n),
		fmt.Sprintf(`INSERT INTO role_grants (user_id, role, granted_at)
			SELECT i, (ARRAY['admin', 'editor', 'viewer'])[1 + i %% 3], '2025-06-01' FROM generate_series(1, %d) i`, n),
		"VACUUM ANALYZE users", "VACUUM ANALYZE role_grants")
}

const setBasedRule = `UPDATE users AS u SET role = latest.role
	FROM users AS s
	JOIN LATERAL (SELECT g.role FROM role_grants AS g WHERE g.user_id = s.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1) AS latest ON true
	WHERE u.id = s.id AND s.created_at < '2026-01-01' AND u.role IS DISTINCT FROM latest.role`

func (b *bench) setBased(n int) (result, error) {
	if err := b.seed(n); err != nil {
		return result{}, err
	}
	server := b.serverCPU()
	began := time.Now()
	if err := b.exec(b.url(target, ""), setBasedRule); err != nil {
		return result{}, err
	}
	return result{rows: n, took: time.Since(began), server: server()}, nil
}

func (b *bench) dryRun(n int) (result, error) {
	if err := b.seed(n); err != nil {
		return result{}, err
	}
	began := time.Now()
	_, st, err := b.cmd(nil, b.bin, "--database-url", b.url(target, ""), "--samples", "0")
	if err != nil {
		return result{}, err
	}
	return result{rows: n, took: time.Since(began), rssKiB: maxRSS(st), cpu: cpuTime(st)}, nil
}

// executeIrreversible is execute without before-images.
func (b *bench) executeIrreversible(n int) (result, error) {
	bin := b.bin
	b.bin = b.plain
	defer func() { b.bin = bin }()
	return b.execute(n)
}

// executeThrottled is execute held to throttleRate rows a second, where
// only a third of the rows in scope change: the limit counts the rows a run
// reads, so it takes three times as long as the rows it changes suggest.
func (b *bench) executeThrottled(n int) (result, error) {
	bin := b.bin
	b.bin, b.prepare = b.slow, "UPDATE users AS u SET role = (ARRAY['admin', 'editor', 'viewer'])[1 + u.id % 3] WHERE u.id % 3 <> 0"
	defer func() { b.bin, b.prepare = bin, "" }()
	return b.execute(n)
}

// executeOneLane is execute with --lanes 1.
func (b *bench) executeOneLane(n int) (result, error) {
	b.extra = []string{"--lanes", "1"}
	defer func() { b.extra = nil }()
	return b.execute(n)
}

// execute sets up the ledger and two approvals and saves a dry-run, as an
// operator does before executing (the run cuts its lanes at the dry-run's
// split keys), then times --execute.
func (b *bench) execute(n int) (result, error) {
	if err := b.seed(n); err != nil {
		return result{}, err
	}
	db := b.url(target, "")
	steps := [][]string{
		{"ledger", "init", "--environment", "demo", "--database-url", db},
		{"approvers", "add", "alice", "--key", "bench_alice.pub", "--login", "bench_alice", "--database-url", db},
		{"approvers", "add", "bob", "--key", "bench_bob.pub", "--login", "bench_bob", "--database-url", db},
		{"approve", b.bin, "--key", "bench_alice.key", "--reason", "bench", "--database-url", b.url(target, "bench_alice")},
		{"approve", b.bin, "--key", "bench_bob.key", "--reason", "bench", "--database-url", b.url(target, "bench_bob")},
	}
	for _, args := range steps {
		if _, _, err := b.cmd(keyEnv, b.cli, args...); err != nil {
			return result{}, err
		}
	}
	if err := b.exec(db, "GRANT SELECT ON users TO bench_runner", "GRANT SELECT, UPDATE (role) ON users TO backfill_writer", "GRANT SELECT ON role_grants, app_settings TO bench_runner, backfill_writer"); err != nil {
		return result{}, err
	}
	if b.prepare != "" {
		if err := b.exec(db, b.prepare, "VACUUM ANALYZE users"); err != nil {
			return result{}, err
		}
	}
	report := filepath.Join(b.work, "dry-run.json")
	if _, _, err := b.cmd(nil, b.bin, append([]string{"--save", "--samples", "0", "--report", report, "--database-url", b.url(target, "bench_runner")}, b.extra...)...); err != nil {
		return result{}, err
	}
	est, err := estimate(report)
	if err != nil {
		return result{}, err
	}
	began := time.Now()
	server := b.serverCPU()
	_, st, err := b.cmd(nil, b.bin, append([]string{"--execute", "--database-url", b.url(target, "bench_runner"), "--log-stderr", "no",
		"--log-file", filepath.Join(b.work, "execute.log")}, b.extra...)...)
	if err != nil {
		return result{}, err
	}
	r := result{rows: n, took: time.Since(began), rssKiB: maxRSS(st), cpu: cpuTime(st), server: server(), predicted: est.Total}
	fmt.Fprintf(os.Stderr, "bench:   predicted %.2f s: preflight %.2f s (count %.2f s), batches %.2f s (work %.2f s: read %.2f, transform %.2f, write %.2f, commit %.2f, %d batches, %d lanes; rate limit %.2f s)\n",
		est.Total.Seconds(), est.Preflight.Seconds(), est.Count.Seconds(), est.Batching.Seconds(), est.Work.Seconds(), est.Read.Seconds(),
		est.Transform.Seconds(), est.Write.Seconds(), est.Commit.Seconds(), est.Batches, est.Lanes, est.Throttle.Seconds())
	phases(filepath.Join(b.work, "execute.log"), began)
	conn, err := pgx.Connect(b.ctx, db)
	if err != nil {
		return r, err
	}
	defer conn.Close(b.ctx)
	err = conn.QueryRow(b.ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM backfill.batches`).Scan(&r.p50, &r.p99)
	if err != nil {
		return r, err
	}
	var wrong int64
	if err := conn.QueryRow(b.ctx, "SELECT count(*) FROM users WHERE role NOT IN ('admin', 'editor', 'viewer')").Scan(&wrong); err != nil || wrong != 0 {
		return r, errors.Join(err, fmt.Errorf("%d rows were not changed", wrong))
	}
	return r, nil
}

// estimate reads the ETA of a dry-run report and how it was made.
func estimate(path string) (bftype.Estimate, error) {
	var rep bftype.Report
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	if err == nil && rep.Estimate == nil {
		err = errors.New("the report has no estimate")
	}
	if err != nil {
		return bftype.Estimate{}, fmt.Errorf("error reading the dry-run's estimate %s: %w", path, err)
	}
	return *rep.Estimate, nil
}

// phases prints how long the preflight (start to the first batch), the
// batches and the end (checks, reconciliation) took, from the run's log,
// which it then removes so the next run's log starts empty.
func phases(path string, began time.Time) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	defer os.Remove(path)
	var start, last, finish time.Time
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			Time  time.Time `json:"time"`
			Event string    `json:"event"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Event {
		case "start":
			start = e.Time
		case "batch":
			last = e.Time
		case "finish":
			finish = e.Time
		}
	}
	if start.IsZero() || last.IsZero() || finish.IsZero() {
		return
	}
	fmt.Fprintf(os.Stderr, "bench:   preflight %.2f s, batches %.2f s, checks and reconciliation %.2f s\n",
		start.Sub(began).Seconds(), last.Sub(start).Seconds(), finish.Sub(last).Seconds())
}

// serverCPU starts measuring the CPU time of the PostgreSQL server, when it
// runs on this machine and /proc shows it: the postmaster's own time, the
// time of its children that ended (it waits for them) and of those alive.
// The returned function gives the time since; 0 when it cannot be read.
func (b *bench) serverCPU() func() time.Duration {
	var pid int
	conn, err := pgx.Connect(b.ctx, b.admin)
	if err == nil {
		var backend int
		err = conn.QueryRow(b.ctx, "SELECT pg_backend_pid()").Scan(&backend)
		conn.Close(b.ctx)
		if err == nil {
			if f := procStat(backend); len(f) > 1 {
				pid, _ = strconv.Atoi(f[1]) // ppid: the postmaster
			}
		}
	}
	total := func() float64 {
		if pid == 0 {
			return 0
		}
		f := procStat(pid)
		if len(f) < 15 {
			return 0
		}
		sum := 0.0
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime (after the state field)
			v, _ := strconv.ParseFloat(f[i], 64)
			sum += v
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(children)) {
			n, _ := strconv.Atoi(c)
			if f := procStat(n); len(f) > 12 {
				u, _ := strconv.ParseFloat(f[11], 64)
				s, _ := strconv.ParseFloat(f[12], 64)
				sum += u + s
			}
		}
		return sum / 100 // USER_HZ
	}
	before := total()
	return func() time.Duration {
		after := total()
		if before == 0 || after == 0 {
			return 0
		}
		return time.Duration((after - before) * float64(time.Second))
	}
}

// procStat is /proc/PID/stat after the command name: the state, the ppid,
// and so on; nil when it cannot be read.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		return strings.Fields(s[i+1:])
	}
	return nil
}

func cpuTime(st *os.ProcessState) time.Duration {
	if st == nil {
		return 0
	}
	return st.UserTime() + st.SystemTime()
}

func maxRSS(st *os.ProcessState) int64 {
	if st == nil {
		return 0
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
