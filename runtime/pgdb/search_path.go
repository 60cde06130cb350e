package pgdb

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/bftype"
)

// SearchPath is the search_path of every session the runtime opens.
// pg_catalog comes first so that no table or function in public shadows a
// catalog one the runtime reads (pg_locks, pg_stat_activity); public holds
// the tables the backfills name; pg_temp is named last, because when it is
// not named PostgreSQL searches it first for relations, and a temporary
// table of the runner's own session could then shadow a target table.
const SearchPath = "pg_catalog, public, pg_temp"

// pinSearchPath sets the session's search_path as a startup parameter and
// removes any search_path setting from the startup options (PGOPTIONS or the
// URL's options=-c search_path=...), which would otherwise compete with it.
func pinSearchPath(params map[string]string) {
	params["search_path"] = SearchPath
	if opts, ok := params["options"]; ok {
		if kept := stripSearchPath(opts); kept != "" {
			params["options"] = kept
		} else {
			delete(params, "options")
		}
	}
}

// stripSearchPath drops every search_path setting from a startup options
// string, in each form the server accepts: "-c search_path=x",
// "-csearch_path=x" and "--search_path=x" or "--search-path=x", with any case.
// Tokens are split as the server splits them: on white space, a backslash
// escaping the next character.
func stripSearchPath(options string) string {
	tokens := optionTokens(options)
	var kept []string
	for i := 0; i < len(tokens); i++ {
		t := unescapeOption(tokens[i])
		switch {
		case t == "-c" && i+1 < len(tokens):
			if isSearchPath(unescapeOption(tokens[i+1])) {
				i++
				continue
			}
		case strings.HasPrefix(t, "-c") && isSearchPath(t[2:]), strings.HasPrefix(t, "--") && isSearchPath(t[2:]):
			continue
		}
		kept = append(kept, tokens[i])
	}
	return strings.Join(kept, " ")
}

// optionTokens splits options on unescaped white space, keeping escapes.
func optionTokens(options string) []string {
	var tokens []string
	var cur strings.Builder
	escaped := false
	for _, r := range options {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			cur.WriteRune(r)
			escaped = true
		case unicode.IsSpace(r):
			if cur.Len() > 0 {
				tokens = append(tokens, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		tokens = append(tokens, cur.String())
	}
	return tokens
}

func unescapeOption(token string) string {
	var b strings.Builder
	escaped := false
	for _, r := range token {
		if r == '\\' && !escaped {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}

// isSearchPath reports whether a "name=value" setting sets search_path.
func isSearchPath(setting string) bool {
	name, _, _ := strings.Cut(setting, "=")
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_") == "search_path"
}

// checkSearchPath refuses a session whose search_path is not SearchPath,
// whatever set it: the server, not our parsing of the options, has the
// last word.
func checkSearchPath(ctx context.Context, conn *pgx.Conn) error {
	var got string
	if err := conn.QueryRow(ctx, "SHOW search_path").Scan(&got); err != nil {
		return fmt.Errorf("error reading the session's search_path: %w", err)
	}
	if got != SearchPath {
		return bftype.Refuse(bftype.ReasonConnection, bftype.ExitConnection,
			"Remove search_path from PGOPTIONS and from the connection string's options.",
			"The session's search_path is %q, not %q, which every backfill session uses.", got, SearchPath)
	}
	return nil
}
