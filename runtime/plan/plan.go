package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/runonce/backfill/runtime/bftype"
)

// Plan is a backfill's queries and transform with their types erased.
type Plan interface {
	// Count returns the number of rows in scope.
	Count(ctx context.Context, db DBTX) (int64, error)
	// Walk visits the scope in keyset pages of size rows, starting after the
	// cursor (nil: from the start), and stops early when visit returns an error.
	Walk(ctx context.Context, db DBTX, after json.RawMessage, size int, visit func(*Batch) error) error
	// Next reads the one page after the cursor; it returns nil at the end.
	Next(ctx context.Context, db DBTX, after json.RawMessage, size int) (*Batch, error)
	// NextIn is Next within a lane: only rows with a key up to until (JSON;
	// nil or null: no bound). The batch is Last when the page ran past until
	// or came back short; it returns nil when no row of the page is in the
	// lane. With an integer key it refuses a page whose keys do not ascend
	// strictly from the cursor, since lanes rely on key order.
	NextIn(ctx context.Context, db DBTX, after, until json.RawMessage, size int) (*Batch, error)
	// Splittable reports whether the key is an integer, so the scope can be
	// cut into lanes at keys that Go and the server order the same way.
	Splittable() bool
	// Scan reads the whole scope, as a dry-run does, and tallies what a run
	// would change without keeping more than a page and opts.Samples changes.
	Scan(ctx context.Context, db DBTX, opts ScanOpts) (*Tally, error)
	// Names are the display names of the key and page parameters.
	Names() Names
	// Start is the cursor before every key, as JSON.
	Start() json.RawMessage
	// Reversible reports whether the backfill can be reverted.
	Reversible() bool
	// Read reads, through RevertRead, the fields the backfill sets of the
	// rows with the given keys (JSON), keyed by the key's JSON text; it
	// returns ErrNoRead when the backfill has no RevertRead query.
	Read(ctx context.Context, db DBTX, keys []json.RawMessage) (map[string]map[string]json.RawMessage, error)
	// Revert writes before-images back where rows still hold what a run wrote.
	Revert(ctx context.Context, db DBTX, items []UndoItem, write bool) (*RevertResult, error)
	// WithParams is the plan with its queries binding the parameter values v
	// (resolved and canonical); a plan without them binds none.
	WithParams(v bftype.ParamValues) Plan
	// Params are the parameter values the plan binds.
	Params() bftype.ParamValues
}

// Batch is one keyset page with its planned changes.
type Batch struct {
	Scanned int             // rows the page returned
	Changes int             // rows with a change to apply
	Samples []bftype.Sample // the changes by key, in key order
	Cursor  json.RawMessage // the key of the page's last row
	Last    bool            // fewer rows than asked for: the scope ends here
	Tenants []string        // the tenant of every row read, when the rows have one
	// Groups counts the changes by report.group_by group (bftype.GroupLabel);
	// nil when the manifest groups nothing.
	Groups   map[string]int64
	ReadTime time.Duration // how long the page query took
	apply    func(context.Context, DBTX) (int64, error)
	params   func() []bftype.Param
	key      func(i int) json.RawMessage
	images   func(context.Context, DBTX) ([]UndoItem, error)
	settle   func(context.Context, DBTX, []UndoItem, int64) error
}

// Settle checks, after Apply wrote n rows and in the same transaction, that
// the images read before it still say what it did. For an insert, a row the
// images record as absent must have been inserted by Apply, not by another
// session after the images were read (which ON CONFLICT skipped or
// updated): a revert would delete that session's row. When Apply's count
// cannot be accounted for, it returns a *pgdb.Conflict-like retryable error
// and the batch is rolled back and retried, when that row is visible.
func (b *Batch) Settle(ctx context.Context, db DBTX, items []UndoItem, n int64) error {
	return b.settle(ctx, db, items, n)
}

// Key is the key, as JSON, of the i-th row read (the row of Tenants[i]).
func (b *Batch) Key(i int) json.RawMessage { return b.key(i) }

// Apply writes the batch's changes through db and returns the rows changed.
func (b *Batch) Apply(ctx context.Context, db DBTX) (int64, error) { return b.apply(ctx, db) }

// Images reads, through RevertRead and in the batch's transaction before
// Apply writes, the before-image of every row the batch will change, and pairs
// it with the after-image the change writes. The before-image is the column as
// the table holds it (NULL stays null), never the scope row's reading of it,
// so a revert writes back exactly what was there.
func (b *Batch) Images(ctx context.Context, db DBTX) ([]UndoItem, error) { return b.images(ctx, db) }

// Params shows the parameters Apply binds.
func (b *Batch) Params() []bftype.Param { return b.params() }

// New erases a Spec's types.
func New[R, C any, K Key](s Spec[R, C, K]) Plan { return &typed[R, C, K]{s: s} }

type typed[R, C any, K Key] struct {
	s Spec[R, C, K]
	v bftype.ParamValues
}

func (p *typed[R, C, K]) WithParams(v bftype.ParamValues) Plan { return &typed[R, C, K]{s: p.s, v: v} }

func (p *typed[R, C, K]) Params() bftype.ParamValues { return p.v }

func (p *typed[R, C, K]) Names() Names { return p.s.Names }

func (p *typed[R, C, K]) Start() json.RawMessage {
	b, _ := json.Marshal(p.s.Start)
	return b
}

func (p *typed[R, C, K]) Count(ctx context.Context, db DBTX) (int64, error) {
	n, err := p.s.Count(ctx, db, p.v)
	if err != nil {
		return 0, fmt.Errorf("error counting rows in scope: %w", err)
	}
	return n, nil
}

func (p *typed[R, C, K]) Walk(ctx context.Context, db DBTX, after json.RawMessage, size int, visit func(*Batch) error) error {
	for {
		b, err := p.Next(ctx, db, after, size)
		if err != nil || b == nil {
			return err
		}
		if err := visit(b); err != nil {
			return err
		}
		if b.Last {
			return nil
		}
		after = b.Cursor
	}
}

func (p *typed[R, C, K]) Next(ctx context.Context, db DBTX, after json.RawMessage, size int) (*Batch, error) {
	return p.NextIn(ctx, db, after, nil, size)
}

func (p *typed[R, C, K]) NextIn(ctx context.Context, db DBTX, after, until json.RawMessage, size int) (*Batch, error) {
	cursor, err := p.decodeKey(after)
	if err != nil {
		return nil, err
	}
	bounded := len(until) > 0 && string(until) != "null"
	var bound K
	if bounded {
		if bound, err = p.decodeKey(until); err != nil {
			return nil, err
		}
	}
	rows, read, err := p.page(ctx, db, cursor, size)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	last := len(rows) < size
	if p.Splittable() {
		prev := cursor
		for i, row := range rows {
			if k := p.s.Key(row); k <= prev && (i > 0 || len(after) > 0 && string(after) != "null") {
				return nil, fmt.Errorf("the scope page after key %v returned key %v after key %v: ScopePage must return rows in ascending key order after its cursor (ORDER BY the key)", cursor, k, prev)
			}
			prev = p.s.Key(row)
		}
	}
	if bounded {
		n := len(rows)
		for i, row := range rows {
			if p.s.Key(row) > bound {
				n = i
				break
			}
		}
		if n == 0 {
			return nil, nil
		}
		if n < len(rows) {
			rows, last = rows[:n], true
		}
	}
	b := p.batch(rows, read)
	b.Last = last
	return b, nil
}

// decodeKey decodes a JSON key; nil or null is the cursor before every key.
func (p *typed[R, C, K]) decodeKey(raw json.RawMessage) (K, error) {
	k := p.s.Start
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &k); err != nil {
			return k, fmt.Errorf("error decoding cursor %s: %w", raw, err)
		}
	}
	return k, nil
}

func (p *typed[R, C, K]) Splittable() bool {
	switch reflect.TypeFor[K]().Kind() {
	case reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// page runs the scope's page query: up to size rows after the cursor.
func (p *typed[R, C, K]) page(ctx context.Context, db DBTX, cursor K, size int) ([]R, time.Duration, error) {
	began := time.Now()
	rows, err := p.s.Page(ctx, db, p.v, cursor, size)
	if err != nil {
		return nil, 0, fmt.Errorf("error reading page after key %v: %w", cursor, err)
	}
	return rows, time.Since(began), nil
}

// decide is the one place a row's change is decided, for a real run and a
// dry-run alike: the transform's change and the fields it would set, or
// false when the transform leaves the row alone or the row already holds
// the change.
func (p *typed[R, C, K]) decide(row R) (C, []bftype.FieldDiff, bool) {
	change, ok := p.s.Transform(row)
	if !ok {
		return change, nil, false
	}
	diffs := p.s.Diff(row, change)
	return change, diffs, len(diffs) > 0
}

func (p *typed[R, C, K]) batch(rows []R, read time.Duration) *Batch {
	var changes []C
	var samples []bftype.Sample
	var groups map[string]int64
	if p.s.Group != nil {
		groups = map[string]int64{}
	}
	for _, row := range rows {
		change, diffs, ok := p.decide(row)
		if !ok {
			continue
		}
		if groups != nil {
			groups[bftype.GroupLabel(p.s.Group(row))]++
		}
		changes = append(changes, change)
		samples = append(samples, bftype.SampleOf(p.s.Key(row), diffs))
	}
	last, _ := json.Marshal(p.s.Key(rows[len(rows)-1]))
	var tenants []string
	if p.s.Tenant != nil {
		tenants = make([]string, len(rows))
		for i, row := range rows {
			tenants[i] = p.s.Tenant(row)
		}
	}
	return &Batch{
		Tenants:  tenants,
		Groups:   groups,
		Scanned:  len(rows),
		Changes:  len(changes),
		Samples:  samples,
		Cursor:   last,
		ReadTime: read,
		apply: func(ctx context.Context, db DBTX) (int64, error) {
			if len(changes) == 0 {
				return 0, nil
			}
			return p.s.Apply(ctx, db, changes)
		},
		params: func() []bftype.Param { return p.s.ApplyParams(changes) },
		key:    func(i int) json.RawMessage { return bftype.JSON(p.s.Key(rows[i])) },
		images: func(ctx context.Context, db DBTX) ([]UndoItem, error) { return p.images(ctx, db, changes) },
		settle: p.settle,
	}
}
