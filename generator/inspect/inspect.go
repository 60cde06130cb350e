// Package inspect learns a backfill's shape from the Go packages the backfill
// binary will actually call: the sqlc-generated query package and the author's
// transform package, loaded and type-checked with go/packages.
//
// Every mismatch between the query roles, the transform and the conventions
// the generated wiring relies on is reported here as one clear sentence, so
// that an author never meets a compile error deep in generated code.
package inspect

import (
	"fmt"
	"go/constant"
	"go/types"
	"strings"
	"unicode"

	"golang.org/x/tools/go/packages"

	"github.com/runonce/backfill/generator/model"
)

// The query names and function name a backfill must define.
const (
	CountMethod  = "CountScope"
	PageMethod   = "ScopePage"
	ApplyMethod  = "Apply"
	RevertMethod = "RevertRead"
	// UninsertMethod deletes, by key, the rows a reversible insert wrote.
	UninsertMethod = "RevertInsert"
	// ReinsertMethod inserts back the whole rows a reversible delete removed.
	ReinsertMethod = "RevertDelete"
	TransformFunc  = "Transform"
	cursorPrefix   = "After"
	limitField     = "Limit"
	tenantField    = "Tenant"
	queriesType    = "Queries"
)

// ShapeError is a backfill whose queries or transform do not fit the
// conventions. Hint says how to fix it.
type ShapeError struct {
	Backfill string
	Msg      string
	Hint     string
}

func (e *ShapeError) Error() string {
	s := fmt.Sprintf("backfill %q: %s", e.Backfill, e.Msg)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Load loads the sqlc package dbPath and the transform package pkgPath of
// backfill name, in the module at root, and returns the shape of its model.
// params are the manifest's declared parameters.
func Load(root, name, dbPath, pkgPath string, params []model.Param) (*model.Backfill, error) {
	cfg := &packages.Config{Dir: root, Mode: packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedImports}
	pkgs, err := packages.Load(cfg, dbPath, pkgPath)
	if err != nil {
		return nil, fmt.Errorf("error loading packages of backfill %q: %w", name, err)
	}
	byPath := map[string]*packages.Package{}
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("error loading package %s of backfill %q: %s", p.PkgPath, name, p.Errors[0])
		}
		byPath[p.PkgPath] = p
	}
	db, pkg := byPath[dbPath], byPath[pkgPath]
	if db == nil || pkg == nil || db.Types == nil || pkg.Types == nil {
		return nil, fmt.Errorf("error loading packages of backfill %q: %s and %s must both exist (run sqlc generate first)", name, dbPath, pkgPath)
	}
	b, err := Shape(name, db.Types, pkg.Types, params...)
	if err != nil {
		return nil, err
	}
	if err := bindOrder(name, db, ApplyMethod, b.ApplyFields); err != nil {
		return nil, err
	}
	if b.Revert != nil && b.Revert.Reinsert != nil {
		if err := bindOrder(name, db, ReinsertMethod, b.Revert.Reinsert.Fields); err != nil {
			return nil, err
		}
	}
	if err := describe(name, db.Syntax, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Shape derives the model from type-checked packages and the declared parameters.
func Shape(name string, db, pkg *types.Package, params ...model.Param) (*model.Backfill, error) {
	s := &shaper{name: name, db: db, pkg: pkg}
	b := &model.Backfill{Name: name, DBImport: db.Path(), PkgImport: pkg.Path(), Transform: TransformFunc, Params: params}
	steps := []func(*model.Backfill) error{s.count, s.page, s.paramsUsed, s.apply, s.kind, s.transform, s.fields, s.revert, s.statements}
	for _, step := range steps {
		if err := step(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

type shaper struct {
	name    string
	db, pkg *types.Package
	row     *types.Named
	change  *types.Named
	applyP  *types.Named
}

func (s *shaper) fail(hint, format string, args ...any) error {
	return &ShapeError{Backfill: s.name, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// method finds a query method on the sqlc Queries type.
func (s *shaper) method(name, annotation string) (*types.Signature, error) {
	obj, _ := s.db.Scope().Lookup(queriesType).(*types.TypeName)
	if obj == nil {
		return nil, s.fail("is this a sqlc-generated package?", "package %s has no %s type", s.db.Path(), queriesType)
	}
	named, _ := obj.Type().(*types.Named)
	for i := 0; named != nil && i < named.NumMethods(); i++ {
		if m := named.Method(i); m.Name() == name {
			return m.Type().(*types.Signature), nil
		}
	}
	return nil, s.fail("add it to queries/"+s.name+"/ and run make sqlc",
		"the query set has no query named %s; it needs \"-- name: %s %s\"", name, name, annotation)
}

func (s *shaper) count(b *model.Backfill) error {
	sig, err := s.method(CountMethod, ":one")
	if err != nil {
		return err
	}
	if !returns(sig, "int64") || sig.Params().Len() > 2 {
		return s.fail("write it as SELECT count(*) ... with the scope's filters, binding only declared parameters",
			"query %s must return one bigint count; sqlc made it %s", CountMethod, sig)
	}
	if sig.Params().Len() == 1 {
		return nil
	}
	params := structParam(sig)
	if params == nil {
		return s.fail("set query_parameter_limit: 0 for this backfill in sqlc.yaml",
			"query %s must take its parameters as a params struct; sqlc made it %s", CountMethod, sig)
	}
	b.CountParams = params.Obj().Name()
	st := params.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		f, err := s.paramField(b, CountMethod, st.Field(i))
		if err != nil {
			return err
		}
		b.CountFields = append(b.CountFields, f)
	}
	return nil
}

func (s *shaper) page(b *model.Backfill) error {
	sig, err := s.method(PageMethod, ":many")
	if err != nil {
		return err
	}
	hint := "write WHERE key > sqlc.arg(after_key) ... ORDER BY key LIMIT sqlc.arg('limit')"
	params := structParam(sig)
	rows, ok := sig.Results().At(0).Type().(*types.Slice)
	if params == nil || sig.Results().Len() != 2 || !ok {
		return s.fail(hint, "query %s must be :many with a cursor and a limit parameter; sqlc made it %s", PageMethod, sig)
	}
	if s.row = namedStruct(rows.Elem()); s.row == nil {
		return s.fail("select named columns", "query %s must return rows of a struct type, not %s", PageMethod, rows.Elem())
	}
	b.Row, b.PageParams = s.row.Obj().Name(), params.Obj().Name()
	st := s.row.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		b.RowFields = append(b.RowFields, model.RowField{Name: st.Field(i).Name(), Display: Snake(st.Field(i).Name())})
	}
	if t := field(s.row, tenantField); t != nil && t.Type().String() == "string" {
		b.TenantField = tenantField
	}
	return s.cursor(b, params, hint)
}

func (s *shaper) cursor(b *model.Backfill, params *types.Named, hint string) error {
	st := params.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		f := st.Field(i)
		switch {
		case declares(b.Params, Snake(f.Name())):
			pf, err := s.paramField(b, PageMethod, f)
			if err != nil {
				return err
			}
			b.PageFields = append(b.PageFields, pf)
		case f.Name() == limitField:
			if t := f.Type().String(); t != "int32" && t != "int64" {
				return s.fail(hint, "the %s parameter of %s must be an integer, not %s", limitField, PageMethod, t)
			}
			b.LimitField, b.LimitType = f.Name(), f.Type().String()
		case strings.HasPrefix(f.Name(), cursorPrefix) && len(f.Name()) > len(cursorPrefix):
			row := strings.TrimPrefix(f.Name(), cursorPrefix)
			b.Cursor = model.Cursor{ParamField: f.Name(), RowField: row, Type: f.Type().String(), Display: Snake(row), ParamName: Snake(f.Name())}
		default:
			return s.fail(hint+", and declare any other parameter under params: in backfill.yaml",
				"parameter %s of %s is neither the cursor After<Key>, %s, nor a declared parameter", Snake(f.Name()), PageMethod, limitField)
		}
	}
	if b.LimitField == "" || b.Cursor.ParamField == "" {
		return s.fail(hint, "query %s needs both a cursor After<Key> and a %s parameter", PageMethod, limitField)
	}
	switch b.Cursor.Type {
	case "int16", "int32", "int64", "string":
	default:
		return s.fail("cast the cursor, e.g. sqlc.arg(after_id)::bigint", "the cursor %s must be bigint, integer, smallint or text, not %s", b.Cursor.ParamField, b.Cursor.Type)
	}
	key := field(s.row, b.Cursor.RowField)
	if key == nil || key.Type().String() != b.Cursor.Type {
		return s.fail("select the key column and name the cursor after it", "the rows of %s must have a field %s of type %s to match the cursor %s", PageMethod, b.Cursor.RowField, b.Cursor.Type, b.Cursor.ParamField)
	}
	return nil
}

func (s *shaper) apply(b *model.Backfill) error {
	sig, err := s.method(ApplyMethod, ":execrows")
	if err != nil {
		return err
	}
	hint := "update FROM ROWS FROM (unnest(sqlc.arg(id)::bigint[]), ...) and mark it :execrows"
	if s.applyP = structParam(sig); s.applyP == nil || !returns(sig, "int64") {
		return s.fail(hint, "query %s must be :execrows with array parameters; sqlc made it %s", ApplyMethod, sig)
	}
	st := s.applyP.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		if _, ok := st.Field(i).Type().(*types.Slice); !ok {
			return s.fail(hint, "parameter %s of %s must be an array (one element per row), not %s", st.Field(i).Name(), ApplyMethod, st.Field(i).Type())
		}
	}
	b.ApplyParams = s.applyP.Obj().Name()
	return nil
}

func (s *shaper) transform(b *model.Backfill) error {
	want := fmt.Sprintf("func %s(row %s.%s) (Change, bool)", TransformFunc, s.db.Name(), s.row.Obj().Name())
	fn, _ := s.pkg.Scope().Lookup(TransformFunc).(*types.Func)
	if fn == nil {
		return s.fail("see docs/authoring.md", "package %s has no function %s; it needs %s", s.pkg.Path(), TransformFunc, want)
	}
	sig := fn.Type().(*types.Signature)
	if sig.Params().Len() != 1 || !sameType(sig.Params().At(0).Type(), s.row) ||
		sig.Results().Len() != 2 || sig.Results().At(1).Type().String() != "bool" {
		return s.fail("the transform takes the row the "+PageMethod+" query returns", "%s has type %s; it must be %s", TransformFunc, sig, want)
	}
	s.change = namedStruct(sig.Results().At(0).Type())
	if s.change == nil || s.change.Obj().Pkg() != s.pkg {
		return s.fail("declare type Change struct{...} next to the transform", "%s must return a struct type declared in package %s, not %s", TransformFunc, s.pkg.Name(), sig.Results().At(0).Type())
	}
	b.Change = s.change.Obj().Name()
	return nil
}

// fields matches the change's fields to the apply parameters, one to one.
func (s *shaper) fields(b *model.Backfill) error {
	params := s.applyP.Underlying().(*types.Struct)
	change := s.change.Underlying().(*types.Struct)
	hint := fmt.Sprintf("a change field F of type T fills the %s parameter F of type []T", ApplyMethod)
	for i := range params.NumFields() {
		p := params.Field(i)
		c := field(s.change, p.Name())
		if c == nil {
			return s.fail(hint, "%s has no field %s for the %s parameter %s", b.Change, p.Name(), ApplyMethod, p.Name())
		}
		if elem := p.Type().(*types.Slice).Elem(); !sameValue(c.Type(), elem) {
			return s.fail(hint+" (or a nullable *T or pgtype type of it, to write NULL)", "%s.%s is %s but the %s parameter %s holds %s", b.Change, c.Name(), c.Type(), ApplyMethod, p.Name(), elem)
		}
		typ, ok := goType(c.Type())
		if !ok {
			return s.fail("use a basic type, a named type, or a pointer to one", "%s.%s has type %s, which the wiring cannot bind", b.Change, c.Name(), c.Type())
		}
		b.ApplyFields = append(b.ApplyFields, model.ApplyField{Name: p.Name(), Display: Snake(p.Name()), Type: typ})
	}
	for i := range change.NumFields() {
		c := change.Field(i)
		if field(s.applyP, c.Name()) == nil {
			return s.fail(hint, "%s.%s has no %s parameter to go to", b.Change, c.Name(), ApplyMethod)
		}
		if c.Name() == b.Cursor.RowField {
			continue
		}
		d := model.DiffField{Name: c.Name(), Display: Snake(c.Name())}
		if r := field(s.row, c.Name()); r != nil {
			d.InRow = sameType(r.Type(), c.Type())
			if !d.InRow {
				d.Nullable = nullableValue(r.Type(), c.Type())
				d.ByValue = d.Nullable == "" && sameValue(r.Type(), c.Type())
				d.InRow = d.Nullable != "" || d.ByValue
			}
		}
		b.DiffFields = append(b.DiffFields, d)
	}
	if key := field(s.change, b.Cursor.RowField); key == nil || !sameType(key.Type(), field(s.row, b.Cursor.RowField).Type()) {
		return s.fail("the Apply query must find each row by its key",
			"%s must have the key field %s (%s), and Apply a parameter %s of type []%s", b.Change, b.Cursor.RowField, b.Cursor.Type, b.Cursor.RowField, b.Cursor.Type)
	}
	if len(b.DiffFields) == 0 && b.Apply.Kind != model.KindDelete {
		return s.fail("add the field(s) the backfill sets", "%s has only the key field %s; it must set at least one other field", b.Change, b.Cursor.RowField)
	}
	return nil
}

// revert learns the optional RevertRead query: keys in, the key and every
// field the change sets out, with the change's own types.
func (s *shaper) revert(b *model.Backfill) error {
	if !s.hasMethod(RevertMethod) {
		return nil
	}
	sig, _ := s.method(RevertMethod, ":many")
	hint := "write SELECT key, fields FROM t WHERE key = ANY(sqlc.arg(key)::bigint[])"
	params := structParam(sig)
	rows, ok := sig.Results().At(0).Type().(*types.Slice)
	if params == nil || sig.Results().Len() != 2 || !ok || namedStruct(rows.Elem()) == nil {
		return s.fail(hint, "query %s must be :many with one array parameter of keys; sqlc made it %s", RevertMethod, sig)
	}
	st := params.Underlying().(*types.Struct)
	keys, isSlice := st.Field(0).Type().(*types.Slice)
	if st.NumFields() != 1 || !isSlice || keys.Elem().String() != b.Cursor.Type {
		return s.fail(hint, "query %s must take exactly one parameter, the keys as []%s", RevertMethod, b.Cursor.Type)
	}
	row := namedStruct(rows.Elem())
	r := &model.Revert{Params: params.Obj().Name(), ParamField: st.Field(0).Name(), Row: row.Obj().Name()}
	if k := field(row, b.Cursor.RowField); k == nil || k.Type().String() != b.Cursor.Type {
		return s.fail(hint, "the rows of %s must have the key field %s (%s)", RevertMethod, b.Cursor.RowField, b.Cursor.Type)
	}
	if !LocksRows(s.revertSQL()) {
		return s.fail("end RevertRead with FOR UPDATE; the runner then needs UPDATE on at least one column of the table (docs/operating.md section 2.3)",
			"query %s must lock the rows it reads (FOR UPDATE), so that each before-image is the version Apply replaces: without the lock a row another session changes between the read and the write would be restored stale, losing that change", RevertMethod)
	}
	var err error
	switch b.Apply.Kind {
	case model.KindDelete:
		err = s.revertDelete(b, r, row)
	case model.KindInsert:
		if err = s.revertFields(b, r, row, hint); err == nil {
			err = s.revertInsert(b, r)
		}
	default:
		err = s.revertFields(b, r, row, hint)
	}
	if err != nil {
		return err
	}
	b.Revert = r
	return nil
}

// revertFields checks that RevertRead reads every field the change sets,
// as the table holds it.
func (s *shaper) revertFields(b *model.Backfill, r *model.Revert, row *types.Named, hint string) error {
	for _, d := range b.DiffFields {
		f, c := field(row, d.Name), field(s.change, d.Name)
		if f == nil || !sameValue(f.Type(), c.Type()) {
			return s.fail(hint, "the rows of %s must have the field %s of type %s, as Change has", RevertMethod, d.Name, c.Type())
		}
		if _, null := unwrap(f.Type()); null && !canHoldNull(c.Type()) {
			return s.fail(fmt.Sprintf("declare %s.%s as %s (or *%s), and return it NULL where the row should be NULL", b.Change, d.Name, f.Type(), c.Type()),
				"the column %s can be NULL (%s reads it as %s) but %s.%s is a plain %s, so a revert would write %s where the row held NULL",
				d.Display, RevertMethod, f.Type(), b.Change, d.Name, c.Type(), zeroText(c.Type()))
		}
		r.Fields = append(r.Fields, d)
	}
	if err := plainColumns(s.revertSQL()); err != nil {
		return s.fail("select the columns as the table holds them, e.g. SELECT u.id, u.nickname FROM users AS u WHERE ...; sqlc then reads a nullable column as a nullable type",
			"query %s must select plain columns, so that a NULL reads as NULL: %v", RevertMethod, err)
	}
	return nil
}

// revertInsert learns RevertInsert, which a reversible insert needs: it
// deletes by key the rows the run inserted, from the table Apply writes.
func (s *shaper) revertInsert(b *model.Backfill, r *model.Revert) error {
	hint := fmt.Sprintf("add \"-- name: %s :execrows\" with DELETE FROM %s WHERE <the column Apply fills from %s> = ANY(sqlc.arg(%s)::%s[]) (docs/authoring.md section 5.4c)",
		UninsertMethod, b.Apply.Table, b.Cursor.Display, b.Cursor.Display, sqlArrayType(b.Cursor.Type))
	if !s.hasMethod(UninsertMethod) {
		return s.fail(hint, "Apply inserts into %s and the query set has %s, so a revert must delete the rows a run inserted; the query set has no %s", b.Apply.Table, RevertMethod, UninsertMethod)
	}
	sig, _ := s.method(UninsertMethod, ":execrows")
	params := structParam(sig)
	if params == nil || !returns(sig, "int64") {
		return s.fail(hint, "query %s must be :execrows with one parameter, the keys; sqlc made it %s", UninsertMethod, sig)
	}
	st := params.Underlying().(*types.Struct)
	if keys, ok := st.Field(0).Type().(*types.Slice); st.NumFields() != 1 || !ok || keys.Elem().String() != b.Cursor.Type {
		return s.fail(hint, "query %s must take exactly one parameter, the keys as []%s", UninsertMethod, b.Cursor.Type)
	}
	sql := s.sqlText(UninsertMethod)
	if a, err := ApplyKind(sql); err != nil || a.Kind != model.KindDelete || !SameTable(a.Table, b.Apply.Table) {
		return s.fail(hint, "query %s must be a DELETE from %s, the table Apply inserts into", UninsertMethod, b.Apply.Table)
	}
	r.Uninsert = sql
	return nil
}

// revertDelete checks what a reversible delete needs: RevertRead reads the
// whole row (SELECT * FROM the table Apply deletes from, so sqlc returns the
// table's own struct), and RevertDelete inserts whole rows back, one array
// parameter per column.
func (s *shaper) revertDelete(b *model.Backfill, r *model.Revert, row *types.Named) error {
	if row.Obj().Name() == RevertMethod+"Row" {
		return s.fail(fmt.Sprintf("write SELECT * FROM %s WHERE %s = ANY(...), so that sqlc returns the table's own struct", b.Apply.Table, b.Cursor.Display),
			"Apply deletes from %s, so %s must read the whole row for a revert to insert it back; it reads only some columns", b.Apply.Table, RevertMethod)
	}
	st := row.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		f := st.Field(i)
		r.Fields = append(r.Fields, model.DiffField{Name: f.Name(), Display: Snake(f.Name())})
	}
	hint := fmt.Sprintf("add \"-- name: %s :execrows\" with INSERT INTO %s (columns) SELECT * FROM ROWS FROM (unnest(sqlc.arg(column)::type[]), ...) AS v (columns), one array per column of %s named as the column (docs/authoring.md section 5.4d)",
		ReinsertMethod, b.Apply.Table, row.Obj().Name())
	if !s.hasMethod(ReinsertMethod) {
		return s.fail(hint, "Apply deletes from %s and the query set has %s, so a revert must insert the deleted rows back; the query set has no %s", b.Apply.Table, RevertMethod, ReinsertMethod)
	}
	sig, _ := s.method(ReinsertMethod, ":execrows")
	params := structParam(sig)
	if params == nil || !returns(sig, "int64") {
		return s.fail(hint, "query %s must be :execrows with one array parameter per column; sqlc made it %s", ReinsertMethod, sig)
	}
	sql := s.sqlText(ReinsertMethod)
	if a, err := ApplyKind(sql); err != nil || a.Kind != model.KindInsert || !SameTable(a.Table, b.Apply.Table) {
		return s.fail(hint, "query %s must be an INSERT into %s, the table Apply deletes from", ReinsertMethod, b.Apply.Table)
	}
	re := &model.Reinsert{SQL: sql}
	ps := params.Underlying().(*types.Struct)
	for i := range ps.NumFields() {
		p := ps.Field(i)
		f := field(row, p.Name())
		slice, ok := p.Type().(*types.Slice)
		if f == nil || !ok || !sameValue(f.Type(), slice.Elem()) {
			return s.fail(hint, "parameter %s of %s must be the array of column %s of %s ([]%s)", p.Name(), ReinsertMethod, Snake(p.Name()), row.Obj().Name(), typeOrMissing(f))
		}
		typ, ok := goType(f.Type())
		if !ok {
			return s.fail("a revert cannot bind this column type yet", "column %s of %s has type %s, which the wiring cannot bind", Snake(f.Name()), row.Obj().Name(), f.Type())
		}
		re.Fields = append(re.Fields, model.ApplyField{Name: p.Name(), Display: Snake(p.Name()), Type: typ})
	}
	if len(re.Fields) != st.NumFields() {
		return s.fail(hint, "%s must insert every column of %s (%d), not %d", ReinsertMethod, row.Obj().Name(), st.NumFields(), len(re.Fields))
	}
	r.Reinsert = re
	return nil
}

// typeOrMissing names a field's type for a message.
func typeOrMissing(f *types.Var) string {
	if f == nil {
		return "no such column"
	}
	return f.Type().String()
}

// sqlArrayType is the SQL array element type of a key's Go type, for hints.
func sqlArrayType(goType string) string {
	switch goType {
	case "int16":
		return "smallint"
	case "int32":
		return "integer"
	case "int64":
		return "bigint"
	}
	return "text"
}

// revertSQL is the text of RevertRead as sqlc wrote it.
func (s *shaper) revertSQL() string { return s.sqlText(RevertMethod) }

// sqlText is the SQL text sqlc wrote for a query method, "" if none.
func (s *shaper) sqlText(method string) string {
	name := string(unicode.ToLower(rune(method[0]))) + method[1:]
	c, _ := s.db.Scope().Lookup(name).(*types.Const)
	if c == nil || c.Val().Kind() != constant.String {
		return ""
	}
	return constant.StringVal(c.Val())
}

// kind reads what Apply does (update, insert, upsert or delete) and the
// table it writes, so the binary can say so wherever it counts rows.
func (s *shaper) kind(b *model.Backfill) error {
	sql := s.sqlText(ApplyMethod)
	if sql == "" {
		return s.fail("regenerate it with make sqlc", "the sqlc package has no SQL text constant apply for %s", ApplyMethod)
	}
	a, err := ApplyKind(sql)
	if err != nil {
		return s.fail("write one UPDATE, INSERT ... [ON CONFLICT ...] or DELETE statement, optionally after a read-only WITH",
			"query %s must be one UPDATE, INSERT or DELETE: %v", ApplyMethod, err)
	}
	b.Apply = a
	return nil
}

func (s *shaper) hasMethod(name string) bool {
	obj, _ := s.db.Scope().Lookup(queriesType).(*types.TypeName)
	if obj == nil {
		return false
	}
	named, _ := obj.Type().(*types.Named)
	for i := 0; named != nil && i < named.NumMethods(); i++ {
		if named.Method(i).Name() == name {
			return true
		}
	}
	return false
}

func (s *shaper) statements(b *model.Backfill) error {
	queries := [][2]string{{roleCount, CountMethod}, {rolePage, PageMethod}, {roleApply, ApplyMethod}}
	if b.Revert != nil {
		queries = append(queries, [2]string{roleRevertRead, RevertMethod})
		if b.Revert.Uninsert != "" {
			queries = append(queries, [2]string{roleRevertInsert, UninsertMethod})
		}
		if b.Revert.Reinsert != nil {
			queries = append(queries, [2]string{roleRevertDelete, ReinsertMethod})
		}
	}
	for _, q := range queries {
		name := string(unicode.ToLower(rune(q[1][0]))) + q[1][1:]
		c, _ := s.db.Scope().Lookup(name).(*types.Const)
		if c == nil || c.Val().Kind() != constant.String {
			return s.fail("regenerate it with make sqlc", "the sqlc package has no SQL text constant %s for %s", name, q[1])
		}
		b.Statements = append(b.Statements, model.Statement{Role: q[0], Method: q[1], SQL: constant.StringVal(c.Val())})
	}
	return nil
}

// nullableValue recognises a pgx nullable wrapper (a struct with Valid bool
// and one value field, like pgtype.Text{String, Valid}) around plain, and
// returns the value field's name.
func nullableValue(wrapper, plain types.Type) string {
	st, ok := wrapper.Underlying().(*types.Struct)
	if !ok {
		return ""
	}
	value, valid := "", false
	for i := range st.NumFields() {
		f := st.Field(i)
		switch {
		case f.Name() == "Valid" && f.Type().String() == "bool":
			valid = true
		case f.Name() == "InfinityModifier":
		case sameType(f.Type(), plain) && value == "":
			value = f.Name()
		default:
			return ""
		}
	}
	if !valid {
		return ""
	}
	return value
}

// structParam returns the named struct of a (ctx, Params) signature.
func structParam(sig *types.Signature) *types.Named {
	if sig.Params().Len() != 2 {
		return nil
	}
	return namedStruct(sig.Params().At(1).Type())
}

// sameType compares types by identity or, across separately loaded copies of
// a package, by their fully qualified spelling.
func sameType(a, b types.Type) bool {
	return types.Identical(a, b) || a.String() == b.String()
}

func namedStruct(t types.Type) *types.Named {
	n, ok := t.(*types.Named)
	if !ok {
		return nil
	}
	if _, ok := n.Underlying().(*types.Struct); !ok {
		return nil
	}
	return n
}

func returns(sig *types.Signature, first string) bool {
	r := sig.Results()
	return r.Len() == 2 && r.At(0).Type().String() == first && r.At(1).Type().String() == "error"
}

func field(n *types.Named, name string) *types.Var {
	st := n.Underlying().(*types.Struct)
	for i := range st.NumFields() {
		if st.Field(i).Name() == name {
			return st.Field(i)
		}
	}
	return nil
}

// Snake turns a Go field name into the snake_case column-style name the
// reports show: ID -> id, GrantedRole -> granted_role, UserID -> user_id.
func Snake(s string) string {
	var out []rune
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && unicode.IsLower(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1]) && i > 0 && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				out = append(out, '_')
			}
			r = unicode.ToLower(r)
		}
		out = append(out, r)
	}
	return string(out)
}
