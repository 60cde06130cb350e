package bftype

import (
	"encoding/json"
	"math"
	"testing"
)

// Every kind has its own words, and the zero Apply (a report or archive
// made before the kind was recorded) reads as an update.
func TestApplyWording(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a                             Apply
		verb, past, will, rows1, stmt string
	}{
		{Apply{Kind: KindUpdate, Table: "users"}, "update", "updated", "will update 1,200 rows of users", "1 row of users", "UPDATE users"},
		{Apply{Kind: KindInsert, Table: "quotas"}, "insert", "inserted", "will insert 200,000 rows into quotas", "1 row into quotas", "INSERT INTO quotas"},
		{Apply{Kind: KindInsert, Upsert: true, Table: "quotas"}, "insert or update", "inserted or updated",
			"will insert or update 1,200 rows in quotas", "1 row in quotas", "INSERT INTO quotas ... ON CONFLICT DO UPDATE"},
		{Apply{Kind: KindDelete, Table: "sessions"}, "DELETE", "deleted", "will DELETE 3,000 rows from sessions", "1 row from sessions", "DELETE FROM sessions"},
		{Apply{}, "update", "updated", "will update 1,200 rows", "1 row", "UPDATE (table not recorded)"},
	} {
		n := int64(1200)
		switch c.a.Kind {
		case KindInsert:
			if !c.a.Upsert {
				n = 200000
			}
		case KindDelete:
			n = 3000
		}
		if got := c.a.Verb(); got != c.verb {
			t.Errorf("%+v Verb() = %q, want %q", c.a, got, c.verb)
		}
		if got := c.a.Past(); got != c.past {
			t.Errorf("%+v Past() = %q, want %q", c.a, got, c.past)
		}
		if got := c.a.Will(n); got != c.will {
			t.Errorf("%+v Will(%d) = %q, want %q", c.a, n, got, c.will)
		}
		if got := c.a.Rows(1); got != c.rows1 {
			t.Errorf("%+v Rows(1) = %q, want %q", c.a, got, c.rows1)
		}
		if got := c.a.Statement(); got != c.stmt {
			t.Errorf("%+v Statement() = %q, want %q", c.a, got, c.stmt)
		}
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 1200: "1,200", 12345: "12,345", 999999: "999,999",
		1000000: "1,000,000", -1200: "-1,200", -999: "-999", math.MaxInt64: "9,223,372,036,854,775,807",
		math.MinInt64: "-9,223,372,036,854,775,808",
	} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Count(1, "row", "rows"); got != "1 row" {
		t.Errorf("Count(1) = %q", got)
	}
	if got := Count(0, "row", "rows"); got != "0 rows" {
		t.Errorf("Count(0) = %q", got)
	}
}

// A report saved before the kind was recorded decodes to the zero Apply,
// which words its counts as an update.
func TestReportWithoutKindReadsAsUpdate(t *testing.T) {
	t.Parallel()
	var old Report
	if err := json.Unmarshal([]byte(`{"backfill": "fix_roles", "counts": {"will_change": 333}}`), &old); err != nil {
		t.Fatal(err)
	}
	if got := old.Apply.Will(old.Counts.WillChange); got != "will update 333 rows" {
		t.Errorf("old report: %q", got)
	}
	rep := Report{Apply: Apply{Kind: KindDelete, Table: "sessions"}}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	if string(fields["kind"]) != `"delete"` || string(fields["table"]) != `"sessions"` {
		t.Errorf("report JSON has kind %s and table %s", fields["kind"], fields["table"])
	}
}
