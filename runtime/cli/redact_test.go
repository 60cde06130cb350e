package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactHidesPasswordsInConnectionURLs(t *testing.T) {
	t.Parallel()
	got := redact([]string{"--execute", "--database-url", "postgres://bob:s3cret@db:5432/app?sslmode=require",
		"--database-url=postgresql://amy:pw@db/app", "postgres://nopass@db/app", "plain"})
	require.Equal(t, []string{"--execute", "--database-url", "postgres://bob:REDACTED@db:5432/app?sslmode=require",
		"--database-url=postgresql://amy:REDACTED@db/app", "postgres://nopass@db/app", "plain"}, got)
	for _, a := range got {
		require.NotContains(t, a, "s3cret")
	}
}
