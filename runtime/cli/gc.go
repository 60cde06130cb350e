package cli

import (
	"os"
	"runtime/debug"
)

// gcPercent and memoryLimit tune the garbage collector for a backfill
// binary. Its live heap is a page of rows, a few MiB, so the default
// (collect when the heap doubles) collects many times a second during a run;
// on a two-core database host that alone cost about half the client's CPU
// in the benchmark (docs/performance.md). Collecting at five times the live
// heap, under a soft memory limit, keeps the process well below 32 MiB.
const (
	gcPercent   = 400
	memoryLimit = 24 << 20
)

// tuneGC applies the settings unless the operator set GOGC or GOMEMLIMIT.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
