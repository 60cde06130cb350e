#!/usr/bin/env bash
# interop.sh: sign approval statements with real cosign binaries, exactly as
# docs/reviewing.md section 6 says, and submit every result to a real ledger.
# `make interop` installs cosign 2.x and 3.x into bin/ and runs it through
# tools/withpg.sh (DATABASE_URL: a server to make a throwaway database on).
#
# Why: the ledger must accept what reviewers' tools write (a plain signature,
# a sigstore bundle in either format, a DSSE envelope), and cosign must
# accept the bundles our CLI writes. Nothing is uploaded anywhere: every
# signing command passes --tlog-upload=false, every verification ignores the
# transparency log, and the script creates, and drops at the end, its own
# database and logins (interop_*).
#
# Usage: tools/interop/interop.sh COSIGN_BINARY...   (each labelled by its version)
set -euo pipefail

cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?DATABASE_URL must be set (make interop sets it)}"
(($# > 0)) || { echo "usage: $0 COSIGN_BINARY..." >&2; exit 2; }
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

SERVER=$DATABASE_URL
DBNAME=interop_$$
WORK=$(mktemp -d)
LOGINS=()
cleanup() {
	psql -X -q -d "$SERVER" -c "DROP DATABASE IF EXISTS $DBNAME" || true
	for l in "${LOGINS[@]}"; do psql -X -q -d "$SERVER" -c "DROP ROLE IF EXISTS $l" || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# url LOGIN: the throwaway database as LOGIN (trust or the server's auth).
url() {
	local rest=${SERVER#*://}
	[[ $rest == *@* ]] && rest=${rest#*@}
	rest=${rest%%\?*}
	printf 'postgres://%s@%s/%s\n' "$1" "${rest%%/*}" "$DBNAME"
}
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "interop: FAILED: $*" >&2; exit 1; }

psql -X -q -v ON_ERROR_STOP=1 -d "$SERVER" -c "CREATE DATABASE $DBNAME"
DB=$(url postgres)
step "Throwaway ledger in database $DBNAME; building fix_roles"
bin/backfill ledger init --environment interop --database-url "$DB" >/dev/null
make --no-print-directory backfill NAME=fix_roles >/dev/null
BIN=dist/fix_roles/fix_roles

export COSIGN_PASSWORD=interop BACKFILL_KEY_PASSWORD=interop
passed=0
for COSIGN in "$@"; do
	COSIGN=$(realpath "$COSIGN")
	version=$("$COSIGN" version 2>&1 | sed -n 's/^GitVersion:[[:space:]]*//p')
	major=${version#v}
	major=${major%%.*}
	who=interop_v${major}_$$
	LOGINS+=("$who")
	step "cosign $version ($COSIGN): key pair, registered as approver $who"
	psql -X -q -v ON_ERROR_STOP=1 -d "$SERVER" -c "CREATE ROLE $who LOGIN" -c "GRANT backfill_approver TO $who"
	dir=$WORK/$who
	mkdir -p "$dir"
	(cd "$dir" && "$COSIGN" generate-key-pair >/dev/null)
	bin/backfill approvers add "$who" --key "$dir/cosign.pub" --login "$who" --database-url "$DB" >/dev/null
	stmt=$dir/stmt.json
	bin/backfill approval statement "$BIN" --approver "$who" --reason "interop $version" --environment interop >"$stmt"

	submit() { # submit FILE: approval submit as the approver's login
		bin/backfill approval submit "$stmt" --signature "$1" --database-url "$(url "$who")" || fail "cosign $version: submit of $1"
		passed=$((passed + 1))
	}
	# A trusted root with no authorities: the key is the only trust, and
	# cosign 3.x (and 2.x for a sigstore bundle) fetches no public root.
	echo '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}' >"$dir/offline_root.json"
	# The commands of docs/reviewing.md, section 6, step 2.
	if ((major >= 3)); then
		step "cosign $version: a signing config with no services (nothing is uploaded)"
		(cd "$dir" && "$COSIGN" signing-config create --out offline-signing.json)
		step "cosign $version: sign-blob --signing-config --bundle (a sigstore bundle)"
		"$COSIGN" sign-blob --key "$dir/cosign.key" --signing-config "$dir/offline-signing.json" \
			--trusted-root "$dir/offline_root.json" --bundle "$dir/stmt.sigstore.json" "$stmt"
		submit "$dir/stmt.sigstore.json"
		step "cosign $version: attest-blob --statement --signing-config --bundle (a DSSE envelope in a sigstore bundle)"
		"$COSIGN" attest-blob --key "$dir/cosign.key" --signing-config "$dir/offline-signing.json" \
			--trusted-root "$dir/offline_root.json" --statement "$stmt" --bundle "$dir/stmt.att.sigstore.json"
		submit "$dir/stmt.att.sigstore.json"
		step "cosign $version: the deprecated 2.x forms (a plain signature, a bare DSSE envelope)"
		"$COSIGN" sign-blob --key "$dir/cosign.key" --use-signing-config=false --tlog-upload=false --new-bundle-format=false "$stmt" >"$dir/stmt.sig"
		submit "$dir/stmt.sig"
		"$COSIGN" attest-blob --key "$dir/cosign.key" --use-signing-config=false --tlog-upload=false --new-bundle-format=false \
			--statement "$stmt" --output-signature "$dir/stmt.dsse"
		submit "$dir/stmt.dsse"
	else
		step "cosign $version: sign-blob (a plain signature)"
		"$COSIGN" sign-blob --key "$dir/cosign.key" --tlog-upload=false "$stmt" >"$dir/stmt.sig"
		submit "$dir/stmt.sig"
		step "cosign $version: sign-blob --bundle (the 2.x bundle)"
		"$COSIGN" sign-blob --key "$dir/cosign.key" --tlog-upload=false --bundle "$dir/stmt.bundle" "$stmt"
		submit "$dir/stmt.bundle"
		step "cosign $version: sign-blob --new-bundle-format --bundle (a sigstore bundle)"
		"$COSIGN" sign-blob --key "$dir/cosign.key" --tlog-upload=false --new-bundle-format --bundle "$dir/stmt.sigstore.json" "$stmt"
		submit "$dir/stmt.sigstore.json"
		step "cosign $version: attest-blob --statement (a DSSE envelope)"
		"$COSIGN" attest-blob --key "$dir/cosign.key" --tlog-upload=false --statement "$stmt" --output-signature "$dir/stmt.dsse"
		submit "$dir/stmt.dsse"
	fi

	step "cosign $version verifies the bundles our CLI writes (approval sign --format)"
	bin/backfill approval sign "$stmt" --key "$dir/cosign.key" >"$dir/ours.sig"
	"$COSIGN" verify-blob --key "$dir/cosign.pub" --signature "$dir/ours.sig" --insecure-ignore-tlog=true "$stmt"
	if ((major < 3)); then
		bin/backfill approval sign "$stmt" --key "$dir/cosign.key" --format cosign >"$dir/ours.bundle"
		"$COSIGN" verify-blob --key "$dir/cosign.pub" --bundle "$dir/ours.bundle" --insecure-ignore-tlog=true "$stmt"
	fi
	bin/backfill approval sign "$stmt" --key "$dir/cosign.key" --format sigstore >"$dir/ours.sigstore.json"
	"$COSIGN" verify-blob --key "$dir/cosign.pub" --bundle "$dir/ours.sigstore.json" --new-bundle-format \
		--insecure-ignore-tlog=true --trusted-root "$dir/offline_root.json" "$stmt"
	# And the bundle `approve --bundle` writes, with the statement it signed.
	bin/backfill approve "$BIN" --key "$dir/cosign.key" --reason "interop $version, our CLI" --database-url "$(url "$who")" \
		--bundle "$dir/approve.sigstore.json" --statement-out "$dir/approve.json" >/dev/null
	passed=$((passed + 1))
	"$COSIGN" verify-blob --key "$dir/cosign.pub" --bundle "$dir/approve.sigstore.json" --new-bundle-format \
		--insecure-ignore-tlog=true --trusted-root "$dir/offline_root.json" "$dir/approve.json"
done
stored=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM backfill.approvals")
((stored == passed)) || fail "$passed submissions accepted but $stored approvals stored"
echo
echo "interop: OK: $passed approvals (cosign-signed, and one by approve --bundle per version) verified and stored; cosign verified every bundle our CLI writes"
