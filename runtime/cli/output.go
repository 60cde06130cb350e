package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// OutputFlag adds --output text|json (and --json, its short form) to a
// list or status command; the returned function says, after parsing,
// whether to print JSON, or that the value is not one of the two.
func OutputFlag(fs *pflag.FlagSet) func() (bool, error) {
	output := fs.String("output", "text", "text or json")
	asJSON := fs.Bool("json", false, "print as JSON (the same as --output json)")
	return func() (bool, error) {
		switch *output {
		case "text":
			return *asJSON, nil
		case "json":
			return true, nil
		}
		return false, fmt.Errorf("--output must be text or json, not %q", *output)
	}
}

// WriteJSON prints v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
