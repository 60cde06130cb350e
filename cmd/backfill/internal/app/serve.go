package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/runonce/backfill/cmd/backfill/internal/web"
)

func serveCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "serve", "[--listen 127.0.0.1:8080]",
		"Serves a read-only view of the ledger: the runs with live progress (/), one run\n"+
			"(/runs/N), approvals (/approvals), dry-run reports (/dry-runs/DIGEST), JSON\n"+
			"(/api/runs) and Prometheus metrics (/metrics). Every read is a READ ONLY\n"+
			"transaction; run it as a backfill_observer login. It listens on loopback only,\n"+
			"unless --allow-remote and --token are both given.")
	url := dbFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8080", "HOST:PORT to listen on (port 0 picks a free one)")
	allowRemote := fs.Bool("allow-remote", false, "allow a --listen address other than loopback (needs --token)")
	token := fs.String("token", "", "require this token on every request (Authorization: Bearer TOKEN, or ?token=TOKEN)")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := web.CheckListen(*listen, *allowRemote, *token); err != nil {
		return usageError{err.Error()}
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	srv, err := web.New(&web.Config{DatabaseURL: *url, Token: *token, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("error listening on %q: %w", *listen, err)
	}
	fmt.Fprintf(e.stdout, "serving the ledger read-only on http://%s/ (metrics: /metrics); Ctrl-C stops\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
