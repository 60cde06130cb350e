package bftype

import (
	"fmt"
	"time"
)

// Duration is a manifest duration as written, such as 2s or 500ms. It keeps
// the text so the embedded manifest reads (and hashes) as it always has;
// Validate refuses text that does not parse as a positive duration, naming
// the field, so a value such as "2 s" can never reach the engine as 0 (for
// lock_timeout, 0 switches the timeout off).
type Duration string

// Parse is the duration, or an error saying what a duration looks like.
func (d Duration) Parse() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("must be a positive duration such as 2s or 500ms (got %q)", string(d))
	}
	return v, nil
}

// Value is the duration of a validated manifest. A manifest reaches the
// runtime only through DecodeManifest, which validates it, so a value that
// does not parse is a bug and panics rather than reading as 0.
func (d Duration) Value() time.Duration {
	v, err := d.Parse()
	if err != nil {
		panic(fmt.Sprintf("unvalidated manifest duration: %v", err))
	}
	return v
}
