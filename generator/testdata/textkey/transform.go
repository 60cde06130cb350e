// Package textkey is a golden test case of the generator: a backfill keyed
// by text whose change sets a nullable column (pgtype.Text) from a string.
package textkey

import "github.com/runonce/backfill/generator/testdata/textkey/db"

// Change sets an account's note.
type Change struct {
	Email string
	Note  string
}

// Transform notes every account's plan.
func Transform(row db.ScopePageRow) (Change, bool) {
	return Change{Email: row.Email, Note: "plan:" + row.Plan}, true
}
