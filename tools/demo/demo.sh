#!/usr/bin/env bash
# demo.sh: the main job end to end on a throwaway database. `make demo` runs
# it through tools/withpg.sh, which sets DATABASE_URL (yours, or a temporary
# cluster removed afterwards). It recreates the database $DEMO_DB on that
# server, seeds users whose roles a bad release left wrong, builds the
# fix_roles binary and shows its dry-run.
set -euo pipefail

cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?DATABASE_URL must be set (make demo sets it)}"
DEMO_DB=${DEMO_DB:-backfill_demo}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# demo_url replaces the database of DATABASE_URL with $DEMO_DB.
demo_url() {
	local url=$DATABASE_URL query=""
	if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
	if [[ $url =~ ^(postgres(ql)?://[^/]*)(/.*)?$ ]]; then
		printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "$DEMO_DB" "$query"
	else
		echo "demo: DATABASE_URL must be a postgres:// URL" >&2
		exit 2
	fi
}

DB=$(demo_url)
export DATABASE_URL=$DB

step "Creating database $DEMO_DB and seeding users with wrong roles"
psql -X -q -v ON_ERROR_STOP=1 -d "${DB/\/$DEMO_DB/\/postgres}" \
	-c "DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE)" -c "CREATE DATABASE $DEMO_DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f queries/schema/schema.sql -f tools/demo/seed.sql
psql -X -d "$DB" -c "SELECT count(*) AS users, count(*) FILTER (WHERE created_at < '2026-01-01') AS in_scope FROM users"

step "Building fix_roles (make backfill NAME=fix_roles)"
make --no-print-directory backfill NAME=fix_roles

step "What the binary is (dist/fix_roles/fix_roles info)"
dist/fix_roles/fix_roles info | head -n 6

step "Dry-run (the default): what would change, writing nothing"
dist/fix_roles/fix_roles --report dist/fix_roles/dry-run.json

step "Done"
echo "The dry-run report is in dist/fix_roles/dry-run.json."
