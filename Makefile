# Makefile for ccpurge (PGXS)
#
# The install script of the current version is assembled from the pieces
# in src/sql/, one per concern, in file-name order.  Released versions'
# scripts live in versions/, frozen: ccpurge--1.0.sql and ccpurge--1.1.sql
# are what 1.0 and 1.1 installed, ccpurge--1.0--1.1.sql the update that
# shipped with 1.1.  Every later change of SQL goes into src/sql/ and into
# the update script src/update/1.1--1.2.sql; ccpurge--1.1--1.2.sql is that
# script followed by src/sql/90_comments.sql, so that both paths carry the
# same comments, and by src/update/owners.sql, which gives every object to
# the extension's owner as a fresh install does (TAP test 027_upgrade checks that a fresh install and an
# updated one, from 1.0 and from 1.1, end up with the same objects).
#
# Every source path goes through $(srcdir), so that the tree also builds
# out of tree, as Debian's pg_buildext does it:
#   make -C build-15 -f $PWD/Makefile VPATH=$PWD PG_CONFIG=...
#
# Tests: "make installcheck" runs the pg_regress and isolation suites
# against the running server that PGHOST and PGPORT name, as for any PGXS
# extension, then the TAP suite; that server must preload ccpurge (see
# test/regress.conf for the settings) and the vendor simulator must run
# (test/bin/sim-start).  "TAP_TESTS=" leaves the TAP suite out,
# "REGRESS= ISOLATION=" runs it alone.
# "make installcheck TEMP_INSTANCE=1" makes pg_regress start a temporary
# instance of its own with test/regress.conf instead (test/check.sh does).

MODULE_big = ccpurge
# srcdir is set by PGXS below; these variables are expanded after that
OBJS = $(patsubst $(srcdir)/%.c,%.o,$(sort $(wildcard $(srcdir)/src/*.c)))
EXTENSION = ccpurge
DATA_built = ccpurge--1.2.sql ccpurge--1.1--1.2.sql
DATA = $(patsubst $(srcdir)/%,%,$(wildcard $(srcdir)/versions/ccpurge--*.sql))
PGFILEDESC = "ccpurge - erase personal data at contact-center vendors"

SHLIB_LINK += -lcurl -lcjson -lcrypto
PG_CPPFLAGS += -I$(srcdir)/src -I/usr/include/cjson
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Werror

REGRESS = $(sort $(basename $(notdir $(wildcard $(srcdir)/sql/*.sql))))
ISOLATION = $(sort $(basename $(notdir $(wildcard $(srcdir)/test/specs/*.spec))))
# The specs play the worker's part by hand, so they turn
# ccpurge.serve_database off in PGXS's isolation_regression: no worker
# claims anything there.
ISOLATION_OPTS = --inputdir=$(srcdir)/test
ifdef TEMP_INSTANCE
REGRESS_OPTS += --temp-instance=./tmp_check --temp-config=$(srcdir)/test/regress.conf
ISOLATION_OPTS += --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test/regress.conf
endif

# TAP tests (test/t, with PostgreSQL::Test::Cluster and test/perl/CcpTest.pm)
# start clusters of their own and the simulator, which REGRESS_PREP builds.
# "make installcheck PROVE_TESTS=test/t/022_retries.pl" runs one file.
TAP_TESTS = 1
PROVE_TESTS = $(sort $(patsubst $(srcdir)/%,%,$(wildcard $(srcdir)/test/t/*.pl)))
PROVE_FLAGS += -I test/perl
REGRESS_PREP = ccpurge-sim

EXTRA_CLEAN = test/sim/ccpurge-sim test/sim/*.o tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

ccpurge--1.2.sql: $(sort $(wildcard $(srcdir)/src/sql/*.sql))
	cat $^ > $@

ccpurge--1.1--1.2.sql: $(srcdir)/src/update/1.1--1.2.sql $(srcdir)/src/sql/90_comments.sql $(srcdir)/src/update/owners.sql
	cat $^ > $@

# every source file includes the private header
$(OBJS): $(srcdir)/src/ccpurge.h

# Out of tree the objects go to src/ under the build directory, which make
# does not create by itself.  The absolute name keeps VPATH from finding
# the source tree's src/ instead.
$(OBJS): | $(CURDIR)/src
$(CURDIR)/src:
	$(MKDIR_P) $@

# the vendor simulator the tests talk to (a program of its own, not PGXS)
.PHONY: ccpurge-sim
ccpurge-sim:
	$(MAKE) -C $(srcdir)/test/sim
