package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// appScript is the application: read one random user and update it (a
// column the backfill does not write), in one transaction.
const appScript = `\set uid random(1, %d)
BEGIN;
SELECT role, email FROM users WHERE id = :uid;
UPDATE users SET email = email WHERE id = :uid;
END;
`

// chunk is how long one pgbench process runs: the application runs as
// back-to-back pgbench processes until the backfill ends, so that every
// process ends on its own and writes its whole log.
const chunk = 2 * time.Second

// appStats is what the application felt over a scenario.
type appStats struct {
	n, failed, late, skipped, aborted int
	p50, p99, max                     time.Duration
}

// application runs pgbench in chunks until stop is closed, then returns
// the latency of every transaction it logged. A transaction's latency is
// its time plus its schedule lag: at a fixed rate (-R), what a user of the
// application waits from when the request came.
type application struct {
	b       *bench
	dir     string
	stop    chan struct{}
	done    chan error
	mu      sync.Mutex
	aborted int
}

func (b *bench) startApp(name string) *application {
	a := &application{b: b, dir: filepath.Join(b.work, "app-"+name), stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { a.done <- a.loop() }()
	return a
}

func (a *application) loop() error {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return err
	}
	script := filepath.Join(a.dir, "app.sql")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(appScript, a.b.cfg.rows)), 0o644); err != nil {
		return err
	}
	c := a.b.cfg
	for i := 0; ; i++ {
		select {
		case <-a.stop:
			return nil
		default:
		}
		cmd := exec.CommandContext(a.b.ctx, c.pgbench, "-n", "-f", script, "-R", strconv.Itoa(c.rate), "-c", strconv.Itoa(c.clients),
			"-j", "1", "-T", strconv.Itoa(int(chunk.Seconds())), "--latency-limit", strconv.FormatFloat(float64(c.limit.Microseconds())/1000, 'f', 3, 64),
			"-l", "--log-prefix", filepath.Join(a.dir, fmt.Sprintf("chunk%04d", i)), a.b.url(target, ""))
		cmd.Dir = a.dir
		out, err := cmd.CombinedOutput()
		a.mu.Lock()
		a.aborted += strings.Count(string(out), "aborted in command")
		a.mu.Unlock()
		if err != nil && !strings.Contains(string(out), "aborted") {
			return fmt.Errorf("pgbench: %w\n%s", err, out)
		}
	}
}

// end stops the application after its current chunk and reads its logs.
func (a *application) end() (appStats, error) {
	close(a.stop)
	if err := <-a.done; err != nil {
		return appStats{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(a.dir, "chunk*"))
	st := appStats{aborted: a.aborted}
	var lat []time.Duration
	for _, f := range logs {
		if err := readLog(f, a.b.cfg.limit, &st, &lat); err != nil {
			return st, err
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		st.p50, st.p99, st.max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return st, nil
}

// readLog reads one pgbench per-transaction log: client_id transaction_no
// time script_no time_epoch time_us schedule_lag, where time is "skipped"
// (it could not start within --latency-limit) or "failed".
func readLog(path string, limit time.Duration, st *appStats, lat *[]time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		st.n++
		switch fs[2] {
		case "skipped":
			st.skipped++
			continue
		case "failed":
			st.failed++
			continue
		}
		us, _ := strconv.ParseInt(fs[2], 10, 64)
		if len(fs) >= 7 {
			lag, _ := strconv.ParseInt(fs[6], 10, 64)
			us += lag
		}
		d := time.Duration(us) * time.Microsecond
		if d > limit {
			st.late++
		}
		*lat = append(*lat, d)
	}
	return sc.Err()
}

// measure runs the application around one scenario: it starts first, the
// backfill runs, and it stops after its chunk in flight when the backfill
// ends. Lock waits are sampled meanwhile.
func (b *bench) measure(s scenario) (backfill, appStats, error) {
	if err := b.seed(); err != nil {
		return backfill{}, appStats{}, err
	}
	if s.ledger {
		if err := b.prepare(); err != nil {
			return backfill{}, appStats{}, err
		}
	}
	app := b.startApp(fmt.Sprint(time.Now().UnixNano()))
	time.Sleep(500 * time.Millisecond) // the application's connections are up
	locks := b.sampleLocks()
	bf, err := s.fn(b)
	bf.waits, bf.maxWait = locks()
	st, aerr := app.end()
	if err == nil {
		err = aerr
	}
	return bf, st, err
}

// sampleLocks samples, every 50 ms until the returned function is called,
// the sessions waiting on a lock held by the backfill's sessions (those
// named "backfill ..." and the bench's own loop and UPDATE, named
// "bench-load backfill"), and returns how many distinct waits it saw and
// the longest.
func (b *bench) sampleLocks() func() (int, time.Duration) {
	ctx, cancel := context.WithCancel(b.ctx)
	var waits = map[string]bool{}
	var longest time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := b.connect(b.url(target, ""))
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT w.pid::text || ' ' || coalesce(w.waitstart::text, ''), coalesce(extract(epoch FROM clock_timestamp() - w.waitstart), 0)::float8
				FROM pg_locks AS w
				WHERE NOT w.granted AND pg_blocking_pids(w.pid) && ARRAY(SELECT pid FROM pg_stat_activity WHERE application_name LIKE '%backfill%')`)
			if err != nil {
				continue
			}
			for rows.Next() {
				var key string
				var s float64
				if rows.Scan(&key, &s) == nil {
					waits[key] = true
					longest = max(longest, time.Duration(s*float64(time.Second)))
				}
			}
			rows.Close()
		}
	}()
	return func() (int, time.Duration) {
		cancel()
		<-done
		return len(waits), longest
	}
}
