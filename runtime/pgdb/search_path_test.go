package pgdb_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// shadowedDB is a database where an unqualified t could mean public.t or
// evil.t, and whose own default search_path is evil.
func shadowedDB(t *testing.T) string {
	t.Helper()
	db := pgtest.NewDB(t)
	name := strings.TrimPrefix(mustURL(t, db).Path, "/")
	pgtest.Exec(t, db, "CREATE TABLE public.t (v text)", "INSERT INTO public.t VALUES ('public')",
		"CREATE SCHEMA evil", "CREATE TABLE evil.t (v text)", "INSERT INTO evil.t VALUES ('evil')",
		"ALTER DATABASE "+name+" SET search_path = evil, public")
	return db
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func withOptions(t *testing.T, db, options string) string {
	t.Helper()
	u := mustURL(t, db)
	// pgx reads "+" in a URL as itself, so spaces are %20.
	u.RawQuery = "options=" + strings.ReplaceAll(url.QueryEscape(options), "+", "%20")
	return u.String()
}

// readsPublic connects as the runtime does and checks that an unqualified
// t, read and written, is public.t, even after the session made a
// temporary t.
func readsPublic(t *testing.T, db string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgdb.Connect(ctx, db, pgdb.FromFlag, "search_path test")
	require.NoError(t, err)
	defer conn.Close(ctx)
	var path, v string
	require.NoError(t, conn.QueryRow(ctx, "SHOW search_path").Scan(&path))
	require.Equal(t, pgdb.SearchPath, path)
	_, err = conn.Exec(ctx, "CREATE TEMP TABLE t (v text); INSERT INTO pg_temp.t VALUES ('temp')")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, "SELECT string_agg(v, ',') FROM t").Scan(&v))
	require.Equal(t, "public", v, "an unqualified table resolved outside public")
	_, err = conn.Exec(ctx, "UPDATE t SET v = v || ' written'")
	require.NoError(t, err)
	require.Equal(t, "public written", pgtest.Query(t, db, "SELECT string_agg(v, ',') FROM public.t"))
	require.Equal(t, "evil", pgtest.Query(t, db, "SELECT string_agg(v, ',') FROM evil.t"))
}

// TestSessionsReadPublicWhateverTheSearchPathSettings: the database's
// default, the URL's options in every spelling, and a temporary table of
// the session's own cannot point the runtime's unqualified names elsewhere.
func TestSessionsReadPublicWhateverTheSearchPathSettings(t *testing.T) {
	t.Parallel()
	for name, options := range map[string]string{
		"database default": "",
		"-c":               "-c search_path=evil",
		"-c joined":        "-csearch_path=evil,public",
		"long form":        "--search-path=evil",
		"upper case":       "-c SEARCH_PATH=evil",
		"among others":     `-c statement_timeout=5min -c search_path=evil -c application_name=a\ b`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := shadowedDB(t)
			if options != "" {
				db = withOptions(t, db, options)
			}
			readsPublic(t, db)
		})
	}
}

// TestPGOPTIONSCannotSetTheSearchPath: the libpq variable an operator's
// shell may carry is overridden as well. Not parallel: it sets PGOPTIONS.
func TestPGOPTIONSCannotSetTheSearchPath(t *testing.T) {
	db := shadowedDB(t)
	t.Setenv("PGOPTIONS", "-c search_path=evil")
	readsPublic(t, db)
}

// TestOtherOptionsAreKept: only search_path is removed from the options.
func TestOtherOptionsAreKept(t *testing.T) {
	t.Parallel()
	db := withOptions(t, pgtest.NewDB(t), `-c search_path=evil -c statement_timeout=123s -c application_name=a\ b`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgdb.Connect(ctx, db, pgdb.FromFlag, "search_path test")
	require.NoError(t, err)
	defer conn.Close(ctx)
	var timeout string
	require.NoError(t, conn.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout))
	require.Equal(t, "123s", timeout)
}
