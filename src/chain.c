/*-------------------------------------------------------------------------
 *
 * chain.c
 *	  The request log's hash chain: each finished row gets the SHA-256 of
 *	  the row before it and of all of its own columns, so that a row
 *	  changed, removed or added by hand anywhere breaks the chain.
 *
 * Rows are chained by one writer, the worker, in the order it seals them
 * (chain_seq): a row is sealed once its outcome is written and its
 * transaction has committed, so a row of a transaction that commits late
 * is chained after rows with higher log ids.  Concurrent writers (many
 * sessions, the worker, rolled-back calls) therefore never race for the
 * chain, and an advisory lock keeps a second sealer out all the same.
 *
 * The hash input of a row is documented in doc/ccpurge.md ("The chain"):
 * the text "ccpurge-log-v1", the previous row's hash in hex (the anchor's
 * after pruning, 64 zeros for the first row), then each column in a fixed
 * order as "<byte length>:<text>" or "-" for NULL, one per line, the text
 * of each column being its PostgreSQL output with DateStyle ISO, TimeZone
 * UTC, extra_float_digits 1 and bytea_output hex.  ccpurge_prune_log
 * removes the oldest chained rows and keeps the last removed row's hash,
 * so the chain still verifies.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* Most rows one sealing pass chains. */
#define CCP_CHAIN_BATCH		10000

/* Advisory lock key of the sealer: "ccp" and 1. */
#define CCP_CHAIN_LOCK		1667461121

/* The hash of "no row before". */
#define CCP_CHAIN_GENESIS \
	"0000000000000000000000000000000000000000000000000000000000000000"

PG_FUNCTION_INFO_V1(ccpurge_verify_log);
PG_FUNCTION_INFO_V1(ccpurge_prune_log);

/*
 * ccp_chain_settings fixes, for the current GUC nest level, the settings
 * that shape the text of the hashed columns, so that the sealer and every
 * verifier produce the same text.
 */
void
ccp_chain_settings(void)
{
	(void) set_config_option("DateStyle", "ISO", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "1", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("bytea_output", "hex", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * ccp_chain_hash returns the lower-hex row hash of SPI result row tup
 * (columns CCP_CHAIN_COLUMNS, in order, from the first) chained to prev
 * (lower hex); see the file header.  chain_seq is given separately, as
 * the sealer computes it.
 */
static char *
ccp_chain_hash(HeapTuple tup, TupleDesc desc, const char *prev, int64 seq)
{
	pg_cryptohash_ctx *ctx = ccp_sha256_begin();
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "ccpurge-log-v1\n%s\n", prev);
	for (int c = 1; c <= CCP_CHAIN_NCOLUMNS; c++)
	{
		char	   *v = (c == CCP_CHAIN_NCOLUMNS) ?
			psprintf(INT64_FORMAT, seq) : SPI_getvalue(tup, desc, c);

		if (v == NULL)
			appendStringInfoString(&buf, "-\n");
		else
			appendStringInfo(&buf, "%zu:%s\n", strlen(v), v);
	}
	ccp_sha256_add(ctx, buf.data, buf.len);
	pfree(buf.data);
	return ccp_sha256_end(ctx);
}

/*
 * ccp_chain_head reads the chain's state (ccpurge.log_chain, one row, made
 * by the first seal): the hash and sequence number of the last chained
 * row, and those of the last pruned row.  Without a state row the chain
 * is empty and starts at the genesis.  The caller is connected to SPI.
 */
static void
ccp_chain_head(char **head, int64 *head_seq, char **pruned, int64 *pruned_seq)
{
	/* read-only: with the caller's snapshot, which verify reads rows with */
	if (SPI_execute("SELECT pg_catalog.encode(head_hash, 'hex'), head_seq,"
					" pg_catalog.encode(pruned_hash, 'hex'), pruned_seq"
					" FROM ccpurge.log_chain", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the ccpurge request log chain");
	*head = *pruned = pstrdup(CCP_CHAIN_GENESIS);
	*head_seq = *pruned_seq = 0;
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *v;

		if ((v = SPI_getvalue(tup, desc, 1)) != NULL)
			*head = v;
		*head_seq = pg_strtoint64(SPI_getvalue(tup, desc, 2));
		if ((v = SPI_getvalue(tup, desc, 3)) != NULL)
			*pruned = v;
		*pruned_seq = pg_strtoint64(SPI_getvalue(tup, desc, 4));
	}
}

/*
 * Seals the rows of one pass into the chain, the rows' log ids, previous
 * hashes, hashes and sequence numbers in four arrays.
 */
static CcpStmt ccp_chain_seal_stmt = {
	"UPDATE ccpurge.request_log AS l"
	" SET prev_hash = pg_catalog.decode(u.prev, 'hex'),"
	" row_hash = pg_catalog.decode(u.hash, 'hex'), chain_seq = u.seq"
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
	" pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(id, prev, hash, seq)"
	" WHERE l.log_id OPERATOR(pg_catalog.=) u.id"
	/* the log's rows through its index, never a scan of the whole log */
	" AND l.log_id OPERATOR(pg_catalog.=) ANY ($1)",
	4, {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID}, NULL, true
};

/* The sealer's lock, the rows it seals, and the new head: prepared once. */
static CcpStmt ccp_chain_lock_stmt = {
	"SELECT pg_catalog.pg_try_advisory_xact_lock(" CppAsString2(CCP_CHAIN_LOCK) ")",
	0, {InvalidOid}
};

static CcpStmt ccp_chain_unsealed_stmt = {
	"SELECT " CCP_CHAIN_COLUMNS " FROM ccpurge.request_log"
	" WHERE row_hash IS NULL"
	" AND (ok IS NOT NULL OR code OPERATOR(pg_catalog.=) 'outcome_unknown')"
	" ORDER BY log_id LIMIT " CppAsString2(CCP_CHAIN_BATCH),
	0, {InvalidOid}
};

static CcpStmt ccp_chain_set_head_stmt = {
	"INSERT INTO ccpurge.log_chain AS c (head_hash, head_seq)"
	" VALUES (pg_catalog.decode($1, 'hex'), $2)"
	" ON CONFLICT (id) DO UPDATE"
	" SET head_hash = excluded.head_hash, head_seq = excluded.head_seq",
	2, {TEXTOID, INT8OID}
};

/*
 * ccp_chain_set_head records the chain's new head (hash, sequence number)
 * in ccpurge.log_chain.  The caller is connected to SPI.
 */
static void
ccp_chain_set_head(const char *head, int64 seq)
{
	Datum		values[2];

	values[0] = CStringGetTextDatum(head);
	values[1] = Int64GetDatum(seq);
	(void) ccp_stmt_exec(&ccp_chain_set_head_stmt, values, NULL, SPI_OK_INSERT);
}

/*
 * ccp_chain_seal chains the finished, committed rows of the request log
 * that are not chained yet, oldest log id first, at most CCP_CHAIN_BATCH
 * per call, and returns how many it chained.  The worker calls it in its
 * own transactions (as superuser, connected to SPI); another sealer
 * holding the lock makes it return 0.  A log without the chain's columns
 * (1.0 or 1.1 before the update) is left alone.
 */
int
ccp_chain_seal(void)
{
	Oid			relid;
	int			guc_level;
	char	   *prev;
	int64		seq;
	char	   *pruned;
	int64		pruned_seq;
	uint64		n;
	SPITupleTable *rows;
	bool		isnull;
	Datum	   *cols[4];
	bool	   *nulls[4];
	Datum		values[4];

	if (!ccp_ccpurge_table("request_log", &relid, NULL) ||
		get_attnum(relid, "row_hash") == InvalidAttrNumber)
		return 0;
	(void) ccp_stmt_exec(&ccp_chain_lock_stmt, NULL, NULL, SPI_OK_SELECT);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									1, &isnull)))
		return 0;

	guc_level = NewGUCNestLevel();
	ccp_chain_settings();
	ccp_chain_head(&prev, &seq, &pruned, &pruned_seq);
	n = ccp_stmt_exec(&ccp_chain_unsealed_stmt, NULL, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	if (n == 0)
	{
		AtEOXact_GUC(false, guc_level);
		return 0;
	}
	ccp_stmt_columns_alloc(&ccp_chain_seal_stmt, n, cols, nulls);
	for (uint64 i = 0; i < n; i++)
	{
		char	   *hash;

		seq++;
		hash = ccp_chain_hash(rows->vals[i], rows->tupdesc, prev, seq);
		cols[0][i] = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		cols[1][i] = CStringGetTextDatum(prev);
		cols[2][i] = CStringGetTextDatum(hash);
		cols[3][i] = Int64GetDatum(seq);
		prev = hash;
	}
	ccp_stmt_columns_args(&ccp_chain_seal_stmt, n, cols, nulls, values);
	if (ccp_stmt_exec(&ccp_chain_seal_stmt, values, NULL, SPI_OK_UPDATE) != n)
		elog(ERROR, "could not seal %llu rows of the ccpurge request log",
			 (unsigned long long) n);
	ccp_chain_set_head(prev, seq);
	AtEOXact_GUC(false, guc_level);
	return (int) n;
}

/*
 * ccp_chain_call runs fn(arg) as the log's owner, connected to SPI, with
 * the chain's settings, for the SQL functions below, which any role
 * granted EXECUTE may call.  A log without a chain (no extension, or
 * before the update) is an error.
 */
static void
ccp_chain_call(void (*fn) (void *arg), void *arg)
{
	Oid			relid;
	Oid			owner;

	if (!ccp_ccpurge_table("request_log", &relid, &owner) ||
		get_attnum(relid, "row_hash") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ccpurge request log has no hash chain in this database"),
				 errhint("Update the extension with ALTER EXTENSION ccpurge UPDATE.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_owner_call(owner, fn, arg);
	SPI_finish();
}

/* What a verification found. */
typedef struct CcpVerify
{
	int64		checked;
	int64		bad_id;			/* 0: none */
	char	   *detail;			/* NULL: the chain is whole */
	int64		pending;		/* rows not chained yet */
} CcpVerify;

/*
 * ccp_chain_verify walks the chain into a CcpVerify; see
 * ccpurge_verify_log.  Runs under ccp_chain_call.
 */
static void
ccp_chain_verify(void *arg)
{
	CcpVerify  *v = arg;
	char	   *head;
	int64		head_seq;
	char	   *prev;
	int64		seq;
	Portal		portal;

	ccp_chain_settings();
	ccp_chain_head(&head, &head_seq, &prev, &seq);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT " CCP_CHAIN_COLUMNS ","
									   " pg_catalog.encode(prev_hash, 'hex'),"
									   " pg_catalog.encode(row_hash, 'hex')"
									   " FROM ccpurge.request_log"
									   " WHERE chain_seq IS NOT NULL ORDER BY chain_seq",
									   0, NULL, NULL, NULL, true, 0);
	while (v->detail == NULL)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && v->detail == NULL; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	td = SPI_tuptable->tupdesc;
			int64		row_seq = pg_strtoint64(SPI_getvalue(tup, td, CCP_CHAIN_NCOLUMNS));
			char	   *row_prev = SPI_getvalue(tup, td, CCP_CHAIN_NCOLUMNS + 1);
			char	   *row_hash = SPI_getvalue(tup, td, CCP_CHAIN_NCOLUMNS + 2);
			int64		log_id = pg_strtoint64(SPI_getvalue(tup, td, 1));

			CHECK_FOR_INTERRUPTS();
			v->checked++;
			if (row_seq != seq + 1)
				v->detail = psprintf("row %lld follows chain position %lld, not %lld: a row is missing or was added",
									 (long long) log_id, (long long) row_seq - 1,
									 (long long) seq);
			else if (row_prev == NULL || strcmp(row_prev, prev) != 0)
				v->detail = psprintf("row %lld does not follow the row before it: a row was removed or added",
									 (long long) log_id);
			else if (row_hash == NULL ||
					 strcmp(row_hash, ccp_chain_hash(tup, td, prev, row_seq)) != 0)
				v->detail = psprintf("row %lld does not match its hash: it was changed",
									 (long long) log_id);
			if (v->detail != NULL)
				v->bad_id = log_id;
			else
			{
				prev = row_hash;
				seq = row_seq;
			}
		}
	}
	SPI_cursor_close(portal);
	if (v->detail == NULL && (seq != head_seq || strcmp(prev, head) != 0))
		v->detail = psprintf("the chain ends at position %lld, but its head is %lld: rows at its end were removed",
							 (long long) seq, (long long) head_seq);
	if (SPI_execute("SELECT count(*) FROM ccpurge.request_log WHERE chain_seq IS NULL",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the ccpurge request log");
	v->pending = pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1));
}

/*
 * ccpurge_verify_log() recomputes the chain from the last pruned row (or
 * the genesis) to the recorded head, and returns (ok, rows_checked,
 * first_bad_log_id, detail): a row whose hash is not what its columns and
 * the row before give (changed by hand), a row whose predecessor is not
 * the row before it (removed, or added with a forged place), a gap or
 * repeat in the sequence, or a chain that ends before the recorded head
 * (the last rows removed).  Rows not chained yet are counted in detail.
 */
Datum
ccpurge_verify_log(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, true, false};
	CcpVerify	v = {0, 0, NULL, 0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	ccp_chain_call(ccp_chain_verify, &v);

	values[0] = BoolGetDatum(v.detail == NULL);
	values[1] = Int64GetDatum(v.checked);
	if (v.bad_id != 0)
	{
		nulls[2] = false;
		values[2] = Int64GetDatum(v.bad_id);
	}
	if (v.detail == NULL)
		v.detail = v.pending == 0 ? pstrdup("every row is chained") :
			psprintf(ngettext("%lld row is not chained yet",
							  "%lld rows are not chained yet", v.pending),
					 (long long) v.pending);
	values[3] = CStringGetTextDatum(v.detail);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc),
													  values, nulls)));
}

/* A prune: its bound, and how many rows it removed. */
typedef struct CcpPrune
{
	TimestampTz older_than;
	int64		removed;
} CcpPrune;

/*
 * ccp_chain_prune removes the rows a CcpPrune asks for; see
 * ccpurge_prune_log.  Runs under ccp_chain_call.
 */
static void
ccp_chain_prune(void *arg)
{
	CcpPrune   *p = arg;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(p->older_than)};

	/* the sealer must not chain while the start moves */
	if (SPI_execute("SELECT pg_catalog.pg_advisory_xact_lock(" CppAsString2(CCP_CHAIN_LOCK) ")",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the ccpurge request log chain");
	if (SPI_execute_with_args("WITH last AS ("
							  " SELECT chain_seq, row_hash FROM ccpurge.request_log"
							  " WHERE chain_seq < COALESCE((SELECT min(chain_seq)"
							  "  FROM ccpurge.request_log"
							  "  WHERE chain_seq IS NOT NULL AND logged_at >= $1),"
							  "  (SELECT max(chain_seq) + 1 FROM ccpurge.request_log))"
							  " ORDER BY chain_seq DESC LIMIT 1),"
							  " gone AS (DELETE FROM ccpurge.request_log"
							  "  WHERE chain_seq <= (SELECT chain_seq FROM last)"
							  "  RETURNING log_id),"
							  " receipts AS (DELETE FROM ccpurge.erasure_packed"
							  "  WHERE log_id IN (SELECT log_id FROM gone) RETURNING 1),"
							  " anchor AS (UPDATE ccpurge.log_chain"
							  "  SET pruned_seq = last.chain_seq, pruned_hash = last.row_hash"
							  "  FROM last RETURNING 1)"
							  " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM anchor),"
							  " (SELECT count(*) FROM receipts)",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not prune the ccpurge request log");
	p->removed = pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1));
}

/*
 * ccpurge_prune_log(older_than) removes chained log rows logged before
 * older_than, oldest in the chain first and only a leading stretch of the
 * chain (a newer row keeps every row chained after it), records the last
 * removed row's hash and position as the chain's new start, and returns
 * how many rows it removed.  Rows not chained yet are never removed.
 */
Datum
ccpurge_prune_log(PG_FUNCTION_ARGS)
{
	CcpPrune	p = {PG_GETARG_TIMESTAMPTZ(0), 0};

	ccp_require_writable();
	ccp_chain_call(ccp_chain_prune, &p);
	PG_RETURN_INT64(p.removed);
}
