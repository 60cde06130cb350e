package bftype

import "encoding/json"

// Deleted is the one diff of a row a delete removes: a dry-run shows
// `row (not read) -> "deleted"` for it, and its count is the rows deleted.
func Deleted() FieldDiff { return FieldDiff{Field: "row", After: json.RawMessage(`"deleted"`)} }
