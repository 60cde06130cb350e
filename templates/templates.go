// Package templates holds the files `backfill new NAME` scaffolds: a query
// set, a manifest and a transform, each commented to teach its author what to
// change. The wiring itself is not a template: the generator writes it with
// jennifer from the typed packages.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed scaffold/*.tmpl
var files embed.FS

// File is one scaffolded file: where it goes (relative to the repository
// root) and its content.
type File struct {
	Path    string
	Content []byte
}

// Data is what the templates are rendered with.
type Data struct {
	Name   string // the backfill name
	Module string // the Go module path
}

// Scaffold renders the files of a new backfill.
func Scaffold(d Data) ([]File, error) {
	out := []File{}
	for _, f := range []struct{ tmpl, path string }{
		{"queries.sql.tmpl", "queries/" + d.Name + "/" + d.Name + ".sql"},
		{"backfill.yaml.tmpl", "backfills/" + d.Name + "/backfill.yaml"},
		{"transform.go.tmpl", "backfills/" + d.Name + "/transform.go"},
	} {
		content, err := render(f.tmpl, d)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Path: f.path, Content: content})
	}
	return out, nil
}

// SQLCEntry is the sqlc.yaml entry of a new backfill.
func SQLCEntry(d Data) ([]byte, error) { return render("sqlc_entry.yaml.tmpl", d) }

func render(name string, d Data) ([]byte, error) {
	t, err := template.ParseFS(files, "scaffold/"+name)
	if err != nil {
		return nil, fmt.Errorf("error parsing template %q: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("error rendering template %q: %w", name, err)
	}
	return buf.Bytes(), nil
}
