package inspect

import (
	"strings"
	"testing"

	"github.com/runonce/backfill/generator/model"
)

func TestApplyKindReadsKindAndTable(t *testing.T) {
	cases := []struct {
		sql  string
		want model.Apply
	}{
		{"UPDATE users AS u SET role = v.role FROM ROWS FROM (unnest($1::bigint[]), unnest($2::text[])) AS v(id, role) WHERE u.id = v.id",
			model.Apply{Kind: "update", Table: "users"}},
		{"-- fix them\n/* a /* nested */ comment: DELETE FROM x */ update ONLY public.users set a = 1",
			model.Apply{Kind: "update", Table: "public.users"}},
		{`INSERT INTO "Quota Table" (id, q) SELECT * FROM unnest($1::bigint[], $2::int[])`,
			model.Apply{Kind: "insert", Table: `"Quota Table"`}},
		{"INSERT INTO quotas(id, q) SELECT * FROM unnest($1::bigint[], $2::int[]) ON CONFLICT (id) DO UPDATE SET q = excluded.q",
			model.Apply{Kind: "insert", Upsert: true, Table: "quotas"}},
		{"INSERT INTO quotas (id, q) SELECT * FROM unnest($1::bigint[], $2::int[]) ON CONFLICT DO NOTHING",
			model.Apply{Kind: "insert", Table: "quotas"}},
		{"INSERT INTO notes (id, body) SELECT id, 'on conflict do update' FROM unnest($1::bigint[]) AS id",
			model.Apply{Kind: "insert", Table: "notes"}},
		{"WITH doomed AS (SELECT id FROM sessions WHERE id = ANY($1::bigint[])) DELETE FROM sessions s USING doomed d WHERE s.id = d.id;",
			model.Apply{Kind: "delete", Table: "sessions"}},
		{"WITH RECURSIVE a(x) AS NOT MATERIALIZED (SELECT 1), b AS (SELECT $$ DELETE FROM t $$) DELETE FROM only audit.sessions WHERE id = ANY($1)",
			model.Apply{Kind: "delete", Table: "audit.sessions"}},
		{"update users set note = E'it''s \\' DELETE' where id = any($1)",
			model.Apply{Kind: "update", Table: "users"}},
	}
	for _, c := range cases {
		got, err := ApplyKind(c.sql)
		if err != nil || got != c.want {
			t.Errorf("ApplyKind(%q) = %+v, %v; want %+v", c.sql, got, err, c.want)
		}
	}
}

func TestApplyKindRefusesWhatItCannotName(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":                            "SELECT statement",
		"MERGE INTO t USING s ON t.id = s.id": "MERGE statement",
		"UPDATE t SET a = 1; DELETE FROM t":   "more than one statement",
		"WITH gone AS (DELETE FROM t RETURNING id) UPDATE u SET a = 1 FROM gone": "writes (DELETE)",
		"UPDATE t SET a = 'open": "not closed",
		"DELETE t WHERE id = 1":  "followed by FROM",
		"":                       "empty",
	} {
		_, err := ApplyKind(sql)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ApplyKind(%q) error = %v; want one mentioning %q", sql, err, want)
		}
	}
}

func TestSameTable(t *testing.T) {
	for _, same := range [][2]string{{"coupons", "public.coupons"}, {`"coupons"`, "coupons"}, {`public."coupons"`, "coupons"}, {"audit.s", "audit.s"}} {
		if !SameTable(same[0], same[1]) {
			t.Errorf("SameTable(%s, %s) = false", same[0], same[1])
		}
	}
	for _, other := range [][2]string{{"coupons", "audit.coupons"}, {`"Coupons"`, "coupons"}, {"coupons", "coupons_archive"}} {
		if SameTable(other[0], other[1]) {
			t.Errorf("SameTable(%s, %s) = true", other[0], other[1])
		}
	}
}

func TestOneStatementEach(t *testing.T) {
	ok := "-- name: A :one\nSELECT 1;\n\n-- name: Apply :execrows\n-- a; comment\nDELETE FROM t WHERE note = ';' AND id = ANY($1);\n"
	if err := OneStatementEach(ok); err != nil {
		t.Fatal(err)
	}
	two := "-- name: Apply :execrows\nDELETE FROM t WHERE id = ANY($1);\nDELETE FROM u WHERE id = ANY($1);\n-- name: B :one\nSELECT 1;\n"
	if err := OneStatementEach(two); err == nil || !strings.Contains(err.Error(), "query Apply holds more than one statement") {
		t.Fatalf("got %v", err)
	}
}
