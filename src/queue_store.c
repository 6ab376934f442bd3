/*-------------------------------------------------------------------------
 *
 * queue_store.c
 *	  Every query on ccpurge.queue: what enqueue, wait, retry and cancel
 *	  and the worker do to its rows.  Functions take and return plain data;
 *	  each statement's plan is prepared once per process (see owner.c).
 *
 * A row holds up to one vendor batch of a request's items.  Its life:
 *   queued   written by ccpurge_enqueue or the trigger's flush at commit
 *            (ccp_store_request), or queued again after a transient
 *            failure (ccp_store_record), by ccpurge_retry
 *            (ccp_store_retry) or after a worker restart
 *            (ccp_store_requeue_interrupted);
 *   sending  claimed into a batch (ccp_store_claim_fresh, a row split in
 *            two when only part of it fits, or ccp_store_mark_sending for
 *            the rows of a kept batch);
 *   done     the vendor erased the batch (ccp_store_record); items a
 *            receiver refused one by one move to failed rows of their own
 *            (ccp_store_fail_items), and the rest are replaced by their
 *            digests in the same transaction (ccp_store_forget_done);
 *   failed   the vendor refused the batch, its attempts or
 *            ccpurge.retry_for ran out (ccp_store_record, or
 *            ccp_store_expire_group for rows an open circuit breaker
 *            held back), or its server, user mapping or operation cannot
 *            be used (ccp_store_fail_group);
 *   canceled by ccpurge_cancel (ccp_store_cancel), which replaces the
 *            items by their digests too.
 * Done and canceled rows are removed after ccpurge.retention
 * (ccp_store_purge); failed rows stay until they are retried or canceled.
 *
 * The columns batch_key and batch_nitems (version 1.2) keep a batch's key
 * and size with its rows across automatic attempts.  This library also
 * serves the queue of 1.0 and 1.1 until ALTER EXTENSION ccpurge UPDATE, so
 * each statement that names them has a twin without them, chosen by the
 * caller's keys (ccp_store_keeps_batch_keys).
 *
 * Backends (the SQL functions and the trigger's flush) run the statements
 * with the rights of the queue's owner, found by ccp_store_lookup, as
 * callers have no privilege on the table; the worker, a superuser, runs
 * them as itself.  Every caller is connected to SPI, in a transaction with
 * an active snapshot.  A transaction whose statements queued rows, or made
 * rows the worker times, wakes the worker when it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/memutils.h"

/* This transaction queued or changed rows: wake the worker at commit. */
static bool ccp_store_changed = false;

/* An item the receiver refused, and its message. */
typedef struct CcpRefused
{
	const char *item;
	const char *message;
} CcpRefused;


/* ----------
 * Helpers
 * ----------
 */

/*
 * ccp_store_int8 reads the first column of the only row of the last
 * statement's result into *value; returns false when there is no row or
 * it is NULL.
 */
static bool
ccp_store_int8(int64 *value)
{
	bool		isnull;
	Datum		d;

	if (SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	*value = DatumGetInt64(d);
	return true;
}

static int64 ccp_store_sum_nulls(const CcpQueueRel *rel, CcpStmt *stmt,
								 Datum *values, const char *nulls);

/*
 * ccp_store_sum runs stmt, a query of one bigint, as the queue's owner and
 * returns its value, 0 for NULL, freeing the result.
 */
static int64
ccp_store_sum(const CcpQueueRel *rel, CcpStmt *stmt, Datum *values)
{
	return ccp_store_sum_nulls(rel, stmt, values, NULL);
}

/* ccp_store_sum_nulls is ccp_store_sum with parameters that may be NULL. */
static int64
ccp_store_sum_nulls(const CcpQueueRel *rel, CcpStmt *stmt, Datum *values,
					const char *nulls)
{
	int64		result = 0;

	(void) ccp_stmt_exec_as(rel->owner, stmt, values, nulls, SPI_OK_SELECT);
	if (!ccp_store_int8(&result))
		result = 0;
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/* ccp_store_int8_array makes an int8[] datum of n values. */
static Datum
ccp_store_int8_array(const int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/* ccp_store_text_array makes a text[] datum of n text datums. */
static Datum
ccp_store_text_array(Datum *items, int n)
{
	return PointerGetDatum(construct_array(items, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * ccp_store_failed_rows copies the last statement's rows, (request_id
 * int8, items int8) per request, into *failed and returns their number.
 */
static int
ccp_store_failed_rows(CcpFailedRequest **failed)
{
	int			n = (int) SPI_processed;

	*failed = palloc(sizeof(CcpFailedRequest) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		(*failed)[i].request_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
															  SPI_tuptable->tupdesc,
															  1, &isnull));
		(*failed)[i].items = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc,
														 2, &isnull));
	}
	return n;
}


/* ----------
 * The queue table, and the worker's wake at commit
 * ----------
 */

/*
 * ccp_store_lookup finds the queue table, its request id sequence and
 * their owner, and whether the table keeps batch keys.  When they do not
 * exist it returns false if missing_ok, and raises an ERROR otherwise.
 * Needs a transaction.
 */
bool
ccp_store_lookup(CcpQueueRel *rel, bool missing_ok)
{
	if (!ccp_ccpurge_table("queue", &rel->relid, &rel->owner) ||
		!ccp_ccpurge_table("request_id_seq", &rel->seqid, NULL))
	{
		if (missing_ok)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the ccpurge queue does not exist in this database"),
				 errhint("Create the extension with CREATE EXTENSION ccpurge.")));
	}
	rel->batch_keys = get_attnum(rel->relid, "batch_key") != InvalidAttrNumber;
	return true;
}

/*
 * ccp_store_keeps_batch_keys tells whether ccpurge.queue exists and has
 * the columns batch_key and batch_nitems, which version 1.2 added: until
 * ALTER EXTENSION ccpurge UPDATE, this library runs with the queue of 1.0
 * or 1.1, where batches keep no key across attempts.  Needs a transaction.
 */
bool
ccp_store_keeps_batch_keys(void)
{
	CcpQueueRel rel;

	return ccp_store_lookup(&rel, true) && rel.batch_keys;
}

/*
 * ccp_store_xact_callback wakes the worker once a transaction that queued
 * or changed rows has committed (that is how the worker wakes without
 * polling), and forgets the flag at every end of transaction.
 */
static void
ccp_store_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (ccp_store_changed)
				ccp_wake_worker();
			ccp_store_changed = false;
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ccp_store_changed = false;
			break;
		default:
			break;
	}
}

/*
 * ccp_store_register_callbacks installs the transaction callback.  Called
 * once from _PG_init when the library is preloaded.
 */
void
ccp_store_register_callbacks(void)
{
	RegisterXactCallback(ccp_store_xact_callback, NULL);
}


/* ----------
 * The SQL functions' statements, run as the queue's owner
 * ----------
 */

static CcpStmt ccp_store_insert_stmt = {
	"INSERT INTO ccpurge.queue (request_id, server, operation, params, role,"
	" items, nitems) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	7, {INT8OID, TEXTOID, TEXTOID, JSONBOID, REGROLEOID, TEXTARRAYOID, INT4OID}
};

static CcpStmt ccp_store_roles_stmt = {
	"SELECT role::oid, xmin FROM ccpurge.queue WHERE request_id = $1",
	1, {INT8OID}
};

static CcpStmt ccp_store_unfinished_stmt = {
	"SELECT count(*) FROM ccpurge.queue"
	" WHERE request_id = $1 AND state IN ('queued', 'sending')",
	1, {INT8OID}
};

#define CCP_STORE_REQUEUE(keys, where) \
	"WITH requeued AS (" \
	" UPDATE ccpurge.queue SET state = 'queued', attempts = 0," \
	" next_attempt_at = now(), batch_id = NULL, http_status = NULL," \
	" code = NULL, message = NULL, finished_at = NULL" keys \
	" WHERE " where \
	" RETURNING nitems)" \
	" SELECT sum(nitems)::int8 FROM requeued"

#define CCP_STORE_KEYS_RESET ", batch_key = NULL, batch_nitems = NULL"
#define CCP_STORE_RETRY_WHERE "request_id = $1 AND state = 'failed'"

static CcpStmt ccp_store_retry_stmt = {
	CCP_STORE_REQUEUE(CCP_STORE_KEYS_RESET, CCP_STORE_RETRY_WHERE), 1, {INT8OID}
};

static CcpStmt ccp_store_retry_nokeys_stmt = {
	CCP_STORE_REQUEUE("", CCP_STORE_RETRY_WHERE), 1, {INT8OID}
};

/* only from 1.2 on, whose queue keeps batch keys */
static CcpStmt ccp_store_retry_failed_stmt = {
	CCP_STORE_REQUEUE(CCP_STORE_KEYS_RESET,
					  "state = 'failed' AND ($1::text IS NULL OR server = $1)"
					  " AND pg_has_role($2, role::oid, 'MEMBER')"),
	2, {TEXTOID, OIDOID}
};

/*
 * A cancel: with the queue of 1.2, the items' clear text goes with it
 * (ccpurge.forget_items keeps their digests).
 */
#define CCP_STORE_CANCEL(forget) \
	"WITH canceled AS (" \
	" UPDATE ccpurge.queue SET state = 'canceled'," \
	" finished_at = now(), message = $2" forget \
	" WHERE request_id = $1 AND state IN ('queued', 'failed')" \
	" RETURNING nitems)" \
	" SELECT sum(nitems)::int8 FROM canceled"

static CcpStmt ccp_store_cancel_stmt = {
	CCP_STORE_CANCEL(", items = ccpurge.forget_items(items)"), 2, {INT8OID, TEXTOID}
};

static CcpStmt ccp_store_cancel_nokeys_stmt = {
	CCP_STORE_CANCEL(""), 2, {INT8OID, TEXTOID}
};

static CcpStmt ccp_store_sending_stmt = {
	"SELECT sum(nitems)::int8 FROM ccpurge.queue"
	" WHERE request_id = $1 AND state = 'sending'",
	1, {INT8OID}
};

/*
 * ccp_store_insert stores the distinct, validated text datums items under
 * request_id, in rows of at most batch items.  Each row is one execution
 * of a kept plan, which costs far less than slicing one big array in SQL
 * (that is quadratic in the number of items).
 */
static void
ccp_store_insert(const CcpQueueRel *rel, const char *server,
				 const char *operation, Datum params, Oid role,
				 Datum *items, int64 nitems, int batch, int64 request_id)
{
	Datum		values[7];

	Assert(nitems >= 0 && request_id > 0);
	/* nothing is queued that no worker would send */
	ccp_launcher_require();
	batch = Max(batch, 1);
	values[0] = Int64GetDatum(request_id);
	values[1] = CStringGetTextDatum(server);
	values[2] = CStringGetTextDatum(operation);
	values[3] = params;
	values[4] = ObjectIdGetDatum(role);

	/* a request its params alone select is one row without items */
	for (int64 start = 0; start < nitems || (start == 0 && nitems == 0);
		 start += batch)
	{
		int			n = (int) Min((int64) batch, nitems - start);
		Datum		arr = ccp_store_text_array(items + start, n);

		values[5] = arr;
		values[6] = Int32GetDatum(n);
		(void) ccp_stmt_exec_as(rel->owner, &ccp_store_insert_stmt, values,
								NULL, SPI_OK_INSERT);
		pfree(DatumGetPointer(arr));
	}
	ccp_store_changed = true;
}

/*
 * ccp_store_request stores items, distinct and validated text datums,
 * under a new request id and returns it.  params_texts holds the params of
 * each vendor request one chunk of the items needs (see
 * ccp_params_requests): each gets rows of its own, all under the one
 * request id, so that every row is exactly one vendor request.
 */
int64
ccp_store_request(const CcpQueueRel *rel, const char *server,
				  const char *operation, List *params_texts, Oid role,
				  Datum *items, int64 nitems, int batch)
{
	int64		request_id = nextval_internal(rel->seqid, false);
	ListCell   *lc;

	foreach(lc, params_texts)
		ccp_store_insert(rel, server, operation,
						 JsonbPGetDatum(ccp_jsonb_parse(lfirst(lc))),
						 role, items, nitems, batch, request_id);
	return request_id;
}

/*
 * ccp_store_request_roles returns how many rows request_id has, sets
 * *roles to the roles that queued them (each once) and *own_xact to
 * whether the current transaction wrote any of them.
 */
int64
ccp_store_request_roles(const CcpQueueRel *rel, int64 request_id,
						List **roles, bool *own_xact)
{
	Datum		values[1] = {Int64GetDatum(request_id)};
	uint64		n;

	n = ccp_stmt_exec_as(rel->owner, &ccp_store_roles_stmt, values, NULL,
						 SPI_OK_SELECT);
	*roles = NIL;
	*own_xact = false;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			role = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 2, &isnull));

		*roles = list_append_unique_oid(*roles, role);
		if (TransactionIdIsCurrentTransactionId(xmin))
			*own_xact = true;
	}
	SPI_freetuptable(SPI_tuptable);
	return (int64) n;
}

/*
 * ccp_store_unfinished returns how many rows of request_id are queued or
 * being sent, as a new snapshot sees them.
 */
int64
ccp_store_unfinished(const CcpQueueRel *rel, int64 request_id)
{
	Datum		values[1] = {Int64GetDatum(request_id)};

	return ccp_store_sum(rel, &ccp_store_unfinished_stmt, values);
}

/*
 * ccp_store_retry queues the request's failed rows again (canceled rows
 * no longer hold their items' clear text), with their attempts reset and
 * without a batch key, so that the next claim sends them in a new attempt
 * generation under a new key; returns how many items it requeued.
 */
int64
ccp_store_retry(const CcpQueueRel *rel, int64 request_id)
{
	Datum		values[1] = {Int64GetDatum(request_id)};
	int64		requeued;

	requeued = ccp_store_sum(rel, rel->batch_keys ? &ccp_store_retry_stmt :
							 &ccp_store_retry_nokeys_stmt, values);
	if (requeued > 0)
		ccp_store_changed = true;
	return requeued;
}

/*
 * ccp_store_retry_failed queues again, as ccp_store_retry does, every
 * failed row of server (NULL: of every server) queued by a role that
 * userid is a member of; returns how many items it requeued.
 */
int64
ccp_store_retry_failed(const CcpQueueRel *rel, const char *server, Oid userid)
{
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int64		requeued;

	values[0] = server ? CStringGetTextDatum(server) : (Datum) 0;
	nulls[0] = server ? ' ' : 'n';
	values[1] = ObjectIdGetDatum(userid);
	requeued = ccp_store_sum_nulls(rel, &ccp_store_retry_failed_stmt, values,
								   nulls);
	if (requeued > 0)
		ccp_store_changed = true;
	return requeued;
}

/*
 * ccp_store_cancel marks the request's queued and failed rows canceled
 * with message and returns how many items; rows being sent are left alone.
 *
 * The UPDATE locks each row it changes, a lock the worker's FOR UPDATE
 * SKIP LOCKED claim respects; if the worker holds a row, the UPDATE waits
 * and then skips it when it is no longer queued.  A claim may also split a
 * row, inserting the rest of its items as a new queued row the UPDATE's
 * snapshot cannot see, so the UPDATE is repeated with a new snapshot until
 * one finds nothing more (in READ COMMITTED, where snapshots move).
 */
int64
ccp_store_cancel(const CcpQueueRel *rel, int64 request_id,
				 const char *message)
{
	Datum		values[2];
	int64		canceled = 0;

	values[0] = Int64GetDatum(request_id);
	values[1] = CStringGetTextDatum(message);
	for (int round = 0; round < 5; round++)
	{
		int64		n = ccp_store_sum(rel, rel->batch_keys ?
									  &ccp_store_cancel_stmt :
									  &ccp_store_cancel_nokeys_stmt, values);

		canceled += n;
		if ((n == 0 && round > 0) || IsolationUsesXactSnapshot())
			break;
	}
	/* the worker times the removal of canceled rows after retention */
	if (canceled > 0)
		ccp_store_changed = true;
	return canceled;
}

/* ccp_store_sending returns how many items of request_id are being sent. */
int64
ccp_store_sending(const CcpQueueRel *rel, int64 request_id)
{
	Datum		values[1] = {Int64GetDatum(request_id)};

	return ccp_store_sum(rel, &ccp_store_sending_stmt, values);
}


/* ----------
 * The worker's statements: claim
 * ----------
 */

static CcpStmt ccp_store_requeue_stmt = {
	"WITH requeued AS ("
	" UPDATE ccpurge.queue SET state = 'queued', batch_id = NULL,"
	" message = 'queued again after a worker restart'"
	" WHERE state = 'sending' RETURNING nitems)"
	" SELECT count(*), coalesce(sum(nitems), 0)::int8 FROM requeued",
	0, {InvalidOid}
};

static CcpStmt ccp_store_purge_stmt = {
	"DELETE FROM ccpurge.queue"
	" WHERE state IN ('done', 'canceled')"
	" AND finished_at < now() - make_interval(secs => $1)",
	1, {INT4OID}
};

static CcpStmt ccp_store_purge_due_stmt = {
	"SELECT (extract(epoch FROM (min(finished_at)"
	" + make_interval(secs => $1) - now())) * 1000)::int8"
	" FROM ccpurge.queue WHERE state IN ('done', 'canceled')",
	1, {INT4OID}
};

#define CCP_STORE_DUE_GROUPS(batch_key) \
	"SELECT server, operation, params, role, batch_key, nitems," \
	" (extract(epoch FROM (now() - enqueued_at)) * 1000)::int8, first" \
	" FROM (SELECT server, operation, params::text, role::oid," \
	" " batch_key " AS batch_key, sum(nitems)::int4 AS nitems," \
	" min(enqueued_at) AS enqueued_at, min(chunk_id) AS first," \
	" row_number() OVER (PARTITION BY server ORDER BY min(chunk_id)) AS rank" \
	" FROM ccpurge.queue" \
	" WHERE state = 'queued' AND next_attempt_at <= now()" \
	" GROUP BY 1, 2, 3, 4, 5) AS g" \
	" WHERE rank <= $1 ORDER BY first"

static CcpStmt ccp_store_due_stmt = {
	CCP_STORE_DUE_GROUPS("batch_key"), 1, {INT4OID}
};

static CcpStmt ccp_store_due_nokeys_stmt = {
	CCP_STORE_DUE_GROUPS("NULL::text"), 1, {INT4OID}
};

static CcpStmt ccp_store_fail_group_stmt = {
	"WITH failed AS ("
	" UPDATE ccpurge.queue SET state = 'failed', finished_at = now(),"
	" message = $5, attempts = attempts + 1, batch_id = $6"
	" WHERE state = 'queued' AND server = $1 AND operation = $2"
	" AND params = $3::jsonb AND role::oid = $4"
	" AND next_attempt_at <= now()"
	" RETURNING request_id, nitems)"
	" SELECT request_id, sum(nitems)::int8 FROM failed"
	" GROUP BY request_id ORDER BY request_id",
	6, {TEXTOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, INT8OID}
};

static CcpStmt ccp_store_expire_group_stmt = {
	"WITH failed AS ("
	" UPDATE ccpurge.queue SET state = 'failed', finished_at = now(),"
	" batch_id = $5"
	" WHERE state = 'queued' AND server = $1 AND operation = $2"
	" AND params = $3::jsonb AND role::oid = $4"
	" AND next_attempt_at <= now() AND attempts > 0"
	" AND enqueued_at <= now() - make_interval(secs => $6)"
	" RETURNING request_id, nitems)"
	" SELECT request_id, sum(nitems)::int8 FROM failed"
	" GROUP BY request_id ORDER BY request_id",
	6, {TEXTOID, TEXTOID, TEXTOID, OIDOID, INT8OID, INT4OID}
};

static CcpStmt ccp_store_hasten_stmt = {
	"UPDATE ccpurge.queue SET next_attempt_at = now()"
	" WHERE state = 'queued' AND server = $1 AND next_attempt_at > now()",
	1, {TEXTOID}
};

#define CCP_STORE_CLAIM(fresh) \
	"SELECT chunk_id, nitems FROM ccpurge.queue" \
	" WHERE state = 'queued' AND server = $1 AND operation = $2" \
	" AND params = $3::jsonb AND role::oid = $4" \
	" AND next_attempt_at <= now() AND chunk_id >= $6" fresh \
	" ORDER BY chunk_id LIMIT $5 FOR UPDATE SKIP LOCKED"

static CcpStmt ccp_store_claim_stmt = {
	CCP_STORE_CLAIM(" AND batch_key IS NULL"),
	6, {TEXTOID, TEXTOID, TEXTOID, OIDOID, INT4OID, INT8OID}, NULL, true
};

static CcpStmt ccp_store_claim_nokeys_stmt = {
	CCP_STORE_CLAIM(""),
	6, {TEXTOID, TEXTOID, TEXTOID, OIDOID, INT4OID, INT8OID}, NULL, true
};

static CcpStmt ccp_store_split_stmt = {
	"INSERT INTO ccpurge.queue (request_id, server, operation,"
	" params, role, items, nitems, state, attempts, next_attempt_at,"
	" batch_id, enqueued_at)"
	" SELECT request_id, server, operation, params, role,"
	" items[1:$2], $2, 'sending', attempts, next_attempt_at, $3,"
	" enqueued_at FROM ccpurge.queue WHERE chunk_id = $1"
	" RETURNING chunk_id",
	3, {INT8OID, INT4OID, INT8OID}
};

static CcpStmt ccp_store_split_rest_stmt = {
	"UPDATE ccpurge.queue SET items = items[$2 + 1:],"
	" nitems = nitems - $2 WHERE chunk_id = $1 AND $3 <> 0",
	3, {INT8OID, INT4OID, INT8OID}
};

static CcpStmt ccp_store_sending_keys_stmt = {
	"UPDATE ccpurge.queue SET state = 'sending', batch_id = $1,"
	" batch_key = $3, batch_nitems = $4 WHERE chunk_id = ANY($2)",
	4, {INT8OID, INT8ARRAYOID, TEXTOID, INT4OID}, NULL, true
};

static CcpStmt ccp_store_sending_nokeys_stmt = {
	"UPDATE ccpurge.queue SET state = 'sending', batch_id = $1"
	" WHERE chunk_id = ANY($2)",
	2, {INT8OID, INT8ARRAYOID}, NULL, true
};

static CcpStmt ccp_store_lock_kept_stmt = {
	"SELECT chunk_id, nitems, batch_nitems FROM ccpurge.queue"
	" WHERE batch_key = $1 AND state = 'queued'"
	" FOR UPDATE SKIP LOCKED",
	1, {TEXTOID}
};

static CcpStmt ccp_store_count_kept_stmt = {
	"SELECT count(*) FROM ccpurge.queue"
	" WHERE batch_key = $1 AND state = 'queued'",
	1, {TEXTOID}
};

static CcpStmt ccp_store_new_generation_stmt = {
	"UPDATE ccpurge.queue SET batch_key = NULL,"
	" batch_nitems = NULL WHERE chunk_id = ANY($1)",
	1, {INT8ARRAYOID}
};

static CcpStmt ccp_store_batch_rows_stmt = {
	"SELECT request_id, attempts, items, enqueued_at FROM ccpurge.queue"
	" WHERE batch_id = $1 AND state = 'sending' ORDER BY chunk_id",
	1, {INT8OID}
};

static CcpStmt ccp_store_next_due_stmt = {
	"SELECT (extract(epoch FROM (min(next_attempt_at) - now())) * 1000)::int8"
	" FROM ccpurge.queue WHERE state = 'queued' AND next_attempt_at > now()",
	0, {InvalidOid}
};

/*
 * ccp_store_requeue_interrupted queues again every row a previous worker
 * left "sending", with its batch key (sending it again is an automatic
 * attempt of the same batch).  Returns how many rows, and sets *items to
 * how many items they hold.
 */
int64
ccp_store_requeue_interrupted(int64 *items)
{
	bool		isnull;
	int64		rows;

	(void) ccp_stmt_exec(&ccp_store_requeue_stmt, NULL, NULL, SPI_OK_SELECT);
	rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	*items = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull));
	return rows;
}

/*
 * ccp_store_purge removes done and canceled rows finished more than
 * retention_s seconds ago (failed rows stay until they are retried or
 * canceled).  Returns false when no such row remains, else sets *due_ms
 * to how many ms until the oldest one falls due.
 */
bool
ccp_store_purge(int retention_s, int64 *due_ms)
{
	Datum		values[1] = {Int32GetDatum(retention_s)};

	(void) ccp_stmt_exec(&ccp_store_purge_stmt, values, NULL, SPI_OK_DELETE);
	(void) ccp_stmt_exec(&ccp_store_purge_due_stmt, values, NULL, SPI_OK_SELECT);
	return ccp_store_int8(due_ms);
}

/*
 * ccp_store_due_groups reads the due queued rows as groups a claim may
 * make batches of: the fresh rows of one (server, operation, params,
 * role), or, when keys (the queue keeps batch keys), the rows of one kept
 * batch.  At most per_server groups of each server, the oldest; returns a
 * List of CcpDueGroup *, oldest first, in the current memory context.
 */
List *
ccp_store_due_groups(int per_server, bool keys)
{
	Datum		values[1] = {Int32GetDatum(per_server)};
	SPITupleTable *rows;
	uint64		nrows;
	List	   *groups = NIL;

	nrows = ccp_stmt_exec(keys ? &ccp_store_due_stmt : &ccp_store_due_nokeys_stmt,
						  values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = rows->vals[r];
		CcpDueGroup *group = palloc0(sizeof(CcpDueGroup));
		bool		isnull;

		group->server = SPI_getvalue(tup, rows->tupdesc, 1);
		group->operation = SPI_getvalue(tup, rows->tupdesc, 2);
		group->params = SPI_getvalue(tup, rows->tupdesc, 3);
		group->role = DatumGetObjectId(SPI_getbinval(tup, rows->tupdesc, 4, &isnull));
		group->batch_key = SPI_getvalue(tup, rows->tupdesc, 5);
		group->queued = DatumGetInt32(SPI_getbinval(tup, rows->tupdesc, 6, &isnull));
		group->age_ms = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 7, &isnull));
		group->first = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 8, &isnull));
		groups = lappend(groups, group);
	}
	return groups;
}

/*
 * ccp_store_group_values sets the first four statement arguments to
 * group's key: server, operation, params and role, in that order, as the
 * statements on a due group take them.
 */
static void
ccp_store_group_values(const CcpDueGroup *group, Datum *values)
{
	values[0] = CStringGetTextDatum(group->server);
	values[1] = CStringGetTextDatum(group->operation);
	values[2] = CStringGetTextDatum(group->params);
	values[3] = ObjectIdGetDatum(group->role);
}

/*
 * ccp_store_fail_group marks every due queued row of group's (server,
 * operation, params, role) failed with message, under batch_id, when its
 * server or mapping cannot be used any more or its operation is unknown.
 * Sets *failed to the requests whose rows failed, ordered by request id,
 * and returns their number.
 */
int
ccp_store_fail_group(const CcpDueGroup *group, int64 batch_id,
					 const char *message, CcpFailedRequest **failed)
{
	Datum		values[6];

	ccp_store_group_values(group, values);
	values[4] = CStringGetTextDatum(message);
	values[5] = Int64GetDatum(batch_id);
	(void) ccp_stmt_exec(&ccp_store_fail_group_stmt, values, NULL, SPI_OK_SELECT);
	return ccp_store_failed_rows(failed);
}

/*
 * ccp_store_expire_group marks failed, under batch_id, every due queued
 * row of group's (server, operation, params, role) that has failed
 * transiently before (attempts > 0) and was queued more than retry_for_s
 * seconds ago: rows that a server's open circuit breaker kept from being
 * sent again until ccpurge.retry_for ran out.  They keep their last
 * attempt's status, code and message.  Sets *failed as
 * ccp_store_fail_group does and returns the number of requests.
 */
int
ccp_store_expire_group(const CcpDueGroup *group, int64 batch_id,
					   int retry_for_s, CcpFailedRequest **failed)
{
	Datum		values[6];

	ccp_store_group_values(group, values);
	values[4] = Int64GetDatum(batch_id);
	values[5] = Int32GetDatum(retry_for_s);
	(void) ccp_stmt_exec(&ccp_store_expire_group_stmt, values, NULL, SPI_OK_SELECT);
	return ccp_store_failed_rows(failed);
}

/*
 * ccp_store_hasten makes every queued row of server due now: its circuit
 * breaker has closed, so the rows that backed off while it was failing
 * need not wait any longer.
 */
void
ccp_store_hasten(const char *server)
{
	Datum		values[1] = {CStringGetTextDatum(server)};

	(void) ccp_stmt_exec(&ccp_store_hasten_stmt, values, NULL, SPI_OK_UPDATE);
}

/*
 * ccp_store_mark_sending marks the rows with the nids chunk ids ids
 * "sending" in batch batch_id, a batch of nitems items (before duplicates
 * are removed) under batch_key, which they keep when keys.
 */
void
ccp_store_mark_sending(int64 batch_id, const char *batch_key, int nitems,
					   const int64 *ids, int nids, bool keys)
{
	Datum		values[4];

	values[0] = Int64GetDatum(batch_id);
	values[1] = ccp_store_int8_array(ids, nids);
	values[2] = CStringGetTextDatum(batch_key);
	values[3] = Int32GetDatum(nitems);
	(void) ccp_stmt_exec(keys ? &ccp_store_sending_keys_stmt :
						 &ccp_store_sending_nokeys_stmt,
						 values, NULL, SPI_OK_UPDATE);
}

/*
 * ccp_store_claim_fresh claims fresh queued rows (no batch key) of group's
 * (server, operation, params, role), oldest first, up to limit items into
 * batch_id under the new batch_key, splitting the row that does not fit.
 * Returns the number of items claimed, or -1 when no row could be claimed
 * (rows locked by a user's cancel or retry are skipped).  Rows without
 * items (a request its params alone select, such as a calldata filter)
 * have equal params and so are one request: they are claimed together.
 *
 * The rows are fetched from a cursor, a few at a time, so that the claim
 * locks about the rows it takes: a queue of 1,000-item rows would
 * otherwise have a 1,000-item batch lock up to 1,000 rows.  The scan
 * starts at group->first, past the index entries of rows claimed before
 * (which stay until vacuum, and longer while an old snapshot lives, such
 * as a session in ccpurge_wait); *next_first is where the next claim of
 * the group may start: past the rows taken, at the row split, if any.
 */
int
ccp_store_claim_fresh(const CcpDueGroup *group, int64 batch_id,
					  const char *batch_key, int limit, bool keys,
					  int64 *next_first)
{
	Datum		values[6];
	int64	   *ids;
	int			cap = 16;
	int			nids = 0;
	int			total = 0;
	int64		split_id = 0;
	int			split_take = 0;
	int64		fetched = 0;
	long		want = 1;
	Portal		portal;

	ccp_store_group_values(group, values);
	values[4] = Int32GetDatum(limit);
	values[5] = Int64GetDatum(group->first);
	*next_first = group->first;
	portal = ccp_stmt_open(keys ? &ccp_store_claim_stmt : &ccp_store_claim_nokeys_stmt,
						   values, NULL);
	ids = palloc(sizeof(int64) * cap);
	while (total < limit)
	{
		SPI_cursor_fetch(portal, true, want);
		if (SPI_processed == 0)
			break;
		fetched += SPI_processed;
		for (uint64 i = 0; i < SPI_processed && total < limit; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
			int			n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull));

			/* room for the part of a split row too */
			if (nids + 1 >= cap)
			{
				cap *= 2;
				ids = repalloc(ids, sizeof(int64) * cap);
			}
			if (total + n <= limit)
			{
				ids[nids++] = id;
				total += n;
				*next_first = id + 1;
			}
			else
			{
				split_id = id;
				split_take = limit - total;
				total = limit;
				*next_first = id;
			}
		}
		SPI_freetuptable(SPI_tuptable);
		/*
		 * as many rows as the rest takes at the rows' mean size so far; a
		 * row has an item or more, but for rows of none
		 */
		want = (long) Max(1, Min(limit - total,
								 (int64) (limit - total) * fetched / Max(total, 1)));
	}
	SPI_cursor_close(portal);

	if (split_id != 0)
	{
		Datum		svalues[3];
		bool		isnull;

		svalues[0] = Int64GetDatum(split_id);
		svalues[1] = Int32GetDatum(split_take);
		svalues[2] = Int64GetDatum(batch_id);
		/* the part that fits becomes a row of its own, marked below */
		(void) ccp_stmt_exec(&ccp_store_split_stmt, svalues, NULL,
							 SPI_OK_INSERT_RETURNING);
		ids[nids++] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc,
												  1, &isnull));
		(void) ccp_stmt_exec(&ccp_store_split_rest_stmt, svalues, NULL,
							 SPI_OK_UPDATE);
	}
	if (nids == 0)
		return -1;
	ccp_store_mark_sending(batch_id, batch_key, total, ids, nids, keys);
	return total;
}

/*
 * ccp_store_lock_kept locks every queued row of the kept batch batch_key,
 * and sets *ids and *nids to their chunk ids, *nitems to their number of
 * items and *whole to whether that is every item the batch had when it was
 * claimed (a cancel of some of its requests takes rows away).  Returns
 * false when another session holds some of the rows (such a cancel in
 * progress): part of a batch must never go out under its key, nor leave
 * its generation, on its own.
 */
bool
ccp_store_lock_kept(const char *batch_key, int64 **ids, int *nids,
					int *nitems, bool *whole)
{
	Datum		values[1];
	uint64		nrows;
	bool		isnull;
	int			had = -1;
	int64		count;

	values[0] = CStringGetTextDatum(batch_key);
	nrows = ccp_stmt_exec(&ccp_store_lock_kept_stmt, values, NULL, SPI_OK_SELECT);
	*ids = palloc(sizeof(int64) * Max(nrows, 1));
	*nids = (int) nrows;
	*nitems = 0;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull);

		/* every row of the batch holds the same count */
		if (i == 0 && !isnull)
			had = DatumGetInt32(d);
		(*ids)[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
												1, &isnull));
		*nitems += DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	*whole = (*nitems == had);

	/* the rows others hold were skipped, but a new query still sees them */
	(void) ccp_stmt_exec(&ccp_store_count_kept_stmt, values, NULL, SPI_OK_SELECT);
	if (nrows == 0 || !ccp_store_int8(&count) || count != (int64) nrows)
		return false;
	return true;
}

/*
 * ccp_store_new_generation clears the batch key of the rows with the nids
 * chunk ids ids, locked by ccp_store_lock_kept: they are no longer the
 * batch sent under the key, so the next claim treats them as fresh rows.
 */
void
ccp_store_new_generation(const int64 *ids, int nids)
{
	Datum		values[1] = {ccp_store_int8_array(ids, nids)};

	(void) ccp_stmt_exec(&ccp_store_new_generation_stmt, values, NULL,
						 SPI_OK_UPDATE);
}

/* ccp_store_id_cmp orders request ids ascending, for qsort. */
static int
ccp_store_id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * ccp_store_distinct_ids sorts n request ids and removes duplicates in
 * place; returns the new count.
 */
static int
ccp_store_distinct_ids(int64 *ids, int n)
{
	int			out = 0;

	qsort(ids, n, sizeof(int64), ccp_store_id_cmp);
	for (int i = 0; i < n; i++)
	{
		if (out == 0 || ids[out - 1] != ids[i])
			ids[out++] = ids[i];
	}
	return out;
}

/*
 * ccp_store_batch_rows reads the rows claimed into batch_id into *rows,
 * which the caller has zeroed: their distinct items, in the order of their
 * rows, so that every attempt of a kept batch sends the same body, their
 * highest attempts, when the oldest was queued, and their request ids.  Items and ids are allocated
 * in cxt.
 */
void
ccp_store_batch_rows(int64 batch_id, MemoryContext cxt, CcpBatchRows *rows)
{
	Datum		values[1] = {Int64GetDatum(batch_id)};
	MemoryContext old;
	int			cap = 0;
	int			n_all;
	uint64		nrows;

	nrows = ccp_stmt_exec(&ccp_store_batch_rows_stmt, values, NULL, SPI_OK_SELECT);
	rows->nitems = 0;
	rows->attempts = 0;
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int64		rid;

		rid = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		if (r == 0)
		{
			rows->request_id = rid;
			rows->request_ids = MemoryContextAlloc(cxt, sizeof(int64) * nrows);
		}
		rows->request_ids[rows->nrequest_ids++] = rid;
		rows->attempts = Max(rows->attempts,
							 DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)));
		{
			TimestampTz at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));

			if (r == 0 || at < rows->enqueued_at)
				rows->enqueued_at = at;
		}
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		old = MemoryContextSwitchTo(cxt);
		if (rows->nitems + n > cap)
		{
			cap = Max(cap * 2, rows->nitems + n);
			rows->items = rows->items ? repalloc(rows->items, sizeof(char *) * cap)
				: palloc(sizeof(char *) * cap);
		}
		for (int i = 0; i < n; i++)
			rows->items[rows->nitems++] = TextDatumGetCString(elems[i]);
		MemoryContextSwitchTo(old);
	}
	/* rows of several requests may name the same item: send it once */
	n_all = rows->nitems;
	rows->nitems = ccp_items_distinct(rows->items, rows->nitems);
	rows->verbatim = (rows->nitems == n_all);
	rows->nrequest_ids = ccp_store_distinct_ids(rows->request_ids,
												rows->nrequest_ids);
}

/*
 * ccp_store_next_due sets *due_ms to how many ms until the next queued row
 * whose backoff has not expired falls due; returns false when there is
 * none.
 */
bool
ccp_store_next_due(int64 *due_ms)
{
	(void) ccp_stmt_exec(&ccp_store_next_due_stmt, NULL, NULL, SPI_OK_SELECT);
	return ccp_store_int8(due_ms);
}


/* ----------
 * The worker's statements: record
 * ----------
 */

static CcpStmt ccp_store_record_stmt = {
	"UPDATE ccpurge.queue SET state = $2, attempts = attempts + 1,"
	" http_status = $3, code = $4, message = $5,"
	" batch_id = CASE WHEN $2 = 'queued' THEN NULL ELSE batch_id END,"
	" next_attempt_at = now() + make_interval(secs => $6 / 1000.0),"
	" finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END"
	" WHERE batch_id = $1 AND state = 'sending'",
	6, {INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID}
};

/*
 * The rows of a batch erased as a whole, whose items' digests its
 * receipts hold: the clear text leaves, and each row names the receipts
 * ($5, a request-log row) and where its own items start among them (the
 * rows' items are the batch's, in chunk_id order).
 */
static CcpStmt ccp_store_done_receipts_stmt = {
	"UPDATE ccpurge.queue AS q SET state = 'done', attempts = q.attempts + 1,"
	" http_status = $2, code = $3, message = $4,"
	" next_attempt_at = now(), finished_at = now(), items = '{}',"
	" receipt_log_id = $5, receipt_offset = o.first"
	" FROM (SELECT chunk_id, (sum(nitems) OVER (ORDER BY chunk_id)"
	" - nitems)::int4 AS first"
	" FROM ccpurge.queue WHERE batch_id = $1 AND state = 'sending') AS o"
	" WHERE q.chunk_id = o.chunk_id",
	5, {INT8OID, INT4OID, TEXTOID, TEXTOID, INT8OID}
};

static CcpStmt ccp_store_failed_requests_stmt = {
	"SELECT request_id, sum(nitems)::int8 FROM ccpurge.queue"
	" WHERE request_id = ANY($1) AND batch_id = $2 AND state = 'failed'"
	" GROUP BY request_id ORDER BY request_id",
	2, {INT8ARRAYOID, INT8OID}
};

static CcpStmt ccp_store_done_rows_stmt = {
	"SELECT chunk_id, items FROM ccpurge.queue"
	" WHERE batch_id = $1 AND state = 'done' ORDER BY chunk_id",
	1, {INT8OID}
};

static CcpStmt ccp_store_forget_stmt = {
	"UPDATE ccpurge.queue SET items = ccpurge.forget_items(items)"
	" WHERE batch_id = $1 AND state = 'done'",
	1, {INT8OID}
};

static CcpStmt ccp_store_fail_row_stmt = {
	"UPDATE ccpurge.queue SET state = 'failed', message = $2"
	" WHERE chunk_id = $1",
	2, {INT8OID, TEXTOID}
};

static CcpStmt ccp_store_fail_part_stmt = {
	"INSERT INTO ccpurge.queue (request_id, server, operation,"
	" params, role, items, nitems, state, attempts, next_attempt_at,"
	" batch_id, http_status, code, message, enqueued_at, finished_at)"
	" SELECT request_id, server, operation, params, role, $2, $3,"
	" 'failed', attempts, next_attempt_at, batch_id, http_status,"
	" code, $4, enqueued_at, finished_at"
	" FROM ccpurge.queue WHERE chunk_id = $1",
	4, {INT8OID, TEXTARRAYOID, INT4OID, TEXTOID}
};

static CcpStmt ccp_store_keep_part_stmt = {
	"UPDATE ccpurge.queue SET items = $2, nitems = $3"
	" WHERE chunk_id = $1",
	3, {INT8OID, TEXTARRAYOID, INT4OID}
};

/*
 * ccp_store_record writes the outcome of an attempt of batch batch_id to
 * its rows, counting the attempt: done or failed, finished now, or queued
 * again (settle CCP_SETTLE_RETRY) out of the batch, due in delay_ms.  The
 * vendor's http_status (0: none), code (NULL: none) and message stay in
 * the rows.  A row queued again keeps its batch key.
 *
 * Rows done as a whole whose items' receipts request-log row
 * receipt_log_id holds, in the rows' order (ccp_reqlog_intent, with
 * CcpBatchRows.verbatim), lose their clear text in the same statement and
 * point at those receipts instead: ccpurge_status shows the digests from
 * there, and the queue writes no digest of its own.  Otherwise
 * receipt_log_id is 0, and the caller forgets the items of done rows
 * itself (ccp_store_forget_done).
 */
void
ccp_store_record(int64 batch_id, CcpSettle settle, int http_status,
				 const char *code, const char *message, int64 delay_ms,
				 int64 receipt_log_id)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	const char *state;

	switch (settle)
	{
		case CCP_SETTLE_DONE:
			state = "done";
			break;
		case CCP_SETTLE_RETRY:
			state = "queued";
			break;
		default:
			state = "failed";
			break;
	}
	values[0] = Int64GetDatum(batch_id);
	values[1] = CStringGetTextDatum(state);
	values[2] = Int32GetDatum(http_status);
	nulls[2] = (http_status == 0) ? 'n' : ' ';
	values[3] = code ? CStringGetTextDatum(code) : (Datum) 0;
	nulls[3] = code ? ' ' : 'n';
	values[4] = CStringGetTextDatum(message);
	values[5] = Int64GetDatum(delay_ms);
	if (settle == CCP_SETTLE_DONE && receipt_log_id != 0)
	{
		/* the same values but state and delay, and the receipts */
		Datum		dvalues[5] = {values[0], values[2], values[3], values[4],
		Int64GetDatum(receipt_log_id)};
		char		dnulls[5] = {' ', nulls[2], nulls[3], ' ', ' '};

		(void) ccp_stmt_exec(&ccp_store_done_receipts_stmt, dvalues, dnulls,
							 SPI_OK_UPDATE);
		return;
	}
	(void) ccp_stmt_exec(&ccp_store_record_stmt, values, nulls, SPI_OK_UPDATE);
}

/*
 * ccp_store_forget_done replaces the items of the done rows of batch_id
 * by their digests (ccpurge.forget_items): no erased item stays in clear
 * text.  The worker calls it in the transaction that marks them done,
 * after the items the receiver refused have left them; a queue of 1.0 or
 * 1.1 (keys false) keeps them, as it has no keys to digest them with.
 */
void
ccp_store_forget_done(int64 batch_id, bool keys)
{
	Datum		values[1] = {Int64GetDatum(batch_id)};

	if (keys)
		(void) ccp_stmt_exec(&ccp_store_forget_stmt, values, NULL,
							 SPI_OK_UPDATE);
}

/*
 * ccp_store_failed_requests sets *failed to the requests among the n
 * request_ids whose rows of batch_id are failed, ordered by request id,
 * and returns their number.  The request ids lead to the rows through an
 * index.
 */
int
ccp_store_failed_requests(int64 batch_id, const int64 *request_ids, int n,
						  CcpFailedRequest **failed)
{
	Datum		values[2];

	values[0] = ccp_store_int8_array(request_ids, n);
	values[1] = Int64GetDatum(batch_id);
	(void) ccp_stmt_exec(&ccp_store_failed_requests_stmt, values, NULL,
						 SPI_OK_SELECT);
	return ccp_store_failed_rows(failed);
}

/* ccp_store_refused_cmp orders CcpRefused by item, for qsort and bsearch. */
static int
ccp_store_refused_cmp(const void *a, const void *b)
{
	return strcmp(((const CcpRefused *) a)->item, ((const CcpRefused *) b)->item);
}

/*
 * ccp_store_fail_items moves the n items a receiver refused (answering per
 * item, messages[i] the message of items[i]) out of the rows of batch_id,
 * which were just marked done, into failed rows of the same request:
 * split off, or the whole row when every item of it was refused, with the
 * message of the row's first refused item.
 */
void
ccp_store_fail_items(int64 batch_id, char **items, char **messages, int n)
{
	CcpRefused *failed = palloc(sizeof(CcpRefused) * Max(n, 1));
	Datum		values[1] = {Int64GetDatum(batch_id)};
	SPITupleTable *rows;
	uint64		nrows;

	for (int i = 0; i < n; i++)
	{
		failed[i].item = items[i];
		failed[i].message = messages[i];
	}
	qsort(failed, n, sizeof(CcpRefused), ccp_store_refused_cmp);

	nrows = ccp_stmt_exec(&ccp_store_done_rows_stmt, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	for (uint64 r = 0; r < nrows; r++)
	{
		bool		isnull;
		int64		chunk_id = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
		Datum	   *elems;
		bool	   *nulls;
		int			nelems;
		Datum	   *keep;
		Datum	   *lost;
		int			nkeep = 0;
		int			nlost = 0;
		const char *message = NULL;
		Datum		uvalues[4];

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
		keep = palloc(sizeof(Datum) * Max(nelems, 1));
		lost = palloc(sizeof(Datum) * Max(nelems, 1));
		for (int i = 0; i < nelems; i++)
		{
			CcpRefused key = {TextDatumGetCString(elems[i]), NULL};
			CcpRefused *found = bsearch(&key, failed, n, sizeof(CcpRefused),
										ccp_store_refused_cmp);

			if (found != NULL)
			{
				lost[nlost++] = elems[i];
				if (message == NULL)
					message = found->message;
			}
			else
				keep[nkeep++] = elems[i];
		}
		if (nlost == 0)
			continue;

		uvalues[0] = Int64GetDatum(chunk_id);
		uvalues[3] = CStringGetTextDatum(message);
		if (nkeep == 0)
		{
			Datum		fvalues[2] = {uvalues[0], uvalues[3]};

			(void) ccp_stmt_exec(&ccp_store_fail_row_stmt, fvalues, NULL,
								 SPI_OK_UPDATE);
		}
		else
		{
			uvalues[1] = ccp_store_text_array(lost, nlost);
			uvalues[2] = Int32GetDatum(nlost);
			(void) ccp_stmt_exec(&ccp_store_fail_part_stmt, uvalues, NULL,
								 SPI_OK_INSERT);
			uvalues[1] = ccp_store_text_array(keep, nkeep);
			uvalues[2] = Int32GetDatum(nkeep);
			(void) ccp_stmt_exec(&ccp_store_keep_part_stmt, uvalues, NULL,
								 SPI_OK_UPDATE);
		}
	}
}
