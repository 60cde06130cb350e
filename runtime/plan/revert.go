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
// as they were before (Before) and as the run wrote them (After).
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

func (p *typed[R, C, K]) Reversible() bool { return p.s.Current != nil && p.s.FromImage != nil }

// Revert reads the rows of items, and writes each before-image back only
// where the row still holds exactly what the run wrote; others are skipped
// and reported. With write false it only counts (a preview).
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
	for i, it := range items {
		now, ok := current[keys[i]]
		if !ok {
			res.Skipped = append(res.Skipped, Skip{Key: it.Key, Why: "the row no longer exists"})
			continue
		}
		if field := differs(now, it.After); field != "" {
			res.Skipped = append(res.Skipped, Skip{Key: it.Key, Why: "changed since the run (" + field + ")", Current: now})
			continue
		}
		c, err := p.s.FromImage(keys[i], it.Before)
		if err != nil {
			return nil, fmt.Errorf("error building the revert of key %s: %w", it.Key, err)
		}
		changes = append(changes, c)
	}
	res.Restorable = len(changes)
	if write && len(changes) > 0 {
		if res.Restored, err = p.s.Apply(ctx, db, changes); err != nil {
			return nil, fmt.Errorf("error writing before-images back: %w", err)
		}
	}
	return res, nil
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
// through RevertRead. A row RevertRead no longer finds (deleted since the
// page was read) gets no image: Apply cannot change it either.
func (p *typed[R, C, K]) images(ctx context.Context, db DBTX, changes []C) ([]UndoItem, error) {
	if !p.Reversible() || p.s.Image == nil || p.s.ChangeKey == nil {
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
		before, ok := current[keys[i]]
		if !ok {
			continue
		}
		items = append(items, UndoItem{Key: bftype.JSON(keys[i]), Before: before, After: p.s.Image(c)})
	}
	return items, nil
}
