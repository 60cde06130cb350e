package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	for n := range 20 {
		d := backoff(n)
		base := 100 * time.Millisecond << min(n, 7)
		require.GreaterOrEqual(t, d, base/2)
		require.LessOrEqual(t, d, base)
	}
	require.LessOrEqual(t, backoff(100), 12800*time.Millisecond)
}

func TestSizerShrinksAndGrowsWithinBounds(t *testing.T) {
	t.Parallel()
	s := &sizer{size: 1000, max: 1000, target: 200 * time.Millisecond}
	s.after(time.Second)
	require.Equal(t, 500, s.size)
	s.timedOut()
	require.Equal(t, 250, s.size)
	for range 50 {
		s.after(10 * time.Millisecond)
	}
	require.Equal(t, 1000, s.size, "grows back, never past the manifest's size")
	for range 50 {
		s.timedOut()
	}
	require.Equal(t, 1, s.size)
	s.after(150 * time.Millisecond)
	require.Equal(t, 1, s.size, "a batch near the target keeps its size")
}
