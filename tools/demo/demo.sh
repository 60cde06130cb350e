#!/usr/bin/env bash
# demo.sh: the main job end to end. `make demo` runs it through
# tools/withpg.sh, which sets DATABASE_URL: yours, or a throwaway cluster
# removed afterwards. It works only in the database DATABASE_URL names, which
# must be the one the backfill targets (backfill_demo), and in
# backfill_demo_staging and backfill_demo_prod on the same server: it creates
# each if it does not exist, uses it if it holds no tables, and refuses
# otherwise before seeding anything (tools/demo/database.sh); it never drops a
# database. It seeds users whose roles a bad release left wrong, builds the
# fix_roles binary, shows its dry-run, sets up the ledger with two approvers
# and a runner, shows the refusals, approves, executes, refuses a rerun, lists
# the runs and archives the run. Then, after a second bad release: sync_roles
# approved and run for given parameter values, other values refused; a copy
# with report.group_by and spot_check, whose dry-run breaks the change down
# by tenant and from -> to, executed with --pause-after-canary and resumed;
# and a copy with targets: and promote: run in staging, archived, approved
# in production with that archive as evidence (without it an approval does
# not count) and run there. The copies are built in a temporary copy of the
# repository, so the committed examples stay as they are. The logins it
# creates (demo_alice, demo_bob, demo_runner, demo_audrey) have the password
# "demo"; they hold no write privilege on any table.
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

# as USER [URL]: the demo database URL (or URL) with another login (password "demo").
as() {
	local rest=${2:-$DB}
	rest=${rest#*://}
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

# The promotion at the end runs in two more databases on the same server,
# which the demo treats as it treats $DEMO_DB.
STAGING_DB=${DEMO_DB}_staging PROD_DB=${DEMO_DB}_prod
STAGING=$(url_with_database "$DB" "$STAGING_DB") PROD=$(url_with_database "$DB" "$PROD_DB")

step "Databases $DEMO_DB (the one DATABASE_URL names), $STAGING_DB and $PROD_DB: created now or empty"
demo_database "$DB" "$DEMO_DB"
demo_database "$STAGING" "$STAGING_DB"
demo_database "$PROD" "$PROD_DB"

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

step "Ledger: backfill ledger init --environment demo (as a superuser: the ledger goes to the NOLOGIN role backfill_owner, the writes to backfill_writer)"
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
bin/backfill ledger check

step "PostgreSQL itself refuses the runner's own writes: only an approved run writes users, through the ledger"
expect 1 psql -X -q -d "$(as demo_runner)" -c "UPDATE users SET role = 'admin' WHERE id = 1"
expect 1 psql -X -q -d "$(as demo_runner)" -c "UPDATE backfill.runs SET status = 'failed'"

step "Reviewers make keys; an admin trusts them with their logins"
KEYS=$(mktemp -d) COPY=$(mktemp -d) PAUSED_PID=""
# On exit: the keys and the repository copy go; a run left waiting stops.
cleanup() {
	[[ -z $PAUSED_PID ]] || kill "$PAUSED_PID" 2>/dev/null || true
	rm -rf "$KEYS" "$COPY"
}
trap cleanup EXIT
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

# The parts below build variants of the examples in a copy of this
# repository ($COPY), so that the committed examples stay as they are; their
# binaries go to dist/ like the others. The copy's binaries name this commit
# with -dirty: their source differs from it (source.tar holds it exactly).
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)-dirty
tar --exclude=./dist --exclude=./bin --exclude=./.git -cf - . | tar -xf - -C "$COPY"

# variant NEW FROM: backfill NEW in the copy, a copy of backfill FROM
# (backfill new --from) whose manifest has no supersedes line; the caller
# edits its manifest, then builds it with build_variant.
variant() {
	(cd "$COPY" && "$OLDPWD/bin/backfill" new "$1" --from "$2" >/dev/null)
	sed -i '/^supersedes:/d' "$COPY/backfills/$1/backfill.yaml"
}
build_variant() {
	(cd "$COPY" && "$OLDPWD/bin/backfill" build "$1" --dist "$OLDPWD/dist" --source-commit "$COMMIT")
}

# brief: a dry-run's report without its ETA and SQL sections (the fix_roles
# dry-run above shows them).
brief() { awk '/^ETA for --execute/ { skip = 1 } /^Report saved/ { skip = 0 } !skip'; }

# run NAME ARGS...: backfill NAME's binary as the runner, logging to its dist folder.
run() {
	local name=$1
	shift
	"dist/$name/$name" "$@" --database-url "$(as demo_runner)" --log-file "dist/$name/execute.log" --log-stderr no
}

step "A release in March 2026 granted every seventh user a role it never took (tools/demo/seed_2026.sql)"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f tools/demo/seed_2026.sql
psql -X -d "$DB" -c "SELECT u.tenant, count(*) AS wrong_roles, count(*) FILTER (WHERE u.created_at < '2026-03-18') AS created_before_mar_18
	FROM users u JOIN LATERAL (SELECT g.role FROM role_grants g WHERE g.user_id = u.id ORDER BY g.granted_at DESC, g.id DESC LIMIT 1) AS latest ON true
	WHERE u.role <> latest.role GROUP BY u.tenant ORDER BY u.tenant"

step "A parameterised backfill: sync_roles takes a cutoff and tenants (make backfill NAME=sync_roles)"
make --no-print-directory backfill NAME=sync_roles
info=$(dist/sync_roles/sync_roles info)
printf '%s\n' "$info" | sed -n '/^parameters/,/^[a-z]/p' | sed '$d'
SYNC_PARAMS=(--param cutoff=2026-03-18 --param tenants=acme)

step "Its dry-run for cutoff=2026-03-18 tenants=acme, saved for the run to reconcile with"
run sync_roles "${SYNC_PARAMS[@]}" --save | brief

step "Alice approves sync_roles for exactly those values (risk: medium needs one approver)"
bin/backfill approve dist/sync_roles/sync_roles --key "$KEYS/alice.key" --reason "acme's March roles" \
	"${SYNC_PARAMS[@]}" --expires 1h --database-url "$(as demo_alice)"

step "The runner executes sync_roles with the approved values"
expect 0 run sync_roles --execute "${SYNC_PARAMS[@]}"

step "Values nobody approved are refused: a later cutoff (exit 12); the same values again ran once (exit 13)"
expect 12 run sync_roles --execute --param cutoff=2026-04-01 --param tenants=acme
expect 13 run sync_roles --execute "${SYNC_PARAMS[@]}"
bin/backfill runs --limit 3

step "A report by tenant: roles_report, the demo's copy of sync_roles with report: {group_by: [tenant], spot_check: [14, 21, 1092]}"
variant roles_report sync_roles
printf 'report: {group_by: [tenant], spot_check: [14, 21, 1092]}\n' >>"$COPY/backfills/roles_report/backfill.yaml"
build_variant roles_report
REPORT_PARAMS=(--param cutoff=2026-04-01)

step "Its dry-run for cutoff=2026-04-01, every tenant: the breakdown by tenant and the from -> to table"
run roles_report "${REPORT_PARAMS[@]}" --save | brief

step "Bob approves roles_report for cutoff=2026-04-01; the runner executes it with --pause-after-canary"
bin/backfill approve dist/roles_report/roles_report --key "$KEYS/bob.key" --reason "the rest of March's roles" \
	"${REPORT_PARAMS[@]}" --expires 1h --database-url "$(as demo_bob)"
PAUSED_LOG=dist/roles_report/paused.out
run roles_report --execute --pause-after-canary "${REPORT_PARAMS[@]}" >"$PAUSED_LOG" 2>&1 &
PAUSED_PID=$!
for _ in $(seq 300); do
	grep -q 'paused after its canary batch' "$PAUSED_LOG" && break
	kill -0 "$PAUSED_PID" 2>/dev/null || break
	sleep 0.2
done
cat "$PAUSED_LOG"
grep -q 'paused after its canary batch' "$PAUSED_LOG" || { echo "demo: roles_report did not pause after its canary batch" >&2; exit 1; }
shown=$(wc -l <"$PAUSED_LOG")
PAUSED_RUN=$(psql -X -At -d "$DB" -c "SELECT id FROM backfill.runs WHERE backfill = 'roles_report' AND status = 'running'")

step "Paused for a person: run $PAUSED_RUN is running but waits (backfill runs, roles_report status, backfill show, the ledger row)"
bin/backfill runs --limit 2
dist/roles_report/roles_report status --database-url "$(as demo_runner)"
bin/backfill show "$PAUSED_RUN" | grep -E '^(status|checkpoint) |"control"'
psql -X -d "$DB" -c "SELECT id, status, control, control_by, batches, cursor FROM backfill.runs WHERE id = $PAUSED_RUN"

step "A person checked the canary's rows: backfill resume $PAUSED_RUN (as the runner), and the run completes"
bin/backfill resume "$PAUSED_RUN" --database-url "$(as demo_runner)"
expect 0 wait "$PAUSED_PID"
PAUSED_PID=""
tail -n "+$((shown + 1))" "$PAUSED_LOG"
bin/backfill show "$PAUSED_RUN" | grep '"control"'

step "roles_report verify: the checks, the run reconciled per tenant with its dry-run, and the spot checks now"
dist/roles_report/roles_report verify "${REPORT_PARAMS[@]}" --database-url "$(as demo_runner)"

step "Promotion: fix_roles_staged, the demo's copy of fix_roles with targets: {staging, production} and promote: {from: staging}"
variant fix_roles_staged fix_roles
sed -i '/^target:/,/^  canary:/d' "$COPY/backfills/fix_roles_staged/backfill.yaml"
cat >>"$COPY/backfills/fix_roles_staged/backfill.yaml" <<YAML
targets:                   # one binary, tried in staging, then run in production
  staging:
    database: $STAGING_DB
    canary: {query: "SELECT value FROM app_settings WHERE key = 'env'", equals: staging}
  production:
    database: $PROD_DB
    canary: {query: "SELECT value FROM app_settings WHERE key = 'env'", equals: production}
promote: {from: staging}   # production approvals must carry the staging run's archive
YAML
build_variant fix_roles_staged
info=$(dist/fix_roles_staged/fix_roles_staged info)
printf '%s\n' "$info" | sed -n -e '/^digest/p' -e '/^targets/,/^promote/p'

step "$STAGING_DB and $PROD_DB: the same users, each its own ledger (staging, production), grants and trusted keys"
for env in staging production; do
	url=$STAGING
	[[ $env == production ]] && url=$PROD
	psql -X -q -v ON_ERROR_STOP=1 -d "$url" -f queries/schema/schema.sql -f tools/demo/seed.sql \
		-c "UPDATE app_settings SET value = '$env' WHERE key = 'env'"
	bin/backfill ledger init --environment "$env" --database-url "$url"
	psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<'SQL'
GRANT SELECT ON users, role_grants, app_settings TO demo_runner;
GRANT SELECT ON role_grants TO backfill_writer;
GRANT SELECT, UPDATE (role) ON users TO backfill_writer;
SQL
	bin/backfill approvers add alice --key "$KEYS/alice.pub" --login demo_alice --database-url "$url"
	bin/backfill approvers add bob --key "$KEYS/bob.pub" --login demo_bob --database-url "$url"
done

step "Staging: alice and bob approve, the runner executes, then archives the run"
for who in alice bob; do
	bin/backfill approve dist/fix_roles_staged/fix_roles_staged --key "$KEYS/$who.key" --reason "try it in staging" \
		--expires 1h --database-url "$(as "demo_$who" "$STAGING")"
done
expect 0 dist/fix_roles_staged/fix_roles_staged --execute --database-url "$(as demo_runner "$STAGING")" \
	--log-file dist/fix_roles_staged/staging.log --log-stderr no
STAGING_RUN=$(psql -X -At -d "$STAGING" -c "SELECT id FROM backfill.runs WHERE status = 'completed'")
EVIDENCE=dist/fix_roles_staged/fix_roles_staged-staging-run-$STAGING_RUN.tar.gz
rm -f "$EVIDENCE"
bin/backfill archive "$STAGING_RUN" --out "$EVIDENCE" --database-url "$(as demo_runner "$STAGING")"

step "Production: bob approves with --evidence (the staging archive), alice without: hers does not count"
bin/backfill approve dist/fix_roles_staged/fix_roles_staged --key "$KEYS/bob.key" --reason "staging run $STAGING_RUN held" \
	--evidence "$EVIDENCE" --expires 1h --database-url "$(as demo_bob "$PROD")"
bin/backfill approve dist/fix_roles_staged/fix_roles_staged --key "$KEYS/alice.key" --reason "looks fine" \
	--expires 1h --database-url "$(as demo_alice "$PROD")"
expect 12 dist/fix_roles_staged/fix_roles_staged --execute --database-url "$(as demo_runner "$PROD")" \
	--log-file dist/fix_roles_staged/production.log --log-stderr no

step "Alice approves again, with the evidence; the same binary now runs in production"
bin/backfill approve dist/fix_roles_staged/fix_roles_staged --key "$KEYS/alice.key" --reason "staging run $STAGING_RUN held" \
	--evidence "$EVIDENCE" --expires 1h --database-url "$(as demo_alice "$PROD")"
expect 0 dist/fix_roles_staged/fix_roles_staged --execute --database-url "$(as demo_runner "$PROD")" \
	--log-file dist/fix_roles_staged/production.log --log-stderr no
bin/backfill runs --database-url "$PROD"

step "Done"
echo "The dry-run report is in dist/fix_roles/dry-run.json; run $RUN of fix_roles completed once;"
echo "its archive is $ARCHIVE (REPORT.md inside says who ran what, when, why and what changed)."
echo "sync_roles ran once for the values alice approved; roles_report (run $PAUSED_RUN) waited after its canary"
echo "until resumed; fix_roles_staged ran in $STAGING_DB (archive $EVIDENCE), then in $PROD_DB."
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
