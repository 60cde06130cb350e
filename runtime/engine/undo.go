package engine

import (
	"encoding/json"
	"sort"

	"github.com/runonce/backfill/runtime/plan"
)

// encodeUndo writes a batch's before- and after-images as the JSON array
// backfill.undo holds, one {"key", "before", "after"} object per changed row,
// the shape ledger.Undo decodes. It appends the images, already exact JSON,
// into one buffer, fields in name order: marshalling a map per row cost more
// client time than the rest of the batch.
func encodeUndo(items []plan.UndoItem) []byte {
	size := 2
	for _, it := range items {
		size += len(it.Key) + 32
		for f, v := range it.Before {
			size += 2*len(f) + len(v) + len(it.After[f]) + 12
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
	var fields []string
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"key":`...)
		buf = appendRaw(buf, it.Key)
		for _, side := range [2]struct {
			label string
			image map[string]json.RawMessage
		}{{`,"before":{`, it.Before}, {`,"after":{`, it.After}} {
			if side.image == nil { // no row before an insert, none after a delete
				buf = append(buf, side.label[:len(side.label)-1]...)
				buf = append(buf, "null"...)
				continue
			}
			fields = sortedFields(fields[:0], side.image)
			buf = append(buf, side.label...)
			for j, f := range fields {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, name(f)...)
				buf = append(buf, ':')
				buf = appendRaw(buf, side.image[f])
			}
			buf = append(buf, '}')
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

func sortedFields(dst []string, image map[string]json.RawMessage) []string {
	for f := range image {
		dst = append(dst, f)
	}
	sort.Strings(dst)
	return dst
}

// appendRaw appends a JSON value, or null when there is none.
func appendRaw(buf []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(buf, "null"...)
	}
	return append(buf, v...)
}

// undoKeys are the keys of a batch's images as text, as PostgreSQL spells
// them: the ledger stores them beside the images and lets a revert of the
// batch write only them.
func undoKeys(items []plan.UndoItem) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = keyText(it.Key)
	}
	return keys
}

// keyText is a key's text: a JSON string unquoted, a number as it is.
func keyText(k json.RawMessage) string {
	if len(k) > 0 && k[0] == '"' {
		var s string
		if json.Unmarshal(k, &s) == nil {
			return s
		}
	}
	return string(k)
}
