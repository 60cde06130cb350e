// Package bftype holds the types every part of the runtime and every
// generated backfill binary share: the manifest, reports, exit codes and the
// typed refusal error.
//
// It is a leaf package with no project imports so that generated code, the
// engine and the CLI can all depend on it without cycles, in the way River's
// rivertype sits under the rest of River. It is also the one runtime package
// the generator imports: the manifest (Manifest and its Validate) is defined
// here once, so the generator that reads backfill.yaml and the binary that
// reads its embedded copy hold the same schema to the same rules.
package bftype
