package bftype

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Statement is one SQL statement a backfill binary may run, with the query
// role it plays (count, page, apply, revert_read, revert_insert or
// revert_delete) and the sqlc name it was written under.
type Statement struct {
	Role string `json:"role"`
	Name string `json:"name"`
	SQL  string `json:"sql"`
	// KeyParam is the parameter ($n, 1-based) that binds the batch's keys, an
	// array, in an apply, revert_read, revert_insert or revert_delete statement;
	// CursorParam is the page's cursor parameter ($n) and KeyColumn the page's
	// result column (1-based) that is the key. 0: none.
	KeyParam    int `json:"key_param,omitempty"`
	CursorParam int `json:"cursor_param,omitempty"`
	KeyColumn   int `json:"key_column,omitempty"`
}

// FieldDiff is one field a change would set: its value now and after.
// Values are JSON so the report shows them exactly ("" versus null).
type FieldDiff struct {
	Field  string          `json:"field"`
	Before json.RawMessage `json:"before,omitempty"` // absent when the scope row does not read the field
	After  json.RawMessage `json:"after"`
}

// Diff builds a FieldDiff of a field the scope row reads.
func Diff(field string, before, after any) FieldDiff {
	return FieldDiff{Field: field, Before: exact(before), After: exact(after)}
}

// SetOnly builds a FieldDiff of a field the scope row does not read.
func SetOnly(field string, after any) FieldDiff {
	return FieldDiff{Field: field, After: exact(after)}
}

// JSON is a value as exact JSON, for images of rows.
func JSON(v any) json.RawMessage { return exact(v) }

// Field decodes the image's value of field into ptr. A null (the column
// was NULL) decodes only into a type that can hold it (a pointer, or a
// nullable type such as pgtype.Text); into any other it is an error, never
// the zero value: writing ” or 0 where the row held NULL corrupts it.
func Field(image map[string]json.RawMessage, field string, ptr any) error {
	v, ok := image[field]
	if !ok {
		return fmt.Errorf("the image has no field %q", field)
	}
	if string(v) == "null" && !holdsNull(ptr) {
		return fmt.Errorf("the image of field %q is NULL, which a %T cannot hold; declare the Change field as a nullable type (pgtype.Text, *string, ...)", field, ptr)
	}
	if err := json.Unmarshal(v, ptr); err != nil {
		return fmt.Errorf("error decoding field %q of an image: %w", field, err)
	}
	return nil
}

// holdsNull reports whether *ptr can hold a NULL: it is a pointer, or a
// type that decodes JSON null itself (pgtype's nullable types do).
func holdsNull(ptr any) bool {
	t := reflect.TypeOf(ptr)
	if t == nil || t.Kind() != reflect.Pointer {
		return false
	}
	elem := t.Elem()
	switch elem.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return true
	}
	_, ok := ptr.(json.Unmarshaler)
	return ok
}

// SameValue reports whether a and b are the same value when they are
// different Go types for one column (a plain string and a pgtype.Text, a
// *int64 and a pgtype.Int8): it compares their exact JSON, where NULL is
// null and apart from ” and 0.
func SameValue(a, b any) bool { return string(exact(a)) == string(exact(b)) }

// Nullable is a nullable column's value for a diff: nil (JSON null) when
// the column is NULL.
func Nullable(valid bool, v any) any {
	if !valid {
		return nil
	}
	return v
}

// Equal reports whether a field already holds the value a change would set.
// It runs for every row a run reads, so the common column types are
// compared directly; anything else is compared with reflect.DeepEqual.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case int32:
		y, ok := b.(int32)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}

// exact is v as JSON, exactly as encoding/json writes it. It runs for every
// value a run changes (the before-images), so strings of plain ASCII and
// integers are written directly; everything else goes through json.Marshal.
func exact(v any) json.RawMessage {
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null")
	case string:
		if plain(x) {
			b := make([]byte, 0, len(x)+2)
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"')
		}
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case int32:
		return strconv.AppendInt(nil, int64(x), 10)
	case int:
		return strconv.AppendInt(nil, int64(x), 10)
	case bool:
		return strconv.AppendBool(nil, x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("%#v", v))
	}
	return b
}

// plain reports whether json.Marshal writes s as it is between quotes:
// printable ASCII without quote, backslash or the HTML characters it escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Sample is one row's planned change, by key.
type Sample struct {
	Key   json.RawMessage `json:"key"`
	Diffs []FieldDiff     `json:"diffs"`
}

// SampleOf builds a sample for key.
func SampleOf(key any, diffs []FieldDiff) Sample { return Sample{Key: exact(key), Diffs: diffs} }

// Param is one bound parameter of a statement, for display.
type Param struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// ParamOf builds a Param.
func ParamOf(name string, v any) Param { return Param{Name: name, Value: exact(v)} }

// Counts are the totals of a dry-run or a run.
type Counts struct {
	Scanned    int64 `json:"scanned"`     // rows the keyset pages returned
	Matched    int64 `json:"matched"`     // rows in scope according to the scope count
	WillChange int64 `json:"will_change"` // rows the transform would change
	Unchanged  int64 `json:"unchanged"`   // scanned rows left as they are
}

// TenantRows are the rows in scope of one tenant outside target.tenants.
type TenantRows struct {
	Tenant    string            `json:"tenant"`
	Rows      int64             `json:"rows"`
	FirstKeys []json.RawMessage `json:"first_keys"` // the first MaxTenantKeys keys, in key order
}

// MaxTenantKeys bounds TenantRows.FirstKeys.
const MaxTenantKeys = 10

// Report is what a dry-run found, printed for reviewers and saved as JSON.
type Report struct {
	Backfill string `json:"backfill"`
	// Apply is what the binary writes; its fields are the report's kind,
	// upsert and table. A report saved before they were recorded has none,
	// and reads as an update.
	Apply
	Digest       string `json:"digest"`
	RunSignature string `json:"run_signature"`
	// Params are the parameter values the dry-run bound, canonical; a run
	// reconciles only with a report of the same values.
	Params       ParamValues     `json:"params,omitempty"`
	SourceCommit string          `json:"source_commit"`
	Database     string          `json:"database"`
	Server       string          `json:"server"`
	StartedAt    time.Time       `json:"started_at"`
	Duration     time.Duration   `json:"duration_ns"`
	Counts       Counts          `json:"counts"`
	Expect       Expect          `json:"expect"`
	Violations   []string        `json:"violations"`
	Samples      []Sample        `json:"samples"`
	Batches      int64           `json:"batches"`
	BatchSize    int             `json:"batch_size"`
	ETA          time.Duration   `json:"eta_ns"`
	Estimate     *Estimate       `json:"estimate,omitempty"` // how ETA was made
	KeyName      string          `json:"key_name"`
	CursorName   string          `json:"cursor_name"`
	LimitName    string          `json:"limit_name"`
	Start        json.RawMessage `json:"start_cursor"`
	Statements   []Statement     `json:"statements"`
	FirstApply   []Param         `json:"first_apply_params"`
	// FirstApplyBatch is the batch of a real run FirstApply belongs to: 1
	// is the canary batch of CanarySize rows.
	FirstApplyBatch int64 `json:"first_apply_batch,omitempty"`
	CanarySize      int   `json:"canary_size,omitempty"`
	// SplitKeys are keys spread evenly through the scope, where a run with
	// batch.lanes cuts its lanes; empty unless the key is an integer.
	SplitKeys []json.RawMessage `json:"split_keys,omitempty"`
	// TargetDatabase is the manifest's target.database. When the dry-run
	// read another database, OffTarget is set: its numbers are not the
	// target's, and no run reconciles with it.
	TargetDatabase string `json:"target_database"`
	OffTarget      bool   `json:"off_target"`
	// Prepared names every statement the dry-run prepared against the live
	// schema (the binary's queries and the manifest's canary, checks and
	// health query); a dry-run with one that does not prepare has no report.
	Prepared []string `json:"prepared"`
	// OutsideTenants are the rows in scope of tenants outside
	// target.tenants, by tenant in key order: a real run stops at the first
	// batch that reads one.
	OutsideTenants []TenantRows `json:"outside_tenants,omitempty"`
	// Breakdown counts the scope per report.group_by group; Transitions
	// are the from -> to tables of the fields the changes set; Spots are
	// the report.spot_check and --spot keys (see breakdown.go).
	Breakdown   *Breakdown         `json:"breakdown,omitempty"`
	Transitions []FieldTransitions `json:"transitions,omitempty"`
	Spots       []Spot             `json:"spot_checks,omitempty"`
}

// Estimate is how a dry-run predicts the time of --execute, part by part,
// so that a reviewer sees what the ETA rests on: what the dry-run measured
// (its page reads, its transform, its scope count), what it cannot measure
// because it writes nothing (per-row and per-batch write costs, estimates
// documented in docs/performance.md), and the rate limit.
type Estimate struct {
	Scanned          int64         `json:"scanned"`      // rows a run reads
	Changes          int64         `json:"changes"`      // rows a run writes
	Batches          int64         `json:"batches"`      // the canary batch, then batches of up to batch.size rows
	Lanes            int           `json:"lanes"`        // lanes the run would write in
	Preflight        time.Duration `json:"preflight_ns"` // fixed cost plus the scope count
	Count            time.Duration `json:"count_ns"`     // measured: this dry-run's scope count
	Read             time.Duration `json:"read_ns"`      // measured: this dry-run's page queries
	Transform        time.Duration `json:"transform_ns"` // measured: deciding every row in this dry-run
	Write            time.Duration `json:"write_ns"`     // estimated: Changes times the per-row write cost
	Commit           time.Duration `json:"commit_ns"`    // estimated: Batches times the per-batch cost
	Work             time.Duration `json:"work_ns"`      // Read+Transform+Write+Commit, shared by the lanes
	MaxRowsPerSecond int           `json:"max_rows_per_second"`
	Throttle         time.Duration `json:"throttle_ns"` // Scanned / MaxRowsPerSecond: the least the batches take
	Batching         time.Duration `json:"batching_ns"` // the longer of Work and Throttle
	Total            time.Duration `json:"total_ns"`    // Preflight + Batching
}
