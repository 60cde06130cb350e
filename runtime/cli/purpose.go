package cli

import (
	"context"
	"fmt"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/ledger"
)

// Purposes says in words what each of runs is for: "execute" or "revert of
// run 5", and on an execution that a revert wrote back, "execute, reverted by
// run 7" (or "execute, revert run 7 interrupted" while one is unfinished).
// A binary's status and bin/backfill's runs and show print it, so a reader
// of any of them sees the same.
func Purposes(ctx context.Context, q ledger.Querier, runs []ledger.Run) (map[int64]string, error) {
	out := make(map[int64]string, len(runs))
	var purposes []string
	for _, r := range runs {
		out[r.ID] = approval.DescribePurpose(r.Purpose)
		if r.Purpose == approval.PurposeExecute {
			purposes = append(purposes, approval.RevertPurpose(r.ID))
		}
	}
	if len(purposes) == 0 {
		return out, nil
	}
	reverts, err := ledger.RunsFor(ctx, q, purposes)
	if err != nil {
		return nil, err
	}
	note, done := map[int64]string{}, map[int64]bool{}
	for _, rv := range reverts { // oldest first: the latest unfinished revert speaks, a completed one wins
		target, _ := approval.RevertedRun(rv.Purpose)
		switch {
		case rv.Status == ledger.StatusRefused || done[target]:
		case rv.Status == ledger.StatusCompleted:
			note[target], done[target] = fmt.Sprintf("reverted by run %d", rv.ID), true
		default:
			note[target] = fmt.Sprintf("revert run %d %s", rv.ID, rv.Status)
		}
	}
	for id, n := range note {
		out[id] += ", " + n
	}
	return out, nil
}
