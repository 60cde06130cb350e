// Package bftype holds the types every part of the runtime and every
// generated backfill binary share: the embedded manifest, reports, exit codes
// and the typed refusal error.
//
// It is a leaf package with no project imports so that generated code, the
// engine and the CLI can all depend on it without cycles, in the way River's
// rivertype sits under the rest of River.
package bftype
