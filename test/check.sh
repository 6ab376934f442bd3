#!/bin/bash
#
# test/check.sh: ccpurge's one test command (CI runs it through .ci/run).
#
# Run as root (a user with sudo is taken there through sudo) from anywhere:
#
#   bash test/check.sh                  everything
#   bash test/check.sh regress          pg_regress tests only (sql/*.sql)
#   bash test/check.sh isolation        isolation specs only (test/specs)
#   bash test/check.sh tap [FILE...]    TAP tests only, all or the named ones
#                                       (test/t/001_x.pl, 001_x.pl or 001_x)
#   bash test/check.sh selftest         the simulator's self-test only (and
#                                       test/bin/structure: no circle of
#                                       source files using each other)
#   bash test/check.sh bench [NAME...]  benchmarks (test/bench/NAME.pl); not
#                                       part of the default run
#   bash test/check.sh package          builds the Debian package from a clean
#                                       clone of HEAD, installs it with apt-get
#                                       and runs the regress and isolation
#                                       tests against it (more with filters:
#                                       "package tap"); not in the default run
#   bash test/check.sh valgrind         the regress and isolation tests against
#                                       a server running under valgrind
#                                       memcheck; passes when valgrind reports
#                                       no error; not in the default run
#
# Several filters may be given at once ("regress isolation").  --no-build
# skips installing packages and building (for quick reruns after a build;
# "valgrind" still installs valgrind when it is missing, and "package"
# always builds).
#
# Environment:
#   PG_CONFIG              default /usr/lib/postgresql/15/bin/pg_config
#   CCP_TAP_JOBS           parallel TAP files, default min(nproc, 4)
#   CCP_TAP_VERBOSE=1      the TAP tests' own output
#   CCP_KEEP_TMP=1         keep the work directory even on success
#   CCP_TMPDIR             where the work directory is made, default /tmp;
#                          user postgres must be able to read it
#   CCP_VALGRIND_SUPP      a suppression file to use instead of
#                          PostgreSQL's valgrind.supp or test/valgrind.supp
#   CCP_VALGRIND_OPTS      more valgrind options, after the script's own
#                          ("--error-exitcode=0" lets a run with errors go on)
#   CCP_PACKAGE_INSTALL=0  "package" only builds the package and checks its
#                          contents: nothing is installed, no suite runs
#   CCP_PACKAGE_ROOT=DIR   "package" extracts the package with dpkg -x into
#                          DIR, a relocatable copy of PostgreSQL's
#                          /usr/lib/postgresql, /usr/share/postgresql and
#                          /usr/include/postgresql trees, and tests it
#                          there instead of installing it with apt-get
#
# As root it installs missing packages, builds and installs the extension
# and the simulator, copies the tree (without .git) to a fresh directory
# under /tmp and hands that copy to the unprivileged user "postgres", which
# runs the suites there: PostgreSQL refuses to run as root, and the
# checkout may sit where postgres cannot read (/root/...).  Every process it
# starts is stopped by PID (or by the process group it was given) on exit.
# The pg_regress and isolation suites run with "make installcheck
# TEMP_INSTANCE=1", so pg_regress starts temporary instances of its own.
# The last line printed is "N passed, N failed", counting pg_regress tests,
# isolation tests, TAP files, the simulator self-test and the steps of the
# package and valgrind modes; the exit status is non-zero when anything
# failed.
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
	sed -n '4,/^# As root it installs/{/^# As root/!p;}' "${BASH_SOURCE[0]}" |
		sed 's/^# \{0,1\}//' >&2
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
PACKAGE=0
VALGRIND=0
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
	package) PACKAGE=1 ;;
	valgrind) VALGRIND=1 ;;
	all) RUN_REGRESS=1 RUN_ISOLATION=1 RUN_TAP=1 RUN_SELFTEST=1 ;;
	tap)
		RUN_TAP=1
		while [ $# -gt 1 ]; do
			case "$2" in
			regress | isolation | selftest | all | tap | bench | package | valgrind | --*) break ;;
			esac
			TAP_ARGS+=("$2")
			shift
		done
		;;
	bench)
		RUN_BENCH=1
		while [ $# -gt 1 ]; do
			case "$2" in
			regress | isolation | selftest | all | tap | bench | package | valgrind | --*) break ;;
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

# Without a filter: everything; "package" alone tests the package with the
# pg_regress suites; "valgrind" alone is only the valgrind run.
if [ $((RUN_REGRESS + RUN_ISOLATION + RUN_TAP + RUN_SELFTEST + RUN_BENCH)) -eq 0 ]; then
	if [ "$PACKAGE" -eq 1 ]; then
		RUN_REGRESS=1 RUN_ISOLATION=1
	elif [ "$VALGRIND" -eq 0 ]; then
		RUN_REGRESS=1 RUN_ISOLATION=1 RUN_TAP=1 RUN_SELFTEST=1
	fi
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
				CCP_VALGRIND_SUPP="${CCP_VALGRIND_SUPP:-}" CCP_VALGRIND_OPTS="${CCP_VALGRIND_OPTS:-}" \
				CCP_PACKAGE_INSTALL="${CCP_PACKAGE_INSTALL:-}" CCP_PACKAGE_ROOT="${CCP_PACKAGE_ROOT:-}" \
				CCP_TMPDIR="${CCP_TMPDIR:-}" \
				bash "${BASH_SOURCE[0]}" "${ORIG_ARGS[@]}"
		fi
		echo "check.sh: must run as root (it installs packages and the extension), and sudo is not available;" \
			"run it as root: bash test/check.sh" >&2
		exit 1
	fi

	WORK=
	RESULT=1
	RUNUSER_PID=
	SUMMARY=
	# results of the root phase's own steps (the package mode's)
	PRE_PASS=0
	PRE_FAIL=0

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
		npass=$((npass + PRE_PASS))
		nfail=$((nfail + PRE_FAIL))
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
		SUMMARY="$PRE_PASS passed, $((PRE_FAIL + 1)) failed"
		exit 1
	}

	# pre_record counts the outcome of one step of the root phase:
	# pre_record pass|fail NAME.
	pre_record() {
		if [ "$1" = pass ]; then
			PRE_PASS=$((PRE_PASS + 1))
		else
			PRE_FAIL=$((PRE_FAIL + 1))
			echo "check.sh: failed: $2" >&2
		fi
	}

	# deb_expected_files prints the files that the package built from the
	# tree $1 must hold, as dpkg-deb -c names them: the library, the
	# control file, every script of versions/, the install script of the
	# default version and every update script built from src/update/.
	deb_expected_files() {
		local tree=$1 major=$2 libdir extdir f v
		libdir=/usr/lib/postgresql/$major/lib
		extdir=/usr/share/postgresql/$major/extension
		echo ".$libdir/ccpurge.so"
		echo ".$extdir/ccpurge.control"
		v=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$tree/ccpurge.control")
		echo ".$extdir/ccpurge--$v.sql"
		for f in "$tree"/versions/ccpurge--*.sql; do
			[ -f "$f" ] && echo ".$extdir/$(basename "$f")"
		done
		# src/update/X--Y.sql becomes the update script ccpurge--X--Y.sql;
		# other files there (owners.sql) are pieces of it
		for f in "$tree"/src/update/*--*.sql; do
			[ -f "$f" ] && echo ".$extdir/ccpurge--$(basename "$f")"
		done
	}

	# build_package builds the Debian package from a clean clone of the
	# repository's HEAD in $WORK/pkg, checks its contents and, unless
	# CCP_PACKAGE_INSTALL is 0, installs it with apt-get (or extracts it
	# into CCP_PACKAGE_ROOT and points PG_CONFIG there).  The suites then run
	# from that same commit (git archive into $WORK/src), never from the
	# working tree, so that tests and package match.  Nothing is built or
	# installed with make: the suites test what the package installed.
	build_package() {
		local pkg="$WORK/pkg" clone major deb f t0 rc
		local -a missing=() debs
		clone="$pkg/ccpurge"
		say "building the Debian package from a clean clone of HEAD"
		git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 ||
			setup_failed "package: $SRC is not a git repository"
		if [ -n "$(git -c safe.directory='*' -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			echo "check.sh: note: uncommitted changes are not in the package; it is built from HEAD"
		fi
		mkdir "$pkg" || setup_failed "mkdir $pkg failed"
		git -c safe.directory='*' clone --quiet --no-hardlinks "$SRC" "$clone" ||
			setup_failed "package: git clone of $SRC failed"
		echo "commit $(git -C "$clone" log -1 --format='%h %s')"
		t0=$SECONDS
		(cd "$clone" && dpkg-buildpackage -us -uc -b) >"$pkg/build.log" 2>&1 </dev/null
		rc=$?
		PKG_BUILD_SECONDS=$((SECONDS - t0))
		if [ "$rc" -ne 0 ]; then
			tail -n 60 "$pkg/build.log"
			pre_record fail "package/build"
			setup_failed "dpkg-buildpackage failed (whole log in $pkg/build.log)"
		fi
		major=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
		debs=("$pkg"/postgresql-"$major"-ccpurge_*.deb)
		deb=${debs[0]}
		if [ ! -f "$deb" ]; then
			ls -l "$pkg" >&2
			pre_record fail "package/build"
			setup_failed "dpkg-buildpackage made no postgresql-$major-ccpurge package"
		fi
		pre_record pass "package/build"
		echo "built $(basename "$deb") in ${PKG_BUILD_SECONDS}s (log $pkg/build.log)"

		say "checking the package's contents"
		dpkg-deb -c "$deb" | awk '{print $6}' >"$pkg/contents"
		while IFS= read -r f; do
			grep -qxF -- "$f" "$pkg/contents" || missing+=("$f")
		done < <(deb_expected_files "$clone" "$major")
		if [ ${#missing[@]} -gt 0 ]; then
			printf 'missing from the package: %s\n' "${missing[@]}" >&2
			pre_record fail "package/contents"
		else
			grep -E '\.(so|control|sql)$' "$pkg/contents"
			pre_record pass "package/contents"
		fi

		if [ "${CCP_PACKAGE_INSTALL:-1}" = 0 ]; then
			return 0
		fi
		if [ -n "${CCP_PACKAGE_ROOT:-}" ]; then
			say "extracting the package into $CCP_PACKAGE_ROOT"
			PG_CONFIG=$CCP_PACKAGE_ROOT/usr/lib/postgresql/$major/bin/pg_config
			if dpkg-deb -x "$deb" "$CCP_PACKAGE_ROOT" &&
				[ -f "$("$PG_CONFIG" --pkglibdir)/ccpurge.so" ]; then
				echo "PG_CONFIG=$PG_CONFIG"
				pre_record pass "package/install"
			else
				pre_record fail "package/install"
				setup_failed "extracting $(basename "$deb") into $CCP_PACKAGE_ROOT failed"
			fi
			return 0
		fi
		say "installing the package with apt-get"
		if DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall "$deb" \
			>"$pkg/install.log" 2>&1 </dev/null &&
			dpkg -L "postgresql-$major-ccpurge" | grep -qx "$("$PG_CONFIG" --pkglibdir)/ccpurge.so"; then
			tail -n 3 "$pkg/install.log"
			pre_record pass "package/install"
		else
			tail -n 40 "$pkg/install.log"
			pre_record fail "package/install"
			setup_failed "installing $(basename "$deb") failed"
		fi
	}

	if [ "$PACKAGE" -eq 1 ] && [ -n "${CCP_PACKAGE_ROOT:-}" ]; then
		[ -x "$CCP_PACKAGE_ROOT/usr/lib/postgresql/$("$PG_CONFIG" --version |
			sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')/bin/pg_config" ] ||
			setup_failed "package: $CCP_PACKAGE_ROOT holds no relocatable copy of PostgreSQL"
	elif [ "$PACKAGE" -eq 1 ]; then
		case "$PG_CONFIG" in
		/usr/lib/postgresql/*) ;;
		*) setup_failed "package: the package installs into /usr/lib/postgresql; PG_CONFIG ($PG_CONFIG) must be the system's" ;;
		esac
	fi

	DEP_GROUPS=()
	[ "$NO_BUILD" -eq 0 ] && DEP_GROUPS+=(base)
	[ "$PACKAGE" -eq 1 ] && DEP_GROUPS+=(base package)
	[ "$VALGRIND" -eq 1 ] && DEP_GROUPS+=(valgrind)
	if [ ${#DEP_GROUPS[@]} -gt 0 ]; then
		say "installing missing packages"
		bash "$SRC/test/install-deps.sh" "${DEP_GROUPS[@]}" || setup_failed "installing packages failed"
	fi

	if [ "$NO_BUILD" -eq 0 ] && [ "$PACKAGE" -eq 0 ]; then
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

	WORK=$(mktemp -d "${CCP_TMPDIR:-/tmp}/ccpurge-check.XXXXXX") || setup_failed "mktemp failed"
	chmod 755 "$WORK"
	mkdir "$WORK/src"
	if [ "$PACKAGE" -eq 1 ]; then
		build_package
		git -C "$WORK/pkg/ccpurge" archive HEAD | tar -C "$WORK/src" -xf - ||
			setup_failed "copying the tree failed"
		say "building the simulator"
		make -s -C "$WORK/src/test/sim" || setup_failed "building the simulator failed"
	else
		tar -C "$SRC" \
			--exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_iso \
			--exclude=./results --exclude=./output_iso --exclude=./log \
			--exclude=./regression.diffs --exclude=./regression.out \
			--exclude=./test/tmp \
			-cf - . | tar -C "$WORK/src" -xf - || setup_failed "copying the tree failed"
	fi
	chown -R postgres: "$WORK"

	if [ "$PACKAGE" -eq 1 ] && [ "${CCP_PACKAGE_INSTALL:-1}" = 0 ]; then
		say "package built and checked; not installed (CCP_PACKAGE_INSTALL=0), no suites run"
		SUMMARY="$PRE_PASS passed, $PRE_FAIL failed"
		[ "$PRE_FAIL" -eq 0 ] && RESULT=0
		exit "$RESULT"
	fi

	# The postgres phase gets a clean environment: no proxy settings for
	# libcurl, no PG* variables, a fixed locale.  It runs in the background
	# so that a signal reaches this shell's trap at once.
	# the benchmarks' own settings (CCP_BENCH_N, CCP_BENCH_FSYNC, ...) go along
	bench_env=()
	bench_v=
	while IFS= read -r bench_v; do
		bench_env+=("$bench_v")
	done < <(env | grep '^CCP_BENCH_[A-Z_]*=' || true)
	runuser -u postgres -- env -i \
		HOME="$WORK" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
		"${bench_env[@]}" \
		TERM="${TERM:-dumb}" PG_CONFIG="$PG_CONFIG" \
		CCP_TAP_JOBS="${CCP_TAP_JOBS:-}" CCP_TAP_VERBOSE="${CCP_TAP_VERBOSE:-}" \
		PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-}" \
		PG_TEST_NOCLEAN="${PG_TEST_NOCLEAN:-}" CCP_VALGRIND_SUPP="${CCP_VALGRIND_SUPP:-}" \
		CCP_VALGRIND_OPTS="${CCP_VALGRIND_OPTS:-}" \
		bash "$WORK/src/test/check.sh" --inner "${ORIG_ARGS[@]}" </dev/null &
	RUNUSER_PID=$!
	SUITE_T0=$SECONDS
	wait "$RUNUSER_PID"
	rc=$?
	RUNUSER_PID=
	if [ "$PACKAGE" -eq 1 ]; then
		echo "package: built in ${PKG_BUILD_SECONDS}s, suites ran in $((SECONDS - SUITE_T0))s"
	fi
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
# (regress or isolation) against a fresh simulator, with a temporary
# instance that pg_regress starts (TEMP_INSTANCE=1, see the Makefile).
run_pg_regress() {
	local kind=$1 log rc nbad diffs logdir
	local -a makeargs=(installcheck PG_CONFIG="$PG_CONFIG" TEMP_INSTANCE=1 TAP_TESTS=)

	log="$WORK/$kind.log"
	if [ "$kind" = regress ]; then
		makeargs+=(ISOLATION=)
		diffs=regression.diffs
		logdir=log
	else
		makeargs+=(REGRESS=)
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

# run_structure checks that no source files use each other in a circle
# (test/bin/structure reads the build's object files).
run_structure() {
	say "structure of the source"
	if ! ls src/*.o >/dev/null 2>&1; then
		echo "check.sh: no object files to read (build first)" >&2
		record fail "structure (no build)"
		return
	fi
	if run_job test/bin/structure; then
		record pass structure
	else
		record fail structure
	fi
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
[ "$RUN_SELFTEST" -eq 1 ] && run_structure

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

# valgrind_suppressions prints the suppression file for the valgrind run:
# CCP_VALGRIND_SUPP, else PostgreSQL's src/tools/valgrind.supp when the
# installation has one, else the one shipped in test/.
valgrind_suppressions() {
	local f
	for f in "${CCP_VALGRIND_SUPP:-}" "$PGXSDIR/src/tools/valgrind.supp" \
		"$("$PG_CONFIG" --sharedir)/valgrind.supp" "$ROOT/test/valgrind.supp"; do
		if [ -n "$f" ] && [ -f "$f" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# run_valgrind runs the regress and isolation suites with "make
# installcheck" against a cluster whose postmaster (and so every backend
# and the worker, which it forks) runs under valgrind memcheck, then counts
# the errors in valgrind's per-process logs.  It records the suites' tests
# and one more result: "valgrind", failed when any error was reported.
# Everything is slow under valgrind (about 20 to 50 times), so tests that
# measure time may fail here without a memory error; the error count is
# what this mode is for.
run_valgrind() {
	local vg="$WORK/valgrind" supp port=5432 pid log rc t0 i
	local f n total=0 nlogs=0 nbad=0 nsummary=0 shown=0
	local -a vgopts

	say "pg_regress suites against a server under valgrind"
	if ! command -v valgrind >/dev/null 2>&1; then
		record fail "valgrind (valgrind is not installed)"
		return
	fi
	supp=$(valgrind_suppressions)
	mkdir -p "$vg"
	if ! initdb -D "$vg/data" -A trust -N >"$vg/initdb.log" 2>&1; then
		cat "$vg/initdb.log"
		record fail "valgrind (initdb failed)"
		return
	fi
	{
		echo
		echo "# test/check.sh valgrind: test/regress.conf, then the run's own settings"
		cat test/regress.conf
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$vg'"
		echo "port = $port"
		echo "fsync = off"
		echo "autovacuum = off"
		echo "max_connections = 20"
	} >>"$vg/data/postgresql.conf"

	# 128 is how skink, PostgreSQL's valgrind buildfarm animal, makes a
	# backend with an error exit: the postmaster takes it for a crash, so
	# an error also shows in the suites.
	# shellcheck disable=SC2054  # the comma belongs to --error-markers
	vgopts=(--trace-children=yes --leak-check=no --error-exitcode=128
		--track-origins=yes --read-var-info=no --num-callers=30
		--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END
		--gen-suppressions=all --log-file="$vg/valgrind.%p.log")
	[ -n "$supp" ] && vgopts+=(--suppressions="$supp")
	# word splitting wanted: a list of options
	# shellcheck disable=SC2206
	[ -n "${CCP_VALGRIND_OPTS:-}" ] && vgopts+=(${CCP_VALGRIND_OPTS})
	echo "valgrind ${vgopts[*]} postgres -D $vg/data"
	valgrind "${vgopts[@]}" "$BINDIR/postgres" -D "$vg/data" \
		>"$vg/postmaster.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$WORK/valgrind-postmaster.pid"

	t0=$SECONDS
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$vg/postmaster.log"
			record fail "valgrind (the server did not start)"
			return
		fi
		pg_isready -q -h "$vg" -p "$port" && break
		sleep 1
	done
	if ! pg_isready -q -h "$vg" -p "$port"; then
		kill -QUIT "$pid" 2>/dev/null
		record fail "valgrind (the server was not ready within 10 minutes)"
		return
	fi
	echo "server under valgrind ready after $((SECONDS - t0))s (pid $pid, socket $vg)"

	if start_sim valgrind; then
		log="$WORK/valgrind.log"
		t0=$SECONDS
		PGHOST=$vg PGPORT=$port run_job make_logged "$log" installcheck PG_CONFIG="$PG_CONFIG" TAP_TESTS=
		rc=$?
		stop_sim
		echo "suites took $((SECONDS - t0))s under valgrind"
		count_pg_regress "$log" valgrind
		n=$?
		if [ "$rc" -ne 0 ] && [ "$NRUN_LAST" -eq 0 ]; then
			record fail "valgrind (make installcheck failed before running tests)"
		elif [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
			record fail "valgrind (make installcheck exited with status $rc)"
		fi
		if [ "$rc" -ne 0 ]; then
			for f in regression.diffs output_iso/regression.diffs; do
				[ -s "$f" ] || continue
				echo "----- $f"
				head -n 200 "$f"
			done
		fi
	else
		record fail "valgrind (simulator did not start)"
	fi

	# A fast shutdown; every process writes its error summary as it exits.
	kill -INT "$pid" 2>/dev/null
	if ! wait_gone "$pid" 3000; then
		echo "check.sh: the server under valgrind did not stop within 5 minutes" >&2
		kill -QUIT "$pid" 2>/dev/null
		wait_gone "$pid" 300 || kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rm -f "$WORK/valgrind-postmaster.pid"

	for f in "$vg"/valgrind.*.log; do
		[ -f "$f" ] || continue
		nlogs=$((nlogs + 1))
		# a process killed before its summary still has its error blocks
		n=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tail -n 1 | tr -d ,)
		if [ -n "$n" ]; then
			nsummary=$((nsummary + 1))
		else
			n=$(grep -c 'VALGRINDERROR-BEGIN' "$f")
		fi
		if [ "$n" -gt 0 ]; then
			nbad=$((nbad + 1))
			total=$((total + n))
			if [ "$shown" -lt 3 ]; then
				echo "----- ${f#"$WORK"/} ($n errors; the first ones)"
				sed -n '/VALGRINDERROR-BEGIN/,/VALGRINDERROR-END/p' "$f" | head -n 80
				shown=$((shown + 1))
			fi
		fi
	done
	echo "valgrind: $total errors in $nbad of $nlogs processes (logs in $vg;" \
		"$((nlogs - nsummary)) ended without a summary)"
	if [ "$nlogs" -eq 0 ]; then
		record fail "valgrind (no valgrind log was written)"
	elif [ "$total" -eq 0 ]; then
		record pass "valgrind (0 errors in $nlogs processes)"
	else
		record fail "valgrind ($total errors in $nbad of $nlogs processes)"
	fi
}

[ "$VALGRIND" -eq 1 ] && run_valgrind

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
