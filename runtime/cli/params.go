package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/runonce/backfill/runtime/bftype"
)

// paramFlags are --param NAME=VALUE (repeatable) and --params-file FILE, the
// values of the manifest's declared parameters.
type paramFlags struct {
	pairs []string
	file  string
}

func (f *paramFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.pairs, "param", nil, "a declared parameter's value, NAME=VALUE (repeatable; a text[] as a,b,c); see info for the declared ones")
	fs.StringVar(&f.file, "params-file", "", "read parameter values from this JSON or YAML map (NAME: VALUE); --param overrides it")
}

// resolve checks the given values against the declared parameters and
// returns them canonical; any problem is a usage error naming the parameter.
func (f *paramFlags) resolve(m *bftype.Manifest) (bftype.ParamValues, error) {
	v, err := bftype.ParamsFromArgs(m.Params, f.pairs, f.file)
	var pe *bftype.ParamError
	if errors.As(err, &pe) {
		return nil, usageError{pe.Error()}
	}
	return v, err
}

// describeParams lists the declared parameters for info and --help.
func describeParams(m *bftype.Manifest) []string {
	names := make([]string, 0, len(m.Params))
	for n := range m.Params {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		p := m.Params[n]
		s := fmt.Sprintf("%s (%s", n, p.Type)
		switch {
		case p.Default != nil:
			s += ", default " + *p.Default
		default:
			s += ", required"
		}
		if p.Min != "" {
			s += ", min " + p.Min
		}
		if p.Max != "" {
			s += ", max " + p.Max
		}
		if len(p.Allowed) > 0 {
			s += ", one of " + strings.Join(p.Allowed, ", ")
		}
		out = append(out, s+"): "+p.Doc)
	}
	return out
}
