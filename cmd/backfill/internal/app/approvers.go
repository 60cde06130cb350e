package app

import (
	"context"
	"fmt"
	"github.com/runonce/backfill/runtime/cli"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/ledger"
)

func approversCommand(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: backfill approvers add|list|revoke ..."}
	}
	switch args[0] {
	case "add":
		return approversAdd(ctx, e, args[1:])
	case "list":
		return approversList(ctx, e, args[1:])
	case "revoke":
		return approversRevoke(ctx, e, args[1:])
	}
	return usageError{fmt.Sprintf("unknown approvers command %q; use add, list or revoke", args[0])}
}

func approversAdd(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approvers add", "NAME --key NAME.pub --login LOGIN", "Trusts a public key (ours or cosign's cosign.pub) for approvals by NAME. LOGIN is\n"+
		"the database login of the key's owner: only that login can submit NAME's\napprovals, and it can never run a backfill it approved. Needs backfill_admin.")
	url := dbFlag(fs)
	keyPath := fs.String("key", "", "the approver's public key file (PEM)")
	login := fs.String("login", "", "the database login of the key's owner")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *keyPath == "" || *login == "" {
		return usageError{"approvers add needs --key and --login"}
	}
	pub, err := readFile(*keyPath)
	if err != nil {
		return err
	}
	id, err := approval.KeyID(pub)
	if err != nil {
		return fmt.Errorf("error reading %q: %w", *keyPath, err)
	}
	err = withConn(ctx, *url, func(conn *pgx.Conn) error {
		return ledger.AddApprover(ctx, conn, ledger.Approver{Name: fs.Arg(0), Login: *login, PublicKey: string(pub), KeyID: id})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approver %s (login %s) trusted, key id %s\n", fs.Arg(0), *login, id)
	return nil
}

func approversList(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approvers list", "", "Lists trusted and revoked approver keys.")
	url := dbFlag(fs)
	output := cli.OutputFlag(fs)
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	asJSON, err := output()
	if err != nil {
		return usageError{err.Error()}
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	list, err := ledger.Approvers(ctx, conn)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(e, list)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tLOGIN\tKEY ID\tADDED BY\tADDED\tREVOKED")
	for _, a := range list {
		revoked := "-"
		if a.RevokedAt != nil {
			revoked = a.RevokedAt.Format(time.RFC3339) + " by " + deref(a.RevokedBy)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Login, a.KeyID[:16], a.AddedBy, a.AddedAt.Format(time.RFC3339), revoked)
	}
	return w.Flush()
}

func approversRevoke(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approvers revoke", "NAME", "Stops trusting NAME's key: its approvals no longer count. Needs backfill_admin.")
	url := dbFlag(fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if err := withConn(ctx, *url, func(conn *pgx.Conn) error { return ledger.RevokeApprover(ctx, conn, fs.Arg(0)) }); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approver %s revoked\n", fs.Arg(0))
	return nil
}
