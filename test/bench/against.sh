#!/bin/bash
#
# test/bench/against.sh: a benchmark of this code against a released
# version's, in one session, runs alternated, with the ratio of each pair.
#
#   bash test/bench/against.sh [--rev REV] [--pairs N] BENCH
#
# BENCH is drain_bench (items/s of the worker's drain) or sync_bench (time
# per request of one call of 2,000 one-item requests).  REV (default
# v1.1, the commit 1.1 shipped from) is built into a private copy of the
# system's PostgreSQL installation under $CCP_BASELINE_DIR (default
# /tmp/ccpurge-baseline-REV), once; this code is the one installed in the
# system's PostgreSQL (make install, or test/check.sh without --no-build).
# Each pair runs this code, then REV, with the same benchmark script and
# the environment's settings (CCP_BENCH_FSYNC, CCP_BENCH_N, ...); the
# script prints each pair's figures and ratio and the median ratio.  The
# figures of one build spread over a wide range on a shared machine:
# alternated pairs compare like with like.
#
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REV=v1.1
PAIRS=3
while [ $# -gt 1 ]; do
	case "$1" in
	--rev) REV=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	*) break ;;
	esac
done
BENCH=${1:?usage: against.sh [--rev REV] [--pairs N] drain_bench|sync_bench}
case "$BENCH" in
drain_bench) PATTERN='DRAIN N=[0-9]*: \([0-9.]*\) items/s'; HIGHER=1 ;;
sync_bench) PATTERN='sync batch_size 1: \([0-9.]*\) us/request'; HIGHER=0 ;;
*) echo "against.sh: no figure known for $BENCH" >&2; exit 2 ;;
esac

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
MAJOR=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
# v1.1 is the parent of the commit that made the control file say 1.2; a
# clone without the tag finds it by that
if ! COMMIT=$(git -C "$ROOT" rev-parse --verify -q "$REV^{commit}"); then
	[ "$REV" = v1.1 ] || { echo "against.sh: no revision $REV" >&2; exit 2; }
	first12=$(git -C "$ROOT" log --format=%H -S"default_version = '1.2'" -- ccpurge.control | tail -1)
	COMMIT=$(git -C "$ROOT" rev-parse "$first12~1")
fi
BASE=${CCP_BASELINE_DIR:-/tmp/ccpurge-baseline-$REV}
BASE_PG_CONFIG=$BASE/usr/lib/postgresql/$MAJOR/bin/pg_config

if [ ! -f "$BASE/.built-$COMMIT" ]; then
	echo "against.sh: building $REV ($COMMIT) into $BASE"
	rm -rf "$BASE"
	mkdir -p "$BASE/usr/lib/postgresql" "$BASE/usr/share/postgresql" "$BASE/src"
	# PostgreSQL finds its files relative to its binaries: a copy is an
	# installation of its own
	cp -a "/usr/lib/postgresql/$MAJOR" "$BASE/usr/lib/postgresql/"
	cp -a "/usr/share/postgresql/$MAJOR" "$BASE/usr/share/postgresql/"
	git -C "$ROOT" archive "$COMMIT" | tar -x -C "$BASE/src"
	# built against the system's headers (the copy has none), installed
	# into the copy
	make -s -C "$BASE/src" PG_CONFIG="$PG_CONFIG" -j"$(nproc)" >/dev/null
	make -s -C "$BASE/src" PG_CONFIG="$BASE_PG_CONFIG" install >/dev/null
	chmod -R a+rX "$BASE"
	touch "$BASE/.built-$COMMIT"
fi

# figure runs the benchmark with the given pg_config and prints its figure
figure()
{
	local log fig
	log=$(mktemp)
	if ! PG_CONFIG=$1 bash "$ROOT/test/check.sh" --no-build bench "$BENCH" >"$log" 2>&1; then
		echo "against.sh: $BENCH failed with $1; its output is in $log" >&2
		exit 1
	fi
	fig=$(sed -n "s|.*$PATTERN.*|\1|p" "$log" | head -1)
	if [ -z "$fig" ]; then
		echo "against.sh: $BENCH printed no figure with $1; its output is in $log" >&2
		exit 1
	fi
	rm -f "$log"
	echo "$fig"
}

ratios=()
for p in $(seq 1 "$PAIRS"); do
	mine=$(figure "$PG_CONFIG")
	base=$(figure "$BASE_PG_CONFIG")
	r=$(awk -v a="$mine" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
	ratios+=("$r")
	echo "pair $p: this code $mine, $REV $base: ratio $r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "RATIO $BENCH this code / $REV: median $median of $PAIRS pairs ($(
	[ "$HIGHER" = 1 ] && echo 'items/s: higher is faster' || echo 'time per request: lower is faster'))"
