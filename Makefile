# Makefile for ccpurge (PGXS)
#
# The install script of the current version is assembled from the pieces
# in src/sql/, one per concern, in file-name order.  Earlier versions'
# scripts live in versions/ (ccpurge--1.0.sql is what 1.0 installed,
# frozen).  Every later change of SQL goes into src/sql/ and into the
# update script src/update/1.0--1.1.sql; ccpurge--1.0--1.1.sql is that
# script followed by src/sql/90_comments.sql, so that both paths carry the
# same comments (a TAP test checks that a fresh install and an updated one
# end up with the same objects).

MODULE_big = ccpurge
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
EXTENSION = ccpurge
DATA_built = ccpurge--1.1.sql ccpurge--1.0--1.1.sql
DATA = $(wildcard versions/ccpurge--*.sql)
PGFILEDESC = "ccpurge - erase personal data at contact-center vendors"

SHLIB_LINK += -lcurl -lcjson
PG_CPPFLAGS += -I$(srcdir)/src -I/usr/include/cjson
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Werror

REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(srcdir)/test/regress.conf
ISOLATION = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
# the worker serves the database of ccpurge.database_name in test/regress.conf
override ISOLATION_TESTDB = contrib_regression
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test/regress.conf --inputdir=test

EXTRA_CLEAN = test/sim/ccpurge-sim

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

ccpurge--1.1.sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

ccpurge--1.0--1.1.sql: src/update/1.0--1.1.sql src/sql/90_comments.sql
	cat $^ > $@

# every source file includes the private header
$(OBJS): src/ccpurge.h
