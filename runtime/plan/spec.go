// Package plan turns the typed queries and transform of one backfill into
// the operations the runtime performs on them: counting the scope, walking it
// in keyset pages, deciding each row's change and applying a batch.
//
// Generated wiring fills a generic Spec with closures over the backfill's own
// sqlc package; New erases the types behind the Plan interface so the rest of
// the runtime never sees a sqlc type. The dry-run and the real run share this
// one walk: the dry-run only leaves out the write.
package plan

import (
	"context"
	"encoding/json"

	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/pgdb"
)

// DBTX is the subset of pgx that sqlc-generated code calls; a pgx.Tx and a
// *pgx.Conn both satisfy it.
type DBTX = pgdb.DBTX

// Key is the type of a keyset cursor: a single ordered column.
type Key interface {
	~int16 | ~int32 | ~int64 | ~string
}

// Names are the display names of a plan's key and page parameters.
type Names struct {
	Key    string // the key column, e.g. id
	Cursor string // the page's cursor parameter, e.g. after_id
	Limit  string // the page's limit parameter, e.g. limit
}

// Spec is what generated wiring supplies for one backfill: R is the scope
// row, C the change and K the key the pages are ordered by.
type Spec[R, C any, K Key] struct {
	// Count returns the number of rows in scope, binding the run's
	// parameter values p.
	Count func(ctx context.Context, db DBTX, p bftype.ParamValues) (int64, error)
	// Page returns up to limit rows in scope with a key after the cursor, in
	// key order, binding the run's parameter values p.
	Page func(ctx context.Context, db DBTX, p bftype.ParamValues, after K, limit int) ([]R, error)
	// Key returns a row's key.
	Key func(row R) K
	// Start is a cursor before every key.
	Start K
	// Names are the snake_case names of the key and page parameters, for reports.
	Names Names
	// Tenant returns a row's tenant, or is nil when rows have none.
	Tenant func(row R) string
	// Group returns a row's report.group_by values, in the manifest's
	// order, or is nil when the manifest groups nothing.
	Group func(row R) []any
	// Transform decides a row's change; false leaves the row alone.
	Transform func(row R) (C, bool)
	// Diff lists the fields a change would set; empty means the row already
	// holds the change.
	Diff func(row R, change C) []bftype.FieldDiff
	// Apply writes a batch of changes and returns the rows it changed.
	Apply func(ctx context.Context, db DBTX, changes []C) (int64, error)
	// ApplyParams shows the parameters Apply would bind for a batch.
	ApplyParams func(changes []C) []bftype.Param
	// Current reads, for revert, the fields the backfill sets of the rows
	// with the given keys, as images keyed by field name; nil when the
	// backfill cannot be reverted.
	Current func(ctx context.Context, db DBTX, keys []K) (map[K]map[string]json.RawMessage, error)
	// FromImage builds the change that writes an image back to a row.
	FromImage func(key K, image map[string]json.RawMessage) (C, error)
	// Image is the image of what a change writes: the fields it sets, as
	// exact JSON, NULL as null.
	Image func(change C) map[string]json.RawMessage
	// ChangeKey is the key of the row a change writes.
	ChangeKey func(change C) K
	// Kind is what Apply does: bftype.KindUpdate (also when empty),
	// KindInsert or KindDelete. It decides what a before-image is and how a
	// revert puts it back.
	Kind string
	// Upsert is an insert that updates on conflict (ON CONFLICT DO UPDATE).
	Upsert bool
	// Uninsert deletes, by key, rows an insert wrote (RevertInsert); an
	// insert is reversible only with it.
	Uninsert func(ctx context.Context, db DBTX, keys []K) (int64, error)
	// Reinsert inserts whole rows back from their images (RevertDelete); a
	// delete is reversible only with it.
	Reinsert func(ctx context.Context, db DBTX, images []map[string]json.RawMessage) (int64, error)
}
