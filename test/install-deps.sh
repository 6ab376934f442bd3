#!/bin/bash
#
# test/install-deps.sh: installs the Debian 12 packages that building and
# testing ccpurge need (PostgreSQL 15 with its server headers, libcurl,
# cJSON, libmicrohttpd for the vendor simulator, IPC::Run for the TAP tests,
# and the tools the scripts call).
#
#   bash test/install-deps.sh [GROUP...]
#
# Groups: "base" (the default: building and testing), "package" (building
# the Debian package: debhelper, pg_buildext from
# postgresql-server-dev-all, git), "valgrind" (valgrind only).
#
# It asks dpkg first and touches apt only when something is missing, so a
# second run costs a fraction of a second.  It needs root; when run as
# another user it goes through sudo if there is one.
#
set -euo pipefail

BASE_PACKAGES=(
	postgresql-15
	postgresql-server-dev-15
	libcurl4-openssl-dev
	libcjson-dev
	libmicrohttpd-dev
	libssl-dev
	openssl
	libipc-run-perl
	make
	gcc
	curl
	strace
	procps
	tinyproxy-bin
)
PACKAGE_PACKAGES=(
	debhelper
	postgresql-server-dev-all
	dpkg-dev
	git
)
VALGRIND_PACKAGES=(
	valgrind
)

PACKAGES=()
[ $# -gt 0 ] || set -- base
for group in "$@"; do
	case "$group" in
	base) PACKAGES+=("${BASE_PACKAGES[@]}") ;;
	package) PACKAGES+=("${PACKAGE_PACKAGES[@]}") ;;
	valgrind) PACKAGES+=("${VALGRIND_PACKAGES[@]}") ;;
	*)
		echo "install-deps: unknown group \"$group\" (base, package, valgrind)" >&2
		exit 2
		;;
	esac
done
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | sort -u)

# missing_packages prints the packages of PACKAGES that are not installed.
missing_packages() {
	local pkg status
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		if [ "$status" != "installed" ]; then
			echo "$pkg"
		fi
	done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages are installed"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "install-deps: must run as root to install ${missing[*]}, and sudo is not available" >&2
		exit 1
	fi
else
	SUDO=()
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing[@]}"

mapfile -t still < <(missing_packages)
if [ "${#still[@]}" -ne 0 ]; then
	echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: done"
