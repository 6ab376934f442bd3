#!/bin/bash
#
# test/demo.sh: shows ccpurge erasing customers at the (simulated) Huawei
# CEC contact center, from a throwaway cluster that it starts and removes:
# a synchronous call, then the production path (a DELETE under the
# erase-on-delete trigger, the worker draining the queue, ccpurge_servers).
#
# Run as root from anywhere:  bash test/demo.sh
#
# As root it installs missing packages, builds and installs the extension
# and the vendor simulator, copies the tree (without .git) to a fresh
# directory under /tmp and continues there as the unprivileged user
# "postgres": it creates a cluster listening only on a Unix socket inside
# that directory (so any port number is free) with ccpurge preloaded,
# starts the simulator on a free loopback port, and runs the SQL a DBA
# would run.  On exit it stops the cluster and the simulator by PID and
# removes the directory.
#
# PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config) selects the
# PostgreSQL installation.
#
# shellcheck disable=SC2317  # the cleanup functions run from traps
set -uo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() {
	printf '\n=== %s\n' "$*"
}

die() {
	echo "demo.sh: $*" >&2
	exit 1
}

# stop_pid PID [SIGNAL|TENTHS] stops one process we started: the signal
# (default SIGTERM), 10 seconds of patience, then SIGKILL.  Given a number
# instead of a signal, it only waits that many tenths of a second before
# the SIGKILL.
stop_pid() {
	local pid=$1 sig=${2:-TERM} tenths=100 i
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		return 0
	fi
	case "$sig" in
	[0-9]*) tenths=$sig ;;
	*) kill -"$sig" "$pid" 2>/dev/null ;;
	esac
	for ((i = 0; i < tenths; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# =====================================================================
# Phase 1, as root: packages, build, install, copy, hand over.
# =====================================================================
if [ "${1:-}" != --inner ]; then
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			exec sudo env PG_CONFIG="$PG_CONFIG" bash "${BASH_SOURCE[0]}" "$@"
		fi
		die "must run as root (it installs packages and the extension), and sudo is not available"
	fi

	WORK=
	RUNUSER_PID=
	# root_cleanup ends the postgres phase if it still runs (SIGTERM to its
	# shell, whose trap stops the cluster and the simulator), stops
	# whatever it left running (found through the pid files and checked to
	# belong to the work directory) and removes the directory.
	root_cleanup() {
		local pidfile pid
		[ -n "$WORK" ] && [ -d "$WORK" ] || return 0
		if [ -n "$RUNUSER_PID" ]; then
			pid=$(cat "$WORK/inner.pid" 2>/dev/null)
			[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
			stop_pid "$RUNUSER_PID" 200
			wait "$RUNUSER_PID" 2>/dev/null
			RUNUSER_PID=
		fi
		for pidfile in "$WORK/data/postmaster.pid" "$WORK/sim.pid"; do
			pid=$(head -n 1 "$pidfile" 2>/dev/null | tr -dc '0-9')
			[ -n "$pid" ] || continue
			case "$(readlink "/proc/$pid/cwd" 2>/dev/null) $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" in
			# SIGINT is PostgreSQL's fast shutdown; the simulator takes SIGTERM.
			*"$WORK"*) stop_pid "$pid" "$([ "$pidfile" = "$WORK/sim.pid" ] && echo TERM || echo INT)" ;;
			esac
		done
		rm -rf "$WORK"
	}
	trap root_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	say "installing missing packages"
	bash "$SRC/test/install-deps.sh" || die "installing packages failed"

	say "building and installing ccpurge"
	(cd "$SRC" &&
		make -s -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$PG_CONFIG" &&
		make -s install PG_CONFIG="$PG_CONFIG") || die "building or installing the extension failed"

	say "building the simulator"
	make -s -C "$SRC/test/sim" || die "building the simulator failed"

	if ! id postgres >/dev/null 2>&1; then
		useradd --system --user-group --create-home --home-dir /var/lib/postgresql \
			--shell /bin/bash postgres || die "could not create user postgres"
	fi

	WORK=$(mktemp -d /tmp/ccpurge-demo.XXXXXX) || die "mktemp failed"
	chmod 755 "$WORK"
	mkdir "$WORK/src"
	tar -C "$SRC" --exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_iso \
		--exclude=./results --exclude=./output_iso --exclude=./test/tmp \
		-cf - . | tar -C "$WORK/src" -xf - || die "copying the tree failed"
	chown -R postgres: "$WORK"

	runuser -u postgres -- env -i \
		HOME="$WORK" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
		TERM="${TERM:-dumb}" PG_CONFIG="$PG_CONFIG" \
		bash "$WORK/src/test/demo.sh" --inner </dev/null &
	RUNUSER_PID=$!
	wait "$RUNUSER_PID"
	rc=$?
	RUNUSER_PID=
	root_cleanup
	WORK=
	exit "$rc"
fi

# =====================================================================
# Phase 2, as postgres, inside the copy: cluster, simulator, SQL.
# =====================================================================
ROOT=$SRC
WORK=$(dirname "$ROOT")
DATA="$WORK/data"
PGPORT=5432
PG_PID=
SIM_PID=
cd "$ROOT" || exit 1
echo "$$" >"$WORK/inner.pid"

BINDIR=$("$PG_CONFIG" --bindir)
export PATH="$BINDIR:$PATH"

inner_cleanup() {
	# SIGINT is PostgreSQL's fast shutdown.
	stop_pid "$PG_PID" INT
	stop_pid "$SIM_PID" TERM
	[ -n "$SIM_PID" ] && wait "$SIM_PID" 2>/dev/null
	rm -f "$WORK/sim.pid"
}
trap inner_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a throwaway cluster in $DATA"
initdb -D "$DATA" -A trust -U postgres -N >"$WORK/initdb.log" 2>&1 ||
	{ cat "$WORK/initdb.log"; die "initdb failed"; }
cat >>"$DATA/postgresql.conf" <<EOF

# ccpurge demo
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PGPORT
fsync = off
shared_preload_libraries = 'ccpurge'
ccpurge.database_name = 'postgres'
EOF
pg_ctl -D "$DATA" -l "$WORK/postgres.log" -w -s start ||
	{ cat "$WORK/postgres.log"; die "the cluster did not start"; }
PG_PID=$(head -n 1 "$DATA/postmaster.pid")
echo "postmaster pid $PG_PID, socket $WORK/.s.PGSQL.$PGPORT"

say "starting the vendor simulator"
[ -x test/sim/ccpurge-sim ] || die "test/sim/ccpurge-sim is missing"
test/sim/ccpurge-sim --port 0 --port-file "$WORK/sim.port" >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
echo "$SIM_PID" >"$WORK/sim.pid"
SIM_PORT=
for _ in $(seq 300); do
	kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim.log"; die "the simulator exited"; }
	port=$(tr -dc '0-9' 2>/dev/null <"$WORK/sim.port")
	if [ -n "$port" ] &&
		curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/_sim/state" 2>/dev/null; then
		SIM_PORT=$port
		break
	fi
	sleep 0.1
done
[ -n "$SIM_PORT" ] || { cat "$WORK/sim.log"; die "the simulator did not answer"; }
SIM_URL="http://127.0.0.1:$SIM_PORT"
echo "simulator pid $SIM_PID at $SIM_URL"

say "erasing customers from SQL"
psql -X -a -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT" -d postgres \
	-v sim_url="$SIM_URL" <<'EOF' || { tail -n 30 "$WORK/postgres.log"; die "the SQL part failed"; }
-- the extension, one server per vendor account, the secrets in a user mapping
CREATE EXTENSION ccpurge;
CREATE SERVER cec FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER cec
  OPTIONS (app_key 'cec-app-key', app_secret 'cec-app-secret');

-- a CRM table where some customers asked to be forgotten
CREATE SCHEMA crm;
CREATE TABLE crm.customer (
  id serial PRIMARY KEY,
  name text NOT NULL,
  phone text NOT NULL,
  erase_requested boolean NOT NULL DEFAULT false
);
INSERT INTO crm.customer (name, phone, erase_requested) VALUES
  ('Ana', '13500001111', true),
  ('Bo', '13500002222', false),
  ('Chen', '13500003333', true),
  ('Dev', '13500004444', true);

-- erase them at the contact center: one row per item per HTTP request
SELECT * FROM ccpurge_delete_customers(ARRAY(SELECT phone FROM crm.customer WHERE erase_requested));

-- every HTTP request is logged, with a digest of the items instead of the items
SELECT server, operation, item_count, ok, http_status FROM ccpurge.request_log;

-- the production path: a trigger queues what the CRM deletes, in the
-- deleting transaction; the background worker sends it after commit
CREATE TRIGGER erase_at_vendor AFTER DELETE ON crm.customer
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
INSERT INTO crm.customer (name, phone, erase_requested) VALUES
  ('Eve', '13500005555', true),
  ('Fay', '13500006666', true),
  ('Gus', '13500007777', true);
-- the DELETE returns at local speed; its rows are now queued
DELETE FROM crm.customer WHERE erase_requested RETURNING name, phone;
SELECT max(request_id) AS request_id FROM ccpurge_requests \gset
-- the worker drains the queue: wait until every item of the request is finished
SELECT ccpurge_wait(:request_id);
SELECT request_id, operation, server, queued, sending, done, failed
  FROM ccpurge_requests WHERE request_id = :request_id;
-- each server's health at a glance: queue, rate window, token, last hour
\x on
SELECT * FROM ccpurge_servers;
\x off
EOF

say "what the simulator recorded"
echo "GET /_sim/state, deleted items per set:"
curl -fsS --max-time 5 "$SIM_URL/_sim/state" | perl -MJSON::PP -e '
	# Print the counts of deleted items; the whole state if there are none.
	my $state = JSON::PP->new->utf8->decode(join "", <STDIN>);
	my $deleted = ref $state eq "HASH" ? $state->{deleted} : undef;
	if (ref $deleted eq "HASH") {
		for my $set (sort keys %$deleted) {
			my $v = $deleted->{$set};
			$v = scalar @$v if ref $v eq "ARRAY";
			$v = JSON::PP->new->canonical->encode($v) if ref $v;
			printf "  %-24s %s\n", $set, $v;
		}
	} else {
		print JSON::PP->new->canonical->pretty->encode($state);
	}
' || die "could not read the simulator state"
if customers=$(curl -fsS --max-time 5 "$SIM_URL/_sim/deleted/cec_customers" 2>/dev/null); then
	echo "GET /_sim/deleted/cec_customers: $customers"
fi

# ---------------------------------------------------------------------
# The auditor's answer for one person (receipts): the DELETE above erased
# three CRM rows through the trigger; ccpurge no longer keeps their
# numbers, and ccpurge_erasure_receipt still answers for one of them.
# ---------------------------------------------------------------------
say "the auditor's answer for one person"
psql -X -a -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT" -d postgres <<'EOF' || { tail -n 30 "$WORK/postgres.log"; die "the receipts part failed"; }
SELECT max(request_id) AS rid FROM ccpurge_requests \gset
-- done items keep no clear text: the queue shows their keyed digests
SELECT left(item, 24) || '...' AS item, state FROM ccpurge_status WHERE request_id = :rid;

-- "was 13500006666 erased, where, when, by which request?"
SELECT logged_at, server, operation, origin, request_id, ok, http_status
  FROM ccpurge_erasure_receipt('13500006666');
EOF

say "done; stopping the cluster and the simulator"
exit 0
