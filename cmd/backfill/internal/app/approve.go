package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/spf13/pflag"

	"github.com/runonce/backfill/cmd/backfill/internal/sigformat"
	"github.com/runonce/backfill/runtime/approval"
	"github.com/runonce/backfill/runtime/bftype"
	"github.com/runonce/backfill/runtime/ledger"
)

// subject is the binary under approval.
type subject struct {
	Name, Digest, RunSignature string
	// Params are the parameters its manifest declares.
	Params map[string]bftype.ParamSpec
	// Manifest is what the approval reads of the embedded manifest: its
	// targets and promote: (EvidenceFrom).
	Manifest bftype.Manifest
	// Statements are the SQL texts the binary runs, which the approval
	// names by sha256.
	Statements []bftype.Statement
}

// inspectBinary hashes a backfill binary and reads its run signature from
// its own `info --json`, checking that the digest it reports is the file's.
func inspectBinary(ctx context.Context, path string) (*subject, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading binary %q: %w", path, err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("error resolving %q: %w", path, err)
	}
	out, err := exec.CommandContext(ctx, abs, "info", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("error running %s info --json (is it a backfill binary?): %w", path, err)
	}
	var info struct {
		Name         string             `json:"name"`
		Digest       string             `json:"digest"`
		RunSignature string             `json:"run_signature"`
		Statements   []bftype.Statement `json:"statements"`
		Manifest     struct {
			Params  map[string]bftype.ParamSpec `json:"params"`
			Promote *bftype.Promote             `json:"promote"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("error reading %s info --json: %w", path, err)
	}
	if info.Digest != digest {
		return nil, fmt.Errorf("%s reports digest %s but the file hashes to %s; it changed while being read", path, info.Digest, digest)
	}
	if len(info.Statements) == 0 {
		return nil, fmt.Errorf("%s info --json names no SQL statements; rebuild it with this version of bin/backfill", path)
	}
	return &subject{Name: info.Name, Digest: digest, RunSignature: info.RunSignature, Params: info.Manifest.Params,
		Manifest: bftype.Manifest{Params: info.Manifest.Params, Promote: info.Manifest.Promote}, Statements: info.Statements}, nil
}

// loadSigner loads a private key, asking for its password as needed.
func loadSigner(e *env, path string) (signature.SignerVerifier, error) {
	pw, err := password(e, false)
	if err != nil {
		return nil, err
	}
	return approval.LoadPrivateKey(path, pw)
}

// statementFlags are the fields of an approval statement.
type statementFlags struct {
	reason, environment, purpose string
	expires                      time.Duration
	revertRun                    int64
	params                       []string
	paramsFile                   string
	evidence                     string
}

func addStatementFlags(fs *pflag.FlagSet) *statementFlags {
	f := &statementFlags{}
	fs.StringVar(&f.reason, "reason", "", "why this change is approved (recorded; required)")
	fs.DurationVar(&f.expires, "expires", 24*time.Hour, "how long the approval stays valid (at most 720h)")
	fs.StringVar(&f.environment, "environment", "", "environment approved (default: the ledger's)")
	fs.Int64Var(&f.revertRun, "revert-run", 0, "approve reverting this run instead of executing")
	fs.StringArrayVar(&f.params, "param", nil, "approve the run with this parameter value, NAME=VALUE (repeatable; every declared parameter without a default)")
	fs.StringVar(&f.paramsFile, "params-file", "", "read the approved parameter values from this JSON or YAML map")
	fs.StringVar(&f.evidence, "evidence", "", "the archive (backfill archive RUN) of this binary's completed run in the environment its manifest promotes from; verified offline, its SHA256SUMS digest is signed")
	return f
}

func (f *statementFlags) purposeName() string {
	if f.revertRun > 0 {
		return approval.RevertPurpose(f.revertRun)
	}
	return approval.PurposeExecute
}

func ledgerEnvironment(ctx context.Context, conn *pgx.Conn) (string, error) {
	return ledger.Check(ctx, conn)
}

func approveCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approve", "BINARY --key NAME.key --reason TEXT [--expires 24h] [--param NAME=VALUE ...]", "Approves a backfill binary: hashes it, builds an in-toto statement about its sha256\n"+
		"(run signature, environment, expiry, reason, approver), signs it with your key and\nstores it in the ledger. Run it as the database login your key is registered to.")
	url := dbFlag(fs)
	keyPath := fs.String("key", "", "your private key (ours or cosign's cosign.key)")
	bundlePath := fs.String("bundle", "", "also write the signature as a sigstore bundle to FILE (cosign verify-blob --bundle FILE)")
	stmtPath := fs.String("statement-out", "", "also write the signed statement to FILE (what cosign verify-blob checks)")
	bundleFormat := fs.String("bundle-format", "sigstore", "the --bundle file's format: sigstore (protobuf-specs v0.3, cosign --new-bundle-format) or cosign (cosign 2.x --bundle)")
	sf := addStatementFlags(fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *keyPath == "" || sf.reason == "" {
		return usageError{"approve needs --key and --reason (every approval records why)"}
	}
	if err := checkBundleFormat(*bundleFormat); err != nil {
		return err
	}
	subj, err := inspectBinary(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	signer, err := loadSigner(e, *keyPath)
	if err != nil {
		return err
	}
	pub, err := approval.PublicKeyPEM(signer)
	if err != nil {
		return err
	}
	keyID, err := approval.KeyID(pub)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name, err := approverByKey(ctx, conn, keyID)
	if err != nil {
		return err
	}
	stmt, err := buildStatement(ctx, e, conn, subj, sf, name)
	if err != nil {
		return err
	}
	sig, err := approval.Sign(signer, stmt)
	if err != nil {
		return err
	}
	if err := store(ctx, e, conn, stmt, sig); err != nil {
		return err
	}
	if *stmtPath != "" {
		if err := os.WriteFile(*stmtPath, stmt, 0o644); err != nil {
			return fmt.Errorf("error writing statement %q: %w", *stmtPath, err)
		}
	}
	if *bundlePath == "" {
		return nil
	}
	return writeBundle(*bundlePath, *bundleFormat, stmt, sig, pub)
}

func checkBundleFormat(format string) error {
	if format != "sigstore" && format != "cosign" {
		return usageError{fmt.Sprintf("--bundle-format is sigstore or cosign, not %q", format)}
	}
	return nil
}

// writeBundle writes the signature of stmt as a bundle in format.
func writeBundle(path, format string, stmt []byte, sig string, pub []byte) error {
	out, err := encodeBundle(format, stmt, sig, pub)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("error writing bundle %q: %w", path, err)
	}
	return nil
}

func encodeBundle(format string, stmt []byte, sig string, pub []byte) ([]byte, error) {
	if format == "cosign" {
		return sigformat.WriteCosignBundle(sig)
	}
	return sigformat.WriteSigstoreBundle(stmt, sig, pub)
}

func approverByKey(ctx context.Context, conn *pgx.Conn, keyID string) (string, error) {
	list, err := ledger.Approvers(ctx, conn)
	if err != nil {
		return "", err
	}
	for _, a := range list {
		if a.KeyID == keyID && a.RevokedAt == nil {
			return a.Name, nil
		}
	}
	return "", fmt.Errorf("your key (id %s) is not a trusted approver key in this ledger; ask an admin to run backfill approvers add", keyID[:16])
}

func buildStatement(ctx context.Context, e *env, conn *pgx.Conn, subj *subject, sf *statementFlags, approver string) ([]byte, error) {
	envName := sf.environment
	if envName == "" {
		if conn == nil {
			return nil, usageError{"--environment is required without a database connection"}
		}
		var err error
		if envName, err = ledgerEnvironment(ctx, conn); err != nil {
			return nil, err
		}
	}
	params, err := sf.approvedParams(subj)
	if err != nil {
		return nil, err
	}
	evidence, err := promotionEvidence(ctx, subj, envName, sf.purposeName(), params, sf.evidence)
	if err != nil {
		return nil, err
	}
	if from := subj.Manifest.EvidenceFrom(envName, sf.purposeName()); from != "" && evidence == "" {
		fmt.Fprintf(e.stderr, "warning: %s promotes from %s, so in %s an approval counts only with the archive of its completed %s run; "+
			"this one carries none and will not count (approve again with --evidence ARCHIVE)\n", subj.Name, from, envName, from)
	}
	return approval.New(approval.Request{Backfill: subj.Name, Digest: subj.Digest, RunSignature: subj.RunSignature,
		Environment: envName, Purpose: sf.purposeName(), Params: params, Evidence: evidence, Statements: approval.Hashes(subj.Statements), Approver: approver, Reason: sf.reason, Now: time.Now(), TTL: sf.expires})
}

// approvedParams are the canonical parameter values the statement pins: the
// values given, checked against the binary's declared parameters. A revert
// binds none (it writes back before-images), so it takes none.
func (sf *statementFlags) approvedParams(subj *subject) (json.RawMessage, error) {
	if sf.revertRun > 0 {
		if len(sf.params) > 0 || sf.paramsFile != "" {
			return nil, usageError{"a revert approval takes no --param: it approves writing back one run's before-images"}
		}
		return nil, nil
	}
	v, err := bftype.ParamsFromArgs(subj.Params, sf.params, sf.paramsFile)
	var pe *bftype.ParamError
	if errors.As(err, &pe) {
		return nil, usageError{pe.Error()}
	}
	if err != nil {
		return nil, err
	}
	return v.JSON(), nil
}

// store verifies a signed statement against the approver's trusted key and
// saves it.
func store(ctx context.Context, e *env, conn *pgx.Conn, stmt []byte, sig string) error {
	s, err := approval.Parse(stmt)
	if err != nil {
		return err
	}
	list, err := ledger.Approvers(ctx, conn)
	if err != nil {
		return err
	}
	var key *ledger.Approver
	for i := range list {
		if list[i].Name == s.Predicate.Approver {
			key = &list[i]
		}
	}
	if key == nil || key.RevokedAt != nil {
		return fmt.Errorf("approver %q is not trusted in this ledger", s.Predicate.Approver)
	}
	if err := approval.Verify([]byte(key.PublicKey), stmt, sig); err != nil {
		return fmt.Errorf("the signature is not %s's over this statement: %w", key.Name, err)
	}
	p := s.Predicate
	id, err := ledger.AddApproval(ctx, conn, ledger.Approval{Backfill: p.Backfill, Digest: s.Digest(), RunSignature: p.RunSignature,
		Environment: p.Environment, Purpose: p.Purpose, Approver: p.Approver, Reason: p.Reason, ExpiresAt: p.ExpiresAt,
		Statement: string(stmt), Signature: sig, Params: compactJSON(p.Params)})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approval %d by %s of %s sha256:%s for %s (%s), expires %s\n", id, p.Approver, p.Backfill,
		s.Digest(), p.Environment, p.Purpose, p.ExpiresAt.Format(time.RFC3339))
	if len(p.Params) > 0 {
		fmt.Fprintf(e.stdout, "approved parameters: %s\n", compactJSON(p.Params))
	}
	if p.Evidence != "" {
		fmt.Fprintf(e.stdout, "evidence: the archive whose SHA256SUMS has sha256 %s\n", p.Evidence)
	}
	return nil
}

// compactJSON is raw without the statement's indentation; nil stays nil.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if len(raw) == 0 || json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

func approvalCommand(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: backfill approval statement|submit ..."}
	}
	switch args[0] {
	case "statement":
		return approvalStatement(ctx, e, args[1:])
	case "sign":
		return approvalSign(e, args[1:])
	case "submit":
		return approvalSubmit(ctx, e, args[1:])
	}
	return usageError{fmt.Sprintf("unknown approval command %q; use statement, sign or submit", args[0])}
}

func approvalStatement(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approval statement", "BINARY --approver NAME --reason TEXT [--environment ENV]", "Prints the in-toto statement approving BINARY, to sign with another tool:\n"+
		"  backfill approval statement dist/x/x --approver alice --reason '...' > stmt.json\n"+
		"  cosign sign-blob --key cosign.key --tlog-upload=false stmt.json > stmt.sig\n"+
		"  backfill approval submit stmt.json --signature stmt.sig\n"+
		"(cosign 3.x, bundles and DSSE envelopes: docs/reviewing.md, section 6; never\nlet cosign upload the statement to a public transparency log.)\n"+
		"Without --environment it reads the ledger's environment from the database.")
	url := dbFlag(fs)
	approver := fs.String("approver", "", "your approver name in the ledger")
	sf := addStatementFlags(fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *approver == "" || sf.reason == "" {
		return usageError{"approval statement needs --approver and --reason (every approval records why)"}
	}
	subj, err := inspectBinary(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	var conn *pgx.Conn
	if sf.environment == "" {
		if conn, err = connect(ctx, *url); err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
	}
	stmt, err := buildStatement(ctx, e, conn, subj, sf, *approver)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(stmt)
	return err
}

func approvalSign(e *env, args []string) error {
	fs := flags(e, "approval sign", "STATEMENT --key NAME.key [--format signature|sigstore|cosign|dsse]", "Signs a statement file offline and prints the signature as cosign sign-blob does\n"+
		"(base64 DER ECDSA over SHA-256 of the file), or with --format a sigstore bundle\n"+
		"of it or a DSSE envelope of the statement. Needs no database: sign on a machine\n"+
		"that holds your key, then submit from one that reaches the ledger.")
	keyPath := fs.String("key", "", "your private key (ours or cosign's cosign.key)")
	format := fs.String("format", "signature", "what to print: signature (base64), sigstore (bundle, cosign --new-bundle-format), cosign (cosign 2.x bundle) or dsse (in-toto envelope)")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *keyPath == "" {
		return usageError{"approval sign needs --key"}
	}
	if *format != "signature" && *format != "dsse" {
		if err := checkBundleFormat(*format); err != nil {
			return usageError{fmt.Sprintf("--format is signature, sigstore, cosign or dsse, not %q", *format)}
		}
	}
	stmt, err := readFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if _, err := approval.Parse(stmt); err != nil {
		return fmt.Errorf("error reading %q: %w", fs.Arg(0), err)
	}
	signer, err := loadSigner(e, *keyPath)
	if err != nil {
		return err
	}
	out, err := signAs(*format, signer, stmt)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}

// signAs signs stmt and encodes the signature in format.
func signAs(format string, signer signature.SignerVerifier, stmt []byte) ([]byte, error) {
	if format == "dsse" {
		env, err := approval.SignEnvelope(signer, stmt)
		return append(env, '\n'), err
	}
	sig, err := approval.Sign(signer, stmt)
	if err != nil || format == "signature" {
		return []byte(sig + "\n"), err
	}
	pub, err := approval.PublicKeyPEM(signer)
	if err != nil {
		return nil, err
	}
	return encodeBundle(format, stmt, sig, pub)
}

func approvalSubmit(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "approval submit", "STATEMENT --signature FILE", "Stores a statement signed elsewhere. FILE is any of: a plain signature (cosign\n"+
		"sign-blob, openssl: base64 or DER ECDSA over SHA-256 of the file); a sigstore\n"+
		"bundle (cosign sign-blob --bundle, 2.x or --new-bundle-format); a DSSE envelope\n"+
		"(cosign attest-blob --statement). It is checked offline against the approver's\n"+
		"trusted key first (transparency-log entries are ignored). Run it as the\napprover's database login.")
	url := dbFlag(fs)
	sigPath := fs.String("signature", "", "the signature, bundle or DSSE envelope file")
	fs.StringVar(sigPath, "bundle", "", "same as --signature")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *sigPath == "" {
		return usageError{"approval submit needs --signature"}
	}
	stmt, err := readFile(fs.Arg(0))
	if err != nil {
		return err
	}
	rawSig, err := readFile(*sigPath)
	if err != nil {
		return err
	}
	sig, _, err := sigformat.Decode(rawSig, stmt)
	if err != nil {
		return fmt.Errorf("error reading %q: %w", *sigPath, err)
	}
	conn, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return store(ctx, e, conn, stmt, sig)
}
