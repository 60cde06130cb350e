package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// pages are the parsed templates, one per page, each with the layout.
type pages struct{ byName map[string]*template.Template }

var pageNames = []string{"runs", "run", "approvals", "dryruns", "error"}

func parsePages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("error parsing the %s page: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v != nil {
				return v.UTC().Format("2006-01-02 15:04:05Z")
			}
		}
		return "-"
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}

// view is what every page template gets: the page's data, and the token to
// carry on in links and in the page script's requests.
type view struct {
	Data  any
	Token string
	Now   time.Time
}

// Link is path with the token carried on, for links between pages.
func (v view) Link(path string, parts ...any) template.URL {
	for _, p := range parts {
		path += fmt.Sprint(p)
	}
	if v.Token == "" {
		return template.URL(path)
	}
	return template.URL(path + "?" + url.Values{"token": {v.Token}}.Encode())
}

// render executes a page, or the error page when err is set.
func (s *Server) render(w http.ResponseWriter, r *http.Request, err error, name string, data any) {
	code := http.StatusOK
	if err != nil {
		code, name, data = status(err), "error", err.Error()
		if code == http.StatusNotFound {
			s.log.Info("not found", "path", r.URL.Path, "error", err)
		} else {
			s.log.Error("error reading the ledger", "path", r.URL.Path, "error", err)
		}
	}
	var b bytes.Buffer
	v := view{Data: data, Token: r.URL.Query().Get("token"), Now: time.Now().UTC()}
	if err := s.pages.byName[name].ExecuteTemplate(&b, "layout", v); err != nil {
		s.log.Error("error rendering a page", "page", name, "error", err)
		http.Error(w, "error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}
