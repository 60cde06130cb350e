// Package fix_roles is the reference backfill: it sets each user's role to the
// role of their latest grant in role_grants, the source of truth, wherever the
// two differ. docs/authoring.md walks through it.
package fix_roles

import "github.com/runonce/backfill/backfills/fix_roles/db"

// Change is the write for one user. Its fields match the Apply query's
// parameters by name (ID goes to @id, Role to @role), one element per row.
type Change struct {
	ID   int64
	Role string
}

// Transform decides the change for one row in scope. It is pure: it sees only
// the row, so the dry-run and the real run decide exactly the same way.
// Returning false means "leave this row alone".
func Transform(row db.ScopePageRow) (Change, bool) {
	if row.Role == row.GrantedRole {
		return Change{}, false
	}
	return Change{ID: row.ID, Role: row.GrantedRole}, true
}
