// Package fill_nicknames populates two nullable columns from legacy text:
// profiles.nickname from legacy_nick (spaces trimmed as PostgreSQL's btrim
// trims them, NULL when nothing is left) and profiles.points from
// legacy_points (NULL unless it is a whole number). docs/authoring.md
// (section 5.4b) walks through it as the example of a nullable column.
package fill_nicknames

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/runonce/backfill/backfills/fill_nicknames/db"
)

// Change is the write for one profile. Nickname and Points are nullable
// (pgtype.Text, pgtype.Int4): an invalid value writes SQL NULL, and a revert
// writes NULL back where the row held NULL.
type Change struct {
	ID       int64
	Nickname pgtype.Text
	Points   pgtype.Int4
}

// Transform decides both columns for every profile; a profile that already
// holds them is left alone (its diff is empty). ScopePage selects every
// column of profiles in order, so sqlc hands it the table's model, db.Profile.
func Transform(row db.Profile) (Change, bool) {
	return Change{ID: row.ID, Nickname: nickname(row.LegacyNick), Points: points(row.LegacyPoints)}, true
}

// nickname is the legacy nickname without surrounding spaces (only ' ', as
// btrim(text) trims: strings.TrimSpace would also trim tabs and newlines),
// or NULL when it is NULL or blank.
func nickname(legacy pgtype.Text) pgtype.Text {
	s := strings.Trim(legacy.String, " ")
	return pgtype.Text{String: s, Valid: legacy.Valid && s != ""}
}

// points is the legacy points as an integer, or NULL when they are missing
// or not a whole number that fits.
func points(legacy pgtype.Text) pgtype.Int4 {
	n, err := strconv.ParseInt(strings.Trim(legacy.String, " "), 10, 32)
	return pgtype.Int4{Int32: int32(n), Valid: legacy.Valid && err == nil}
}
