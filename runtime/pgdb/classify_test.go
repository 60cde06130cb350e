package pgdb

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("error applying batch: %w", &pgconn.PgError{Code: code}) }
	for err, want := range map[error]Class{
		pg("40001"): Retry, pg("40P01"): Retry, pg("55P03"): Retry, pg("57014"): Retry,
		pg("57P01"): Reconnect, pg("08006"): Reconnect, pg("08003"): Reconnect,
		pg("42501"): Permission,
		pg("23505"): Stop, pg("23514"): Stop, pg("22001"): Stop, pg("42703"): Stop, pg("XX000"): Stop,
		io.ErrUnexpectedEOF: Reconnect, errors.New("conn closed"): Reconnect,
		errors.New("something else"): Stop,
	} {
		require.Equal(t, want, Classify(err), "%v", err)
	}
	require.True(t, IsTimeout(pg("55P03")))
	require.False(t, IsTimeout(pg("40001")))
}
