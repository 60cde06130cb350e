package bftype

import (
	"strconv"
)

// The kinds of Apply statement the generator recognises.
const (
	KindUpdate = "update" // UPDATE ... : rows the run changes
	KindInsert = "insert" // INSERT ... (with Upsert, INSERT ... ON CONFLICT DO UPDATE)
	KindDelete = "delete" // DELETE ... : rows the run removes
	// KindRevert words the counts of a revert run: the rows it restored,
	// whatever statement restored each (Apply, RevertInsert, RevertDelete).
	KindRevert = "revert"
)

// Apply is what the Apply statement does, as the generator read it from the
// SQL: its kind, whether an insert updates on conflict, and the table it
// writes. Every count a reviewer or operator reads is worded from it.
//
// The zero Apply words counts as an update of no named table: reports,
// archives and binaries made before the kind was recorded wrote only
// updates, so an absent kind still reads truthfully.
type Apply struct {
	Kind   string `json:"kind"`             // update, insert or delete
	Upsert bool   `json:"upsert,omitempty"` // INSERT ... ON CONFLICT ... DO UPDATE
	Table  string `json:"table"`            // the table written, as the SQL names it
}

// kind is Kind, with an absent kind read as an update.
func (a Apply) kind() string {
	if a.Kind == "" {
		return KindUpdate
	}
	return a.Kind
}

// Verb is what a run does to a row, for "will update 1,200 rows of users":
// update, insert, insert or update, or DELETE, in capitals because a
// reviewer must not read past it.
func (a Apply) Verb() string {
	switch a.kind() {
	case KindInsert:
		if a.Upsert {
			return "insert or update"
		}
		return "insert"
	case KindDelete:
		return "DELETE"
	case KindRevert:
		return "restore"
	}
	return a.kind()
}

// Past is the verb in the past tense, for "updated 333": updated, inserted,
// inserted or updated, or deleted.
func (a Apply) Past() string {
	switch a.kind() {
	case KindInsert:
		if a.Upsert {
			return "inserted or updated"
		}
		return "inserted"
	case KindDelete:
		return "deleted"
	case KindRevert:
		return "restored"
	case KindUpdate:
		return "updated"
	}
	return a.kind() + "d"
}

// Preposition joins rows and the table: rows of users, into quotas, in
// quotas (an upsert), from sessions.
func (a Apply) Preposition() string {
	switch a.kind() {
	case KindInsert:
		if a.Upsert {
			return "in"
		}
		return "into"
	case KindDelete:
		return "from"
	}
	return "of"
}

// Rows is n rows and the table they are written in, for the sentences
// around a count: "1,200 rows of users", "1 row into quotas". Without a
// table (an Apply recorded before tables were) it is "1,200 rows".
func (a Apply) Rows(n int64) string {
	s := Count(n, "row", "rows")
	if a.Table == "" {
		return s
	}
	return s + " " + a.Preposition() + " " + a.Table
}

// Will is the sentence of a dry-run's count: "will update 1,200 rows of
// users", "will DELETE 3,000 rows from sessions".
func (a Apply) Will(n int64) string { return "will " + a.Verb() + " " + a.Rows(n) }

// Statement is the kind as SQL, for a line that names what the binary
// writes: "UPDATE users", "INSERT INTO quotas", "INSERT INTO quotas ... ON
// CONFLICT DO UPDATE", "DELETE FROM sessions".
func (a Apply) Statement() string {
	table := a.Table
	if table == "" {
		table = "(table not recorded)"
	}
	switch a.kind() {
	case KindInsert:
		if a.Upsert {
			return "INSERT INTO " + table + " ... ON CONFLICT DO UPDATE"
		}
		return "INSERT INTO " + table
	case KindDelete:
		return "DELETE FROM " + table
	}
	return "UPDATE " + table
}

// Count is n with its noun, singular for one: "1 row", "1,200 rows".
func Count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Thousands(n) + " " + many
}

// Thousands writes n with a comma between groups of three digits, as an
// operator reads a count: 1,200 and 2,000,000.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return sign + string(out)
}
