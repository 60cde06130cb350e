package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/runonce/backfill/runtime/bftype"
)

// UndoItem is one row a run changed: its key, and the fields the run set
// as they were before (Before) and as the run wrote them (After). A row an
// insert created has no Before (nil: it did not exist); a row a delete
// removed has no After, and its Before is the whole row.
type UndoItem struct {
	Key    json.RawMessage
	Before map[string]json.RawMessage
	After  map[string]json.RawMessage
}

// Skip is a row a revert leaves alone, and why.
type Skip struct {
	Key     json.RawMessage            `json:"key"`
	Why     string                     `json:"why"`
	Current map[string]json.RawMessage `json:"current,omitempty"`
}

// RevertResult is one revert batch's outcome.
type RevertResult struct {
	Restorable int    // rows that still hold what the run wrote
	Restored   int64  // rows written back (0 in a preview)
	Skipped    []Skip // rows changed since the run, or gone
}

// ErrNotReversible is returned when the backfill has no RevertRead query.
var ErrNotReversible = errors.New("this backfill has no RevertRead query, so it cannot be reverted")

func (p *typed[R, C, K]) Reversible() bool {
	if p.s.Current == nil {
		return false
	}
	switch p.s.Kind {
	case bftype.KindDelete:
		return p.s.Reinsert != nil
	case bftype.KindInsert:
		return p.s.FromImage != nil && p.s.Uninsert != nil
	default:
		return p.s.FromImage != nil
	}
}

// Revert puts rows back as they were before the run, only where a row
// still is as the run left it; others are skipped and reported:
//   - a row the run updated, and still holding what it wrote, gets its
//     before-image written back through Apply;
//   - a row the run inserted, and still holding what it wrote, is deleted
//     (RevertInsert);
//   - a row the run deleted, whose key no row holds again, is inserted back
//     whole (RevertDelete).
//
// With write false it only counts (a preview).
func (p *typed[R, C, K]) Revert(ctx context.Context, db DBTX, items []UndoItem, write bool) (*RevertResult, error) {
	if !p.Reversible() {
		return nil, ErrNotReversible
	}
	keys := make([]K, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Key, &keys[i]); err != nil {
			return nil, fmt.Errorf("error decoding undo key %s: %w", it.Key, err)
		}
	}
	current, err := p.s.Current(ctx, db, keys)
	if err != nil {
		return nil, fmt.Errorf("error reading the rows to revert: %w", err)
	}
	res := &RevertResult{}
	var changes []C
	var uninsert []K
	var reinsert []map[string]json.RawMessage
	for i, it := range items {
		now, exists := current[keys[i]]
		switch {
		case it.After == nil && exists:
			res.Skipped = append(res.Skipped, Skip{Key: it.Key, Why: "a row with this key exists again", Current: now})
		case it.After == nil:
			reinsert = append(reinsert, it.Before)
		case !exists:
			res.Skipped = append(res.Skipped, Skip{Key: it.Key, Why: "the row no longer exists"})
		case differs(now, it.After) != "":
			res.Skipped = append(res.Skipped, Skip{Key: it.Key, Why: "changed since the run (" + differs(now, it.After) + ")", Current: now})
		case it.Before == nil:
			uninsert = append(uninsert, keys[i])
		default:
			c, err := p.s.FromImage(keys[i], it.Before)
			if err != nil {
				return nil, fmt.Errorf("error building the revert of key %s: %w", it.Key, err)
			}
			changes = append(changes, c)
		}
	}
	if len(uninsert) > 0 && p.s.Uninsert == nil || len(changes) > 0 && p.s.FromImage == nil {
		return nil, fmt.Errorf("the before-images do not fit this backfill's kind of write (%s)", p.kind())
	}
	res.Restorable = len(changes) + len(uninsert) + len(reinsert)
	if !write {
		return res, nil
	}
	steps := []struct {
		n    int
		what string
		do   func() (int64, error)
	}{
		{len(changes), "writing before-images back", func() (int64, error) { return p.s.Apply(ctx, db, changes) }},
		{len(uninsert), "deleting the rows the run inserted", func() (int64, error) { return p.s.Uninsert(ctx, db, uninsert) }},
		{len(reinsert), "inserting the rows the run deleted back", func() (int64, error) { return p.s.Reinsert(ctx, db, reinsert) }},
	}
	for _, st := range steps {
		if st.n == 0 {
			continue
		}
		n, err := st.do()
		if err != nil {
			return nil, fmt.Errorf("error %s: %w", st.what, err)
		}
		res.Restored += n
	}
	return res, nil
}

func (p *typed[R, C, K]) kind() string {
	if p.s.Kind == "" {
		return bftype.KindUpdate
	}
	return p.s.Kind
}

// differs names the first field (in name order) whose current value is not
// the one the run wrote, or returns "".
func differs(now, wrote map[string]json.RawMessage) string {
	names := make([]string, 0, len(wrote))
	for f := range wrote {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if !bytes.Equal(now[f], wrote[f]) {
			return f
		}
	}
	return ""
}

// images reads the before-images of the rows changes will write, by key,
// through RevertRead, before Apply writes them:
//   - an update pairs the row's fields as they are with what the change
//     writes; a row RevertRead no longer finds (deleted since the page was
//     read) gets no image, since Apply cannot change it either;
//   - an insert does the same for a row that exists (an upsert updates it),
//     and records a row that does not exist yet with no Before, so that a
//     revert deletes it;
//   - a delete keeps the whole row as Before and has no After; a row that is
//     already gone gets no image.
func (p *typed[R, C, K]) images(ctx context.Context, db DBTX, changes []C) ([]UndoItem, error) {
	if !p.Reversible() || p.s.ChangeKey == nil || p.s.Kind != bftype.KindDelete && p.s.Image == nil {
		return nil, ErrNotReversible
	}
	if len(changes) == 0 {
		return nil, nil
	}
	keys := make([]K, len(changes))
	for i, c := range changes {
		keys[i] = p.s.ChangeKey(c)
	}
	current, err := p.s.Current(ctx, db, keys)
	if err != nil {
		return nil, fmt.Errorf("error reading the before-images: %w", err)
	}
	items := make([]UndoItem, 0, len(changes))
	for i, c := range changes {
		before, exists := current[keys[i]]
		switch {
		case p.s.Kind == bftype.KindDelete && exists:
			items = append(items, UndoItem{Key: bftype.JSON(keys[i]), Before: before})
		case p.s.Kind == bftype.KindDelete:
		case exists:
			items = append(items, UndoItem{Key: bftype.JSON(keys[i]), Before: before, After: p.s.Image(c)})
		case p.s.Kind == bftype.KindInsert:
			items = append(items, UndoItem{Key: bftype.JSON(keys[i]), After: p.s.Image(c)})
		}
	}
	return items, nil
}

// ErrUnaccounted is returned by Settle when an insert's count does not match
// its images: another session inserted a row of the batch meanwhile. The
// engine retries the batch, whose images then see that row.
var ErrUnaccounted = errors.New("another session inserted a row of this batch after its before-images were read")

// settle checks an insert's images against what Apply wrote (see
// Batch.Settle); other kinds lock their rows in RevertRead (FOR UPDATE), so
// their images are the versions Apply replaced.
func (p *typed[R, C, K]) settle(ctx context.Context, db DBTX, items []UndoItem, n int64) error {
	if p.s.Kind != bftype.KindInsert || len(items) == 0 {
		return nil
	}
	keys := make([]K, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Key, &keys[i]); err != nil {
			return fmt.Errorf("error decoding undo key %s: %w", it.Key, err)
		}
	}
	now, err := p.s.Current(ctx, db, keys)
	if err != nil {
		return fmt.Errorf("error reading the rows the batch inserted: %w", err)
	}
	var want int64
	for i, it := range items {
		cur, exists := now[keys[i]]
		switch {
		case it.Before == nil && exists:
			want++ // Apply inserted it, or another session did
		case it.Before != nil && p.s.Upsert && differs(cur, it.Before) != "":
			want++ // the upsert updated it (RevertRead locked it, so no one else did)
		}
	}
	if n != want {
		return fmt.Errorf("%w: Apply wrote %d rows where its images account for %d", ErrUnaccounted, n, want)
	}
	return nil
}
