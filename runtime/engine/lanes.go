package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/ledger"
	"github.com/runonce/backfill/runtime/pgdb"
)

// setupLanes loads the run's lanes, or fixes them before its first batch
// when the manifest allows more than one; otherwise the run has one lane
// from its cursor.
func (r *runner) setupLanes(ctx context.Context) error {
	m := r.job.Manifest
	size := sizer{size: m.Batch.Size, max: m.Batch.Size, target: r.opts.TargetBatchTime}
	rows, err := ledger.Lanes(ctx, r.conn, r.run.ID)
	if err != nil {
		return err
	}
	var conns []*pgx.Conn
	if len(rows) == 0 && r.batches == 0 {
		if rows, conns, err = r.planLanes(ctx); err != nil {
			return err
		}
	}
	if len(rows) == 0 {
		r.lanes = []*lane{{cursor: r.run.Cursor, size: size}}
		return nil
	}
	r.multi = true
	if r.opts.Lanes > 0 && r.opts.Lanes != len(rows) && r.hooks.Note != nil {
		r.hooks.Note(fmt.Sprintf("resuming with the %d lanes run %d started with; --lanes %d applies to new runs only", len(rows), r.run.ID, r.opts.Lanes))
	}
	for i, row := range rows {
		l := &lane{n: row.Lane, after: row.After, until: row.Until, cursor: row.Cursor, done: row.Done, size: size}
		if len(l.cursor) == 0 {
			l.cursor = row.After
		}
		if i > 0 && i <= len(conns) {
			l.conn = conns[i-1]
		}
		r.lanes = append(r.lanes, l)
	}
	if r.lanes[0].n != 0 {
		return fmt.Errorf("run %d's lanes do not start at lane 0", r.run.ID)
	}
	return nil
}

// planLanes cuts the scope into the lanes the manifest and --lanes allow, at
// the split keys of the latest dry-run of this binary, and records them. It
// returns no lanes, and the run goes on in one, when the key is not an
// integer, no dry-run report has split keys, or the extra connections cannot
// be opened. Lanes at any keys cover the scope exactly once between them,
// so keys from an old or doctored report cost balance, never correctness.
func (r *runner) planLanes(ctx context.Context) ([]ledger.Lane, []*pgx.Conn, error) {
	want := WantLanes(r.job.Manifest.Batch.Lanes, r.opts.Lanes)
	if want < 2 {
		return nil, nil, nil
	}
	oneLane := func(why string, args ...any) ([]ledger.Lane, []*pgx.Conn, error) {
		msg := "running one lane: " + fmt.Sprintf(why, args...)
		r.log.Warn(msg, "event", "lanes", "lanes", 1, "wanted", want)
		if r.hooks.Note != nil {
			r.hooks.Note(fmt.Sprintf("%s (batch.lanes allows %d)", msg, want))
		}
		// Reviewers see in the audit log that the run did not use its lanes.
		return nil, nil, ledger.CreateLanes(ctx, r.conn, r.run.ID, nil, map[string]any{"lanes": []ledger.Lane{}, "wanted": want, "why": msg})
	}
	if !r.job.Plan.Splittable() {
		return oneLane("lanes need an integer key")
	}
	d, err := ledger.LatestDryRun(ctx, r.conn, r.job.Digest, r.job.params())
	if err != nil {
		return nil, nil, err
	}
	if d == nil {
		return oneLane("no saved dry-run of this binary gives keys to cut lanes at; save one with --save before executing")
	}
	var rep struct {
		SplitKeys []json.RawMessage `json:"split_keys"`
	}
	if err := json.Unmarshal(d.Report, &rep); err != nil {
		return oneLane("dry-run report %d cannot be read: %v", d.ID, err)
	}
	bounds := pickBounds(rep.SplitKeys, want)
	if len(bounds) == 0 {
		return oneLane("dry-run report %d has too few split keys", d.ID)
	}
	var conns []*pgx.Conn
	for range bounds {
		conn, err := r.opts.Connect(ctx)
		if err != nil {
			for _, c := range conns {
				c.Close(context.WithoutCancel(ctx))
			}
			return oneLane("could not open another connection: %s", pgdb.ErrorSentence(err))
		}
		conns = append(conns, conn)
	}
	lanes := make([]ledger.Lane, len(bounds)+1)
	for i := range lanes {
		lanes[i].Lane = i
		if i > 0 {
			lanes[i].After = bounds[i-1]
		}
		if i < len(bounds) {
			lanes[i].Until = bounds[i]
		}
	}
	err = pgdb.WithTx(ctx, r.conn, func(tx pgx.Tx) error { return ledger.CreateLanes(ctx, tx, r.run.ID, lanes, nil) })
	for _, c := range conns {
		if err == nil {
			// The ledger lets a session write the run only once it joined it.
			err = ledger.Join(ctx, c, r.run.ID)
		}
	}
	if err != nil {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
		return nil, nil, err
	}
	r.log.Info("lanes fixed", "event", "lanes", "lanes", len(lanes), "dry_run_id", d.ID, "bounds", bounds)
	return lanes, conns, nil
}

// WantLanes is how many lanes a new run may use: the manifest's batch.lanes,
// lowered by --lanes when that is set (above 0).
func WantLanes(manifest, flag int) int {
	want := max(1, manifest)
	if flag > 0 {
		want = min(want, flag)
	}
	return want
}

// pickBounds chooses want-1 keys among split keys spread evenly by row
// count, so that the lanes they cut hold about as many rows each; keys that
// are not integers in strictly ascending order are left out.
func pickBounds(splits []json.RawMessage, want int) []json.RawMessage {
	var keys []int64
	for _, s := range splits {
		var k int64
		if json.Unmarshal(s, &k) != nil {
			return nil
		}
		keys = append(keys, k)
	}
	var out []json.RawMessage
	var prev int64
	for j := 1; j < want && len(keys) > 0; j++ {
		k := keys[max(0, j*len(keys)/want-1)]
		if len(out) > 0 && k <= prev {
			continue
		}
		b, _ := json.Marshal(k) // an integer always marshals
		out, prev = append(out, b), k
	}
	return out
}

// laneConn is the connection a lane writes on, opened on first use.
func (r *runner) laneConn(ctx context.Context, l *lane) (*pgx.Conn, error) {
	if l.n == 0 {
		return r.conn, nil
	}
	if l.conn == nil {
		conn, err := r.opts.Connect(ctx)
		if err != nil {
			return nil, fmt.Errorf("error connecting lane %d: %w", l.n, err)
		}
		// The ledger lets a session write the run only once it joined it.
		if err := ledger.Join(ctx, conn, r.run.ID); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("error joining lane %d to run %d: %w", l.n, r.run.ID, err)
		}
		l.conn = conn
	}
	return l.conn, nil
}

// reconnectLane replaces a lane's lost connection; lane 0's is the run's.
func (r *runner) reconnectLane(ctx context.Context, l *lane) error {
	if l.n == 0 {
		return r.reconnect(ctx)
	}
	if l.conn != nil {
		l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
	}
	_, err := r.laneConn(ctx, l)
	return err
}

func (r *runner) closeLanes() {
	for _, l := range r.lanes {
		if l.conn != nil {
			l.conn.Close(context.Background())
			l.conn = nil
		}
	}
}
