/*-------------------------------------------------------------------------
 *
 * receipt.c
 *	  Receipts: for every item of every HTTP request, the item's own keyed
 *	  digest (digest.c) next to the request's log row, so that the requests
 *	  that carried one person's item are found years later without keeping
 *	  the item; and the look-ups an auditor runs on them.
 *
 * A request's receipts are one row of ccpurge.erasure_packed: the items'
 * HMACs packed in the request's order, 32 bytes each, and the per-item
 * outcomes when the vendor answered per item (one byte each).  The view
 * ccpurge.erasure shows one row per item.  A GIN index on the first 8
 * bytes of each HMAC (ccpurge.receipt_keys) finds the requests of one
 * item; the full HMAC is then compared here.
 *
 * The request log (reqlog.c) computes the HMACs when it records a request
 * and writes them with the log row, in the same transaction: a synchronous
 * call's at the end of its statement, the worker's with the intent row
 * before the request leaves (its per-item outcomes, if any, when the
 * answer is recorded), and a rolled-back call's when the worker writes its
 * row.  The look-ups run with the caller's rights: a role that cannot read
 * the log reads no receipt.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#define CCP_HMAC_LEN	PG_SHA256_DIGEST_LENGTH

PG_FUNCTION_INFO_V1(ccpurge_receipt_keys);
PG_FUNCTION_INFO_V1(ccpurge_receipt_items);
PG_FUNCTION_INFO_V1(ccpurge_erasure_receipt);
PG_FUNCTION_INFO_V1(ccpurge_erasure_certificate);

/* The receipts of new log rows, prepared once. */
static CcpStmt ccp_receipt_insert_stmt = {
	"INSERT INTO ccpurge.erasure_packed (log_id, key_id, item_hmacs, item_ok)"
	" SELECT r.a1, r.a2, r.a3, r.a4"
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
	" pg_catalog.unnest($3), pg_catalog.unnest($4)) AS r(a1, a2, a3, a4)",
	4, {INT8ARRAYOID, INT4ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID}
};

/* The per-item outcomes of a request whose receipts came first. */
static CcpStmt ccp_receipt_ok_stmt = {
	"UPDATE ccpurge.erasure_packed SET item_ok = $2"
	" WHERE log_id OPERATOR(pg_catalog.=) $1",
	2, {INT8OID, BYTEAOID}
};

/*
 * The requests whose receipts may hold an item's HMAC under one key, with
 * their log rows; the columns of the hash chain (chain.c) first.
 */
#define CCP_RECEIPT_QUERY \
	"SELECT c.*, p.item_hmacs, p.item_ok" \
	" FROM ccpurge.erasure_packed AS p," \
	" LATERAL (SELECT " CCP_CHAIN_COLUMNS "," \
	"  pg_catalog.encode(prev_hash, 'hex'), pg_catalog.encode(row_hash, 'hex')" \
	"  FROM ccpurge.request_log" \
	"  WHERE log_id OPERATOR(pg_catalog.=) p.log_id) AS c" \
	" WHERE ccpurge.receipt_keys(p.item_hmacs) OPERATOR(pg_catalog.@>)" \
	" ARRAY[$1::pg_catalog.int8] AND p.key_id OPERATOR(pg_catalog.=) $2"

/* One receipt found: a log row that carried the item. */
typedef struct CcpReceipt
{
	int64		log_id;
	int			key_id;
	char	   *cols[CCP_CHAIN_NCOLUMNS];	/* the chain's text of each column */
	char	   *prev_hash;
	char	   *row_hash;
	bool		item_ok_known;	/* the vendor answered for this item */
	bool		item_ok;
} CcpReceipt;

/* What a look-up found: the item's digests and its receipts, oldest first. */
typedef struct CcpLookup
{
	int			nkeys;
	uint8	   *hmacs;
	int		   *key_ids;
	List	   *receipts;		/* of CcpReceipt */
} CcpLookup;

/* ccp_receipt_key returns the look-up key of a 32-byte HMAC: its first 8 bytes. */
static int64
ccp_receipt_key(const uint8 *hmac)
{
	uint64		k = 0;

	for (int i = 0; i < 8; i++)
		k = (k << 8) | hmac[i];
	return (int64) k;
}

/* ccp_receipt_bytea returns a palloc'd bytea of len bytes from data. */
static bytea *
ccp_receipt_bytea(const uint8 *data, Size len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	memcpy(VARDATA(b), data, len);
	SET_VARSIZE(b, VARHDRSZ + len);
	return b;
}

/*
 * ccp_receipt_writable tells whether this database's log has receipts (an
 * installation of 1.2, or updated to it).  Needs a transaction.
 */
bool
ccp_receipt_writable(void)
{
	Oid			relid;

	return ccp_ccpurge_table("erasure_packed", &relid, NULL);
}

/*
 * ccp_receipt_insert writes the receipts of n log rows: row i is log_ids[i]
 * with nitems[i] items whose HMACs under key_ids[i] are hmacs[i] (32 bytes
 * each) and whose own outcomes are item_ok[i] (one byte each; NULL: the
 * request's).  Runs as owner (InvalidOid: as the current user); the caller
 * is connected to SPI, in the transaction of the log rows.
 */
void
ccp_receipt_insert(Oid owner, int n, const int64 *log_ids, const int *key_ids,
				   uint8 *const *hmacs, uint8 *const *item_ok,
				   const int *nitems)
{
	Datum	   *cols[4];
	bool	   *nulls[4];
	Datum		args[4];

	if (n == 0)
		return;
	ccp_stmt_columns_alloc(&ccp_receipt_insert_stmt, n, cols, nulls);
	for (int i = 0; i < n; i++)
	{
		cols[0][i] = Int64GetDatum(log_ids[i]);
		cols[1][i] = Int32GetDatum(key_ids[i]);
		cols[2][i] = PointerGetDatum(ccp_receipt_bytea(hmacs[i],
													   (Size) nitems[i] * CCP_HMAC_LEN));
		nulls[3][i] = (item_ok[i] == NULL);
		if (item_ok[i] != NULL)
			cols[3][i] = PointerGetDatum(ccp_receipt_bytea(item_ok[i], nitems[i]));
	}
	ccp_stmt_columns_args(&ccp_receipt_insert_stmt, n, cols, nulls, args);
	if (OidIsValid(owner))
		(void) ccp_stmt_exec_as(owner, &ccp_receipt_insert_stmt, args, NULL,
								SPI_OK_INSERT);
	else
		(void) ccp_stmt_exec(&ccp_receipt_insert_stmt, args, NULL,
							 SPI_OK_INSERT);
}

/*
 * ccp_receipt_set_outcomes writes the per-item outcomes (nitems bytes) of
 * the request of log_id, whose receipts were written before it was sent.
 * Runs as owner (InvalidOid: as the current user), connected to SPI.
 */
void
ccp_receipt_set_outcomes(Oid owner, int64 log_id, const uint8 *item_ok,
						 int nitems)
{
	Datum		values[2];

	values[0] = Int64GetDatum(log_id);
	values[1] = PointerGetDatum(ccp_receipt_bytea(item_ok, nitems));
	if (OidIsValid(owner))
		(void) ccp_stmt_exec_as(owner, &ccp_receipt_ok_stmt, values, NULL,
								SPI_OK_UPDATE);
	else
		(void) ccp_stmt_exec(&ccp_receipt_ok_stmt, values, NULL, SPI_OK_UPDATE);
}

/* ccp_receipt_sort_keys sorts look-up keys, its comparison inlined. */
#define ST_SORT ccp_receipt_sort_keys
#define ST_ELEMENT_TYPE int64
#define ST_COMPARE(a, b) ((*(a) > *(b)) - (*(a) < *(b)))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * ccpurge.receipt_keys(item_hmacs bytea) returns the look-up key of each
 * 32-byte HMAC packed in item_hmacs: its first 8 bytes, big-endian, as a
 * bigint.  The GIN index of ccpurge.erasure_packed is built on it.  The
 * keys come sorted: GIN sorts them again through the operator class's
 * comparison function, which finds them in order at the cost of one
 * comparison each.
 */
Datum
ccpurge_receipt_keys(PG_FUNCTION_ARGS)
{
	bytea	   *packed = PG_GETARG_BYTEA_PP(0);
	const uint8 *p = (const uint8 *) VARDATA_ANY(packed);
	int			n = VARSIZE_ANY_EXHDR(packed) / CCP_HMAC_LEN;
	int64	   *k = palloc(sizeof(int64) * Max(n, 1));
	Datum	   *keys = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		k[i] = ccp_receipt_key(p + i * CCP_HMAC_LEN);
	ccp_receipt_sort_keys(k, n);
	for (int i = 0; i < n; i++)
		keys[i] = Int64GetDatum(k[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(keys, n, INT8OID, 8, FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
}

/*
 * ccpurge.receipt_items(item_hmacs bytea, key_id int, first int, n int)
 * returns, as ccpurge.queue keeps a done or canceled item in text
 * (ccp_digest_text), the digests of n items packed in item_hmacs from
 * position first: ccpurge_status shows them for the queue rows that point
 * at their receipts (ccp_store_record).  An element whose receipt is not
 * there (the request-log row was pruned, item_hmacs is NULL) is NULL; the
 * array has n elements either way, one per item of the row.
 */
Datum
ccpurge_receipt_items(PG_FUNCTION_ARGS)
{
	bytea	   *packed = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	int			key_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	int			first = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	int			n = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3);
	int			have = packed ? VARSIZE_ANY_EXHDR(packed) / CCP_HMAC_LEN : 0;
	Datum	   *elems;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};

	if (n <= 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	elems = palloc(sizeof(Datum) * n);
	nulls = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		int64		at = (int64) first + i;

		nulls[i] = (packed == NULL || PG_ARGISNULL(1) || at < 0 || at >= have);
		elems[i] = nulls[i] ? (Datum) 0 :
			CStringGetTextDatum(ccp_digest_text((const uint8 *) VARDATA_ANY(packed) +
												at * CCP_HMAC_LEN, key_id));
	}
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, 1, dims, lbs,
											 TEXTOID, -1, false, TYPALIGN_INT));
}

/* ccp_receipt_cmp orders receipts by log id: the log's order. */
static int
ccp_receipt_cmp(const ListCell *a, const ListCell *b)
{
	int64		x = ((const CcpReceipt *) lfirst(a))->log_id;
	int64		y = ((const CcpReceipt *) lfirst(b))->log_id;

	return (x > y) - (x < y);
}

/*
 * ccp_receipt_lookup finds every receipt of item, under every key, into l,
 * oldest first, with the chain's text of each log column.  Runs with the
 * caller's rights (reading the tables of schema ccpurge needs the owner's
 * privileges); connects to SPI itself; the chain's settings hold until
 * the caller's GUC nest level ends.
 */
static void
ccp_receipt_lookup(const char *item, CcpLookup *l)
{
	Oid			types[2] = {INT8OID, INT4OID};
	MemoryContext outer = CurrentMemoryContext;

	Oid			relid;
	Oid			nsp;

	if (!ccp_ccpurge_table("erasure_packed", &relid, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ccpurge request log has no receipts in this database"),
				 errhint("Update the extension with ALTER EXTENSION ccpurge UPDATE.")));
	/* before any digest is made: only who may read the receipts looks */
	nsp = get_rel_namespace(relid);
	if (pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_SCHEMA, get_namespace_name(nsp));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
	l->nkeys = ccp_digest_under_every_key(item, &l->hmacs, &l->key_ids);
	l->receipts = NIL;
	ccp_chain_settings();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int k = 0; k < l->nkeys; k++)
	{
		const uint8 *hmac = l->hmacs + k * CCP_HMAC_LEN;
		Datum		values[2];

		values[0] = Int64GetDatum(ccp_receipt_key(hmac));
		values[1] = Int32GetDatum(l->key_ids[k]);
		if (SPI_execute_with_args(CCP_RECEIPT_QUERY, 2, types, values, NULL,
								  true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the ccpurge receipts");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			bytea	   *packed;
			bytea	   *oks;
			int			n;
			int			pos = -1;
			CcpReceipt *rc;
			MemoryContext old;

			packed = DatumGetByteaPP(SPI_getbinval(tup, desc, CCP_CHAIN_NCOLUMNS + 3,
												   &isnull));
			n = VARSIZE_ANY_EXHDR(packed) / CCP_HMAC_LEN;
			for (int i = 0; i < n && pos < 0; i++)
				if (memcmp((const uint8 *) VARDATA_ANY(packed) + i * CCP_HMAC_LEN,
						   hmac, CCP_HMAC_LEN) == 0)
					pos = i;
			if (pos < 0)
				continue;		/* another item with the same first 8 bytes */

			old = MemoryContextSwitchTo(outer);
			rc = palloc0(sizeof(CcpReceipt));
			rc->key_id = l->key_ids[k];
			for (int c = 0; c < CCP_CHAIN_NCOLUMNS; c++)
				rc->cols[c] = SPI_getvalue(tup, desc, c + 1);
			rc->log_id = pg_strtoint64(rc->cols[0]);
			rc->prev_hash = SPI_getvalue(tup, desc, CCP_CHAIN_NCOLUMNS + 1);
			rc->row_hash = SPI_getvalue(tup, desc, CCP_CHAIN_NCOLUMNS + 2);
			oks = (bytea *) DatumGetPointer(SPI_getbinval(tup, desc,
														  CCP_CHAIN_NCOLUMNS + 4,
														  &isnull));
			if (!isnull)
			{
				oks = DatumGetByteaPP(PointerGetDatum(oks));
				if (pos < VARSIZE_ANY_EXHDR(oks))
				{
					rc->item_ok_known = true;
					rc->item_ok = ((const uint8 *) VARDATA_ANY(oks))[pos] == 1;
				}
			}
			l->receipts = lappend(l->receipts, rc);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	list_sort(l->receipts, ccp_receipt_cmp);
}

/*
 * Positions in CCP_CHAIN_COLUMNS of the columns a receipt shows; see the
 * list in ccpurge.h.
 */
enum
{
	CCP_COL_LOG_ID = 0,
	CCP_COL_LOGGED_AT = 1,
	CCP_COL_SERVER = 2,
	CCP_COL_VENDOR = 3,
	CCP_COL_OPERATION = 4,
	CCP_COL_ORIGIN = 5,
	CCP_COL_REQUEST_ID = 7,
	CCP_COL_OK = 10,
	CCP_COL_HTTP_STATUS = 11,
	CCP_COL_CODE = 12,
	CCP_COL_MESSAGE = 13,
	CCP_COL_SCOPE = 17,
	CCP_COL_REQUEST_IDS = 18
};

/*
 * ccp_receipt_ok returns the item's own outcome in a receipt: the vendor's
 * answer for the item, else the request's; *known is false while the
 * request's outcome is not known.
 */
static bool
ccp_receipt_ok(const CcpReceipt *rc, bool *known)
{
	const char *ok = rc->cols[CCP_COL_OK];

	*known = rc->item_ok_known || ok != NULL;
	if (rc->item_ok_known)
		return rc->item_ok;
	return ok != NULL && strcmp(ok, "t") == 0;
}

/* ccp_receipt_code returns the code a receipt shows, NULL for none. */
static const char *
ccp_receipt_code(const CcpReceipt *rc)
{
	if (rc->item_ok_known && !rc->item_ok)
		return "item_refused";
	return rc->cols[CCP_COL_CODE];
}

/*
 * ccpurge_erasure_receipt(item text) returns every request that carried
 * item, under every digest key, oldest first: (logged_at, server, vendor,
 * operation, scope, origin, request_id, ok, http_status, code, message,
 * log_id), ok being the item's own outcome where the vendor answered per
 * item.  The caller needs the right to read the request log.
 */
Datum
ccpurge_erasure_receipt(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *item = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CcpLookup	l;
	ListCell   *lc;
	int			save = NewGUCNestLevel();
	AttInMetadata *attin;

	InitMaterializedSRF(fcinfo, 0);
	ccp_receipt_lookup(item, &l);
	/* the values are read back from the chain's text, under its settings */
	attin = TupleDescGetAttInMetadata(rsinfo->setDesc);
	foreach(lc, l.receipts)
	{
		CcpReceipt *rc = lfirst(lc);
		char	   *v[12];
		bool		known;
		bool		ok = ccp_receipt_ok(rc, &known);

		v[0] = rc->cols[CCP_COL_LOGGED_AT];
		v[1] = rc->cols[CCP_COL_SERVER];
		v[2] = rc->cols[CCP_COL_VENDOR];
		v[3] = rc->cols[CCP_COL_OPERATION];
		v[4] = rc->cols[CCP_COL_SCOPE];
		v[5] = rc->cols[CCP_COL_ORIGIN];
		v[6] = rc->cols[CCP_COL_REQUEST_ID];
		v[7] = known ? (ok ? "t" : "f") : NULL;
		v[8] = rc->cols[CCP_COL_HTTP_STATUS];
		v[9] = unconstify(char *, ccp_receipt_code(rc));
		v[10] = rc->cols[CCP_COL_MESSAGE];
		v[11] = rc->cols[CCP_COL_LOG_ID];
		tuplestore_puttuple(rsinfo->setResult, BuildTupleFromCStrings(attin, v));
	}
	AtEOXact_GUC(true, save);
	return (Datum) 0;
}

/* ccp_receipt_json_text appends s as a JSON string, or null. */
static void
ccp_receipt_json_text(StringInfo buf, const char *s)
{
	if (s == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, s);
}

/*
 * ccpurge_erasure_certificate(item text) returns a document an auditor can
 * keep and check without ccpurge: the item's digest under every key, each
 * receipt (the log row that carried the item, every column the row's hash
 * covers as the chain's text, the item's own outcome, the row's prev_hash
 * and row_hash) oldest first, and the chain's head when it was issued.
 * The format is documented in doc/ccpurge.md
 * ("ccpurge_erasure_certificate"), and test/bin/check-certificate
 * recomputes its hashes.
 */
Datum
ccpurge_erasure_certificate(PG_FUNCTION_ARGS)
{
	char	   *item = text_to_cstring(PG_GETARG_TEXT_PP(0));
	static const char *const names[CCP_CHAIN_NCOLUMNS] = {CCP_CHAIN_COLUMN_NAMES};
	CcpLookup	l;
	ListCell   *lc;
	StringInfoData buf;
	int			save = NewGUCNestLevel();
	char	   *head = NULL;
	char	   *head_seq = NULL;

	ccp_receipt_lookup(item, &l);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.encode(head_hash, 'hex'), head_seq"
					" FROM ccpurge.log_chain", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the ccpurge request log chain");
	initStringInfo(&buf);
	if (SPI_processed == 1)
	{
		head = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		head_seq = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	}
	appendStringInfo(&buf, "{\"format\": \"ccpurge-certificate-v1\", \"issued_at\": ");
	ccp_receipt_json_text(&buf, timestamptz_to_str(GetCurrentTransactionStartTimestamp()));
	appendStringInfoString(&buf, ", \"chain_head\": {\"seq\": ");
	appendStringInfoString(&buf, head_seq ? head_seq : "0");
	appendStringInfoString(&buf, ", \"hash\": ");
	ccp_receipt_json_text(&buf, head);
	appendStringInfoString(&buf, "}, \"item_digests\": [");
	for (int k = 0; k < l.nkeys; k++)
	{
		char		hex[CCP_HMAC_LEN * 2 + 1];

		hex_encode((const char *) l.hmacs + k * CCP_HMAC_LEN, CCP_HMAC_LEN, hex);
		hex[CCP_HMAC_LEN * 2] = '\0';
		appendStringInfo(&buf, "%s{\"key_id\": %d, \"hmac\": \"%s\"}",
						 k > 0 ? ", " : "", l.key_ids[k], hex);
	}
	appendStringInfoString(&buf, "], \"receipts\": [");
	foreach(lc, l.receipts)
	{
		CcpReceipt *rc = lfirst(lc);
		bool		known;
		bool		ok = ccp_receipt_ok(rc, &known);

		appendStringInfo(&buf, "%s{\"key_id\": %d, \"item_ok\": %s, \"item_code\": ",
						 foreach_current_index(lc) > 0 ? ", " : "", rc->key_id,
						 known ? (ok ? "true" : "false") : "null");
		ccp_receipt_json_text(&buf, ccp_receipt_code(rc));
		appendStringInfoString(&buf, ", \"prev_hash\": ");
		ccp_receipt_json_text(&buf, rc->prev_hash);
		appendStringInfoString(&buf, ", \"row_hash\": ");
		ccp_receipt_json_text(&buf, rc->row_hash);
		appendStringInfoString(&buf, ", \"row\": [");
		for (int c = 0; c < CCP_CHAIN_NCOLUMNS; c++)
		{
			appendStringInfo(&buf, "%s[\"%s\", ", c > 0 ? ", " : "", names[c]);
			ccp_receipt_json_text(&buf, rc->cols[c]);
			appendStringInfoChar(&buf, ']');
		}
		appendStringInfoString(&buf, "]}");
	}
	appendStringInfoString(&buf, "]}");
	SPI_finish();
	AtEOXact_GUC(true, save);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
