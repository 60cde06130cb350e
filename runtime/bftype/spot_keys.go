package bftype

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

// SpotKeys are report.spot_check: keys as exact JSON (an integer or a
// string), so a bigint key keeps every digit on its way into the binary.
// Validate refuses any other value.
type SpotKeys []json.RawMessage

// UnmarshalYAML reads each listed value as the JSON of what YAML says it is
// (1 as a number, "1" as a string), leaving the judgement to Validate.
func (k *SpotKeys) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: report.spot_check must be a list of keys", n.Line)
	}
	out := make(SpotKeys, 0, len(n.Content))
	for i, item := range n.Content {
		var v any
		if err := item.Decode(&v); err != nil {
			return err
		}
		raw, err := json.Marshal(v)
		if err != nil || item.Tag == "!!float" { // a mapping with non-string keys; 1.0, which JSON would write as 1
			return fmt.Errorf("line %d: report.spot_check.%d: must be a key value (an integer or a string), not %s", item.Line, i, item.Value)
		}
		out = append(out, raw)
	}
	*k = out
	return nil
}
