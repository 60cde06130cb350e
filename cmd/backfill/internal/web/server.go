// Package web is backfill serve: a read-only observer of the ledger for
// people (server-rendered pages that follow running runs live) and for
// Prometheus (/metrics). It only reads, in READ ONLY transactions, so it
// is meant to run as a backfill_observer login; it never steers a run.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed assets
var assets embed.FS

// Config is what a server needs.
type Config struct {
	DatabaseURL string // "" reads DATABASE_URL, then the PG* variables
	Token       string // when set, every request must carry it
	Logger      *slog.Logger
}

// Server serves the pages, the JSON API and the metrics.
type Server struct {
	db    *reader
	token string
	log   *slog.Logger
	pages *pages
	mux   *http.ServeMux
}

// New builds a server; it connects to the ledger at the first request.
func New(cfg *Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{db: newReader(cfg.DatabaseURL), token: cfg.Token, log: log, pages: p, mux: http.NewServeMux()}
	reg := prometheus.NewRegistry()
	if err := reg.Register(&collector{db: s.db, log: log}); err != nil {
		return nil, fmt.Errorf("error registering the ledger collector: %w", err)
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.handleRuns)
	s.mux.HandleFunc("GET /runs/{id}", s.handleRun)
	s.mux.HandleFunc("GET /approvals", s.handleApprovals)
	s.mux.HandleFunc("GET /dry-runs/{digest}", s.handleDryRuns)
	s.mux.HandleFunc("GET /api/runs", s.handleAPIRuns)
	s.mux.HandleFunc("GET /api/runs/{id}", s.handleAPIRun)
	return s, nil
}

// ServeHTTP checks the token, sets headers that keep pages and token to
// this origin, and serves.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !s.authorized(r) {
		h.Set("WWW-Authenticate", `Bearer realm="backfill serve"`)
		http.Error(w, "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized accepts every request when no token is set, else one that
// carries the token as a bearer token or a token query parameter.
func (s *Server) authorized(r *http.Request) bool {
	if s.token == "" {
		return true
	}
	got := r.URL.Query().Get("token")
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		got = strings.TrimPrefix(auth, "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// Close closes the ledger connection.
func (s *Server) Close() { s.db.close() }

// Serve answers on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	if e := <-done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
