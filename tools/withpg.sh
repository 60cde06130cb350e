#!/usr/bin/env bash
# withpg.sh: run a command with a PostgreSQL connection URL in an
# environment variable, starting a throwaway cluster when there is none.
#
# Why: the integration tests and the generated backfill binaries need a real
# PostgreSQL, but developers, CI and fresh machines differ in what they have.
# Some export DATABASE_URL, some run a server on localhost:5432, and some only
# have the Debian `postgresql` package installed with no server running. This
# script hides those differences: it picks the first of these that works:
#
#   1. VAR is already set and non-empty: the command runs unchanged.
#   2. --try-local and a server answers on 127.0.0.1:5432: VAR points at it.
#   3. Otherwise: a private cluster (initdb + pg_ctl) in a temporary folder on
#      a free port, trust auth, fsync off; it is stopped and deleted when the
#      command ends, also on Ctrl-C or SIGTERM.
#
# initdb refuses to run as root, so as root the cluster runs as `postgres`
# (or `nobody`) through runuser. The exit code is the command's.
#
# With --database NAME, the URL this script makes (cases 2 and 3) names
# database NAME instead of postgres; it does not create it. A VAR that is
# already set is never changed.
#
# Usage: tools/withpg.sh [--try-local] [--database NAME] VAR -- command [args...]
# Example:
#   tools/withpg.sh --try-local TEST_DATABASE_URL -- go test ./...
#   tools/withpg.sh DATABASE_URL -- bash -c 'psql "$DATABASE_URL" -c "select 1"'
set -euo pipefail

readonly LOCAL_PORT=5432
readonly FIRST_PORT=55432
readonly PORT_TRIES=200

usage() {
	cat >&2 <<'EOF'
usage: tools/withpg.sh [--try-local] [--database NAME] VAR -- command [args...]

Runs the command with VAR (e.g. DATABASE_URL) set to a PostgreSQL URL:
VAR as given if already set; with --try-local, a server on 127.0.0.1:5432
if one answers; else a throwaway cluster that is removed on exit. With
--database NAME, a URL made here names database NAME (not created here)
instead of postgres.
EOF
}

die() {
	echo "withpg: $*" >&2
	exit 1
}

# --- arguments ---------------------------------------------------------------
try_local=0
var=""
database=postgres
while (($# > 0)); do
	case $1 in
	--try-local)
		try_local=1
		shift
		;;
	--database)
		(($# > 1)) || {
			usage
			exit 2
		}
		database=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		break
		;;
	-*)
		usage
		exit 2
		;;
	*)
		if [[ -n $var ]]; then
			usage
			exit 2
		fi
		var=$1
		shift
		;;
	esac
done
if [[ -z $var || $# -lt 2 || $1 != "--" ]]; then
	usage
	exit 2
fi
shift # the "--"
if [[ ! $var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
	echo "withpg: '$var' is not a valid environment variable name" >&2
	usage
	exit 2
fi

if [[ ! $database =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
	echo "withpg: '$database' is not a plain database name" >&2
	usage
	exit 2
fi

url_for_port() {
	printf 'postgres://postgres@127.0.0.1:%s/%s?sslmode=disable' "$1" "$database"
}

# --- 1. already configured ---------------------------------------------------
if [[ -n ${!var:-} ]]; then
	echo "withpg: using $var from the environment" >&2
	exec "$@"
fi

# --- 2. a server on localhost ------------------------------------------------
if ((try_local)) && command -v pg_isready >/dev/null 2>&1 &&
	pg_isready -q -h 127.0.0.1 -p "$LOCAL_PORT" -t 2 >/dev/null 2>&1; then
	export "$var=$(url_for_port "$LOCAL_PORT")"
	echo "withpg: using local PostgreSQL at 127.0.0.1:$LOCAL_PORT" >&2
	exec "$@"
fi

# --- 3. a throwaway cluster --------------------------------------------------
initdb_bin=""
pg_ctl_bin=""
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
	initdb_bin=$(command -v initdb)
	pg_ctl_bin=$(command -v pg_ctl)
else
	best=""
	for dir in /usr/lib/postgresql/*/bin; do
		[[ -x $dir/initdb && -x $dir/pg_ctl ]] || continue
		best=$(printf '%s\n%s\n' "$best" "$dir" | sed '/^$/d' | sort -V | tail -n 1)
	done
	if [[ -n $best ]]; then
		initdb_bin=$best/initdb
		pg_ctl_bin=$best/pg_ctl
	fi
fi
if [[ -z $initdb_bin ]]; then
	die "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql), or set $var, or pass --try-local with a server on 127.0.0.1:$LOCAL_PORT."
fi

# initdb and postgres refuse to run as root: run them as an unprivileged user.
as_pg=()
pg_user=""
if ((EUID == 0)); then
	if id -u postgres >/dev/null 2>&1; then
		pg_user=postgres
	else
		pg_user=nobody
	fi
	runuser_bin=$(command -v runuser 2>/dev/null) || runuser_bin=""
	for candidate in /usr/sbin/runuser /sbin/runuser; do
		if [[ -z $runuser_bin && -x $candidate ]]; then
			runuser_bin=$candidate
		fi
	done
	[[ -n $runuser_bin ]] ||
		die "running as root needs runuser (util-linux) to start PostgreSQL as $pg_user."
	as_pg=("$runuser_bin" -u "$pg_user" --)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/withpg.XXXXXX")
data=$tmp/data
log=$tmp/postgres.log
started=0
child=""
cleaned=0

# Called from traps (shellcheck < 0.10 thinks it unreachable).
# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	((cleaned)) && return 0
	cleaned=1
	trap - EXIT INT TERM HUP
	if ((started)); then
		# Run from the temp folder so the unprivileged user can stat the cwd.
		(cd "$tmp" && "${as_pg[@]}" "$pg_ctl_bin" -D "$data" -m immediate -w stop) \
			>/dev/null 2>&1 || true
	fi
	rm -rf -- "$tmp"
	exit "$rc"
}

# True when this script's process group is its terminal's foreground group:
# then a Ctrl-C has already reached the command, which shares that group.
# shellcheck disable=SC2317
from_tty_group() {
	local stat f
	stat=$(cat "/proc/$$/stat" 2>/dev/null) || return 1
	# Fields after "(comm)": state ppid pgrp session tty_nr tpgid ...
	read -r -a f <<<"${stat##*) }"
	[[ ${#f[@]} -gt 5 && ${f[2]} == "${f[5]}" ]]
}

# Forward the signal to the command, wait for it and exit with its status.
# shellcheck disable=SC2317
on_signal() {
	local sig=$1 code=$2
	trap '' INT TERM HUP
	if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
		if [[ $sig != INT ]] || ! from_tty_group; then
			kill "-$sig" "$child" 2>/dev/null || true
		fi
		code=0
		wait "$child" 2>/dev/null || code=$?
	fi
	exit "$code"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# The -o string is parsed by a shell inside pg_ctl, hence the quoting rule.
[[ $tmp != *"'"* ]] || die "temporary folder path contains a quote: $tmp"
if [[ -n $pg_user ]]; then
	chown "$pg_user:" "$tmp"
fi

pg() { (cd "$tmp" && "${as_pg[@]}" "$@"); }

if ! pg "$initdb_bin" -D "$data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
	>"$tmp/initdb.log" 2>&1; then
	echo "withpg: initdb failed:" >&2
	tail -n 20 "$tmp/initdb.log" >&2
	exit 1
fi

port_in_use() {
	# Succeeds when something accepts connections on 127.0.0.1:$1.
	(: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Try ports upward; when a concurrent run grabs the same port first, the bind
# fails and the next port is tried.
port=$FIRST_PORT
last_port=$((FIRST_PORT + PORT_TRIES))
while :; do
	if ((port >= last_port)); then
		die "no free TCP port in $FIRST_PORT-$((last_port - 1)) on 127.0.0.1."
	fi
	if port_in_use "$port"; then
		port=$((port + 1))
		continue
	fi
	rm -f -- "$log"
	if pg "$pg_ctl_bin" -D "$data" -w -t 60 -l "$log" \
		-o "-c listen_addresses=127.0.0.1 -p $port -k '$tmp' -c fsync=off -c max_connections=200" \
		start >/dev/null 2>&1; then
		started=1
		break
	fi
	if grep -qE 'Address already in use|could not create any TCP/IP sockets' "$log" 2>/dev/null; then
		port=$((port + 1))
		continue
	fi
	# pg_ctl may give up while the server is still coming up: stop it too.
	started=1
	echo "withpg: the throwaway PostgreSQL cluster failed to start; last lines of its log:" >&2
	tail -n 20 "$log" >&2 2>/dev/null || true
	exit 1
done

export "$var=$(url_for_port "$port")"
export WITHPG_THROWAWAY=1 # the command can tell that the server goes when it ends
echo "withpg: using throwaway PostgreSQL at 127.0.0.1:$port (removed on exit)" >&2

# Run in the background and wait, so that a SIGTERM sent to this script alone
# is handled at once (and forwarded) instead of after the command ends. The
# explicit <&0 keeps stdin, and SIGINT/SIGQUIT get their default handling back.
rc=0
(
	trap - INT QUIT
	exec "$@"
) <&0 &
child=$!
wait "$child" || rc=$?
child=""
exit "$rc"
