package web

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/pgdb"
)

// readTimeout bounds every statement the server runs, so a slow ledger
// makes a page fail rather than pile up requests.
const readTimeout = 5 * time.Second

// reader holds the server's one connection to the ledger and runs every
// read in a READ ONLY transaction on it. Requests take turns: an observer
// page and a Prometheus scrape are small, and one connection is one slot
// of the observer login's connection limit.
type reader struct {
	url  string
	src  pgdb.Source
	mu   sync.Mutex
	conn *pgx.Conn
}

func newReader(url string) *reader {
	u, src := pgdb.Resolve(url)
	return &reader{url: u, src: src}
}

// read runs fn in a read-only transaction, connecting first if the last
// connection was lost.
func (r *reader) read(ctx context.Context, fn func(pgx.Tx) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil || r.conn.IsClosed() {
		conn, err := pgdb.Connect(ctx, r.url, r.src, "backfill serve")
		if err != nil {
			return err
		}
		r.conn = conn
	}
	err := pgdb.ReadOnly(ctx, r.conn, readTimeout, fn)
	if err != nil && r.conn.IsClosed() {
		r.conn = nil
	}
	return err
}

// close closes the connection, if any.
func (r *reader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = r.conn.Close(ctx)
		r.conn = nil
	}
}
