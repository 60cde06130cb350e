package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/runonce/backfill/runtime/approval"
)

// passwordEnvs are read for a key's password, in order; cosign's own name is
// accepted so reviewers' existing setups work.
var passwordEnvs = []string{"BACKFILL_KEY_PASSWORD", "COSIGN_PASSWORD"}

// password returns the key password from the environment or, on a
// terminal, a prompt. An empty password is allowed when set explicitly.
func password(e *env, confirm bool) ([]byte, error) {
	for _, name := range passwordEnvs {
		if v, ok := os.LookupEnv(name); ok {
			return []byte(v), nil
		}
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, errors.New("set BACKFILL_KEY_PASSWORD (or COSIGN_PASSWORD) to the key's password; there is no terminal to ask on")
	}
	fmt.Fprint(e.stderr, "Key password: ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("error reading password: %w", err)
	}
	if confirm {
		fmt.Fprint(e.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("error reading password: %w", err)
		}
		if string(again) != string(pw) {
			return nil, errors.New("the passwords differ")
		}
	}
	return pw, nil
}

func keysCommand(_ context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return usageError{"usage: backfill keys generate NAME [--dir DIR]"}
	}
	fs := flags(e, "keys generate", "NAME", "Writes an ECDSA P-256 key pair, NAME.key (encrypted, in cosign's format) and\n"+
		"NAME.pub. The password comes from BACKFILL_KEY_PASSWORD or COSIGN_PASSWORD, or a\nprompt. Give NAME.pub to a ledger admin: backfill approvers add NAME --key NAME.pub.")
	dir := fs.String("dir", ".", "directory to write the files in")
	if err := parse(fs, args[1:], 1, 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	pw, err := password(e, true)
	if err != nil {
		return err
	}
	priv, pub, err := approval.GenerateKeyPair(pw)
	if err != nil {
		return err
	}
	keyPath, pubPath := filepath.Join(*dir, name+".key"), filepath.Join(*dir, name+".pub")
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyPath, priv, 0o600}, {pubPath, pub, 0o644}} {
		if err := writeExclusive(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	id, err := approval.KeyID(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (private, keep it secret) and %s\nkey id %s\n", keyPath, pubPath, id)
	return nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("error creating %q (it must not exist): %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("error writing %q: %w", path, err)
	}
	return f.Close()
}

func readFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading %q: %w", path, err)
	}
	return data, nil
}
