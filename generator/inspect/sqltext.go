package inspect

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/runonce/backfill/generator/model"
)

// sqlToken is one lexical item of a SQL text: a keyword or identifier (Word,
// lowercased unless quoted), or a single punctuation character, with the
// parenthesis depth it stands at.
type sqlToken struct {
	text   string
	quoted bool // a "quoted identifier": its text is kept as written
	param  bool // a positional parameter: its text is the number, e.g. 1 for $1
	depth  int
}

// lex splits SQL into tokens, skipping comments (-- and /* */, nested),
// string literals ('...', E'...', $tag$...$tag$) and numbers; a positional
// parameter ($1) is a token of its own. It is enough
// to find a statement's kind and target, not a parser.
func lex(sql string) ([]sqlToken, error) {
	var out []sqlToken
	depth := 0
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			n := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					n, i = n+1, i+2
				} else if strings.HasPrefix(sql[i:], "*/") {
					n, i = n-1, i+2
					if n == 0 {
						break
					}
				} else {
					i++
				}
			}
			if n != 0 {
				return nil, fmt.Errorf("a /* comment is not closed")
			}
		case c == '\'':
			j, err := skipString(sql, i, false)
			if err != nil {
				return nil, err
			}
			i = j
		case (c == 'e' || c == 'E') && i+1 < len(sql) && sql[i+1] == '\'':
			j, err := skipString(sql, i+1, true)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$' && i+1 < len(sql) && (sql[i+1] == '$' || isIdentStart(sql[i+1])):
			end := strings.IndexByte(sql[i+1:], '$')
			tag := ""
			if end >= 0 {
				tag = sql[i : i+1+end+1]
			}
			if end < 0 || !isTag(tag) {
				i++ // a lone $ before a name, opening no string
				continue
			}
			close := strings.Index(sql[i+len(tag):], tag)
			if close < 0 {
				return nil, fmt.Errorf("the dollar-quoted string %s is not closed", tag)
			}
			i += len(tag) + close + len(tag)
		case c == '$' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			out = append(out, sqlToken{text: sql[i+1 : j], param: true, depth: depth})
			i = j
		case c == '"':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(sql) {
					return nil, fmt.Errorf("a quoted identifier is not closed")
				}
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(sql[j])
				j++
			}
			out = append(out, sqlToken{text: b.String(), quoted: true, depth: depth})
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(sql) && (isIdentStart(sql[j]) || sql[j] >= '0' && sql[j] <= '9' || sql[j] == '$') {
				j++
			}
			out = append(out, sqlToken{text: strings.ToLower(sql[i:j]), depth: depth})
			i = j
		case c == '(':
			out = append(out, sqlToken{text: "(", depth: depth})
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("a ) has no matching (")
			}
			out = append(out, sqlToken{text: ")", depth: depth})
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c >= '0' && c <= '9':
			i++
		default:
			out = append(out, sqlToken{text: string(c), depth: depth})
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("a ( has no matching )")
	}
	return out, nil
}

func skipString(sql string, i int, escapes bool) (int, error) {
	for j := i + 1; j < len(sql); j++ {
		switch {
		case escapes && sql[j] == '\\':
			j++
		case sql[j] == '\'' && j+1 < len(sql) && sql[j+1] == '\'':
			j++
		case sql[j] == '\'':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("a string literal is not closed")
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// isTag reports whether s is a dollar-quote delimiter: $$ or $name$.
func isTag(s string) bool {
	if len(s) < 2 || s[0] != '$' || s[len(s)-1] != '$' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isIdentStart(s[i]) && !(i > 1 && s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

// firstStatement cuts toks at the first top-level semicolon and reports
// whether anything but more semicolons follows it (false: a second statement).
func firstStatement(toks []sqlToken) ([]sqlToken, bool) {
	for i, t := range toks {
		if t.depth == 0 && !t.quoted && t.text == ";" {
			for _, rest := range toks[i+1:] {
				if rest.quoted || rest.text != ";" {
					return toks[:i], false
				}
			}
			return toks[:i], true
		}
	}
	return toks, true
}

// word reports whether t is the unquoted keyword w.
func (t sqlToken) word(w string) bool { return !t.quoted && !t.param && t.text == w }

// paramNumbers is the set of positional parameters ($n) a statement uses,
// outside its comments and string literals.
func paramNumbers(sql string) (map[int]bool, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, t := range toks {
		if n, err := strconv.Atoi(t.text); t.param && err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// ApplyKind reads what an Apply statement does: UPDATE, INSERT (an upsert
// when it has ON CONFLICT ... DO UPDATE) or DELETE, and the table it writes.
// It refuses anything else: a SELECT, a MERGE, several statements, or a
// WITH whose parts write too, since then the statement's kind would not
// tell a reviewer everything it changes.
func ApplyKind(sql string) (model.Apply, error) {
	toks, err := lex(sql)
	if err != nil {
		return model.Apply{}, err
	}
	toks, one := firstStatement(toks)
	if !one {
		return model.Apply{}, fmt.Errorf("it holds more than one statement")
	}
	i, err := skipWith(toks)
	if err != nil {
		return model.Apply{}, err
	}
	if i >= len(toks) {
		return model.Apply{}, fmt.Errorf("it is empty")
	}
	var a model.Apply
	rest := toks[i+1:]
	switch first := toks[i]; {
	case first.word("update"):
		a.Kind = model.KindUpdate
	case first.word("insert"):
		a.Kind = model.KindInsert
		if len(rest) == 0 || !rest[0].word("into") {
			return a, fmt.Errorf("INSERT must be followed by INTO")
		}
		rest = rest[1:]
		a.Upsert = doUpdate(rest)
	case first.word("delete"):
		a.Kind = model.KindDelete
		if len(rest) == 0 || !rest[0].word("from") {
			return a, fmt.Errorf("DELETE must be followed by FROM")
		}
		rest = rest[1:]
	default:
		return a, fmt.Errorf("it is a %s statement; Apply must be an UPDATE, an INSERT or a DELETE", strings.ToUpper(first.text))
	}
	if len(rest) > 0 && rest[0].word("only") {
		rest = rest[1:]
	}
	if a.Table = tableName(rest); a.Table == "" {
		return a, fmt.Errorf("the table it writes is not named after %s", strings.ToUpper(toks[i].text))
	}
	return a, nil
}

// skipWith returns the index of the main statement's first sqlToken, after a
// WITH clause, refusing a WITH whose queries write.
func skipWith(toks []sqlToken) (int, error) {
	if len(toks) == 0 || !toks[0].word("with") {
		return 0, nil
	}
	i := 1
	if i < len(toks) && toks[i].word("recursive") {
		i++
	}
	for i < len(toks) {
		name := toks[i].text
		// name [(columns)] AS [NOT] [MATERIALIZED] ( query )
		for i < len(toks) && !(toks[i].depth == 0 && toks[i].word("as")) {
			i++
		}
		for i++; i < len(toks) && (toks[i].word("not") || toks[i].word("materialized")); i++ {
		}
		if i >= len(toks) || toks[i].text != "(" {
			return 0, fmt.Errorf("the WITH query %s has no ( query )", name)
		}
		if i+1 < len(toks) {
			switch n := toks[i+1]; {
			case n.word("insert"), n.word("update"), n.word("delete"), n.word("merge"):
				return 0, fmt.Errorf("the WITH query %s writes (%s); Apply may write through its main statement only", name, strings.ToUpper(n.text))
			}
		}
		for i++; i < len(toks) && !(toks[i].depth == 0 && toks[i].text == ")"); i++ {
		}
		i++ // past the )
		if i < len(toks) && toks[i].text == "," {
			i++
			continue
		}
		return i, nil
	}
	return i, nil
}

// doUpdate reports whether an INSERT's top level has ON CONFLICT ... DO UPDATE.
func doUpdate(toks []sqlToken) bool {
	conflict := false
	for i, t := range toks {
		if t.depth != 0 {
			continue
		}
		if t.word("on") && i+1 < len(toks) && toks[i+1].word("conflict") {
			conflict = true
		}
		if conflict && t.word("do") && i+1 < len(toks) && toks[i+1].word("update") {
			return true
		}
	}
	return false
}

// tableName reads a maybe schema-qualified, maybe quoted name at the start
// of toks, as the SQL spells it (quoted parts keep their quotes).
func tableName(toks []sqlToken) string {
	var parts []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.param || t.text == "(" || t.text == ")" || (!t.quoted && len(t.text) == 1 && !isIdentStart(t.text[0])) {
			break
		}
		if t.quoted {
			parts = append(parts, `"`+strings.ReplaceAll(t.text, `"`, `""`)+`"`)
		} else {
			parts = append(parts, t.text)
		}
		if i+1 < len(toks) && toks[i+1].text == "." && !toks[i+1].quoted {
			i++
			continue
		}
		break
	}
	return strings.Join(parts, ".")
}

// LocksRows reports whether a SELECT ends with a row lock that blocks other
// writers until the transaction ends: FOR UPDATE, FOR NO KEY UPDATE or FOR
// SHARE (FOR KEY SHARE lets other sessions update the row, so it does not),
// and never SKIP LOCKED, which would leave a locked row out of the images.
func LocksRows(sql string) bool {
	toks, err := lex(sql)
	if err != nil {
		return false
	}
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].depth == 0 && toks[i].word("skip") && toks[i+1].word("locked") {
			return false
		}
	}
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].depth != 0 || !toks[i].word("for") {
			continue
		}
		switch next := toks[i+1]; {
		case next.word("update"), next.word("share"):
			return true
		case next.word("no"):
			return i+3 < len(toks) && toks[i+2].word("key") && toks[i+3].word("update")
		}
	}
	return false
}

// SameTable reports whether two table names as SQL spells them name the
// same table on the default search path: quotes around a lowercase name and
// the schema public make no difference ("coupons", public.coupons).
func SameTable(a, b string) bool { return canonicalTable(a) == canonicalTable(b) }

func canonicalTable(name string) string {
	var parts []string
	for _, p := range strings.Split(name, ".") {
		if len(p) > 1 && p[0] == '"' && p[len(p)-1] == '"' {
			if q := p[1 : len(p)-1]; q == strings.ToLower(q) && !strings.ContainsAny(q, `". `) {
				p = q
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 2 && parts[0] == "public" {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// OneStatementEach checks a sqlc query file: every query under a
// "-- name:" line holds one statement. sqlc keeps only the first statement
// of a query and drops the rest without a word, so a second statement would
// be in the file reviewers read but not in the binary.
func OneStatementEach(file string) error {
	var name string
	var body strings.Builder
	check := func() error {
		if name == "" {
			return nil
		}
		toks, err := lex(body.String())
		if err != nil {
			return fmt.Errorf("query %s: %v", name, err)
		}
		if _, one := firstStatement(toks); !one {
			return fmt.Errorf("query %s holds more than one statement; sqlc keeps only the first, so the binary would not run what the file shows", name)
		}
		return nil
	}
	for _, line := range strings.SplitAfter(file, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "--" && f[1] == "name:" {
			if err := check(); err != nil {
				return err
			}
			name = f[2]
			body.Reset()
			continue
		}
		body.WriteString(line)
	}
	return check()
}
