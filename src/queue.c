/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The SQL API of the durable queue: ccpurge_enqueue, ccpurge_wait,
 *	  ccpurge_retry, ccpurge_retry_failed and ccpurge_cancel (design
 *	  section 4).  Each validates
 *	  its arguments, checks the caller's rights, and leaves the rows to
 *	  queue_store.c.
 *
 * Every item is validated in the enqueuing transaction exactly as the
 * synchronous functions validate it, so bad input fails there and never in
 * the worker.  ccpurge_enqueue stores at once, in the caller's transaction;
 * the trigger, which queues at commit, lives in trigger.c.  A request can
 * be waited for, retried or canceled only by members of the role that
 * queued it.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(ccpurge_enqueue);
PG_FUNCTION_INFO_V1(ccpurge_wait);
PG_FUNCTION_INFO_V1(ccpurge_retry);
PG_FUNCTION_INFO_V1(ccpurge_cancel);
PG_FUNCTION_INFO_V1(ccpurge_retry_failed);

/* How often ccpurge_wait looks at the queue, in milliseconds. */
#define CCP_WAIT_POLL_MS	100

/*
 * ccp_queue_check_access raises an ERROR unless request_id has rows in the
 * queue and the current user is a member of the role that queued them
 * (superusers are members of every role).  To anyone else a request of
 * another role looks exactly like one that does not exist: the error says
 * only that the caller may not act on it, never whether it exists or whose
 * it is.  With for_wait, rows written by the current transaction are an
 * ERROR too: the worker cannot see them, so a wait would never end.  The
 * caller must be connected to SPI.
 */
static void
ccp_queue_check_access(const CcpQueueRel *rel, int64 request_id,
					   bool for_wait)
{
	Oid			userid = GetUserId();
	List	   *roles;
	bool		own_xact;
	bool		allowed = true;
	int64		nrows;
	ListCell   *lc;

	nrows = ccp_store_request_roles(rel, request_id, &roles, &own_xact);
	foreach(lc, roles)
	{
		if (!is_member_of_role(userid, lfirst_oid(lc)))
			allowed = false;
	}
	if (nrows == 0 && superuser())
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("ccpurge request %lld does not exist",
						(long long) request_id),
				 errdetail("It was never queued, or its items were removed after \"ccpurge.retention\".")));
	if (nrows == 0 || !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for ccpurge request %lld",
						(long long) request_id),
				 errdetail("The request does not exist, or it was queued by a role the current user is not a member of.")));

	if (for_wait && own_xact)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot wait for ccpurge request %lld in the transaction that changed it",
						(long long) request_id),
				 errdetail("The worker sees the request only after this transaction commits, so the wait would never end."),
				 errhint("Commit first, then call ccpurge_wait.")));
}

/* ----------
 * ccpurge_enqueue
 * ----------
 */

/*
 * ccpurge_enqueue(operation, items, params, server) validates everything
 * as the synchronous functions do, stores the distinct items in the queue
 * in the caller's transaction and returns the new request id.
 */
Datum
ccpurge_enqueue(PG_FUNCTION_ARGS)
{
	const CcpVendor *vendor;
	const CcpOpDef *def;
	void	   *params;
	CcpServer  *srv;
	CcpQueueRel rel;
	char	  **items = NULL;
	Datum	   *texts;
	int			n = 0;
	int64		request_id;

	ccp_require_preload();
	ccp_require_writable();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be NULL")));
	def = ccp_op_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &vendor);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("params must not be NULL"),
				 errhint("Pass '{}' for an operation without parameters.")));
	params = ccp_params_read(def, PG_GETARG_JSONB_P(2));
	/* a calldata filter is one request without items */
	items = ccp_items_for_params(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
								 def, params, "items", &n);
	srv = ccp_server_resolve(PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
							 vendor, GetUserId());

	texts = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		texts[i] = CStringGetTextDatum(items[i]);
	}

	ccp_store_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	request_id = ccp_store_request(&rel, srv->servername, def->name,
								   ccp_params_requests(def, ccp_params_text(def, params)),
								   GetUserId(), texts, n,
								   Min(srv->batch_size, def->max_batch));
	SPI_finish();

	PG_RETURN_INT64(request_id);
}


/* ----------
 * ccpurge_wait, ccpurge_retry, ccpurge_cancel
 * ----------
 */

/*
 * ccpurge_wait(request_id, timeout) returns true once every item of the
 * request is finished (done, failed or canceled) and false when timeout
 * passes first.  Each check is a new query, so it needs READ COMMITTED.
 */
Datum
ccpurge_wait(PG_FUNCTION_ARGS)
{
	int64		request_id = PG_GETARG_INT64(0);
	Interval   *timeout = PG_GETARG_INTERVAL_P(1);
	CcpQueueRel rel;
	TimestampTz deadline;
	bool		finished;

	ccp_require_preload();
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("ccpurge_wait cannot be used in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The transaction's snapshot would never show the worker's progress."),
				 errhint("Call it in a READ COMMITTED transaction.")));

	deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(GetCurrentTimestamp()),
													   IntervalPGetDatum(timeout)));
	ccp_store_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, true);

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		finished = ccp_store_unfinished(&rel, request_id) == 0;
		if (finished)
			break;
		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		wait_ms = Min(TimestampDifferenceMilliseconds(now, deadline),
					  CCP_WAIT_POLL_MS);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(wait_ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	SPI_finish();
	PG_RETURN_BOOL(finished);
}

/*
 * ccpurge_retry(request_id) queues the request's failed and canceled items
 * again, with their attempts reset and without a batch key, so that they
 * are sent in a new attempt generation under a new key, and returns how
 * many it requeued.
 */
Datum
ccpurge_retry(PG_FUNCTION_ARGS)
{
	int64		request_id = PG_GETARG_INT64(0);
	CcpQueueRel rel;
	int64		requeued;

	ccp_require_preload();
	ccp_require_writable();
	ccp_store_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, false);
	requeued = ccp_store_retry(&rel, request_id);
	SPI_finish();
	PG_RETURN_INT64(requeued);
}

/*
 * ccpurge_cancel(request_id) marks the request's queued and failed items
 * canceled and returns how many: retention keeps failed items, so cancel is
 * how a caller ends them.  Items the worker is sending are left alone, and
 * a notice counts them; ccp_store_cancel says how a cancel meets the
 * worker's claims.
 */
Datum
ccpurge_cancel(PG_FUNCTION_ARGS)
{
	int64		request_id = PG_GETARG_INT64(0);
	char	   *message;
	CcpQueueRel rel;
	int64		canceled;
	int64		sending;

	ccp_require_preload();
	ccp_require_writable();
	message = psprintf("canceled by %s", GetUserNameFromId(GetUserId(), false));
	ccp_store_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, false);
	canceled = ccp_store_cancel(&rel, request_id, message);
	sending = ccp_store_sending(&rel, request_id);
	SPI_finish();

	if (sending > 0)
		ereport(NOTICE,
				(errmsg_plural("%lld item of request %lld is being sent and was not canceled",
							   "%lld items of request %lld are being sent and were not canceled",
							   sending, (long long) sending, (long long) request_id),
				 errdetail("The worker finishes a batch it has started.")));

	PG_RETURN_INT64(canceled);
}

/*
 * ccpurge_retry_failed(server) queues again every failed item of server
 * (NULL: of every server) that the current user may act on, as
 * ccpurge_retry does for one request: those queued by roles it is a member
 * of (superusers: all).  Returns how many items.
 */
Datum
ccpurge_retry_failed(PG_FUNCTION_ARGS)
{
	char	   *server = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	CcpQueueRel rel;
	int64		requeued;

	ccp_require_preload();
	ccp_require_writable();
	/* a misspelt name must not look like "nothing failed" */
	if (server != NULL)
		(void) GetForeignServerByName(server, false);
	ccp_store_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	requeued = ccp_store_retry_failed(&rel, server, GetUserId());
	SPI_finish();
	PG_RETURN_INT64(requeued);
}
