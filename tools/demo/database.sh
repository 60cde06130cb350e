# database.sh: how the demo picks its database, sourced by demo.sh (and by
# tools/demo/demo_test.go, which runs these functions on their own).
#
# The demo writes tables, a ledger and logins. It must never do that to a
# database someone else uses, nor drop one: it works only in the database
# DATABASE_URL names, which must be the database its backfill targets, and in
# two more of that name on the same server (NAME_staging and NAME_prod, for
# its promotion); it creates each when it does not exist, uses it when it
# holds no tables, and otherwise refuses. It never drops a database.

# url_database URL: the database a postgres:// URL names ("" when none).
url_database() {
	local rest=${1#*://}
	rest=${rest%%[?#]*}
	[[ $rest == */* ]] || return 0
	printf '%s\n' "${rest#*/}"
}

# url_with_database URL NAME: URL naming database NAME instead.
url_with_database() {
	local url=$1 query="" head rest
	if [[ $url == *\?* ]]; then
		query="?${url#*\?}"
		url=${url%%\?*}
	fi
	head=${url%%://*}://
	rest=${url#*://}
	printf '%s%s/%s%s\n' "$head" "${rest%%/*}" "$2" "$query"
}

# url_server URL: host and port of a URL, without user or password, for messages.
url_server() {
	local rest=${1#*://}
	rest=${rest%%[/?#]*}
	rest=${rest##*@}
	printf '%s\n' "${rest:-the local socket}"
}

# demo_refuse MESSAGE: stop the demo with one sentence and exit code 2.
demo_refuse() {
	printf 'demo: REFUSED: %s\n' "$1" >&2
	exit 2
}

# demo_tables URL: up to six tables (schema.name) of the database, one a line.
demo_tables() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "SELECT n.nspname || '.' || c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1 LIMIT 6"
}

# demo_database URL WANT: make sure URL names database WANT and that the demo
# may write into it: create it when it does not exist; use it when it holds
# no table; refuse otherwise. Prints what it did on one line.
demo_database() {
	local url=$1 want=$2 got server tables err
	[[ $url =~ ^postgres(ql)?:// ]] ||
		demo_refuse "DATABASE_URL must be a postgres:// URL naming the database the demo may use ($want); unset it to run on a throwaway cluster."
	got=$(url_database "$url")
	server=$(url_server "$url")
	if [[ $got != "$want" ]]; then
		demo_refuse "DATABASE_URL names database \"$got\" on $server, but the demo's backfill targets database \"$want\" (target.database in backfills/fix_roles/backfill.yaml) and the demo only uses the database the URL names. Point DATABASE_URL at a database named $want (empty, or not yet created), or unset it to run on a throwaway cluster."
	fi
	if ! err=$(psql -X -q -At -d "$url" -c "SELECT 1" 2>&1 >/dev/null); then
		if [[ $err != *"does not exist"* ]]; then
			printf '%s\n' "$err" >&2
			demo_refuse "cannot connect to database $want on $server (above); check DATABASE_URL and that the server is up."
		fi
		psql -X -q -v ON_ERROR_STOP=1 -d "$(url_with_database "$url" postgres)" -c "CREATE DATABASE \"$want\"" ||
			demo_refuse "cannot create database $want on $server (above); create it empty yourself (createdb $want), or unset DATABASE_URL to run on a throwaway cluster."
		echo "Created database $want on $server for this demo."
		return 0
	fi
	tables=$(demo_tables "$url") || demo_refuse "cannot list the tables of database $want on $server (above)."
	if [[ -n $tables ]]; then
		local n shown
		n=$(printf '%s\n' "$tables" | wc -l)
		shown=$(printf '%s\n' "$tables" | head -n 5 | paste -sd, - | sed 's/,/, /g')
		((n <= 5)) || shown="$shown, ..."
		demo_refuse "database $want on $server already holds tables this demo did not create ($shown); the demo writes only into an empty database and never drops one. If it is an earlier demo's, drop it yourself (dropdb $want) and run the demo again; otherwise point DATABASE_URL at another server, or unset it to run on a throwaway cluster."
	fi
	echo "Using the empty database $want on $server."
}
