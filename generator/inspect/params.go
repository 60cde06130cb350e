package inspect

import (
	"go/types"
	"strings"

	"github.com/runonce/backfill/generator/model"
)

// paramAccessors maps a manifest parameter type to the Go types sqlc may
// give its sqlc.arg, each with the bftype.ParamValues accessor that returns
// that type. A cast in the query (sqlc.arg(cutoff)::date) picks the type.
var paramAccessors = map[string]map[string]string{
	"date":        {"github.com/jackc/pgx/v5/pgtype.Date": "Date"},
	"timestamptz": {"github.com/jackc/pgx/v5/pgtype.Timestamptz": "Timestamptz"},
	"text":        {"string": "Text", "github.com/jackc/pgx/v5/pgtype.Text": "PgText"},
	"bigint":      {"int64": "Int64", "github.com/jackc/pgx/v5/pgtype.Int8": "PgInt8"},
	"integer":     {"int32": "Int32", "github.com/jackc/pgx/v5/pgtype.Int4": "PgInt4"},
	"boolean":     {"bool": "Bool", "github.com/jackc/pgx/v5/pgtype.Bool": "PgBool"},
	"text[]":      {"[]string": "TextArray"},
}

// paramCasts is the cast that makes sqlc type a parameter as declared.
var paramCasts = map[string]string{"date": "date", "timestamptz": "timestamptz", "text": "text", "bigint": "bigint",
	"integer": "integer", "boolean": "boolean", "text[]": "text[]"}

func declares(params []model.Param, name string) bool {
	_, ok := declared(params, name)
	return ok
}

func declared(params []model.Param, name string) (model.Param, bool) {
	for _, p := range params {
		if p.Name == name {
			return p, true
		}
	}
	return model.Param{}, false
}

// paramField binds one field of a query's params struct to the declared
// parameter of the same name, checking that sqlc typed it as declared.
func (s *shaper) paramField(b *model.Backfill, method string, f *types.Var) (model.ParamField, error) {
	name := Snake(f.Name())
	p, ok := declared(b.Params, name)
	if !ok {
		return model.ParamField{}, s.fail("declare it under params: in backfill.yaml, e.g. params: {"+name+": {type: date, doc: ...}}",
			"query %s binds parameter %s, which backfill.yaml does not declare", method, name)
	}
	acc, ok := paramAccessors[p.Type][f.Type().String()]
	if !ok {
		return model.ParamField{}, s.fail("cast it in the query: sqlc.arg("+name+")::"+paramCasts[p.Type],
			"parameter %s of %s is declared %s, but sqlc typed it %s", name, method, p.Type, shortType(f.Type()))
	}
	return model.ParamField{Field: f.Name(), Param: name, Accessor: acc}, nil
}

func shortType(t types.Type) string {
	return strings.ReplaceAll(t.String(), "github.com/jackc/pgx/v5/", "")
}

// paramsUsed refuses a declared parameter that CountScope or ScopePage does
// not bind: both queries define the scope, so both must filter by every
// parameter, or the count (bounds, ETA) would not describe the pages.
func (s *shaper) paramsUsed(b *model.Backfill) error {
	for _, p := range b.Params {
		for _, q := range []struct {
			method string
			fields []model.ParamField
		}{{CountMethod, b.CountFields}, {PageMethod, b.PageFields}} {
			if !binds(q.fields, p.Name) {
				return s.fail("use sqlc.arg("+p.Name+") in both CountScope and ScopePage, or remove it from params:",
					"parameter %s is declared in backfill.yaml but query %s does not use it", p.Name, q.method)
			}
		}
	}
	return nil
}

func binds(fields []model.ParamField, name string) bool {
	for _, f := range fields {
		if f.Param == name {
			return true
		}
	}
	return false
}
