package web

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/engine"
	"github.com/runonce/backfill/runtime/ledger"
)

// runPage is everything the page of one run shows.
type runPage struct {
	Run          runView
	RunSignature string
	Environment  string
	CodeVersion  string
	SourceCommit string
	Resumes      int
	Cursor       string
	Lanes        []ledger.Lane
	Batches      []ledger.Batch
	Retried      int // batches that took more than one attempt
	Chart        chart
	ChecksBefore []engine.CheckResult
	ChecksAfter  []engine.CheckResult
	Approvals    []ledger.Approval
	Events       []eventView
	Chain        chainState
}

// eventView is one audit event of the run.
type eventView struct {
	Seq     int64
	At      time.Time
	Kind    string
	Actor   string
	Payload string
}

// chainState is the result of recomputing the whole audit chain.
type chainState struct {
	OK     bool
	Events int
	Head   string
	Broken string // the first broken link, when not OK
}

// readRunPage reads one run, its batches, lanes, checks, approvals and
// audit events, and verifies the whole audit chain.
func readRunPage(ctx context.Context, tx pgx.Tx, id int64) (*runPage, error) {
	run, err := ledger.GetRun(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	vs, err := views(ctx, tx, []ledger.Run{*run})
	if err != nil {
		return nil, err
	}
	p := &runPage{Run: vs[0], RunSignature: run.RunSignature, Environment: deref(run.Environment),
		CodeVersion: run.CodeVersion, SourceCommit: run.SourceCommit, Resumes: run.Resumes, Cursor: string(run.Cursor)}
	if p.Lanes, err = ledger.Lanes(ctx, tx, id); err != nil {
		return nil, err
	}
	if p.Batches, err = ledger.Batches(ctx, tx, id); err != nil {
		return nil, err
	}
	for _, b := range p.Batches {
		if b.Attempts > 1 {
			p.Retried++
		}
	}
	p.Chart = timeline(p.Batches)
	if p.Approvals, err = ledger.ApprovalsByID(ctx, tx, run.ApprovalIDs); err != nil {
		return nil, err
	}
	return p, p.readAudit(ctx, tx, id)
}

// readAudit verifies the chain and picks the run's events and checks from it.
func (p *runPage) readAudit(ctx context.Context, tx pgx.Tx, id int64) error {
	all, err := ledger.Events(ctx, tx, 0)
	if err != nil {
		return err
	}
	p.Chain = chainState{OK: true, Events: len(all), Head: ledger.GenesisHash}
	if len(all) > 0 {
		p.Chain.Head = all[len(all)-1].Hash
	}
	var broken *ledger.ChainError
	if err := ledger.VerifyChain(all, ledger.GenesisHash); errors.As(err, &broken) {
		p.Chain.OK, p.Chain.Broken = false, broken.Error()
	}
	for _, e := range all {
		if e.RunID == nil || *e.RunID != id {
			continue
		}
		p.Events = append(p.Events, eventView{Seq: e.Seq, At: time.UnixMicro(e.AtMicros).UTC(), Kind: e.Kind, Actor: e.Actor, Payload: e.Payload})
		p.takeChecks(e)
	}
	return nil
}

// takeChecks reads the checks a preflight ran before the first write and
// the ones validated after the last batch.
func (p *runPage) takeChecks(e ledger.Event) {
	var payload struct {
		ChecksBefore []engine.CheckResult `json:"checks_before"`
		Checks       []engine.CheckResult `json:"checks"`
	}
	if json.Unmarshal([]byte(e.Payload), &payload) != nil {
		return
	}
	switch e.Kind {
	case "preflight":
		p.ChecksBefore = payload.ChecksBefore
	case "validated":
		p.ChecksAfter = payload.Checks
	}
}
