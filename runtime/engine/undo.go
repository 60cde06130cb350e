package engine

import (
	"encoding/json"

	"github.com/runonce/backfill/runtime/bftype"
)

// encodeUndo writes a batch's before- and after-images as the JSON array
// backfill.undo holds, one {"key", "before", "after"} object per changed row,
// the shape ledger.Undo decodes. It appends the values the diffs already hold
// as JSON into one buffer: building a map per row and marshalling them cost
// more client time than the rest of the batch.
func encodeUndo(samples []bftype.Sample) []byte {
	size := 2
	for _, s := range samples {
		size += len(s.Key) + 32
		for _, d := range s.Diffs {
			size += 2*len(d.Field) + len(d.Before) + len(d.After) + 12
		}
	}
	names := map[string][]byte{}
	name := func(field string) []byte {
		if b, ok := names[field]; ok {
			return b
		}
		b, _ := json.Marshal(field) // a string always marshals
		names[field] = b
		return b
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, s := range samples {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"key":`...)
		buf = appendRaw(buf, s.Key)
		for _, side := range [2]string{`,"before":{`, `,"after":{`} {
			buf = append(buf, side...)
			for j, d := range s.Diffs {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, name(d.Field)...)
				buf = append(buf, ':')
				if side == `,"before":{` {
					buf = appendRaw(buf, d.Before)
				} else {
					buf = appendRaw(buf, d.After)
				}
			}
			buf = append(buf, '}')
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// appendRaw appends a JSON value, or null when there is none (a field the
// scope row does not read has no before value).
func appendRaw(buf []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(buf, "null"...)
	}
	return append(buf, v...)
}
