#!/bin/bash
#
# test/check.sh: ccpurge's one test command (CI runs it through .ci/run).
#
# Run as root from anywhere:
#
#   bash test/check.sh                  everything
#   bash test/check.sh regress          pg_regress tests only (sql/*.sql)
#   bash test/check.sh isolation        isolation specs only (test/specs)
#   bash test/check.sh tap [FILE...]    TAP tests only, all or the named ones
#                                       (test/t/001_x.pl, 001_x.pl or 001_x)
#   bash test/check.sh selftest         the simulator's self-test only
#   bash test/check.sh bench [NAME...]  benchmarks (test/bench/NAME.pl); not
#                                       part of the default run
#
# Several filters may be given at once ("regress isolation").  --no-build
# skips installing packages and building (for quick reruns after a build).
# Environment: CCP_TAP_JOBS (parallel TAP files, default min(nproc, 4)),
# CCP_TAP_VERBOSE=1, CCP_KEEP_TMP=1 (keep the work directory even on
# success), PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config).
#
# As root it installs missing packages, builds and installs the extension
# and the simulator, copies the tree (without .git) to a fresh directory
# under /tmp and hands that copy to the unprivileged user "postgres", which
# runs the suites there: PostgreSQL refuses to run as root, and the
# checkout may sit where postgres cannot read (/root/...).  Every process it
# starts is stopped by PID (or by the process group it was given) on exit.
# The last line printed is "N passed, N failed", counting pg_regress tests,
# isolation tests, TAP files and the simulator self-test; the exit status is
# non-zero when anything failed.
#
# shellcheck disable=SC2317  # the cleanup functions run from traps
set -uo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# say prints a progress line that stands out from tool output.
say() {
	printf '\n=== %s\n' "$*"
}

usage() {
	sed -n '4,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------------
# Arguments (the same for the root and the postgres phase)
# ---------------------------------------------------------------------
INNER=0
NO_BUILD=0
RUN_REGRESS=0
RUN_ISOLATION=0
RUN_TAP=0
RUN_SELFTEST=0
RUN_BENCH=0
TAP_ARGS=()
BENCH_ARGS=()
ORIG_ARGS=("$@")

while [ $# -gt 0 ]; do
	case "$1" in
	--inner) INNER=1 ;;
	--no-build) NO_BUILD=1 ;;
	regress) RUN_REGRESS=1 ;;
	isolation) RUN_ISOLATION=1 ;;
	selftest) RUN_SELFTEST=1 ;;
	all) RUN_REGRESS=1 RUN_ISOLATION=1 RUN_TAP=1 RUN_SELFTEST=1 ;;
	tap)
		RUN_TAP=1
		while [ $# -gt 1 ]; do
			case "$2" in
			regress | isolation | selftest | all | tap | --*) break ;;
			esac
			TAP_ARGS+=("$2")
			shift
		done
		;;
	bench)
		RUN_BENCH=1
		while [ $# -gt 1 ]; do
			case "$2" in
			regress | isolation | selftest | all | tap | bench | --*) break ;;
			esac
			BENCH_ARGS+=("$2")
			shift
		done
		;;
	-h | --help) usage ;;
	*)
		echo "check.sh: unknown argument \"$1\"" >&2
		usage
		;;
	esac
	shift
done

if [ $((RUN_REGRESS + RUN_ISOLATION + RUN_TAP + RUN_SELFTEST + RUN_BENCH)) -eq 0 ]; then
	RUN_REGRESS=1 RUN_ISOLATION=1 RUN_TAP=1 RUN_SELFTEST=1
fi

# wait_gone PID TENTHS waits up to TENTHS tenths of a second for a process
# (or, with a leading "-", a process group) to disappear; returns non-zero
# if it is still there.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 -- "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	! kill -0 -- "$1" 2>/dev/null
}

# stop_group PGID ends a process group this script created (a job started
# in monitor mode): SIGTERM, then SIGKILL after 5 seconds.
stop_group() {
	local pgid=$1
	[ -n "$pgid" ] || return 0
	kill -TERM -- "-$pgid" 2>/dev/null || return 0
	wait_gone "-$pgid" 50 || kill -KILL -- "-$pgid" 2>/dev/null
	return 0
}

# sweep_processes stops every postmaster and simulator still running whose
# pid file lies under $1 and whose working directory or command line points
# into $1: the processes this run started, found by PID, never by name.
# A postmaster gets a fast shutdown (SIGINT), then SIGQUIT and SIGKILL.
sweep_processes() {
	local dir=$1 pidfile pid where
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	while IFS= read -r pidfile; do
		pid=$(head -n 1 "$pidfile" 2>/dev/null | tr -dc '0-9')
		if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
			continue
		fi
		where="$(readlink "/proc/$pid/cwd" 2>/dev/null) $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"
		case "$where" in
		*"$dir"*) ;;
		*) continue ;;
		esac
		echo "check.sh: stopping leftover process $pid (${pidfile#"$dir"/})" >&2
		if [ "$(basename "$pidfile")" = postmaster.pid ]; then
			kill -INT "$pid" 2>/dev/null
			wait_gone "$pid" 100 && continue
			kill -QUIT "$pid" 2>/dev/null
			wait_gone "$pid" 20 && continue
		else
			kill -TERM "$pid" 2>/dev/null
			wait_gone "$pid" 50 && continue
		fi
		kill -KILL "$pid" 2>/dev/null
	done < <(find "$dir" \( -name postmaster.pid -o -name 'ccpurge-sim*.pid' \) -type f 2>/dev/null)
}

# =====================================================================
# Phase 1, as root: packages, build, install, copy, hand over.
# =====================================================================
if [ "$INNER" -eq 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			exec sudo env PG_CONFIG="$PG_CONFIG" CCP_TAP_JOBS="${CCP_TAP_JOBS:-}" \
				CCP_TAP_VERBOSE="${CCP_TAP_VERBOSE:-}" CCP_KEEP_TMP="${CCP_KEEP_TMP:-}" \
				bash "${BASH_SOURCE[0]}" "${ORIG_ARGS[@]}"
		fi
		echo "check.sh: must run as root (it installs packages and the extension), and sudo is not available" >&2
		exit 1
	fi

	WORK=
	RESULT=1
	RUNUSER_PID=
	SUMMARY=

	# stop_inner ends the postgres phase: SIGTERM to its shell (whose trap
	# ends its current job and its processes), then to anything left.
	stop_inner() {
		local pid
		[ -n "$RUNUSER_PID" ] || return 0
		pid=$(cat "$WORK/inner.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
		wait_gone "$RUNUSER_PID" 200 || kill -TERM "$RUNUSER_PID" 2>/dev/null
		stop_group "$(cat "$WORK/job.pgid" 2>/dev/null)"
		wait "$RUNUSER_PID" 2>/dev/null
		RUNUSER_PID=
	}

	# summary prints the final "N passed, N failed" line from the counts the
	# postgres phase left, counting a failure when that phase failed
	# without recording one; sets RESULT.
	summary() {
		local rc=$1 counts npass nfail
		counts=$(cat "$WORK/counts" 2>/dev/null)
		[ -n "$counts" ] || counts="0 0"
		read -r npass nfail <<<"$counts"
		if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
			echo "check.sh: the postgres phase exited with status $rc" >&2
			nfail=1
		fi
		[ "$nfail" -eq 0 ] && RESULT=0
		SUMMARY="$npass passed, $nfail failed"
	}

	# root_cleanup stops leftovers of the postgres phase, removes the work
	# directory unless something failed or CCP_KEEP_TMP is set, and prints
	# the summary line last.
	root_cleanup() {
		if [ -n "$WORK" ] && [ -d "$WORK" ]; then
			if [ -n "$RUNUSER_PID" ]; then
				stop_inner
				summary 1
			fi
			sweep_processes "$WORK"
			if [ "$RESULT" -eq 0 ] && [ -z "${CCP_KEEP_TMP:-}" ]; then
				rm -rf "$WORK"
			else
				echo "check.sh: test files kept in $WORK" >&2
			fi
		fi
		WORK=
		[ -n "$SUMMARY" ] && echo "$SUMMARY"
		SUMMARY=
	}
	trap root_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# setup_failed reports a failure before any suite ran.
	setup_failed() {
		echo "check.sh: $*" >&2
		SUMMARY="0 passed, 1 failed"
		exit 1
	}

	if [ "$NO_BUILD" -eq 0 ]; then
		say "installing missing packages"
		bash "$SRC/test/install-deps.sh" || setup_failed "installing packages failed"

		say "building and installing ccpurge"
		JOBS=$(nproc 2>/dev/null || echo 2)
		(cd "$SRC" &&
			make -s clean PG_CONFIG="$PG_CONFIG" &&
			make -s -j"$JOBS" PG_CONFIG="$PG_CONFIG" &&
			make -s install PG_CONFIG="$PG_CONFIG") ||
			setup_failed "building or installing the extension failed"

		say "building the simulator"
		make -s -C "$SRC/test/sim" || setup_failed "building the simulator failed"
	fi

	if ! id postgres >/dev/null 2>&1; then
		useradd --system --user-group --create-home --home-dir /var/lib/postgresql \
			--shell /bin/bash postgres || setup_failed "could not create user postgres"
	fi

	WORK=$(mktemp -d /tmp/ccpurge-check.XXXXXX) || setup_failed "mktemp failed"
	chmod 755 "$WORK"
	mkdir "$WORK/src"
	tar -C "$SRC" \
		--exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_iso \
		--exclude=./results --exclude=./output_iso --exclude=./log \
		--exclude=./regression.diffs --exclude=./regression.out \
		--exclude=./test/tmp \
		-cf - . | tar -C "$WORK/src" -xf - || setup_failed "copying the tree failed"
	chown -R postgres: "$WORK"

	# The postgres phase gets a clean environment: no proxy settings for
	# libcurl, no PG* variables, a fixed locale.  It runs in the background
	# so that a signal reaches this shell's trap at once.
	runuser -u postgres -- env -i \
		HOME="$WORK" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
		TERM="${TERM:-dumb}" PG_CONFIG="$PG_CONFIG" \
		CCP_TAP_JOBS="${CCP_TAP_JOBS:-}" CCP_TAP_VERBOSE="${CCP_TAP_VERBOSE:-}" \
		PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-}" \
		PG_TEST_NOCLEAN="${PG_TEST_NOCLEAN:-}" \
		bash "$WORK/src/test/check.sh" --inner "${ORIG_ARGS[@]}" </dev/null &
	RUNUSER_PID=$!
	wait "$RUNUSER_PID"
	rc=$?
	RUNUSER_PID=
	summary "$rc"
	exit "$RESULT"
fi

# =====================================================================
# Phase 2, as postgres, inside the copy: run the suites.
# =====================================================================
ROOT=$SRC
WORK=$(dirname "$ROOT")
cd "$ROOT" || exit 1
echo "$$" >"$WORK/inner.pid"

# Monitor mode: every background job gets its own process group, which
# stop_group can end as a whole (make with pg_regress and psql; the TAP
# harness with its tests and their simulators).
set -m

BINDIR=$("$PG_CONFIG" --bindir)
PGXSDIR=$(dirname "$("$PG_CONFIG" --pgxs)")/../..
PGXSDIR=$(cd "$PGXSDIR" && pwd)
export PATH="$BINDIR:$PATH"
[ -z "${PG_TEST_TIMEOUT_DEFAULT:-}" ] && unset PG_TEST_TIMEOUT_DEFAULT
[ -z "${PG_TEST_NOCLEAN:-}" ] && unset PG_TEST_NOCLEAN

NPASS=0
NFAIL=0
FAILED=()
SIM_PID=
SIM_NAME=
JOB_PID=

# record adds one result: record pass|fail NAME.
record() {
	if [ "$1" = pass ]; then
		NPASS=$((NPASS + 1))
	else
		NFAIL=$((NFAIL + 1))
		FAILED+=("$2")
	fi
}

# run_job runs a command as a background job (its own process group) and
# waits for it, so that a signal is handled at once; returns its status.
run_job() {
	local rc
	"$@" </dev/null &
	JOB_PID=$!
	echo "$JOB_PID" >"$WORK/job.pgid"
	wait "$JOB_PID"
	rc=$?
	JOB_PID=
	rm -f "$WORK/job.pgid"
	return "$rc"
}

# stop_sim stops the simulator started by start_sim.
stop_sim() {
	[ -n "$SIM_PID" ] || return 0
	kill -TERM "$SIM_PID" 2>/dev/null
	wait_gone "$SIM_PID" 50 || kill -KILL "$SIM_PID" 2>/dev/null
	wait "$SIM_PID" 2>/dev/null
	rm -f "$WORK/ccpurge-sim-$SIM_NAME.pid"
	SIM_PID=
}

inner_cleanup() {
	stop_group "$JOB_PID"
	JOB_PID=
	stop_sim
	sweep_processes "$WORK"
	echo "$NPASS $NFAIL" >"$WORK/counts"
}
trap inner_cleanup EXIT
trap 'record fail "interrupted"; exit 130' INT
trap 'record fail "interrupted"; exit 143' TERM

# start_sim NAME starts test/sim/ccpurge-sim on a free port (it writes the
# port to its port file), waits until GET /_sim/state answers, and exports
# CCPURGE_SIM_PORT.  Returns non-zero if it does not come up.
start_sim() {
	local portfile log port=
	SIM_NAME=$1
	portfile="$WORK/sim-$SIM_NAME.port"
	log="$WORK/sim-$SIM_NAME.log"
	rm -f "$portfile"
	if [ ! -x test/sim/ccpurge-sim ]; then
		echo "check.sh: test/sim/ccpurge-sim is missing (make -C test/sim)" >&2
		return 1
	fi
	test/sim/ccpurge-sim --port 0 --port-file "$portfile" </dev/null >"$log" 2>&1 &
	SIM_PID=$!
	echo "$SIM_PID" >"$WORK/ccpurge-sim-$SIM_NAME.pid"
	for _ in $(seq 300); do
		if ! kill -0 "$SIM_PID" 2>/dev/null; then
			wait "$SIM_PID" 2>/dev/null
			echo "check.sh: the simulator exited during startup; its log:" >&2
			cat "$log" >&2
			SIM_PID=
			return 1
		fi
		port=$(tr -dc '0-9' 2>/dev/null <"$portfile")
		if [ -n "$port" ] && [ "$port" -gt 0 ] &&
			curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/_sim/state" 2>/dev/null; then
			export CCPURGE_SIM_PORT=$port
			echo "simulator pid $SIM_PID on port $port (log $log)"
			return 0
		fi
		sleep 0.1
	done
	echo "check.sh: the simulator did not answer within 30 seconds; its log:" >&2
	cat "$log" >&2
	stop_sim
	return 1
}

# count_pg_regress LOG KIND records each "test NAME ... ok|FAILED" line of
# a pg_regress or pg_isolation_regress run, sets NRUN_LAST to the number of
# tests run and returns the number of failures.
count_pg_regress() {
	local log=$1 kind=$2 name result nbad=0
	while read -r name result; do
		if [ "$result" = ok ]; then
			record pass "$kind/$name"
		else
			record fail "$kind/$name"
			nbad=$((nbad + 1))
		fi
	done < <(sed -n -E \
		-e 's/^(test +| +)([^ ]+) +\.\.\. +(ok|failed \(ignored\)).*/\2 ok/p' \
		-e 's/^(test +| +)([^ ]+) +\.\.\. +FAILED.*/\2 FAILED/p' "$log")
	NRUN_LAST=$(grep -c -E '^(test +| +)[^ ]+ +\.\.\. ' "$log")
	return "$nbad"
}

# show_file_tail prints the last N lines of a file under a heading.
show_file_tail() {
	local file=$1 n=$2
	[ -s "$file" ] || return 0
	echo "----- last $n lines of ${file#"$ROOT"/}"
	tail -n "$n" "$file"
}

# make_logged LOG ARGS... runs make with its output shown and saved in LOG;
# returns make's status.
make_logged() {
	local log=$1
	shift
	make "$@" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}

# run_pg_regress KIND runs "make installcheck" for one kind of suite
# (regress or isolation) against a fresh simulator.
run_pg_regress() {
	local kind=$1 log rc nbad diffs logdir
	local -a makeargs=(installcheck PG_CONFIG="$PG_CONFIG")

	log="$WORK/$kind.log"
	if [ "$kind" = regress ]; then
		makeargs+=(ISOLATION=)
		diffs=regression.diffs
		logdir=log
	else
		# The worker serves ccpurge.database_name from test/regress.conf
		# (contrib_regression), so the specs must run in that database too.
		makeargs+=(REGRESS= ISOLATION_TESTDB=contrib_regression)
		diffs=output_iso/regression.diffs
		logdir=output_iso/log
	fi

	say "$kind tests"
	if ! start_sim "$kind"; then
		record fail "$kind (simulator did not start)"
		return
	fi
	run_job make_logged "$log" "${makeargs[@]}"
	rc=$?
	stop_sim

	count_pg_regress "$log" "$kind"
	nbad=$?
	if [ "$rc" -ne 0 ] && [ "$NRUN_LAST" -eq 0 ]; then
		record fail "$kind (make installcheck failed before running tests)"
	elif [ "$rc" -ne 0 ] && [ "$nbad" -eq 0 ]; then
		record fail "$kind (make installcheck exited with status $rc)"
	fi
	if [ "$rc" -ne 0 ]; then
		if [ -s "$diffs" ]; then
			echo "----- $diffs"
			head -n 600 "$diffs"
			[ "$(wc -l <"$diffs")" -gt 600 ] && echo "[... truncated; whole file in $ROOT/$diffs]"
		fi
		show_file_tail "$logdir/postmaster.log" 60
		show_file_tail "$logdir/initdb.log" 20
		show_file_tail "$WORK/sim-$kind.log" 30
	fi
}

# resolve_tap_file prints the path (relative to the tree) of a TAP test
# given as test/t/NAME.pl, NAME.pl or NAME.
resolve_tap_file() {
	local arg=$1 cand
	for cand in "$arg" "test/t/$arg" "test/t/$arg.pl" "test/t/$(basename "$arg")"; do
		if [ -f "$cand" ]; then
			echo "$cand"
			return 0
		fi
	done
	return 1
}

# show_tap_log prints the end of a TAP test's own log without the initdb
# chatter that every node start adds.
show_tap_log() {
	local file=$1
	[ -s "$file" ] || return 0
	echo "----- end of ${file#"$ROOT"/}"
	awk '/^# Running: initdb /{skip=1} !skip{print} /^    pg_ctl -D .* -l logfile start$/{skip=0}' "$file" |
		tail -n 80
}

# run_harness runs TAP files with TAP::Harness (the engine behind prove)
# and writes "pass FILE" or "fail FILE" for each to $1.
run_harness() {
	local out=$1 jobs=$2
	shift 2
	perl -MTAP::Harness -e '
		my ($jobs, $verbose, $out, @files) = @ARGV;
		my $h = TAP::Harness->new({
			jobs => $jobs, verbosity => $verbose ? 1 : 0,
			color => 0, timer => 1 });
		my $agg = $h->runtests(@files);
		open my $fh, ">", $out or die "$out: $!";
		for my $f (@files) {
			my ($p) = $agg->parsers($f);
			print $fh (($p && !$p->has_problems) ? "pass" : "fail"), " $f\n";
		}
		close $fh;
	' "$jobs" "${CCP_TAP_VERBOSE:-}" "$out" "$@"
}

# run_tap runs the TAP files and records one result per file.
run_tap() {
	local -a files=()
	local f status jobs tapdir base resolved log

	say "TAP tests"
	if [ ${#TAP_ARGS[@]} -gt 0 ]; then
		for f in "${TAP_ARGS[@]}"; do
			if resolved=$(resolve_tap_file "$f"); then
				files+=("$resolved")
			else
				echo "check.sh: no TAP test \"$f\"" >&2
				record fail "tap/$f (not found)"
			fi
		done
	else
		for f in test/t/*.pl; do
			[ -f "$f" ] && files+=("$f")
		done
	fi
	if [ ${#files[@]} -eq 0 ]; then
		echo "no TAP tests to run"
		return
	fi

	jobs=${CCP_TAP_JOBS:-}
	if [ -z "$jobs" ]; then
		jobs=$(nproc 2>/dev/null || echo 1)
		[ "$jobs" -gt 4 ] && jobs=4
	fi

	# PostgreSQL::Test::Utils keeps its files in $TESTDIR/tmp_check.
	tapdir="$ROOT/test/tmp"
	mkdir -p "$tapdir"
	rm -f "$WORK/tap.results"
	TESTDIR="$tapdir" \
		PERL5LIB="$ROOT/test/perl:$PGXSDIR/src/test/perl" \
		PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
		run_job run_harness "$WORK/tap.results" "$jobs" "${files[@]}"

	# Without results (a bail-out stops the harness) every file failed.
	if [ ! -s "$WORK/tap.results" ]; then
		printf 'fail %s\n' "${files[@]}" >"$WORK/tap.results"
	fi
	while read -r status f; do
		record "$status" "tap/$f"
		[ "$status" = pass ] && continue
		base=$(basename "$f" .pl)
		echo
		echo "===== $f failed"
		show_tap_log "$tapdir/tmp_check/log/regress_log_$base"
		for log in "$tapdir/tmp_check/log/${base}_"*.log \
			"$tapdir/tmp_check/${base}_sim_"*/sim.log; do
			show_file_tail "$log" 40
		done
	done <"$WORK/tap.results"
}

# run_selftest runs the simulator's own test script.
run_selftest() {
	say "simulator self-test"
	if [ ! -f test/sim/selftest.sh ]; then
		echo "check.sh: test/sim/selftest.sh is missing" >&2
		record fail "selftest (missing)"
		return
	fi
	if run_job bash test/sim/selftest.sh; then
		record pass selftest
	else
		record fail selftest
	fi
}

[ "$RUN_SELFTEST" -eq 1 ] && run_selftest

if [ "$RUN_REGRESS" -eq 1 ]; then
	if compgen -G 'sql/*.sql' >/dev/null; then
		run_pg_regress regress
	else
		say "regress tests: none (sql/*.sql)"
	fi
fi

if [ "$RUN_ISOLATION" -eq 1 ]; then
	if compgen -G 'test/specs/*.spec' >/dev/null; then
		run_pg_regress isolation
	else
		say "isolation tests: none (test/specs/*.spec)"
	fi
fi

[ "$RUN_TAP" -eq 1 ] && run_tap

# run_bench runs the benchmarks named (test/bench/NAME.pl), or all of them,
# one after another with their figures shown; they are not tests, but one
# that dies is recorded as failed.
run_bench() {
	local -a files=()
	local f

	say "benchmarks"
	if [ ${#BENCH_ARGS[@]} -gt 0 ]; then
		for f in "${BENCH_ARGS[@]}"; do
			f=test/bench/$(basename "$f" .pl).pl
			[ -f "$f" ] && files+=("$f") || record fail "bench/$f (not found)"
		done
	else
		for f in test/bench/*.pl; do
			[ -f "$f" ] && files+=("$f")
		done
	fi
	mkdir -p "$ROOT/test/tmp"
	for f in "${files[@]}"; do
		say "benchmark $f"
		if TESTDIR="$ROOT/test/tmp" \
			PERL5LIB="$ROOT/test/perl:$PGXSDIR/src/test/perl" \
			PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
			run_job perl "$f"; then
			record pass "bench/$f"
		else
			record fail "bench/$f"
			show_tap_log "$ROOT/test/tmp/tmp_check/log/regress_log_$(basename "$f" .pl)"
		fi
	done
}

[ "$RUN_BENCH" -eq 1 ] && run_bench

say "summary"
if [ ${#FAILED[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${FAILED[@]}"
fi
[ "$NFAIL" -eq 0 ]
