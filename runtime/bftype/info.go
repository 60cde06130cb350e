package bftype

// Info is what `info --json` prints: the binary's identity.
type Info struct {
	Name         string      `json:"name"`
	Digest       string      `json:"digest"`
	RunSignature string      `json:"run_signature"`
	SourceCommit string      `json:"source_commit"`
	SourceDigest string      `json:"source_digest"`
	CodeVersion  string      `json:"code_version"`
	GoVersion    string      `json:"go_version"`
	Manifest     *Manifest   `json:"manifest"`
	ManifestText string      `json:"manifest_text"` // the embedded manifest, byte for byte
	Statements   []Statement `json:"statements"`
	// Apply is what the binary writes. An info saved before it was
	// recorded (an old archive's manifest.json) has none, and reads as an
	// update.
	Apply Apply `json:"apply"`
}
