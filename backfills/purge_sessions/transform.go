// Package purge_sessions deletes the sessions that expired before
// 2026-01-01. docs/authoring.md (section 5.4d) walks through it as the
// example of a delete.
package purge_sessions

import "github.com/runonce/backfill/backfills/purge_sessions/db"

// Change is a session to delete: a delete needs only the key.
type Change struct {
	ID int64
}

// Transform deletes every session in scope (ScopePage reads only expired ones).
func Transform(row db.ScopePageRow) (Change, bool) {
	return Change{ID: row.ID}, true
}
