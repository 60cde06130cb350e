// Package grant_quotas gives every account on the pro plan a storage quota
// of at least 100 GB: it inserts a quota row where the account has none and
// raises a lower one, through one upsert. docs/authoring.md (section 5.4c)
// walks through it as the example of an insert.
package grant_quotas

import "github.com/runonce/backfill/backfills/grant_quotas/db"

// ProQuotaGB is the storage quota every pro account has at least.
const ProQuotaGB = 100

// Change is the quota row of one account: ID is the account's id, which is
// the quotas row's account_id.
type Change struct {
	ID        int64
	StorageGb int32
}

// Transform leaves an account whose quota is already at least ProQuotaGB
// alone (false); every other pro account gets ProQuotaGB.
func Transform(row db.ScopePageRow) (Change, bool) {
	if row.StorageGb.Valid && row.StorageGb.Int32 >= ProQuotaGB {
		return Change{}, false
	}
	return Change{ID: row.ID, StorageGb: ProQuotaGB}, true
}
