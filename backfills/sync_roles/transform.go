// Package sync_roles is the example of a parameterised backfill: fix_roles
// with the cutoff date and the tenants as parameters, so that extending the
// cutoff of a completed run is a new approval of the same binary.
// docs/authoring.md walks through it.
package sync_roles

import "github.com/runonce/backfill/backfills/sync_roles/db"

// Change is the write for one user; its fields match Apply's parameters.
type Change struct {
	ID   int64
	Role string
}

// Transform sets the role of the latest grant where it differs. A row that
// already holds it is left alone, so a later run with a new cutoff leaves
// every row an earlier run fixed untouched.
func Transform(row db.ScopePageRow) (Change, bool) {
	if row.Role == row.GrantedRole {
		return Change{}, false
	}
	return Change{ID: row.ID, Role: row.GrantedRole}, true
}
