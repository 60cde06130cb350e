package bftype

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParamsFromArgs resolves parameter values given as --param NAME=VALUE pairs
// and a --params-file (a JSON or YAML map of values, or lists for a text[]),
// the pairs overriding the file. Every problem is a *ParamError; one not
// about a single parameter has the flag as its Name.
func ParamsFromArgs(specs map[string]ParamSpec, pairs []string, file string) (ParamValues, error) {
	given := map[string]any{}
	if file != "" {
		if err := readParamsFile(file, given); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, pair := range pairs {
		name, value, ok := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || name == "":
			return nil, &ParamError{Name: "--param", Msg: fmt.Sprintf("%q: write NAME=VALUE", pair)}
		case seen[name]:
			return nil, &ParamError{Name: name, Msg: "given twice with --param"}
		}
		seen[name] = true
		given[name] = value
	}
	return ResolveParams(specs, given)
}

func readParamsFile(path string, given map[string]any) error {
	fail := func(name, format string, args ...any) error {
		return &ParamError{Name: name, Msg: fmt.Sprintf("--params-file %s: ", path) + fmt.Sprintf(format, args...)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return &ParamError{Name: "--params-file", Msg: err.Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fail("--params-file", "%v", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fail("--params-file", "must be a map of parameter names to values")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		name, val := root.Content[i].Value, root.Content[i+1]
		switch val.Kind {
		case yaml.ScalarNode:
			given[name] = val.Value
		case yaml.SequenceNode:
			list := []string{}
			for _, e := range val.Content {
				if e.Kind != yaml.ScalarNode {
					return fail(name, "a list holds plain values only")
				}
				list = append(list, e.Value)
			}
			given[name] = list
		default:
			return fail(name, "must be a value or a list")
		}
	}
	return nil
}
