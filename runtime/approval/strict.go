package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// decodeStrict decodes one JSON value into v and refuses anything two
// readers could read differently: a key that appears twice in an object
// (encoding/json keeps the last, other parsers the first), two keys that
// differ only in case, a key that is not its field's exact name (encoding/json
// matches "Predicate" to predicate case-insensitively), an unknown key, and
// data after the value. A signed statement must mean one thing to the
// binary, to verify-archive and to any other tool a reviewer uses.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkValue(dec, reflect.TypeOf(v).Elem(), "$"); err != nil {
		return err
	}
	if err := atEOF(dec); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// atEOF refuses anything but white space after the first value.
func atEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("there is data after the JSON value")
	}
	return nil
}

// walkValue reads one value from dec and checks its object keys against t,
// the Go type it will be decoded into.
func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("error reading JSON at %s: %w", path, err)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t != rawType {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

var rawType = reflect.TypeOf(json.RawMessage(nil))

// walkObject checks one object's keys: no duplicate, no case variant and,
// for a struct, only its fields' exact names. The opening brace is read.
func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	seen := map[string]string{} // lower case -> key as written
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("error reading JSON at %s: %w", path, err)
		}
		key := tok.(string)
		if prev, ok := seen[strings.ToLower(key)]; ok {
			if prev == key {
				return fmt.Errorf("key %q appears twice in %s", key, path)
			}
			return fmt.Errorf("keys %q and %q in %s differ only in case", prev, key, path)
		}
		seen[strings.ToLower(key)] = key
		var next reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("unknown key %q in %s (keys are case-sensitive)", key, path)
			}
			next = ft
		case t != nil && t.Kind() == reflect.Map:
			next = t.Elem()
		}
		if err := walkValue(dec, next, path+"."+key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// jsonFields maps a struct's JSON names, as its tags spell them, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
