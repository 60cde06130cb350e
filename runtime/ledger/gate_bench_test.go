package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// BenchmarkBatch measures one 1,000-row batch of a reversible backfill
// (page, RevertRead, Apply, record with images, commit) through the
// ledger's functions ("gated"), and the same statements sent directly by a
// login that holds the writes, with the rows the binary recorded itself
// before version 6 ("direct"). Beside the time per batch it reports the
// server's CPU time per batch, in all and by step (read from /proc, so only
// with the server on this machine), which moves less than wall time when
// other work shares the machine. At most 899 batches (-benchtime 800x):
//
//	tools/withpg.sh --try-local TEST_DATABASE_URL -- go test -run '^$' -bench Batch -benchtime 800x -count 3 ./runtime/ledger/
func BenchmarkBatch(b *testing.B) {
	const size = 1000
	ctx := context.Background()
	for _, gated := range []bool{false, true} {
		name := "direct"
		if gated {
			name = "gated"
		}
		b.Run(name, func(b *testing.B) {
			d := newLedgerDB(b)
			pgtest.Exec(b, d.url, "INSERT INTO t SELECT g, 'old' FROM generate_series(11, 900000) g", "ANALYZE t",
				"CREATE TABLE bench_runs (id bigint PRIMARY KEY, cursor text, scanned bigint)",
				"CREATE TABLE bench_batches (run_id bigint, batch bigserial, cursor text, scanned bigint, changed bigint)",
				"CREATE TABLE bench_undo (run_id bigint, batch bigserial, items json)")
			conn, run := d.started()
			if !gated {
				conn = d.admin
				pgtest.Exec(b, d.url, fmt.Sprintf("INSERT INTO bench_runs VALUES (%d, NULL, 0)", run.ID))
			}
			var prepared *Prepared
			if gated {
				var err error
				prepared, err = PrepareRun(ctx, conn, run.ID, testStatements())
				require.NoError(b, err)
			}
			var after int64
			cpu0 := backendCPU(b, conn)
			var phase [5]time.Duration
			mark := cpu0
			lap := func(i int) {
				now := backendCPU(b, conn)
				phase[i] += now - mark
				mark = now
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := conn.Begin(ctx)
				require.NoError(b, err)
				g := Gate{Tx: tx, RunID: run.ID, Prepared: prepared}
				query := func(sql string, args ...any) (pgx.Rows, error) {
					if gated {
						return g.Query(ctx, sql, args...)
					}
					return tx.Query(ctx, sql, args...)
				}
				rows, err := query(testPage, after, int32(size))
				require.NoError(b, err)
				keys := make([]int64, 0, size)
				for rows.Next() {
					var id int64
					var v *string
					require.NoError(b, rows.Scan(&id, &v))
					keys = append(keys, id)
				}
				require.NoError(b, rows.Err())
				require.NotEmpty(b, keys, "the table has 900,000 rows: at most 899 batches")
				lap(0)
				rows, err = query(testRead, keys)
				require.NoError(b, err)
				var items []string
				var undoKeys []string
				for rows.Next() {
					var id int64
					var v *string
					require.NoError(b, rows.Scan(&id, &v))
					items = append(items, fmt.Sprintf(`{"key":%d,"values":{"v":%q}}`, id, *v))
					undoKeys = append(undoKeys, strconv.FormatInt(id, 10))
				}
				require.NoError(b, rows.Err())
				lap(1)
				vals := make([]string, len(keys))
				for j := range vals {
					vals[j] = "new"
				}
				if gated {
					_, err = g.Exec(ctx, testApply, keys, vals)
				} else {
					_, err = tx.Exec(ctx, testApply, keys, vals)
				}
				require.NoError(b, err)
				lap(2)
				from := json.RawMessage(nil)
				if after > 0 {
					from = json.RawMessage(strconv.FormatInt(after, 10))
				}
				last := keys[len(keys)-1]
				undo := []byte("[" + strings.Join(items, ",") + "]")
				if gated {
					_, _, err = RecordBatch(ctx, tx, BatchRecord{RunID: run.ID, From: from, Cursor: json.RawMessage(strconv.FormatInt(last, 10)),
						Scanned: len(keys), Intended: len(keys), Size: size, Attempts: 1, Undo: undo, UndoKeys: undoKeys})
				} else {
					// What the binary wrote before version 6.
					_, err = tx.Exec(ctx, `WITH b AS (INSERT INTO bench_batches (run_id, cursor, scanned, changed) VALUES ($1, $2, $3, $3) RETURNING 1),
						u AS (INSERT INTO bench_undo (run_id, items) VALUES ($1, $4::json) RETURNING 1)
						UPDATE bench_runs SET cursor = $2, scanned = scanned + $3 WHERE id = $1`, run.ID, strconv.FormatInt(last, 10), len(keys), string(undo))
					if err == nil {
						_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock(1)")
					}
					if err == nil {
						_, err = tx.Exec(ctx, "INSERT INTO backfill.audit_events (run_id, kind, payload) VALUES ($1, 'batch', '{}')", run.ID)
					}
				}
				require.NoError(b, err)
				lap(3)
				require.NoError(b, tx.Commit(ctx))
				lap(4)
				after = last
			}
			b.StopTimer()
			for i, n := range []string{"page", "read", "apply", "record", "commit"} {
				b.ReportMetric(float64(phase[i].Microseconds())/float64(b.N)/1000, n+"-cpu-ms")
			}
			b.ReportMetric(float64((backendCPU(b, conn)-cpu0).Microseconds())/float64(b.N)/1000, "server-cpu-ms/batch")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/batch")
		})
	}
}

// backendCPU is the user and system CPU time of conn's server process so
// far, when the server runs on this machine (0 otherwise).
func backendCPU(b *testing.B, conn *pgx.Conn) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", conn.PgConn().PID()))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
