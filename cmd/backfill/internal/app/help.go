package app

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runonce/backfill/generator"
)

// group is a command whose first argument names a subcommand (ledger init,
// approvers add). Its own --help lists the subcommands, on stdout.
type group struct {
	about string
	subs  [][2]string // name, summary
}

// groups are the commands with subcommands, in the order their help lists them.
var groups = map[string]group{
	"ledger": {"Manage the ledger in the target database.", [][2]string{
		{"init", "create or migrate the ledger (schema backfill) and its roles"}}},
	"keys": {"Manage approver key pairs.", [][2]string{
		{"generate", "write an ECDSA P-256 key pair NAME.key and NAME.pub (cosign format)"}}},
	"approvers": {"Manage the approver keys the ledger trusts (add and revoke need backfill_admin; list, any backfill_* role).", [][2]string{
		{"add", "trust a public key for NAME's approvals, bound to a database login"},
		{"list", "list trusted approver keys"},
		{"revoke", "stop trusting an approver's key"}}},
	"approval": {"Approve a binary with cosign or another signer, in three steps.", [][2]string{
		{"statement", "print the in-toto statement approving BINARY, to sign"},
		{"sign", "sign a statement with an approver key"},
		{"submit", "store a signed statement in the ledger"}}},
	"audit": {"Check the ledger's audit log.", [][2]string{
		{"verify", "recompute the audit hash chain and name the first broken link"}}},
}

func wantsGroupHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")
}

func (g group) usage(w io.Writer, name string) {
	fmt.Fprintf(w, "Usage: backfill %s COMMAND [flags]\n\n%s\n\nCommands:\n", name, g.about)
	for _, s := range g.subs {
		fmt.Fprintf(w, "  %-10s %s\n", s[0], s[1])
	}
	fmt.Fprintf(w, "\nRun \"backfill %s COMMAND --help\" for a command's flags.\n", name)
}

// printVersion prints the code version (the one every binary built by this
// CLI embeds and its run signature covers), the commit and the Go version.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "backfill %s (commit %s, %s)\n", generator.CodeVersion, buildCommit(), runtime.Version())
}

// commit is set at link time by make cli (-X), for builds without VCS
// stamping (-buildvcs=false).
var commit string

// buildCommit is the commit make linked in, else the VCS revision go build
// recorded, else "unknown" (go run, -buildvcs=false).
func buildCommit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// errorSentence is err as the operator should read it. A database without a
// ledger answers a ledger query with "schema backfill does not exist"
// (3F000) or "relation backfill.x does not exist" (42P01); that becomes one
// sentence with the next step.
func errorSentence(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "3F000" || pgErr.Code == "42P01") && strings.Contains(pgErr.Message, `"backfill`) {
		return "this database has no backfill ledger (or an incomplete one: " + pgErr.Message + ").\n" +
			"Next: ask its owner or a DBA to run: backfill ledger init --environment NAME"
	}
	return err.Error()
}
