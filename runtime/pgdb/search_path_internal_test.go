package pgdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

// TestStripSearchPath: every spelling the server accepts is removed, with
// its value, and every other option is kept as written.
func TestStripSearchPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"-c search_path=evil":                           "",
		"-csearch_path=evil":                            "",
		"--search_path=evil --search-path=evil":         "",
		"-c SEARCH_PATH=evil -c Search-Path=evil":       "",
		`-c search_path=evil\ ,public -c work_mem=64MB`: "-c work_mem=64MB",
		`-c application_name=a\ b  -c search_path=x`:    `-c application_name=a\ b`,
		"-c statement_timeout=5s":                       "-c statement_timeout=5s",
		"-c search_path_other=1":                        "-c search_path_other=1",
	} {
		require.Equal(t, want, stripSearchPath(in), in)
	}
}

// TestCheckSearchPathRefusesASessionItDidNotPin: a session that did not get
// the fixed search_path (say through a pooler that drops startup
// parameters) is refused, whatever the reason.
func TestCheckSearchPathRefusesASessionItDidNotPin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	err = checkSearchPath(ctx, conn)
	var r *bftype.Refusal
	require.True(t, errors.As(err, &r), "%v", err)
	require.Equal(t, bftype.ExitConnection, r.Code)
	require.Contains(t, r.Msg, `The session's search_path is "\"$user\", public", not "pg_catalog, public, pg_temp"`)
}
