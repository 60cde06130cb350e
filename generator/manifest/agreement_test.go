package manifest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/bftype"
)

// TestBinaryRefusesWhatTheGeneratorRefuses embeds each manifest the
// generator refuses by a rule (not by YAML syntax or spelling) as the binary
// would get it, and requires the binary's DecodeManifest to refuse it with
// the same message. A second set of rules on either side fails here.
func TestBinaryRefusesWhatTheGeneratorRefuses(t *testing.T) {
	t.Parallel()
	compared := 0
	for _, tc := range errorCases {
		m, _, err := unvalidated("backfill.yaml", []byte(tc.yaml))
		if err != nil {
			continue // YAML syntax, strictness or a spelling only the file has
		}
		_, genErr := Parse("backfill.yaml", []byte(tc.yaml))
		var merr *Error
		require.ErrorAs(t, genErr, &merr, tc.name)

		_, binErr := bftype.DecodeManifest(m.JSON())
		require.Error(t, binErr, "%s: the binary starts on a manifest the generator refuses", tc.name)
		require.True(t, strings.HasSuffix(binErr.Error(), ": "+merr.Msg), "%s:\ngenerator: %s\nbinary:    %s", tc.name, merr.Msg, binErr)
		compared++
	}
	require.Greater(t, compared, 50, "most error cases are rules, not YAML")

	for name, data := range validManifests(t) {
		m, err := Parse(name, data)
		require.NoError(t, err)
		_, err = bftype.DecodeManifest(m.JSON())
		require.NoError(t, err, "%s: the binary refuses a manifest the generator accepts", name)
	}
}

// TestOneManifestType fails when a second declaration of the manifest
// schema appears anywhere in the module: every struct field keyed
// lock_timeout (in YAML or JSON) must be bftype.Batch's.
func TestOneManifestType(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "dist" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		found = append(found, lockTimeoutFields(t, path)...)
		return nil
	})
	require.NoError(t, err)
	want := filepath.Join(root, "runtime", "bftype", "manifest.go") + ": Batch.LockTimeout"
	require.Equal(t, []string{want}, found, "the manifest is declared once, in runtime/bftype")
}

// lockTimeoutFields lists the struct fields of a Go file tagged lock_timeout.
func lockTimeoutFields(t *testing.T, path string) []string {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	if !strings.Contains(string(src), "lock_timeout") {
		return nil
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.SkipObjectResolution)
	require.NoError(t, err)
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := spec.Type.(*ast.StructType)
		if !ok {
			return true
		}
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			tag := reflect.StructTag(strings.Trim(field.Tag.Value, "`"))
			for _, key := range []string{"json", "yaml"} {
				if name, _, _ := strings.Cut(tag.Get(key), ","); name == "lock_timeout" {
					out = append(out, path+": "+spec.Name.Name+"."+field.Names[0].Name)
					break
				}
			}
		}
		return true
	})
	return out
}
