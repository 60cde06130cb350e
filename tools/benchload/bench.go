package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// bench holds the database, logins and binary of one run.
type bench struct {
	ctx  context.Context
	cfg  config
	root string
	work string
	bin  string
	cli  string
}

// backfill is what one scenario's writer did.
type backfill struct {
	rows      int
	took      time.Duration
	waits     int           // distinct lock waits of other sessions behind it
	maxWait   time.Duration // the longest of them
	slowDowns int           // the adaptive mode's slow-downs, from the run's log
	speedUps  int
	reasons   map[string]int // slow-downs and waits by reason
	wal       int64          // bytes of WAL the server wrote meanwhile (the application's included)
}

const target = "backfill_bench_load"

func (b *bench) url(db, user string) string {
	u := strings.Replace(b.cfg.admin, "/postgres?", "/"+db+"?", 1)
	if user != "" {
		u = strings.Replace(u, "postgres://postgres@", "postgres://"+user+"@", 1)
	}
	return u
}

// connect opens a session named like a backfill's, so that the lock
// sampler counts the waits behind it.
func (b *bench) connect(url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "bench-load sampler"
	return pgx.ConnectConfig(b.ctx, cfg)
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

func (b *bench) cmd(env []string, name string, args ...string) (string, error) {
	c := exec.CommandContext(b.ctx, name, args...)
	c.Dir = b.work
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// setup builds the CLI and a fix_roles variant that targets the bench
// database, with bounds for millions of rows, batches of -size, no rate
// limit of its own and -lanes lanes, and makes logins and keys.
func (b *bench) setup() error {
	b.cli = filepath.Join(b.work, "backfill")
	if _, err := b.cmd(nil, "go", "-C", b.root, "build", "-o", b.cli, "./cmd/backfill"); err != nil {
		return err
	}
	repo := filepath.Join(b.work, "repo")
	if out, err := b.cmd(nil, "bash", "-c", "mkdir -p "+repo+" && cd "+b.root+
		" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "+repo); err != nil {
		return fmt.Errorf("copying the repository: %w %s", err, out)
	}
	manifest := filepath.Join(repo, "backfills/fix_roles/backfill.yaml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	m := strings.NewReplacer("database: backfill_demo", "database: "+target,
		"matched: {min: 1, max: 15000}", "matched: {min: 1, max: 100000000}",
		"changed: {min: 1, max: 15000}", "changed: {min: 1, max: 100000000}",
		"batch: {size: 500, canary: 50, max_rows_per_second: 20000,",
		fmt.Sprintf("batch: {size: %d, canary: %d, max_rows_per_second: %d, lanes: %d,", b.cfg.size, min(50, b.cfg.size), b.cfg.maxRate, b.cfg.lanes)).Replace(string(data))
	if m == string(data) {
		return fmt.Errorf("fix_roles' manifest changed; update bench-load's edits")
	}
	if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
		return err
	}
	c := exec.Command(b.cli, "build", "fix_roles", "--source-commit", "bench-load", "--dist", "dist")
	c.Dir = repo
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("building the bench binary: %w\n%s", err, out)
	}
	b.bin = filepath.Join(repo, "dist/fix_roles/fix_roles")
	for _, who := range []string{"alice", "bob"} {
		if _, err := b.cmd(keyEnv, b.cli, "keys", "generate", "bench_"+who); err != nil {
			return err
		}
	}
	return b.exec(b.cfg.admin, roles...)
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
	_ = b.exec(b.cfg.admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE)")
}

// seed recreates the target database with -rows users, each with a wrong
// role, and their grants.
func (b *bench) seed() error {
	if err := b.exec(b.cfg.admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE)", "CREATE DATABASE "+target); err != nil {
		return err
	}
	schema, err := os.ReadFile(filepath.Join(b.root, "queries/schema/schema.sql"))
	if err != nil {
		return err
	}
	n := b.cfg.rows
	return b.exec(b.url(target, ""), string(schema),
		"INSERT INTO app_settings VALUES ('env', 'demo')",
		fmt.Sprintf(`INSERT INTO users (id, email, role, tenant, created_at)
			SELECT i, 'u' || i || '@example.com', 'member', 'acme', '2025-01-01' FROM generate_series(1, %d) i`, n),
		fmt.Sprintf(`INSERT INTO role_grants (user_id, role, granted_at)
			SELECT i, (ARRAY['admin', 'editor', 'viewer'])[1 + i %% 3], '2025-06-01' FROM generate_series(1, %d) i`, n),
		"VACUUM ANALYZE users", "VACUUM ANALYZE role_grants", "CHECKPOINT")
}

// prepare sets up the ledger and two approvals and saves a dry-run, as an
// operator does before executing; none of it is timed.
func (b *bench) prepare() error {
	db := b.url(target, "")
	steps := [][]string{
		{"ledger", "init", "--environment", "demo", "--database-url", db},
		{"approvers", "add", "alice", "--key", "bench_alice.pub", "--login", "bench_alice", "--database-url", db},
		{"approvers", "add", "bob", "--key", "bench_bob.pub", "--login", "bench_bob", "--database-url", db},
		{"approve", b.bin, "--key", "bench_alice.key", "--reason", "bench", "--database-url", b.url(target, "bench_alice")},
		{"approve", b.bin, "--key", "bench_bob.key", "--reason", "bench", "--database-url", b.url(target, "bench_bob")},
	}
	for _, args := range steps {
		if _, err := b.cmd(keyEnv, b.cli, args...); err != nil {
			return err
		}
	}
	if err := b.exec(db, "GRANT SELECT ON users TO bench_runner", "GRANT SELECT, UPDATE (role) ON users TO backfill_writer", "GRANT SELECT ON role_grants, app_settings TO bench_runner, backfill_writer"); err != nil {
		return err
	}
	_, err := b.cmd(nil, b.bin, "--save", "--samples", "0", "--database-url", b.url(target, "bench_runner"))
	return err
}

// idle measures the application alone.
func (b *bench) idle() (backfill, error) {
	time.Sleep(b.cfg.idle)
	return backfill{}, nil
}

// execute times the binary's --execute and counts its adaptive decisions.
func (b *bench) execute(extra ...string) (backfill, error) {
	log := filepath.Join(b.work, fmt.Sprintf("execute-%d.log", time.Now().UnixNano()))
	began := time.Now()
	_, err := b.cmd(nil, b.bin, append([]string{"--execute", "--database-url", b.url(target, "bench_runner"), "--log-stderr", "json",
		"--log-file", log}, extra...)...)
	bf := backfill{rows: b.cfg.rows, took: time.Since(began)}
	if err != nil {
		return bf, err
	}
	f, err := os.Open(log)
	if err != nil {
		return bf, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for {
		var e struct {
			Event  string `json:"event"`
			Reason string `json:"reason"`
		}
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return bf, err
		}
		switch e.Event {
		case "slow_down", "wait":
			bf.slowDowns++
			if bf.reasons == nil {
				bf.reasons = map[string]int{}
			}
			bf.reasons[e.Event+" "+e.Reason]++
		case "speed_up":
			bf.speedUps++
		}
	}
	return bf, nil
}

// setBasedRule is fix_roles as one statement.
const setBasedRule = `UPDATE users AS u SET role = latest.role
	FROM users AS s
	JOIN LATERAL (SELECT g.role FROM role_grants AS g WHERE g.user_id = s.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1) AS latest ON true
	WHERE u.id = s.id AND s.created_at < '2026-01-01' AND u.role IS DISTINCT FROM latest.role`

func (b *bench) setBased() (backfill, error) {
	conn, err := b.writer()
	if err != nil {
		return backfill{}, err
	}
	defer conn.Close(context.Background())
	began := time.Now()
	_, err = conn.Exec(b.ctx, setBasedRule)
	return backfill{rows: b.cfg.rows, took: time.Since(began)}, err
}

// plainLoop is what one might write without the tool: fix_roles' keyset
// page and its Apply, batch after batch in autocommit, with no ledger, no
// before-images, no pauses.
func (b *bench) plainLoop() (backfill, error) {
	conn, err := b.writer()
	if err != nil {
		return backfill{}, err
	}
	defer conn.Close(context.Background())
	began := time.Now()
	var after int64
	for {
		rows, err := conn.Query(b.ctx, `SELECT u.id, latest.role FROM users AS u
			JOIN LATERAL (SELECT g.role FROM role_grants AS g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1) AS latest ON true
			WHERE u.created_at < '2026-01-01' AND u.id > $1 ORDER BY u.id LIMIT $2`, after, b.cfg.size)
		if err != nil {
			return backfill{}, err
		}
		var ids []int64
		var roles []string
		for rows.Next() {
			var id int64
			var role string
			if err := rows.Scan(&id, &role); err != nil {
				return backfill{}, err
			}
			ids, roles = append(ids, id), append(roles, role)
		}
		if err := rows.Err(); err != nil {
			return backfill{}, err
		}
		if len(ids) == 0 {
			break
		}
		if _, err := conn.Exec(b.ctx, `UPDATE users AS u SET role = v.role
			FROM ROWS FROM (unnest($1::bigint[]), unnest($2::text[])) AS v (id, role)
			WHERE u.id = v.id AND u.role IS DISTINCT FROM v.role`, ids, roles); err != nil {
			return backfill{}, err
		}
		after = ids[len(ids)-1]
	}
	return backfill{rows: b.cfg.rows, took: time.Since(began)}, nil
}

// writer is the session of (d) and (e), named so the lock sampler counts
// the waits behind it.
func (b *bench) writer() (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(b.url(target, ""))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "bench-load backfill"
	return pgx.ConnectConfig(b.ctx, cfg)
}
