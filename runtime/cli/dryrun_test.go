package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
	"github.com/runonce/backfill/runtime/plan"
)

type item struct {
	ID   int64
	Role string
}

// probe records what the plan's queries saw, for assertions.
type probe struct {
	mu        sync.Mutex
	limits    []int  // LIMIT of every page query
	walkPID   int    // backend of the page queries
	countPID  int    // backend of the scope count
	jit       string // the jit setting the page queries ran with
	firstPage func() // runs once, before the first page is read
	// beforeCount runs before the count; it may wait for firstPage.
	beforeCount func(context.Context) error
}

// itemsPlan is a plan over table items: every row whose role is not
// 'admin' changes to 'admin'.
func itemsPlan(pr *probe) plan.Plan {
	var once sync.Once
	return plan.New(plan.Spec[item, item, int64]{
		Count: func(ctx context.Context, db plan.DBTX, _ bftype.ParamValues) (int64, error) {
			if pr.beforeCount != nil {
				if err := pr.beforeCount(ctx); err != nil {
					return 0, err
				}
			}
			var n int64
			var pid int
			err := db.QueryRow(ctx, "SELECT count(*), pg_backend_pid() FROM items").Scan(&n, &pid)
			pr.mu.Lock()
			pr.countPID = pid
			pr.mu.Unlock()
			return n, err
		},
		Page: func(ctx context.Context, db plan.DBTX, _ bftype.ParamValues, after int64, limit int) ([]item, error) {
			if pr.firstPage != nil {
				once.Do(pr.firstPage)
			}
			var pid int
			var jit string
			if err := db.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('jit')").Scan(&pid, &jit); err != nil {
				return nil, err
			}
			pr.mu.Lock()
			pr.limits = append(pr.limits, limit)
			pr.walkPID, pr.jit = pid, jit
			pr.mu.Unlock()
			rows, err := db.Query(ctx, "SELECT id, role FROM items WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowToStructByPos[item])
		},
		Key:   func(r item) int64 { return r.ID },
		Start: 0,
		Names: plan.Names{Key: "id", Cursor: "after_id", Limit: "limit"},
		Transform: func(r item) (item, bool) {
			return item{ID: r.ID, Role: "admin"}, true
		},
		Diff: func(r item, c item) []bftype.FieldDiff {
			if r.Role == c.Role {
				return nil
			}
			return []bftype.FieldDiff{bftype.Diff("role", r.Role, c.Role)}
		},
		ApplyParams: func(cs []item) []bftype.Param {
			ids := make([]int64, len(cs))
			for i, c := range cs {
				ids[i] = c.ID
			}
			return []bftype.Param{bftype.ParamOf("id", ids)}
		},
	})
}

// itemsDB makes table items with n rows; every third is already 'admin'.
func itemsDB(t *testing.T, n int) string {
	t.Helper()
	db := pgtest.NewDB(t)
	pgtest.Exec(t, db, "CREATE TABLE items (id bigint PRIMARY KEY, role text NOT NULL)",
		"INSERT INTO items SELECT i, CASE WHEN i % 3 = 0 THEN 'admin' ELSE 'member' END FROM generate_series(1, "+strconv.Itoa(n)+") i")
	return db
}

func testManifest(batch int) *bftype.Manifest {
	return &bftype.Manifest{Batch: bftype.Batch{Size: batch, StatementTimeout: "30s", LockTimeout: "2s"}}
}

func runDryRun(t *testing.T, db string, pr *probe, batch, samples int) *bftype.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := dryRun(ctx, Binary{Name: "items", Plan: itemsPlan(pr)}, testManifest(batch), dryRunFlags{url: db, samples: samples})
	require.NoError(t, err)
	return rep
}

// The dry-run reads pages larger than the manifest's batches, yet reports
// exactly what a run in batches would: the counts, the batch count and the
// first batch's Apply parameters.
func TestDryRunReadsLargerPagesWithExactCounts(t *testing.T) {
	t.Parallel()
	const rows, batch = 12345, 500
	db := itemsDB(t, rows)
	pr := &probe{}
	rep := runDryRun(t, db, pr, batch, 2)

	require.Equal(t, bftype.Counts{Scanned: rows, Matched: rows, WillChange: rows - rows/3, Unchanged: rows / 3}, rep.Counts)
	require.Equal(t, int64(25), rep.Batches, "batches of 500 rows a real run reads")
	require.Equal(t, 5000, dryRunPage(batch))
	require.Equal(t, []int{5000, 5000, 5000}, pr.limits, "three pages of 5000 rows, not 25 of 500")
	require.Equal(t, "off", pr.jit)
	require.Len(t, rep.Samples, 2)
	require.JSONEq(t, `1`, string(rep.Samples[0].Key))
	require.JSONEq(t, `2`, string(rep.Samples[1].Key))
	// The first batch is rows 1..500: its 334 rows not yet 'admin', not the
	// 3,334 of the first page.
	require.Len(t, rep.FirstApply, 1)
	var ids []int64
	require.NoError(t, json.Unmarshal(rep.FirstApply[0].Value, &ids))
	require.Len(t, ids, 334)
	require.Equal(t, int64(500), ids[len(ids)-1])
	require.Equal(t, batch, rep.BatchSize, "the report shows the LIMIT a real run binds")
}

func TestDryRunPageSize(t *testing.T) {
	t.Parallel()
	for batch, want := range map[int]int{1: 10, 50: 500, 500: 5000, 1000: 5000, 5000: 5000, 20000: 20000} {
		require.Equal(t, want, dryRunPage(batch), "batch %d", batch)
	}
}

// The count runs on a second connection, beside the walk, and still counts
// the walk's snapshot: rows committed after the walk began are in neither.
func TestDryRunCountSharesTheWalksSnapshot(t *testing.T) {
	t.Parallel()
	db := itemsDB(t, 1000)
	inserted := make(chan struct{})
	pr := &probe{
		firstPage: func() {
			pgtest.Exec(t, db, "INSERT INTO items SELECT i, 'member' FROM generate_series(1001, 1100) i")
			close(inserted)
		},
		beforeCount: func(ctx context.Context) error {
			select {
			case <-inserted:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	rep := runDryRun(t, db, pr, 100, 0)
	require.Equal(t, int64(1000), rep.Counts.Scanned)
	require.Equal(t, int64(1000), rep.Counts.Matched, "the count saw rows committed after the walk's snapshot")
	require.NotZero(t, pr.countPID)
	require.NotEqual(t, pr.walkPID, pr.countPID, "the count ran on the walk's connection")
}

// When the server allows no second connection, the count runs in the walk's
// transaction after the walk: slower, the same numbers.
func TestDryRunCountsInTheWalkWhenNoSecondConnection(t *testing.T) {
	t.Parallel()
	login := "bft_one_" + randomSuffix(t)
	admin := pgtest.AdminURL()
	pgtest.Exec(t, admin, "CREATE ROLE "+login+" LOGIN CONNECTION LIMIT 1")
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP ROLE IF EXISTS "+login) })
	db := itemsDB(t, 1000)
	pgtest.Exec(t, db, "GRANT SELECT ON items TO "+login)
	u, err := url.Parse(db)
	require.NoError(t, err)
	u.User = url.User(login)

	pr := &probe{}
	rep := runDryRun(t, u.String(), pr, 100, 0)
	require.Equal(t, bftype.Counts{Scanned: 1000, Matched: 1000, WillChange: 667, Unchanged: 333}, rep.Counts)
	require.Equal(t, pr.walkPID, pr.countPID)
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// itemsStatements are the statements of the items plan as a binary embeds them.
func itemsStatements(apply string) []bftype.Statement {
	return []bftype.Statement{
		{Role: "count", Name: "CountScope", SQL: "SELECT count(*) FROM items"},
		{Role: "page", Name: "ScopePage", SQL: "SELECT id, role FROM items WHERE id > $1 ORDER BY id LIMIT $2"},
		{Role: "apply", Name: "Apply", SQL: apply},
	}
}

// Every statement is prepared in the dry-run's read-only transaction: a
// correct UPDATE prepares there, and a misspelt column in Apply and a check
// on a missing table both stop the dry-run before it reads a page, each
// named with PostgreSQL's message and SQLSTATE, and the next step is to fix
// the queries (they never matched), not that the schema changed.
func TestDryRunPreparesEveryStatementBeforeReading(t *testing.T) {
	t.Parallel()
	db := itemsDB(t, 100)
	good := "UPDATE items SET role = v.role FROM unnest($1::bigint[], $2::text[]) AS v(id, role) WHERE items.id = v.id AND items.role IS DISTINCT FROM v.role"
	m := testManifest(10)
	m.Target.Canary = &bftype.Canary{Query: "SELECT 'test'", Equals: "test"}
	m.Checks = []bftype.Check{{Name: "no_null_roles", Query: "SELECT count(*) FROM items WHERE role IS NULL;", Equals: "0"}}
	m.Health = &bftype.Health{Query: "SELECT count(*) FROM pg_stat_activity", Max: 1000}
	ctx := context.Background()

	pr := &probe{}
	rep, err := dryRun(ctx, Binary{Name: "items", Plan: itemsPlan(pr), Statements: itemsStatements(good)}, m, dryRunFlags{url: db})
	require.NoError(t, err)
	require.Equal(t, []string{"CountScope", "ScopePage", "Apply", "target.canary.query", "check no_null_roles", "health.query"}, rep.Prepared)
	require.Equal(t, int64(100), rep.Counts.Scanned)

	bad := *m
	bad.Checks = []bftype.Check{{Name: "no_null_roles", Query: "SELECT count(*) FROM itemz WHERE role IS NULL", Equals: "0"}}
	pr = &probe{}
	_, err = dryRun(ctx, Binary{Name: "items", Plan: itemsPlan(pr), Statements: itemsStatements(strings.Replace(good, "SET role", "SET rol", 1))}, &bad, dryRunFlags{url: db})
	var refusal *bftype.Refusal
	require.ErrorAs(t, err, &refusal)
	require.Equal(t, bftype.ReasonSchema, refusal.Reason)
	require.Equal(t, bftype.ExitSchema, refusal.Code)
	require.Equal(t, `2 statements do not prepare against the live schema: `+
		`Apply: column "rol" of relation "items" does not exist (SQLSTATE 42703); `+
		`check no_null_roles: relation "itemz" does not exist (SQLSTATE 42P01).`, refusal.Msg)
	require.Contains(t, refusal.Next, "Fix the queries named, in queries/items/ (then make sqlc) and in backfill.yaml, and rebuild")
	require.NotContains(t, refusal.Next, "schema changed")
	require.Empty(t, pr.limits, "the dry-run read a page after a statement failed to prepare")
}

// A dry-run of a database other than target.database says so in the report.
func TestDryRunOfAnotherDatabaseIsMarkedOffTarget(t *testing.T) {
	t.Parallel()
	db := itemsDB(t, 10)
	name := pgtest.Query(t, db, "SELECT current_database()")
	for target, off := range map[string]bool{name: false, "app": true} {
		m := testManifest(10)
		m.Target.Database = target
		rep, err := dryRun(context.Background(), Binary{Name: "items", Plan: itemsPlan(&probe{})}, m, dryRunFlags{url: db})
		require.NoError(t, err)
		require.Equal(t, off, rep.OffTarget, "target.database %s, read %s", target, name)
		require.Equal(t, target, rep.TargetDatabase)
		var out strings.Builder
		render(&out, Binary{Name: "items"}, m, rep)
		if off {
			require.Contains(t, out.String(), `NOT THE TARGET: this dry-run read database "`+name+`", but target.database is "app".`)
		} else {
			require.NotContains(t, out.String(), "NOT THE TARGET")
		}
	}
}
