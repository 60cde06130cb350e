// Package manifest reads a backfill's backfill.yaml into the one manifest
// type, bftype.Manifest, for the generator.
//
// The type and its rules (bftype.Manifest.Validate) live in the leaf package
// bftype, which the generated binary also uses to decode and validate its
// embedded copy: one schema, one set of rules. What this package adds is
// what only the YAML file has: it decodes strictly (unknown and duplicate
// keys are errors, because a misspelt guardrail that is silently ignored is
// worse than no guardrail at all), it knows which keys were written at all
// (an explicit batch.size: 0 is refused, an omitted one takes the default),
// and it points every error at the file and line so the author can fix it
// without guessing.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runonce/backfill/runtime/bftype"
)

// Error is a manifest problem at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and validates the manifest at path.
func Load(path string) (*bftype.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error loading manifest %q: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly, applies the defaults and runs the one
// Validate; name is used in errors.
func Parse(name string, data []byte) (*bftype.Manifest, error) {
	m, l, err := unvalidated(name, data)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		var merr *bftype.ManifestError
		if errors.As(err, &merr) {
			return nil, l.errorf(merr.Path, "%s", merr.Msg)
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	return m, nil
}

// unvalidated is Parse up to Validate: the manifest as it would be
// embedded, with the file's own rules checked and the defaults applied.
func unvalidated(name string, data []byte) (*bftype.Manifest, lines, error) {
	m, l, err := decode(name, data)
	if err != nil {
		return nil, l, err
	}
	if err := l.written(m); err != nil {
		return nil, l, err
	}
	l.requiredByOmission(m)
	m.ApplyDefaults()
	return m, l, nil
}

// decode is the strict YAML decoding alone, without defaults or rules.
func decode(name string, data []byte) (*bftype.Manifest, lines, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, lines{}, yamlError(name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, lines{}, &Error{File: name, Msg: "the manifest is empty; it needs at least scope, owner, risk, expect and target"}
	}
	if err := rejectDuplicates(name, root.Content[0]); err != nil {
		return nil, lines{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m bftype.Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, lines{}, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, lines{}, &Error{File: name, Line: extra.Line, Msg: "a manifest is one YAML document; remove the second one (after ---)"}
	}
	return &m, lines{name: name, root: root.Content[0]}, nil
}

// written holds the rules about keys as written, which the decoded value
// cannot tell from omitted ones: an explicit 0 where omitting means a
// default, an empty targets:, and a reason or a lineage written blank. The
// embedded manifest has none of these spellings, so they are the only rules
// outside Validate.
func (l lines) written(m *bftype.Manifest) error {
	for _, key := range []string{"batch.size", "batch.canary", "batch.lanes"} {
		if n := l.node(key); n != nil && n.Value == "0" {
			return l.errorf(key, "must be at least 1 (omit it for the default)")
		}
	}
	if l.node("targets") != nil && len(m.Targets) == 0 { // the embedded JSON omits an empty map
		return l.errorf("targets", "must name at least one environment, e.g. {staging: {database: app}}")
	}
	if l.node("risk_reason") != nil && strings.TrimSpace(m.RiskReason) == "" {
		return l.errorf("risk_reason", "must say why the risk is what it is, or be left out")
	}
	if l.node("supersedes") != nil && m.Supersedes == "" {
		return l.errorf("supersedes", "must be the name of the backfill this one is a new version of, not %q", m.Supersedes)
	}
	return nil
}

// requiredByOmission makes a parameter that leaves out required: and has
// no default required, the one spelling the embedded JSON has; an explicit
// required: false without a default stays false, for Validate to refuse.
func (l lines) requiredByOmission(m *bftype.Manifest) {
	for name, p := range m.Params {
		if l.node("params."+name+".required") == nil && p.Default == nil {
			p.Required = true
			m.Params[name] = p
		}
	}
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's multi-line errors into one "file:line: message".
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	if sub := yamlLine.FindStringSubmatch(first); sub != nil {
		var line int
		fmt.Sscanf(sub[1], "%d", &line)
		return &Error{File: name, Line: line, Msg: friendlyYAML(sub[2])}
	}
	return &Error{File: name, Msg: friendlyYAML(first)}
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type bftype\.(\w+)`)

func friendlyYAML(msg string) string {
	if sub := unknownField.FindStringSubmatch(msg); sub != nil {
		section := strings.ToLower(strings.TrimSuffix(sub[2], "Spec")) // ParamSpec is a param
		return fmt.Sprintf("unknown key %q in %s (see docs/authoring.md for the accepted keys)", sub[1], section)
	}
	return msg
}

func rejectDuplicates(name string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				return &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("key %q appears twice", k.Value)}
			}
			seen[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if err := rejectDuplicates(name, c); err != nil {
			return err
		}
	}
	return nil
}

// lines finds the line of a dotted key path for error messages.
type lines struct {
	name string
	root *yaml.Node
}

func (l lines) errorf(path, format string, args ...any) error {
	return &Error{File: l.name, Line: l.line(path), Msg: path + ": " + fmt.Sprintf(format, args...)}
}

// line is the line of the deepest key of path that exists: the key itself,
// or, for a missing key, the parent it belongs under.
func (l lines) line(path string) int {
	n, best := l.root, l.root.Line
	for _, key := range strings.Split(path, ".") {
		keyLine, next := child(n, key)
		if next == nil {
			return best
		}
		n, best = next, keyLine
	}
	return best
}

// node is the value node at path, or nil.
func (l lines) node(path string) *yaml.Node {
	n := l.root
	for _, key := range strings.Split(path, ".") {
		if _, n = child(n, key); n == nil {
			return nil
		}
	}
	return n
}

// child returns the line of key in n and its value node.
func child(n *yaml.Node, key string) (int, *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		var i int
		if _, err := fmt.Sscanf(key, "%d", &i); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i].Line, n.Content[i]
		}
		return 0, nil
	}
	if n.Kind != yaml.MappingNode {
		return 0, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line, n.Content[i+1]
		}
	}
	return 0, nil
}
