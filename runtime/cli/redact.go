package cli

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// The launch arguments are recorded in the log file, in runs.parameters and
// in the started and resumed audit events. Every observer may read the
// ledger and an audit event can never be removed, so a secret that reaches
// either stays there for good: the arguments are recorded only through
// redact, which replaces every secret it can recognise with this word.
const redacted = "REDACTED"

// sensitiveFlags are the flags whose values have a rule of their own; every
// other argument is treated as if it might be a connection string.
var sensitiveFlags = map[string]func(string) string{
	"database-url":  redactConnString,
	"alert-webhook": webhookOrigin,
	"alert-command": redactCommand,
}

// redact returns args as they may be recorded. It walks them the way pflag
// parses them: --name=value, or --name followed by its value.
func redact(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, inline := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		rule, sensitive := sensitiveFlags[name]
		switch {
		case !strings.HasPrefix(a, "--") || !sensitive:
			out = append(out, redactConnString(a))
		case inline:
			out = append(out, "--"+name+"="+rule(value))
		case i+1 < len(args):
			out = append(out, a, rule(args[i+1]))
			i++
		default:
			out = append(out, a)
		}
	}
	return out
}

var (
	// keywordPassword is a password in libpq's keyword/value form: bare up to
	// the next space, or single-quoted with backslash escapes.
	keywordPassword = regexp.MustCompile(`(?i)(^|\s)((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)
	// queryPassword is a password passed as a parameter of a URL.
	queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)[^&#\s]*`)
)

// redactConnString hides the passwords of a PostgreSQL connection string in
// either form, URL (postgres://user:password@host/db?sslpassword=...) or
// keyword/value (host=... password=...); anything else comes back as it is.
func redactConnString(s string) string {
	s = redactUserinfo(s)
	s = queryPassword.ReplaceAllString(s, "${1}"+redacted)
	return keywordPassword.ReplaceAllString(s, "${1}${2}"+redacted)
}

// redactUserinfo hides the password of a URL's user. It does not need the
// URL to parse: a multi-host URL does not, and a password written with a raw
// '/', '?' or '#' ends the host part early, in which case everything up to
// the last '@' is hidden.
func redactUserinfo(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	head, rest := s[:i+3], s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		at = strings.LastIndex(rest, "@")
		if at < 0 || !strings.Contains(rest[:at], ":") {
			return s
		}
		return head + redacted + rest[at:]
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return s
	}
	return head + user + ":" + redacted + rest[at:]
}

// webhookOrigin reduces a webhook URL to its scheme and host: the path and
// query of a webhook are usually its secret (Slack, Teams, PagerDuty).
func webhookOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return redacted
	}
	return u.Scheme + "://" + u.Host
}

// redactCommand keeps an alert command as given unless it holds something
// that looks like a secret; then none of it is recorded.
func redactCommand(cmd string) string {
	if len(secretsIn(cmd)) > 0 {
		return redacted
	}
	return cmd
}

var (
	// secretName is a word that names a credential: a flag, a key or a header.
	secretName = regexp.MustCompile(`(?i)pass|pwd|secret|token|api[-_]?key|auth|bearer|credential|private`)
	// envReference is $NAME or ${NAME}: the shell expands it when the hook
	// runs, so the command itself holds no secret.
	envReference = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
	// authScheme is the word between an Authorization header and its secret.
	authScheme = regexp.MustCompile(`(?i)^(bearer|basic|token)$`)
)

// secretsIn returns the parts of a shell command that look like secrets:
//   - a literal value given to a word that names a credential (--token X,
//     --password=X, api_key=X, Authorization: Bearer X);
//   - a URL's user password, and curl's --user/-u NAME:PASSWORD;
//   - a long random-looking string (16 or more letters and digits that
//     change between digits, lower and upper case at least four times).
//
// Values that are shell variables ($TOKEN, ${TOKEN}) are not secrets: that
// is the way to keep a command on record.
func secretsIn(cmd string) []string {
	words := strings.FieldsFunc(cmd, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("\"'`", r) })
	var found []string
	for i, w := range words {
		w = envReference.ReplaceAllString(w, "")
		found = append(found, wordSecrets(w)...)
		if i+1 < len(words) && takesSecret(w) {
			next := i + 1
			if authScheme.MatchString(words[next]) && next+1 < len(words) {
				next++
			}
			if v := envReference.ReplaceAllString(words[next], ""); v != "" {
				found = append(found, v)
			}
		}
	}
	return found
}

// takesSecret reports a word after which the next word is a credential: a
// credential-named flag or header with no value of its own, or curl's user.
func takesSecret(w string) bool {
	if w == "-u" || w == "--user" {
		return true
	}
	named := strings.TrimRight(w, ":=")
	return secretName.MatchString(named) && (strings.HasPrefix(w, "-") || len(named) < len(w)) && !strings.ContainsAny(named, "=:")
}

// wordSecrets returns the secrets inside one word of a command.
func wordSecrets(w string) []string {
	var found []string
	if u, err := url.Parse(w); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			found = append(found, p)
		}
	}
	for _, piece := range strings.FieldsFunc(w, func(r rune) bool { return strings.ContainsRune("?&;,", r) }) {
		piece = strings.TrimLeft(piece, "-")
		for _, sep := range "=:" {
			if k, v, ok := strings.Cut(piece, string(sep)); ok && v != "" && secretName.MatchString(k) && !strings.Contains(k, "/") {
				found = append(found, v)
			}
		}
	}
	for _, piece := range strings.FieldsFunc(w, func(r rune) bool { return strings.ContainsRune("/?&;,=:@#", r) }) {
		if randomLooking(piece) {
			found = append(found, piece)
		}
	}
	return found
}

// randomLooking reports a string that reads like a key or token rather than
// a word or a path: long, and switching often between digits, lower case and
// upper case.
func randomLooking(s string) bool {
	if len(s) < 16 {
		return false
	}
	changes, prev := 0, 0
	for _, r := range s {
		class := 0
		switch {
		case unicode.IsDigit(r):
			class = 1
		case unicode.IsLower(r):
			class = 2
		case unicode.IsUpper(r):
			class = 3
		case strings.ContainsRune("_-+.~", r):
			continue
		default:
			return false
		}
		if prev != 0 && class != prev {
			changes++
		}
		prev = class
	}
	return changes >= 4
}

// scrubber replaces known secrets in text that is about to be logged, such
// as the error a webhook or an alert command returned.
type scrubber []string

func (s scrubber) scrub(text string) string {
	for _, secret := range s {
		if len(secret) >= 4 {
			text = strings.ReplaceAll(text, secret, redacted)
		}
	}
	return text
}

// webhookSecrets are the parts of a webhook URL that must not be logged:
// all of it but the scheme and host.
func webhookSecrets(raw string) scrubber {
	if raw == "" {
		return nil
	}
	s := scrubber{raw}
	if u, err := url.Parse(raw); err == nil {
		s = append(s, u.RequestURI(), u.EscapedPath(), u.RawQuery, u.Path)
		if p, ok := u.User.Password(); ok {
			s = append(s, p)
		}
	}
	return s
}
