#!/usr/bin/env bash
# demo.sh: the main job end to end. `make demo` runs it through
# tools/withpg.sh, which sets DATABASE_URL: yours, or a throwaway cluster
# removed afterwards. It works only in the database DATABASE_URL names, which
# must be the one the backfill targets (backfill_demo): it creates it if it
# does not exist, uses it if it holds no tables, and refuses otherwise
# (tools/demo/database.sh); it never drops a database. It seeds users whose
# roles a bad release left wrong, builds the fix_roles binary, shows its
# dry-run, sets up the ledger with two approvers and a runner, shows the
# refusals, approves, executes, refuses a rerun and lists the runs. The logins
# it creates (demo_alice, demo_bob, demo_runner, demo_audrey) have the password "demo".
set -euo pipefail

cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?DATABASE_URL must be set (make demo sets it)}"
# shellcheck source=tools/demo/database.sh
source tools/demo/database.sh

if [[ -t 1 ]]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold="" dim="" off=""; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

# The database the backfill's manifest targets: the demo can only run there.
DEMO_DB=$(sed -n 's/^[[:space:]]*database:[[:space:]]*\([A-Za-z0-9_]*\).*/\1/p' backfills/fix_roles/backfill.yaml | head -n 1)
[[ -n $DEMO_DB ]] || { echo "demo: cannot read target.database from backfills/fix_roles/backfill.yaml" >&2; exit 1; }
DB=$DATABASE_URL

# as USER: the demo database URL with another login (password "demo").
as() {
	local rest=${DB#*://}
	[[ $rest == *@* ]] && rest=${rest#*@}
	printf 'postgres://%s:demo@%s\n' "$1" "$rest"
}

# expect CODE CMD...: run CMD, show its exit code, and stop the demo if it
# is not CODE.
expect() {
	local want=$1 got=0
	shift
	"$@" || got=$?
	printf '%s(exit code %s)%s\n' "$dim" "$got" "$off"
	if [[ $got != "$want" ]]; then
		echo "demo: expected exit code $want from: $*" >&2
		exit 1
	fi
}

step "Database $DEMO_DB: the one DATABASE_URL names, created now or empty"
demo_database "$DB" "$DEMO_DB"

step "Seeding users with wrong roles"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f queries/schema/schema.sql -f tools/demo/seed.sql
psql -X -d "$DB" -c "SELECT count(*) AS users, count(*) FILTER (WHERE created_at < '2026-01-01') AS in_scope FROM users"

step "Building fix_roles (make backfill NAME=fix_roles)"
make --no-print-directory backfill NAME=fix_roles

step "What the binary is (dist/fix_roles/fix_roles info)"
info=$(dist/fix_roles/fix_roles info) # no pipe into head: an early close would kill the binary with SIGPIPE
printf '%s\n' "$info" | sed -n 1,6p

step "Dry-run (the default): what would change, writing nothing"
dist/fix_roles/fix_roles --report dist/fix_roles/dry-run.json

step "Ledger: backfill ledger init --environment demo (as the database owner)"
bin/backfill ledger init --environment demo
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
DO $$
DECLARE r text[];
BEGIN
    FOREACH r SLICE 1 IN ARRAY ARRAY[['demo_alice', 'backfill_approver'], ['demo_bob', 'backfill_approver'], ['demo_runner', 'backfill_runner'], ['demo_audrey', 'backfill_observer']] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r[1], 'demo');
        EXCEPTION WHEN duplicate_object THEN NULL;
        END;
        EXECUTE format('GRANT %I TO %I', r[2], r[1]);
    END LOOP;
END $$;
GRANT SELECT ON users TO demo_runner;
-- The writes go to the NOLOGIN role backfill_writer, which no login is a
-- member of: only an approved run's statements write, through the ledger.
GRANT SELECT, UPDATE (role) ON users TO backfill_writer;
GRANT SELECT ON role_grants, app_settings TO demo_runner;
-- A batch reads its page through the ledger, as the writer.
GRANT SELECT ON role_grants TO backfill_writer;
SQL
echo "logins: demo_alice and demo_bob (backfill_approver), demo_runner (backfill_runner)"

step "Reviewers make keys; an admin trusts them with their logins"
KEYS=$(mktemp -d)
trap 'rm -rf "$KEYS"' EXIT
export BACKFILL_KEY_PASSWORD=demo
bin/backfill keys generate alice --dir "$KEYS"
bin/backfill keys generate bob --dir "$KEYS"
bin/backfill approvers add alice --key "$KEYS/alice.pub" --login demo_alice
bin/backfill approvers add bob --key "$KEYS/bob.pub" --login demo_bob

step "The runner tries --execute before any approval: refused, nothing written"
expect 12 dist/fix_roles/fix_roles --execute --database-url "$(as demo_runner)" --log-file dist/fix_roles/execute.log --log-stderr no

step "Alice approves the binary's digest (risk: high needs two approvers)"
bin/backfill approve dist/fix_roles/fix_roles --key "$KEYS/alice.key" --reason "roles drifted after release 4.2" \
	--expires 1h --database-url "$(as demo_alice)"
expect 12 dist/fix_roles/fix_roles --execute --database-url "$(as demo_runner)" --log-file dist/fix_roles/execute.log --log-stderr no

step "The runner saves a dry-run report in the ledger, to reconcile the run with"
dist/fix_roles/fix_roles --save --database-url "$(as demo_runner)" | tail -n 1

step "Bob approves too; now the runner executes"
bin/backfill approve dist/fix_roles/fix_roles --key "$KEYS/bob.key" --reason "checked the samples" \
	--expires 1h --database-url "$(as demo_bob)"
expect 0 dist/fix_roles/fix_roles --execute --database-url "$(as demo_runner)" --log-file dist/fix_roles/execute.log --log-stderr no

step "A second run of the same backfill is refused: it runs once"
expect 13 dist/fix_roles/fix_roles --execute --database-url "$(as demo_runner)" --log-file dist/fix_roles/execute.log --log-stderr no

step "The binary's own view: status, and verify (checks again, reconciled with the dry-run)"
dist/fix_roles/fix_roles status --database-url "$(as demo_runner)"
dist/fix_roles/fix_roles verify --database-url "$(as demo_runner)"

step "The ledger: runs, the completed run, and the audit chain"
bin/backfill runs
RUN=$(psql -X -At -d "$DB" -c "SELECT id FROM backfill.runs WHERE status = 'completed'")
bin/backfill show "$RUN"
bin/backfill audit verify

step "Archive the run for audit, then verify the archive offline, rebuilding the binary from its source"
ARCHIVE=dist/fix_roles/fix_roles-run-$RUN.tar.gz
rm -f "$ARCHIVE"
bin/backfill archive "$RUN" --out "$ARCHIVE" --database-url "$(as demo_runner)"
# From another directory, with an empty build cache and no database: what an auditor does.
AUDIT=$(mktemp -d)
cp "$ARCHIVE" "$AUDIT/"
(cd "$AUDIT" && env -u DATABASE_URL "$OLDPWD/bin/backfill" verify-archive "$(basename "$ARCHIVE")" --rebuild)
rm -rf "$AUDIT"
tar -xzOf "$ARCHIVE" "fix_roles-run-$RUN/REPORT.md" | sed -n '1,12p'

step "Done"
echo "The dry-run report is in dist/fix_roles/dry-run.json; run $RUN of fix_roles completed once;"
echo "its archive is $ARCHIVE (REPORT.md inside says who ran what, when, why and what changed)."
# The observer page: make demo SERVE=1 serves it on this database until
# Ctrl-C. Not exec: the EXIT trap must still remove the demo's keys.
SERVE_ADDR=127.0.0.1:${SERVE_PORT:-8080}
if [[ ${SERVE:-} == 1 ]]; then
	step "The observer page (read-only, as demo_audrey): http://$SERVE_ADDR/ (and /metrics); Ctrl-C ends the demo"
	bin/backfill serve --listen "$SERVE_ADDR" --database-url "$(as demo_audrey)" || true
elif [[ -n ${WITHPG_THROWAWAY:-} ]]; then
	echo "Watch runs on a web page: make demo SERVE=1 keeps this throwaway database up and serves"
	echo "http://$SERVE_ADDR/ (read-only, with Prometheus metrics on /metrics) until Ctrl-C."
else
	echo "Watch runs on a web page: bin/backfill serve --listen $SERVE_ADDR --database-url \"$(as demo_audrey)\""
	echo "serves http://$SERVE_ADDR/ (read-only, with Prometheus metrics on /metrics) until Ctrl-C."
fi
