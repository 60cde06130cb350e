package cli

import (
	"fmt"
	"io"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/engine"
)

// renderCanary prints the canary batch of a run paused after it
// (--pause-after-canary): every key it changed with its diffs, then the
// manifest's spot checks as the rows hold them now, and what to do next.
func renderCanary(w io.Writer, b Binary, c engine.Canary) {
	key := b.Plan.Names().Key
	fmt.Fprintf(w, "\nCanary batch %d of run %d committed: scanned %s, %s %s, up to %s=%s.\n",
		c.Batch, c.RunID, plural(int64(c.Scanned), "row", "rows"), b.Apply.Past(), bftype.Thousands(c.Changed), key, c.Cursor)
	for _, s := range c.Samples {
		fmt.Fprintf(w, "  %s=%s\n", key, s.Key)
		for _, d := range s.Diffs {
			before := string(d.Before)
			if d.Before == nil {
				before = "(not read)"
			}
			fmt.Fprintf(w, "      %-16s %s -> %s\n", d.Field, before, d.After)
		}
	}
	if len(c.Spots) > 0 && c.DryRunID == 0 {
		fmt.Fprintf(w, "spot checks (report.spot_check; no saved dry-run predicts them), the row now:\n")
		for _, s := range c.Spots {
			fmt.Fprintf(w, "  %s=%s\n", key, s.Key)
			for _, line := range s.Lines() {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
	} else {
		renderSpotResults(w, key, c.Spots)
	}
	fmt.Fprintf(w, "Run %d is paused after its canary batch. Check the rows, then: backfill resume %d (go on) or backfill cancel %d (stop for good).\n",
		c.RunID, c.RunID, c.RunID)
}
