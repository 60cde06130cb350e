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
	// Within the backfill's own time (the idle time for (a)): the median of
	// the p99 of each whole second, what the application feels most of the
	// time, and the seconds in which a transaction waited over stallOver.
	steady          time.Duration
	stalls, seconds int
}

// stallOver is how long a transaction must take for its second to count as
// a stall: the application's worst moments here are commits waiting on the
// WAL flush for 100 ms and more, rare enough to move a whole run's p99.
const stallOver = 50 * time.Millisecond

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

// end stops the application after its current chunk and reads its logs;
// from and to are the backfill's time, over which the steady p99 and the
// stalls are counted.
func (a *application) end(from, to time.Time) (appStats, error) {
	close(a.stop)
	if err := <-a.done; err != nil {
		return appStats{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(a.dir, "chunk*"))
	st := appStats{aborted: a.aborted}
	var txs []tx
	for _, f := range logs {
		if err := readLog(f, a.b.cfg.limit, &st, &txs); err != nil {
			return st, err
		}
	}
	lat := make([]time.Duration, len(txs))
	seconds := map[int64][]time.Duration{}
	for i, t := range txs {
		lat[i] = t.lat
		if !t.start.Before(from) && t.start.Before(to) {
			sec := int64(t.start.Sub(from) / time.Second)
			seconds[sec] = append(seconds[sec], t.lat)
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		st.p50, st.p99, st.max = lat[len(lat)/2], quantile(lat, 0.99), lat[len(lat)-1]
	}
	var p99s []time.Duration
	for sec, ls := range seconds {
		if from.Add(time.Duration(sec+1) * time.Second).After(to) {
			continue // the last, partial second
		}
		slices.Sort(ls)
		p99s = append(p99s, quantile(ls, 0.99))
		if ls[len(ls)-1] > stallOver {
			st.stalls++
		}
	}
	st.seconds = len(p99s)
	if len(p99s) > 0 {
		slices.Sort(p99s)
		st.steady = p99s[len(p99s)/2]
	}
	return st, nil
}

// quantile is the q-th quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// tx is one logged transaction: when it was due (its end less its time and
// its schedule lag) and how long the application waited for it.
type tx struct {
	start time.Time
	lat   time.Duration
}

// readLog reads one pgbench per-transaction log: client_id transaction_no
// time script_no time_epoch time_us schedule_lag, where time is "skipped"
// (it could not start within --latency-limit) or "failed".
func readLog(path string, limit time.Duration, st *appStats, txs *[]tx) error {
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
		sec, _ := strconv.ParseInt(fs[4], 10, 64)
		usec, _ := strconv.ParseInt(fs[5], 10, 64)
		*txs = append(*txs, tx{start: time.Unix(sec, usec*1000).Add(-d), lat: d})
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
	// Seeding writes and checkpoints a million rows; for several seconds
	// after it this machine's commits stalled for 100 to 300 ms with nothing
	// else running, which would land on the scenario.
	time.Sleep(b.cfg.settle)
	app := b.startApp(fmt.Sprint(time.Now().UnixNano()))
	time.Sleep(500 * time.Millisecond) // the application's connections are up
	locks := b.sampleLocks()
	wal0, werr := b.walPosition()
	began := time.Now()
	bf, err := s.fn(b)
	ended := time.Now()
	if wal1, err := b.walPosition(); err == nil && werr == nil {
		bf.wal = wal1 - wal0
	}
	// With -keep: the backfill's time (microseconds since the epoch) next to
	// the application's per-transaction logs.
	_ = os.WriteFile(filepath.Join(app.dir, "backfill"), fmt.Appendf(nil, "%s %d %d\n", s.key, began.UnixMicro(), ended.UnixMicro()), 0o644)
	bf.waits, bf.maxWait = locks()
	st, aerr := app.end(began, ended)
	if err == nil {
		err = aerr
	}
	return bf, st, err
}

// walPosition is the server's WAL insert position in bytes.
func (b *bench) walPosition() (lsn int64, err error) {
	conn, err := b.connect(b.cfg.admin)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(b.ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn)
	return lsn, err
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
