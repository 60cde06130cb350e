// Package model is the plain description of one backfill that the emitters
// turn into code. It holds names and strings only, never parser or type-checker
// objects, so that emitting is a pure function of a value that tests can build
// by hand (as sqlc's code generators see only their plain request).
package model

import "github.com/runonce/backfill/runtime/bftype"

// Backfill is everything needed to emit one backfill's wiring.
type Backfill struct {
	Name        string // the backfill's name, e.g. fix_roles
	DBImport    string // import path of the sqlc-generated package
	PkgImport   string // import path of the transform package
	Row         string // scope row type name in the sqlc package
	Change      string // change type name in the transform package
	Transform   string // transform function name
	PageParams  string // page params type name in the sqlc package
	ApplyParams string // apply params type name in the sqlc package
	Cursor      Cursor
	TenantField string     // the row's string field Tenant, if it has one
	RowFields   []RowField // every field of the scope row, in order
	GroupFields []RowField // the report.group_by columns, in the manifest's order
	LimitField  string     // the page params field bound to LIMIT
	LimitType   string     // its Go type: int32 or int64
	Apply       Apply      // what the Apply statement does, read from its SQL
	ApplyFields []ApplyField
	DiffFields  []DiffField
	Statements  []Statement
	Revert      *Revert // the RevertRead query, when the query set has one
	// Params are the manifest's declared parameters in name order.
	Params []Param
	// CountParams is the CountScope params type name; empty when it takes none.
	CountParams  string
	CountFields  []ParamField // CountScope params fields bound to declared parameters
	PageFields   []ParamField // ScopePage params fields bound to declared parameters
	ManifestJSON string       // canonical JSON of backfill.yaml
	RunSignature string       // hex sha256 over the inputs, see signature.go
	CodeVersion  string
}

// Param is one declared parameter: its name (as in sqlc.arg(name)) and its
// manifest type (date, timestamptz, text, bigint, integer, boolean, text[]).
type Param struct {
	Name string
	Type string
}

// ParamField is one field of a query's params struct bound to a declared
// parameter, and the bftype.ParamValues accessor that gives its Go type
// (e.g. Date for pgtype.Date).
type ParamField struct {
	Field    string // e.g. Cutoff
	Param    string // e.g. cutoff
	Accessor string // e.g. Date
}

// Cursor is the keyset key: a row field and the page parameter it binds.
type Cursor struct {
	RowField   string // e.g. ID
	ParamField string // e.g. AfterID
	Type       string // int16, int32, int64 or string
	Display    string // the key's snake_case name for reports, e.g. id
	ParamName  string // the cursor's snake_case name, e.g. after_id
}

// The kinds of Apply statement, spelt once in bftype: the generator writes
// them into the binary and the runtime words its counts by them.
const (
	KindUpdate = bftype.KindUpdate
	KindInsert = bftype.KindInsert
	KindDelete = bftype.KindDelete
)

// Apply is what the Apply statement does: its kind (KindUpdate, KindInsert
// or KindDelete), whether an insert updates on conflict, and the table it
// writes.
type Apply struct {
	Kind   string
	Upsert bool
	Table  string
}

// ApplyField is one array parameter of the apply query filled from a change field.
type ApplyField struct {
	Name    string // Go field name in both the params and the change
	Display string // snake_case name for reports
	Type    GoType // the change field's type: the array binds []Type, so a nullable field writes NULL
}

// GoType is a Go type the emitter can spell: a basic or named type, maybe
// behind a pointer or in a slice (e.g. *string, pgtype.Text, []byte).
type GoType struct {
	Pointer bool   // *T
	Slice   bool   // []T
	Path    string // the package of a named type; empty for a basic type
	Name    string // the type's name, e.g. int64 or Text
}

// DiffField is one change field shown in a dry-run diff.
type DiffField struct {
	Name    string // Go field name in the change
	Display string // snake_case name for reports
	InRow   bool   // the scope row reads the field, so before and after compare
	// Nullable names the value field when the row reads the column as a
	// pgtype wrapper (e.g. String of pgtype.Text) and the change sets a plain value.
	Nullable string
	// ByValue compares the row's and the change's field by their exact JSON
	// (NULL as null): they are different Go types of one column, such as a
	// plain string and a *string or a pgtype.Text.
	ByValue bool
}

// Revert is the optional RevertRead query: the current value of the fields
// a backfill sets, by key, for reverting a run.
type Revert struct {
	Params     string // params type name in the sqlc package
	ParamField string // its one field: the keys, e.g. ID
	Row        string // row type name in the sqlc package
	// Fields are the fields the images hold: those the backfill sets, or,
	// for a delete, every column of the row.
	Fields []DiffField
	// Uninsert is, for an insert, the RevertInsert SQL: it deletes by key
	// the rows a run inserted (its one parameter is the keys).
	Uninsert string
	// Reinsert is, for a delete, the RevertDelete statement that inserts
	// whole rows back from their images.
	Reinsert *Reinsert
}

// Reinsert is a RevertDelete statement: one array parameter per column of
// the row, in the order sqlc binds them, each bound as an array of the
// RevertRead row field's own type so that NULLs stay NULL.
type Reinsert struct {
	SQL    string
	Fields []ApplyField
}

// Statement is one query of the set, with the positional descriptors the
// binary embeds in its bftype.Statement (see there): which $n binds the
// keys or the cursor, and which result column of the page is the key.
type Statement struct {
	Role   string // count, page, apply, revert_read, revert_insert or revert_delete
	Method string // the sqlc method name
	SQL    string
	// KeyParam is the $n of the keys' array (apply and revert_*), CursorParam
	// the $n of the page's cursor, KeyColumn the page's key column (1-based);
	// 0 where the role has none.
	KeyParam    int
	CursorParam int
	KeyColumn   int
}

// RowField is a field of the scope row: its Go name and its snake_case
// column name, as report.group_by names it.
type RowField struct {
	Name    string
	Display string
}
