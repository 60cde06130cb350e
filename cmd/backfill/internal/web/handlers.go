package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/ledger"
)

// approvalLimit is how many approvals /approvals lists, newest first.
const approvalLimit = 500

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	var runs []runView
	err := s.db.read(r.Context(), func(tx pgx.Tx) (err error) {
		runs, err = readRuns(r.Context(), tx)
		return err
	})
	s.render(w, r, err, "runs", map[string]any{"Runs": runs})
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	var page *runPage
	err = s.db.read(r.Context(), func(tx pgx.Tx) (err error) {
		page, err = readRunPage(r.Context(), tx, id)
		return err
	})
	s.render(w, r, err, "run", page)
}

func (s *Server) handleApprovals(w http.ResponseWriter, r *http.Request) {
	var list []ledger.Approval
	err := s.db.read(r.Context(), func(tx pgx.Tx) (err error) {
		list, err = ledger.AllApprovals(r.Context(), tx, approvalLimit)
		return err
	})
	s.render(w, r, err, "approvals", map[string]any{"Approvals": list})
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Server) handleDryRuns(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if !hexDigest.MatchString(digest) {
		http.NotFound(w, r)
		return
	}
	type report struct {
		ledger.DryRun
		Pretty string
	}
	var list []report
	err := s.db.read(r.Context(), func(tx pgx.Tx) error {
		got, err := ledger.DryRunsFor(r.Context(), tx, digest)
		for _, d := range got {
			var b bytes.Buffer
			if json.Indent(&b, d.Report, "", "  ") != nil {
				b.Reset()
				b.Write(d.Report)
			}
			list = append(list, report{DryRun: d, Pretty: b.String()})
		}
		return err
	})
	s.render(w, r, err, "dryruns", map[string]any{"Digest": digest, "Reports": list})
}

func (s *Server) handleAPIRuns(w http.ResponseWriter, r *http.Request) {
	var runs []runView
	err := s.db.read(r.Context(), func(tx pgx.Tx) (err error) {
		runs, err = readRuns(r.Context(), tx)
		return err
	})
	s.writeJSON(w, err, map[string]any{"runs": runs})
}

func (s *Server) handleAPIRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	var v []runView
	err = s.db.read(r.Context(), func(tx pgx.Tx) error {
		run, err := ledger.GetRun(r.Context(), tx, id)
		if err != nil {
			return err
		}
		v, err = views(r.Context(), tx, []ledger.Run{*run})
		return err
	})
	if err != nil {
		s.writeJSON(w, err, nil)
		return
	}
	s.writeJSON(w, nil, v[0])
}

// status maps a read error to an HTTP status.
func status(err error) int {
	if errors.Is(err, ledger.ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func (s *Server) writeJSON(w http.ResponseWriter, err error, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		s.log.Error("error reading the ledger", "error", err)
		w.WriteHeader(status(err))
		v = map[string]string{"error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(v)
}
