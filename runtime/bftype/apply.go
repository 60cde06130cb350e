package bftype

// The kinds of Apply statement the generator recognises.
const (
	KindUpdate = "update" // UPDATE ... : rows the run changes
	KindInsert = "insert" // INSERT ... (with Upsert, INSERT ... ON CONFLICT DO UPDATE)
	KindDelete = "delete" // DELETE ... : rows the run removes
)

// Apply is what the Apply statement does, as the generator read it from the
// SQL: its kind, whether an insert updates on conflict, and the table it
// writes. Every count a reviewer or operator reads is worded from it.
type Apply struct {
	Kind   string `json:"kind"`             // update, insert or delete
	Upsert bool   `json:"upsert,omitempty"` // INSERT ... ON CONFLICT ... DO UPDATE
	Table  string `json:"table"`            // the table written, as the SQL names it
}
