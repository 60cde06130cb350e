package repro

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// BuildFlags are the flags of the reproducible build, before -ldflags.
// Changing them changes every digest; docs/auditing.md documents them.
var BuildFlags = []string{"build", "-trimpath", "-buildvcs=false"}

// baseLinkFlags strip the symbol table, DWARF and build id, which would
// otherwise differ between machines.
const baseLinkFlags = "-s -w -buildid="

// Recipe is build.json: everything needed to repeat a build exactly, besides
// the source bundle itself.
type Recipe struct {
	Backfill     string            `json:"backfill"`
	GoVersion    string            `json:"go_version"`
	Env          map[string]string `json:"env"`
	Args         []string          `json:"args"` // go's arguments, without -o
	Package      string            `json:"package"`
	SourceDigest string            `json:"source_digest"`
	SourceCommit string            `json:"source_commit"`
	Binary       string            `json:"binary"`
	SHA256       string            `json:"sha256"` // of the binary this recipe produced
	Command      string            `json:"command"`
}

var (
	commitPattern  = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,80}$`)
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	digestPattern  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	versionPattern = regexp.MustCompile(`^go1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?$`)
	// envPatterns are the only variables a recipe may set, and their values.
	envPatterns = map[string]*regexp.Regexp{
		"GOOS": regexp.MustCompile(`^[a-z0-9]+$`), "GOARCH": regexp.MustCompile(`^[a-z0-9]+$`),
		"GOAMD64": regexp.MustCompile(`^v[1-4]$`), "GOARM64": regexp.MustCompile(`^v[0-9]+\.[0-9]+(,[a-z]+)*$`),
		"GOEXPERIMENT": regexp.MustCompile(`^[a-z0-9,]*$`),
	}
)

// NewRecipe describes the build of backfill name from a bundle with the Go
// toolchain on this machine.
func NewRecipe(ctx context.Context, name, sourceDigest, commit string) (*Recipe, error) {
	goenv, err := goEnv(ctx, "GOVERSION", "GOOS", "GOARCH", "GOAMD64", "GOARM64", "GOEXPERIMENT")
	if err != nil {
		return nil, err
	}
	target := map[string]string{"GOOS": goenv["GOOS"], "GOARCH": goenv["GOARCH"], "GOEXPERIMENT": goenv["GOEXPERIMENT"]}
	switch goenv["GOARCH"] {
	case "amd64":
		target["GOAMD64"] = goenv["GOAMD64"]
	case "arm64":
		target["GOARM64"] = goenv["GOARM64"]
	}
	return Standard(name, goenv["GOVERSION"], target, sourceDigest, commit)
}

// Standard is the one recipe this tool ever uses for a backfill, a Go
// version, a target platform (GOOS, GOARCH and its level, GOEXPERIMENT),
// a source bundle and a commit. Every value is checked, so a recipe made
// from an archive's build.json cannot smuggle in another flag, variable,
// package or output path: a rebuild runs only this.
func Standard(name, goVersion string, target map[string]string, sourceDigest, commit string) (*Recipe, error) {
	switch {
	case !namePattern.MatchString(name):
		return nil, fmt.Errorf("error making the build recipe: backfill name %q is not a valid name", name)
	case !versionPattern.MatchString(goVersion):
		return nil, fmt.Errorf("error making the build recipe: %q is not a Go release", goVersion)
	case !digestPattern.MatchString(sourceDigest):
		return nil, fmt.Errorf("error making the build recipe: %q is not a sha256 digest", sourceDigest)
	case !commitPattern.MatchString(commit):
		return nil, fmt.Errorf("error recording source commit %q: use letters, digits and . _ + - only", commit)
	}
	env := map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
	for k, v := range target {
		p, ok := envPatterns[k]
		if !ok || !p.MatchString(v) {
			return nil, fmt.Errorf("error making the build recipe: %s=%q is not a target setting it may have", k, v)
		}
		env[k] = v
	}
	if env["GOOS"] == "" || env["GOARCH"] == "" {
		return nil, fmt.Errorf("error making the build recipe: GOOS and GOARCH are required")
	}
	ldflags := baseLinkFlags + " -X main.sourceCommit=" + commit + " -X main.sourceDigest=" + sourceDigest
	r := &Recipe{Backfill: name, GoVersion: goVersion, Env: env, Package: "./backfills/" + name + "/cmd",
		SourceDigest: sourceDigest, SourceCommit: commit, Binary: name}
	r.Args = append(append([]string{}, BuildFlags...), "-ldflags", ldflags)
	r.Command = r.shell()
	return r, nil
}

// Standardize returns the standard recipe for what r claims to build, and
// the differences from r, one sentence each: an archived recipe that is not
// exactly the standard one is never run.
func (r *Recipe) Standardize() (*Recipe, []string) {
	target := map[string]string{}
	for k, v := range r.Env {
		if k != "CGO_ENABLED" && k != "GOFLAGS" {
			target[k] = v
		}
	}
	std, err := Standard(r.Backfill, r.GoVersion, target, r.SourceDigest, r.SourceCommit)
	if err != nil {
		return nil, []string{err.Error()}
	}
	std.SHA256 = r.SHA256
	var bad []string
	if !slices.Equal(r.Args, std.Args) {
		bad = append(bad, fmt.Sprintf("args are %q, not the standard %q", r.Args, std.Args))
	}
	if !maps.Equal(r.Env, std.Env) {
		bad = append(bad, fmt.Sprintf("env is %v, not the standard %v", r.Env, std.Env))
	}
	if r.Package != std.Package || r.Binary != std.Binary {
		bad = append(bad, fmt.Sprintf("it builds %s into %s, not %s into %s", r.Package, r.Binary, std.Package, std.Binary))
	}
	if r.Command != std.Command {
		bad = append(bad, fmt.Sprintf("command is %q, not the standard %q", r.Command, std.Command))
	}
	return std, bad
}

// shell is the recipe as one command to type in the extracted bundle.
func (r *Recipe) shell() string {
	keys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, shellQuote(r.Env[k]))
	}
	fmt.Fprintf(&b, "GOTOOLCHAIN=%s go", r.GoVersion)
	for _, a := range r.Args {
		b.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&b, " -o %s %s", r.Binary, r.Package)
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\"$\\`*?;&|<>(){}[]!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Opts are the per-build settings that are not part of the recipe.
type Opts struct {
	GoCache string // GOCACHE for the build; empty keeps the caller's
	// Toolchain pins GOTOOLCHAIN to the recipe's Go version, downloading it
	// through the module proxy if this machine has another (rebuilds);
	// otherwise the local toolchain must be that version.
	Toolchain bool
}

// Build runs the recipe in srcDir (an extracted bundle) and writes the
// binary to out.
func Build(ctx context.Context, r *Recipe, srcDir, out string, o Opts) error {
	args := append(append([]string{}, r.Args...), "-o", out, r.Package)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = srcDir
	cmd.Env = os.Environ()
	for k, v := range r.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if o.Toolchain {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+r.GoVersion)
	} else {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN=local")
	}
	if o.GoCache != "" {
		cmd.Env = append(cmd.Env, "GOCACHE="+o.GoCache)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("error building backfill %q from its source bundle: %w\n%s", r.Backfill, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// goEnv reads go env variables with the local toolchain.
func goEnv(ctx context.Context, names ...string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"env", "-json"}, names...)...)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("error running go env: %w", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("error reading go env: %w", err)
	}
	return env, nil
}

// Embedded is what a binary says about its own build, read from the Go
// build information without running it. Go leaves -ldflags out of the build
// information of a -trimpath build, so the source digest and commit the
// linker set are looked for in the binary's bytes.
type Embedded struct {
	GoVersion string
	Settings  map[string]string
	binary    []byte
}

// ReadEmbedded reads the build information of the binary at path.
func ReadEmbedded(path string) (*Embedded, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading the Go build information of %q: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading %q: %w", path, err)
	}
	e := &Embedded{GoVersion: bi.GoVersion, Settings: map[string]string{}, binary: data}
	for _, s := range bi.Settings {
		e.Settings[s.Key] = s.Value
	}
	return e, nil
}

// Check compares a binary's embedded build information with a recipe and
// returns what differs, one sentence each.
func (r *Recipe) Check(e *Embedded) []string {
	var bad []string
	if e.GoVersion != r.GoVersion {
		bad = append(bad, fmt.Sprintf("the binary was built with %s, the recipe says %s", e.GoVersion, r.GoVersion))
	}
	want := map[string]string{"-trimpath": "true", "CGO_ENABLED": r.Env["CGO_ENABLED"], "GOOS": r.Env["GOOS"], "GOARCH": r.Env["GOARCH"]}
	for _, k := range []string{"-trimpath", "CGO_ENABLED", "GOOS", "GOARCH"} {
		if e.Settings[k] != want[k] {
			bad = append(bad, fmt.Sprintf("the binary's build setting %s is %q, the recipe says %q", k, e.Settings[k], want[k]))
		}
	}
	if !bytes.Contains(e.binary, []byte(r.SourceDigest)) {
		bad = append(bad, fmt.Sprintf("the binary does not embed source bundle %s, which the recipe names", r.SourceDigest))
	}
	if !bytes.Contains(e.binary, []byte(r.SourceCommit)) {
		bad = append(bad, fmt.Sprintf("the binary does not embed source commit %s, which the recipe names", r.SourceCommit))
	}
	return bad
}
