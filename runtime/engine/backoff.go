package engine

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is the capped, jittered exponential delay before retry n (from 0).
func backoff(n int) time.Duration {
	base := 100 * time.Millisecond << min(n, 7) // 100ms .. 12.8s
	half := base / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// sleep waits d unless ctx ends or graceful closes first; it reports
// whether the full time passed.
func sleep(ctx context.Context, graceful <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-graceful:
		return false
	}
}

// sizer adapts the batch size toward a target duration, within [1, max].
type sizer struct {
	size, max int
	target    time.Duration
}

// after adjusts the size to a committed batch's duration.
func (s *sizer) after(d time.Duration) {
	switch {
	case d > 2*s.target:
		s.size = max(1, s.size/2)
	case d < s.target/2:
		s.size = min(s.max, s.size+max(1, s.size/4))
	}
}

// timedOut halves the size after a lock or statement timeout.
func (s *sizer) timedOut() { s.size = max(1, s.size/2) }
