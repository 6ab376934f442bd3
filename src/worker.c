/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that drains ccpurge.queue.
 *
 * One static worker, registered from _PG_init, connects to
 * ccpurge.database_name.  Its loop follows worker_spi: signal handlers that
 * only set flags and the latch, WaitLatch with a wait event, config reload,
 * and short transactions.  It is woken by the latch that committing
 * transactions set (queue.c), so an idle worker sleeps without a timeout and
 * makes no system calls.
 *
 * A cycle has three steps, none of which holds a transaction open across
 * the network:
 *   claim:   in one short transaction, coalesce queued rows of the same
 *            server, operation, parameters and role into batches of the
 *            vendor's size (splitting the last row if needed), mark them
 *            "sending", and take a rate-limit ticket for each;
 *   send:    after commit, get a token and start the requests with curl
 *            multi, several servers at once, each within its limits;
 *   record:  when answers arrive, in one short transaction mark rows done,
 *            failed, or queued again with exponential backoff and jitter,
 *            and write the request log.
 * Every row that fails for good, here or when its batch cannot be resolved
 * at claim, is reported once: a server log line and a NOTIFY
 * ccpurge_failed, in ccpurge's own words only, as any role can LISTEN.
 * Rows found "sending" when the worker starts belonged to a worker that
 * died; they are queued again and re-sent, as deletion is idempotent.
 *
 * Batch keys.  A batch's key (the webhook's Idempotency-Key) is a random
 * one, written with the batch's number of items to its rows
 * (ccpurge.queue.batch_key, batch_nitems) when they are first claimed
 * together: one key per attempt generation.  Rows queued again after a
 * transient failure, or found "sending" at start, keep their key, and a
 * claim takes every row of a key together or none, and never adds other
 * rows to them: every automatic attempt of a batch sends the same items
 * under the same key, so a receiver can ignore a repeat.  A new
 * generation, with a new key, starts for the rows that ccpurge_retry
 * queues again (it clears their key), and for a batch that is no longer
 * whole (ccpurge_cancel took some of its rows: a claim finds fewer items
 * under the key than the batch had) or no longer fits its server's batch
 * size: the claim clears the key of its rows and treats them as fresh
 * rows.
 *
 * Fairness.  The CCP_WORKER_MAX_INFLIGHT in-flight slots are shared among
 * units, for now servers (ccp_worker_unit).  A claim hands them out in
 * rounds, one batch per unit per round, the unit with the oldest due row
 * first.  A unit with nothing in flight may take any free slot.  A unit
 * with batches in flight takes another only while more than
 * CCP_WORKER_RESERVED slots are free and it holds fewer than its share:
 * the other slots divided among the units with due work.  So however slow
 * or failing a server, another server with nothing in flight gets a slot
 * at the next claim (unless CCP_WORKER_RESERVED other servers just did),
 * and as a busy server's requests end, its slots go to the others until
 * each holds its share.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Most batches the worker keeps in flight across all servers. */
#define CCP_WORKER_MAX_INFLIGHT		16

/*
 * In-flight slots that only a unit with nothing in flight may take (see
 * the header comment).
 */
#define CCP_WORKER_RESERVED			4

/* Longest poll slice while requests are in flight. */
#define CCP_WORKER_POLL_MS			20

/* Least time between two removals of rows past their retention. */
#define CCP_WORKER_PURGE_INTERVAL_MS	30000

/*
 * Most request ids a ccpurge_failed notification names: with the other
 * members (a server name and an operation of at most NAMEDATALEN bytes,
 * escaped) it stays far below NOTIFY's limit of about 8000 bytes.
 */
#define CCP_NOTIFY_MAX_IDS			100

/* How soon the worker looks again at due rows someone else had locked. */
#define CCP_WORKER_RELOCK_MS		1000

/* One batch: queue rows claimed together and sent as one request. */
typedef struct CcpBatch
{
	MemoryContext cxt;
	int64		batch_id;
	int64		request_id;		/* of the first row, for the log */
	CcpServer  *srv;
	const CcpOpDef *def;
	void	   *params;			/* the operation's own */
	char	  **items;
	int			nitems;
	int			attempts;		/* highest attempts of its rows so far */
	int64	   *request_ids;	/* distinct, ascending */
	int			nrequest_ids;
	char	   *batch_key;		/* of its rows' attempt generation */
	const char *unit;			/* ccp_worker_unit of its rows */
	int			ticket;			/* from the claim until the exchange takes it */
	CcpExchange x;				/* the request, from claim to outcome */
} CcpBatch;

/*
 * Due queued rows a claim may make batches of: the fresh rows of one
 * (server, operation, params, role), which are coalesced and split at
 * will, or the rows of one kept batch, claimed all together or not at all.
 */
typedef struct CcpClaimGroup
{
	char	   *server;
	char	   *operation;
	char	   *params;
	Oid			role;
	char	   *batch_key;		/* a kept batch's; NULL for fresh rows */
	int			queued;			/* items due and not yet claimed */
	int64		age_ms;			/* age of its oldest row */
	bool		exhausted;		/* nothing more to claim from it now */
} CcpClaimGroup;

/* A unit of fairness in one claim: its due groups, its batches in flight. */
typedef struct CcpClaimUnit
{
	const char *name;
	List	   *groups;			/* CcpClaimGroup *, oldest first */
	int			inflight;
} CcpClaimUnit;

/*
 * Why queued rows failed for good, as the server log and ccpurge_failed
 * notifications say it: ccpurge's own words only, since any role can
 * LISTEN.  The vendor's code and message stay in the rows.
 */
typedef enum CcpFailure
{
	CCP_FAILED_REFUSED,			/* the vendor refused the request for good */
	CCP_FAILED_RETRIES_EXHAUSTED,	/* transient failures, no attempt left */
	CCP_FAILED_ITEMS_REFUSED,	/* the receiver refused some items */
	CCP_FAILED_SERVER_UNUSABLE, /* server or user mapping cannot be used */
	CCP_FAILED_UNKNOWN_OPERATION	/* the operation is not known */
} CcpFailure;

/* The code of each CcpFailure, in the notification and the log. */
static const char *const ccp_failure_codes[] = {
	[CCP_FAILED_REFUSED] = "refused",
	[CCP_FAILED_RETRIES_EXHAUSTED] = "retries_exhausted",
	[CCP_FAILED_ITEMS_REFUSED] = "items_refused",
	[CCP_FAILED_SERVER_UNUSABLE] = "server_unusable",
	[CCP_FAILED_UNKNOWN_OPERATION] = "unknown_operation",
};

static void ccp_worker_report_failure(int64 batch_id, const char *server,
									  const char *operation, CcpFailure why,
									  int http_status, SPITupleTable *rows,
									  uint64 nrows);

static List *ccp_inflight = NIL;	/* CcpBatch *, request running */
static List *ccp_started = NIL; /* CcpBatch *, claimed, not yet started */
static List *ccp_finished = NIL;	/* CcpBatch *, waiting to be recorded */
static int64 ccp_next_batch_id = 0;
static bool ccp_recovered = false;
static TimestampTz ccp_next_purge = 0;	/* see ccp_worker_housekeeping */

/*
 * The queue has the column batch_key (see ccp_queue_keeps_batch_keys); set
 * by each claim.  Without it every claim is of fresh rows.
 */
static bool ccp_worker_keys = true;

/*
 * Resource owner for the work between transactions: digests and HMACs
 * register their crypto contexts with the current resource owner.
 */
static ResourceOwner ccp_worker_owner = NULL;

static ProcessUtility_hook_type ccp_prev_utility_hook = NULL;

/*
 * ccp_worker_may_drop tells whether the current user may drop database
 * dbname, so that a DROP DATABASE bound to fail does not disturb the
 * worker.  Runs before the command's own checks.
 */
static bool
ccp_worker_may_drop(const char *dbname)
{
	Oid			dbid = get_database_oid(dbname, true);

	return OidIsValid(dbid) && pg_database_ownercheck(dbid, GetUserId());
}

/*
 * ccp_worker_utility_hook lets DROP DATABASE of the worker's database go
 * through: the worker is asked to leave before the command checks for
 * other sessions, and it waits before it connects again.
 */
static void
ccp_worker_utility_hook(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, DropdbStmt) && ccp_shared != NULL && ccp_database_name &&
		strcmp(((DropdbStmt *) stmt)->dbname, ccp_database_name) == 0 &&
		!IsTransactionBlock() &&
		ccp_worker_may_drop(((DropdbStmt *) stmt)->dbname))
	{
		int			pid;

		LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
		ccp_shared->worker_hold_until =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 30000);
		pid = ccp_shared->worker_pid;
		LWLockRelease(ccp_shared->worker_lock);
		if (pid > 0)
			kill(pid, SIGTERM);
	}

	PG_TRY();
	{
		if (ccp_prev_utility_hook)
			ccp_prev_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		/* a DROP DATABASE that failed must not keep the worker away */
		if (IsA(stmt, DropdbStmt) && ccp_shared != NULL)
		{
			LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
			ccp_shared->worker_hold_until = 0;
			LWLockRelease(ccp_shared->worker_lock);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * ccp_worker_register registers the static worker and the utility hook.
 * Called from _PG_init while shared_preload_libraries is processed.
 */
void
ccp_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ccpurge");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ccpurge_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "ccpurge worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "ccpurge worker");
	RegisterBackgroundWorker(&worker);

	ccp_prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = ccp_worker_utility_hook;
}

/*
 * ccp_worker_detach forgets the worker's latch at exit, and leaves the
 * request-log rows it could not write to its successor.
 */
static void
ccp_worker_detach(int code, Datum arg)
{
	ccp_reqlog_orphan_pending();

	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (ccp_shared->worker_pid == MyProcPid)
	{
		ccp_shared->worker_pid = 0;
		ccp_shared->worker_latch = NULL;
	}
	LWLockRelease(ccp_shared->worker_lock);
}

/* The memory context current before ccp_worker_begin, restored at its end. */
static MemoryContext ccp_worker_caller_cxt = NULL;

/* ccp_worker_begin starts a worker transaction with SPI and a snapshot. */
static void
ccp_worker_begin(const char *activity)
{
	ccp_worker_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* ccp_worker_end commits what ccp_worker_begin started. */
static void
ccp_worker_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	CurrentResourceOwner = ccp_worker_owner;
	/* the commit leaves TopMemoryContext current */
	MemoryContextSwitchTo(ccp_worker_caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ccp_worker_exec runs one SPI statement and checks its result code. */
static void
ccp_worker_exec(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls, int expect)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls,
											false, 0);

	if (ret != expect)
		elog(ERROR, "ccpurge worker: SPI returned %d for \"%s\"", ret, sql);
}

/*
 * ccp_worker_queue_exists tells whether ccpurge is installed here; the
 * worker has nothing to do otherwise.  Needs a transaction.
 */
static bool
ccp_worker_queue_exists(void)
{
	return OidIsValid(get_extension_oid("ccpurge", true));
}

/*
 * ccp_worker_resolve resolves the server and parameters of a batch inside a
 * subtransaction, so that a dropped server or mapping becomes an error
 * message for the rows instead of ending the worker.  Allocates in cxt.
 */
static bool
ccp_worker_resolve(CcpBatch *batch, const char *server, Oid role,
				   Jsonb *params, char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(batch->cxt);
	PG_TRY();
	{
		const CcpVendor *vendor;

		batch->def = ccp_op_by_name(batch->def->name, &vendor);
		batch->srv = ccp_server_resolve(server, vendor, role);
		batch->params = ccp_params_read(batch->def, params);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		*error = edata->message;
	}
	PG_END_TRY();
	return ok;
}

/*
 * ccp_worker_fail_key marks every due queued row of a key failed with
 * message, under a batch id of their own, and reports them: its server or
 * mapping cannot be used any more, or its operation is unknown.  Runs in
 * the claim transaction.
 */
static void
ccp_worker_fail_key(const char *server, const char *operation,
					const char *params, Oid role, const char *message)
{
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, INT8OID};
	Datum		values[6];
	int64		batch_id = ++ccp_next_batch_id;

	values[0] = CStringGetTextDatum(server);
	values[1] = CStringGetTextDatum(operation);
	values[2] = CStringGetTextDatum(params);
	values[3] = ObjectIdGetDatum(role);
	values[4] = CStringGetTextDatum(message);
	values[5] = Int64GetDatum(batch_id);
	ccp_worker_exec("WITH failed AS ("
					" UPDATE ccpurge.queue SET state = 'failed', finished_at = now(),"
					" message = $5, attempts = attempts + 1, batch_id = $6"
					" WHERE state = 'queued' AND server = $1 AND operation = $2"
					" AND params = $3::jsonb AND role::oid = $4"
					" AND next_attempt_at <= now()"
					" RETURNING request_id, nitems)"
					" SELECT request_id, sum(nitems)::int8 FROM failed"
					" GROUP BY request_id ORDER BY request_id",
					6, types, values, NULL, SPI_OK_SELECT);
	ccp_worker_report_failure(batch_id, server, operation,
							  ccp_op_by_name(operation, NULL) == NULL ?
							  CCP_FAILED_UNKNOWN_OPERATION :
							  CCP_FAILED_SERVER_UNUSABLE,
							  0, SPI_tuptable, SPI_processed);
}

/*
 * ccp_worker_wake_in lowers *wake (ms, -1 for none) to ms.
 */
static void
ccp_worker_wake_in(long *wake, long ms)
{
	*wake = (*wake < 0) ? ms : Min(*wake, ms);
}

/*
 * ccp_worker_mark_sending marks the queue rows whose chunk ids the int8[]
 * ids holds "sending" in batch batch_id, a batch of nitems items (before
 * duplicates are removed) under batch_key.
 */
static void
ccp_worker_mark_sending(int64 batch_id, const char *batch_key, int nitems,
						Datum ids)
{
	Oid			types[4] = {INT8OID, INT8ARRAYOID, TEXTOID, INT4OID};
	Datum		values[4];

	values[0] = Int64GetDatum(batch_id);
	values[1] = ids;
	values[2] = CStringGetTextDatum(batch_key);
	values[3] = Int32GetDatum(nitems);
	ccp_worker_exec(ccp_worker_keys ?
					"UPDATE ccpurge.queue SET state = 'sending', batch_id = $1,"
					" batch_key = $3, batch_nitems = $4 WHERE chunk_id = ANY($2)" :
					"UPDATE ccpurge.queue SET state = 'sending', batch_id = $1"
					" WHERE chunk_id = ANY($2)",
					ccp_worker_keys ? 4 : 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * ccp_worker_claim_rows claims fresh queued rows (no batch key) of one
 * (server, operation, params, role), oldest first, up to limit items into
 * batch_id under the new batch_key, splitting the row that does not fit.
 * Returns the number of items claimed, or -1 when no row could be claimed
 * (rows locked by a user's cancel or retry are skipped).  Rows without
 * items (a request its params alone select, such as a calldata filter)
 * have equal params and so are one request: they are claimed together.
 */
static int
ccp_worker_claim_rows(int64 batch_id, const char *batch_key,
					  const char *server, const char *operation,
					  const char *params, Oid role, int limit)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, OIDOID, INT4OID};
	Datum		values[5];
	Datum	   *ids;
	int			nids = 0;
	int			total = 0;
	int64		split_id = 0;
	int			split_take = 0;
	uint64		nrows;

	values[0] = CStringGetTextDatum(server);
	values[1] = CStringGetTextDatum(operation);
	values[2] = CStringGetTextDatum(params);
	values[3] = ObjectIdGetDatum(role);
	values[4] = Int32GetDatum(limit);
	ccp_worker_exec(psprintf("SELECT chunk_id, nitems FROM ccpurge.queue"
							 " WHERE state = 'queued' AND server = $1 AND operation = $2"
							 " AND params = $3::jsonb AND role::oid = $4"
							 " AND next_attempt_at <= now()%s"
							 " ORDER BY chunk_id LIMIT $5 FOR UPDATE SKIP LOCKED",
							 ccp_worker_keys ? " AND batch_key IS NULL" : ""),
					5, types, values, NULL, SPI_OK_SELECT);
	nrows = SPI_processed;
	/* room for the part of a split row too */
	ids = palloc(sizeof(Datum) * (nrows + 1));
	for (uint64 i = 0; i < nrows && total < limit; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		int			n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 2, &isnull));

		if (total + n <= limit)
		{
			ids[nids++] = Int64GetDatum(id);
			total += n;
		}
		else
		{
			split_id = id;
			split_take = limit - total;
			total = limit;
		}
	}

	if (split_id != 0)
	{
		Oid			stypes[3] = {INT8OID, INT4OID, INT8OID};
		Datum		svalues[3];
		bool		isnull;

		svalues[0] = Int64GetDatum(split_id);
		svalues[1] = Int32GetDatum(split_take);
		svalues[2] = Int64GetDatum(batch_id);
		/* the part that fits becomes a row of its own, marked below */
		ccp_worker_exec("INSERT INTO ccpurge.queue (request_id, server, operation,"
						" params, role, items, nitems, state, attempts, next_attempt_at,"
						" batch_id, enqueued_at)"
						" SELECT request_id, server, operation, params, role,"
						" items[1:$2], $2, 'sending', attempts, next_attempt_at, $3,"
						" enqueued_at FROM ccpurge.queue WHERE chunk_id = $1"
						" RETURNING chunk_id",
						3, stypes, svalues, NULL, SPI_OK_INSERT_RETURNING);
		ids[nids++] = Int64GetDatum(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc,
																1, &isnull)));
		ccp_worker_exec("UPDATE ccpurge.queue SET items = items[$2 + 1:],"
						" nitems = nitems - $2 WHERE chunk_id = $1 AND $3 <> 0",
						3, stypes, svalues, NULL, SPI_OK_UPDATE);
	}
	if (nids == 0)
		return -1;
	ccp_worker_mark_sending(batch_id, batch_key, total,
							PointerGetDatum(construct_array(ids, nids, INT8OID, 8,
															FLOAT8PASSBYVAL,
															TYPALIGN_DOUBLE)));
	return total;
}

/*
 * ccp_worker_lock_kept locks every queued row of the kept batch batch_key,
 * and sets *ids to their chunk ids (an int8[]), *nitems to their number of
 * items and *whole to whether that is every item the batch had when it was
 * claimed (a cancel of some of its requests takes rows away).  Returns
 * false when another session holds some of the rows (such a cancel in
 * progress): part of a batch must never go out under its key, nor leave
 * its generation, on its own.
 */
static bool
ccp_worker_lock_kept(const char *batch_key, Datum *ids, int *nitems,
					 bool *whole)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Datum	   *chunk_ids;
	uint64		nrows;
	bool		isnull;
	int			had = -1;

	values[0] = CStringGetTextDatum(batch_key);
	ccp_worker_exec("SELECT chunk_id, nitems, batch_nitems FROM ccpurge.queue"
					" WHERE batch_key = $1 AND state = 'queued'"
					" FOR UPDATE SKIP LOCKED",
					1, types, values, NULL, SPI_OK_SELECT);
	nrows = SPI_processed;
	chunk_ids = palloc(sizeof(Datum) * Max(nrows, 1));
	*nitems = 0;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull);

		/* every row of the batch holds the same count */
		if (i == 0 && !isnull)
			had = DatumGetInt32(d);
		chunk_ids[i] = Int64GetDatum(DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
																 1, &isnull)));
		*nitems += DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	*whole = (*nitems == had);

	/* the rows others hold were skipped, but a new query still sees them */
	ccp_worker_exec("SELECT count(*) FROM ccpurge.queue"
					" WHERE batch_key = $1 AND state = 'queued'",
					1, types, values, NULL, SPI_OK_SELECT);
	if (nrows == 0 ||
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									1, &isnull)) != (int64) nrows)
		return false;
	*ids = PointerGetDatum(construct_array(chunk_ids, (int) nrows, INT8OID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	return true;
}

/* ccp_worker_id_cmp orders request ids ascending, for qsort. */
static int
ccp_worker_id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * ccp_worker_distinct_ids sorts n request ids and removes duplicates in
 * place; returns the new count.
 */
static int
ccp_worker_distinct_ids(int64 *ids, int n)
{
	int			out = 0;

	qsort(ids, n, sizeof(int64), ccp_worker_id_cmp);
	for (int i = 0; i < n; i++)
	{
		if (out == 0 || ids[out - 1] != ids[i])
			ids[out++] = ids[i];
	}
	return out;
}

/*
 * ccp_worker_load_batch reads the items, attempts and request ids of the
 * rows claimed into batch, copying the distinct items into the batch's
 * context in the order of their rows, so that every attempt of a kept
 * batch sends the same body.
 */
static void
ccp_worker_load_batch(CcpBatch *batch)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	MemoryContext old;
	int			cap = 0;

	values[0] = Int64GetDatum(batch->batch_id);
	ccp_worker_exec("SELECT request_id, attempts, items FROM ccpurge.queue"
					" WHERE batch_id = $1 AND state = 'sending' ORDER BY chunk_id",
					1, types, values, NULL, SPI_OK_SELECT);
	batch->nitems = 0;
	batch->attempts = 0;
	for (uint64 r = 0; r < SPI_processed; r++)
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
			batch->request_id = rid;
			batch->request_ids = MemoryContextAlloc(batch->cxt,
													sizeof(int64) * SPI_processed);
		}
		batch->request_ids[batch->nrequest_ids++] = rid;
		batch->attempts = Max(batch->attempts,
							  DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		old = MemoryContextSwitchTo(batch->cxt);
		if (batch->nitems + n > cap)
		{
			cap = Max(cap * 2, batch->nitems + n);
			batch->items = batch->items ? repalloc(batch->items, sizeof(char *) * cap)
				: palloc(sizeof(char *) * cap);
		}
		for (int i = 0; i < n; i++)
			batch->items[batch->nitems++] = TextDatumGetCString(elems[i]);
		MemoryContextSwitchTo(old);
	}
	/* rows of several requests may name the same item: send it once */
	batch->nitems = ccp_items_distinct(batch->items, batch->nitems);
	batch->nrequest_ids = ccp_worker_distinct_ids(batch->request_ids,
												  batch->nrequest_ids);
}

/*
 * ccp_worker_housekeeping queues again every row a previous worker left in
 * "sending" (with its batch key: sending it again is an automatic attempt
 * of the same batch), writes the request-log rows that rolled-back
 * transactions handed over, and removes done and canceled rows past
 * ccpurge.retention (failed rows stay until they are retried or canceled).
 * Runs in a claim transaction.  Returns how many ms until the next removal
 * is due, or -1 when no finished row is waiting for one.
 */
static long
ccp_worker_housekeeping(void)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	if (!ccp_recovered)
	{
		int64		rows;
		int64		items;

		ccp_worker_exec("WITH requeued AS ("
						" UPDATE ccpurge.queue SET state = 'queued', batch_id = NULL,"
						" message = 'queued again after a worker restart'"
						" WHERE state = 'sending' RETURNING nitems)"
						" SELECT count(*), coalesce(sum(nitems), 0)::int8 FROM requeued",
						0, NULL, NULL, NULL, SPI_OK_SELECT);
		rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
		items = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2, &isnull));
		if (rows > 0)
			ereport(LOG,
					(errmsg_plural("ccpurge worker queued %lld interrupted item again",
								   "ccpurge worker queued %lld interrupted items again",
								   (unsigned long) items, (long long) items),
					 errdetail_plural("%lld queue row was left in state \"sending\" when a worker stopped or failed.",
									  "%lld queue rows were left in state \"sending\" when a worker stopped or failed.",
									  (unsigned long) rows, (long long) rows)));
		ccp_recovered = true;
	}
	/* request-log rows of rolled-back synchronous calls */
	ccp_reqlog_adopt_orphans();
	ccp_reqlog_flush();
	/* the worker is the one writer of the chain */
	(void) ccp_chain_seal();

	/*
	 * Removal runs when the oldest finished row falls due, but at most once
	 * per CCP_WORKER_PURGE_INTERVAL_MS, so a busy queue is not scanned at
	 * every claim; ccp_next_purge is 0 when no finished row was known.
	 */
	if (ccp_next_purge != 0 && now < ccp_next_purge)
		return (long) ((ccp_next_purge - now) / 1000) + 1;

	values[0] = Int32GetDatum(ccp_retention_s);
	ccp_worker_exec("DELETE FROM ccpurge.queue"
					" WHERE state IN ('done', 'canceled')"
					" AND finished_at < now() - make_interval(secs => $1)",
					1, types, values, NULL, SPI_OK_DELETE);
	ccp_worker_exec("SELECT (extract(epoch FROM (min(finished_at)"
					" + make_interval(secs => $1) - now())) * 1000)::int8"
					" FROM ccpurge.queue WHERE state IN ('done', 'canceled')",
					1, types, values, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		ccp_next_purge = 0;
		return -1;
	}
	ccp_next_purge = TimestampTzPlusMilliseconds(now,
												 Max(DatumGetInt64(d) + 1,
													 CCP_WORKER_PURGE_INTERVAL_MS));
	return (long) ((ccp_next_purge - now) / 1000) + 1;
}

/*
 * ccp_worker_unit names the unit among which the worker shares its
 * in-flight slots (see the header comment) for rows of server queued by
 * role: for now the server.  To share among vendor accounts instead, this
 * names the account; the claim query already gives every server's oldest
 * groups, so an account's are among them.  The result lives as long as
 * server.
 */
static const char *
ccp_worker_unit(const char *server, Oid role)
{
	return server;
}

/*
 * ccp_worker_unit_inflight counts the batches of unit that are claimed or
 * in flight.
 */
static int
ccp_worker_unit_inflight(const char *unit)
{
	List	   *lists[2] = {ccp_inflight, ccp_started};
	int			n = 0;

	for (int i = 0; i < lengthof(lists); i++)
	{
		ListCell   *lc;

		foreach(lc, lists[i])
		{
			if (strcmp(((CcpBatch *) lfirst(lc))->unit, unit) == 0)
				n++;
		}
	}
	return n;
}

/*
 * ccp_worker_claim_units reads the due queued rows as claim groups, at most
 * CCP_WORKER_MAX_INFLIGHT per server (a claim makes no more batches of
 * one), and sorts them into units.  Returns a list of CcpClaimUnit *, the
 * unit with the oldest due row first, each with its groups oldest first,
 * allocated in the current memory context.  Needs the claim transaction.
 */
static List *
ccp_worker_claim_units(void)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(CCP_WORKER_MAX_INFLIGHT)};
	SPITupleTable *rows;
	uint64		nrows;
	List	   *units = NIL;

	ccp_worker_exec(psprintf("SELECT server, operation, params, role, batch_key, nitems,"
							 " (extract(epoch FROM (now() - enqueued_at)) * 1000)::int8"
							 " FROM (SELECT server, operation, params::text, role::oid,"
							 " %s AS batch_key, sum(nitems)::int4 AS nitems,"
							 " min(enqueued_at) AS enqueued_at, min(chunk_id) AS first,"
							 " row_number() OVER (PARTITION BY server ORDER BY min(chunk_id)) AS rank"
							 " FROM ccpurge.queue"
							 " WHERE state = 'queued' AND next_attempt_at <= now()"
							 " GROUP BY 1, 2, 3, 4, 5) AS g"
							 " WHERE rank <= $1 ORDER BY first",
							 ccp_worker_keys ? "batch_key" : "NULL::text"),
					1, types, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = rows->vals[r];
		CcpClaimGroup *group = palloc0(sizeof(CcpClaimGroup));
		CcpClaimUnit *unit = NULL;
		const char *name;
		bool		isnull;
		ListCell   *lc;

		group->server = SPI_getvalue(tup, rows->tupdesc, 1);
		group->operation = SPI_getvalue(tup, rows->tupdesc, 2);
		group->params = SPI_getvalue(tup, rows->tupdesc, 3);
		group->role = DatumGetObjectId(SPI_getbinval(tup, rows->tupdesc, 4, &isnull));
		group->batch_key = SPI_getvalue(tup, rows->tupdesc, 5);
		group->queued = DatumGetInt32(SPI_getbinval(tup, rows->tupdesc, 6, &isnull));
		group->age_ms = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 7, &isnull));

		name = ccp_worker_unit(group->server, group->role);
		foreach(lc, units)
		{
			if (strcmp(((CcpClaimUnit *) lfirst(lc))->name, name) == 0)
			{
				unit = lfirst(lc);
				break;
			}
		}
		if (unit == NULL)
		{
			unit = palloc0(sizeof(CcpClaimUnit));
			unit->name = name;
			unit->inflight = ccp_worker_unit_inflight(name);
			units = lappend(units, unit);
		}
		unit->groups = lappend(unit->groups, group);
	}
	return units;
}

/*
 * ccp_worker_may_claim tells whether unit may take another in-flight slot
 * now: any free one when it has nothing in flight, otherwise only while
 * more than CCP_WORKER_RESERVED are free and it holds fewer than share.
 */
static bool
ccp_worker_may_claim(const CcpClaimUnit *unit, int share)
{
	int			free = CCP_WORKER_MAX_INFLIGHT - list_length(ccp_inflight) -
		list_length(ccp_started);

	if (free <= 0)
		return false;
	if (unit->inflight == 0)
		return true;
	return free > CCP_WORKER_RESERVED && unit->inflight < share;
}

/*
 * ccp_worker_fill_batch claims one batch of group's rows into batch, whose
 * context and operation are set: it resolves the server and parameters,
 * takes a rate-limit ticket, marks the rows "sending" and loads them.
 * Returns false when the group gives no batch now (its rows failed for
 * good, are held by another session, linger for a fuller batch, or wait
 * for the rate limit), lowering *wake to when it is worth looking again;
 * the caller then frees batch and gives back its ticket, if any.
 */
static bool
ccp_worker_fill_batch(CcpBatch *batch, CcpClaimGroup *group, long *wake)
{
	char	   *error = NULL;
	Datum		kept_ids = (Datum) 0;
	int			limit;
	int			claimed = 0;
	MemoryContext old;

	if (!ccp_worker_resolve(batch, group->server, group->role,
							DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															   CStringGetDatum(group->params))),
							&error))
	{
		ccp_worker_fail_key(group->server, group->operation, group->params,
							group->role, error);
		return false;
	}
	limit = Min(batch->srv->batch_size, batch->def->max_batch);

	if (group->batch_key != NULL)
	{
		bool		whole;

		/* a kept batch: all its rows, or none */
		if (!ccp_worker_lock_kept(group->batch_key, &kept_ids, &claimed, &whole))
		{
			/* nobody wakes the worker when the other session ends */
			ccp_worker_wake_in(wake, CCP_WORKER_RELOCK_MS);
			return false;
		}
		if (!whole || claimed > limit)
		{
			Oid			types[1] = {INT8ARRAYOID};

			/*
			 * Items were taken away, or it no longer fits the server's
			 * batch size: the rest is not the batch sent under the key, so
			 * it starts a new generation.
			 */
			ccp_worker_exec("UPDATE ccpurge.queue SET batch_key = NULL,"
							" batch_nitems = NULL WHERE chunk_id = ANY($1)",
							1, types, &kept_ids, NULL, SPI_OK_UPDATE);
			group->batch_key = NULL;
		}
	}
	else if (group->queued < limit && group->age_ms < ccp_batch_linger_ms)
	{
		/* linger for a fuller batch */
		ccp_worker_wake_in(wake, ccp_batch_linger_ms - group->age_ms);
		return false;
	}

	batch->ticket = ccp_rate_acquire(batch->srv, false);
	if (batch->ticket == -1)
	{
		ccp_worker_wake_in(wake, Max(ccp_rate_next_ms(batch->srv), CCP_WORKER_POLL_MS));
		return false;
	}

	batch->batch_id = ++ccp_next_batch_id;
	old = MemoryContextSwitchTo(batch->cxt);
	batch->batch_key = group->batch_key ? pstrdup(group->batch_key) : ccp_random_key();
	MemoryContextSwitchTo(old);
	if (group->batch_key != NULL)
		ccp_worker_mark_sending(batch->batch_id, batch->batch_key, claimed,
								kept_ids);
	else
	{
		claimed = ccp_worker_claim_rows(batch->batch_id, batch->batch_key,
										group->server, group->operation,
										group->params, group->role, limit);
		if (claimed < 0)
		{
			/*
			 * Due rows exist, but another session holds them (a cancel or
			 * retry in progress, or a user's FOR UPDATE): come back soon,
			 * as nobody will wake the worker when the lock goes.
			 */
			ccp_worker_wake_in(wake, CCP_WORKER_RELOCK_MS);
			return false;
		}
	}
	ccp_worker_load_batch(batch);
	/* the exchange holds the ticket from here on */
	old = MemoryContextSwitchTo(batch->cxt);
	ccp_exchange_init(&batch->x, batch->srv, batch->def, batch->params,
					  batch->items, batch->nitems, batch->batch_key,
					  CCP_ORIGIN_WORKER, batch->request_id, false);
	MemoryContextSwitchTo(old);
	batch->x.ticket = batch->ticket;
	batch->ticket = -1;
	/* every queue request the batch carries goes into its log rows */
	batch->x.request_ids = batch->request_ids;
	batch->x.nrequest_ids = batch->nrequest_ids;

	group->queued -= claimed;
	if (group->batch_key != NULL || group->queued <= 0)
		group->exhausted = true;
	return true;
}

/*
 * ccp_worker_claim_unit claims one batch for unit, from its oldest group
 * that gives one, and adds it to ccp_started.  Returns false when no group
 * of the unit gives a batch now.  Needs the claim transaction.
 */
static bool
ccp_worker_claim_unit(CcpClaimUnit *unit, long *wake)
{
	ListCell   *lc;

	foreach(lc, unit->groups)
	{
		CcpClaimGroup *group = lfirst(lc);
		const CcpOpDef *def;
		MemoryContext bcxt;
		MemoryContext old;
		CcpBatch   *batch;

		if (group->exhausted)
			continue;
		def = ccp_op_by_name(group->operation, NULL);
		if (def == NULL)
		{
			ccp_worker_fail_key(group->server, group->operation, group->params,
								group->role, "unknown operation");
			group->exhausted = true;
			continue;
		}

		bcxt = AllocSetContextCreate(TopMemoryContext, "ccpurge batch",
									 ALLOCSET_SMALL_SIZES);
		batch = MemoryContextAllocZero(bcxt, sizeof(CcpBatch));
		batch->cxt = bcxt;
		batch->def = def;
		batch->ticket = -1;
		if (!ccp_worker_fill_batch(batch, group, wake))
		{
			if (batch->ticket != -1)
				ccp_rate_release(batch->srv, batch->ticket);
			MemoryContextDelete(bcxt);
			group->exhausted = true;
			continue;
		}
		batch->unit = MemoryContextStrdup(bcxt, unit->name);
		unit->inflight++;
		old = MemoryContextSwitchTo(TopMemoryContext);
		ccp_started = lappend(ccp_started, batch);
		MemoryContextSwitchTo(old);
		return true;
	}
	return false;
}

/*
 * ccp_worker_claim claims as many batches as the in-flight slots, their
 * fair sharing among units and the servers' limits allow, in one
 * transaction: in rounds of one batch per unit (see the header comment).
 * Returns how many ms until something queued becomes due (lingering batch,
 * backoff, rate limit), or -1 when nothing is waiting.
 */
static long
ccp_worker_claim(void)
{
	long		wake = -1;
	List	   *units;
	int			share;
	bool		progress;

	ccp_worker_begin("ccpurge worker: claiming batches");
	if (!ccp_worker_queue_exists())
	{
		ccp_worker_end();
		return -1;
	}
	wake = ccp_worker_housekeeping();
	/* requests are logged between transactions, under the current key */
	ccp_digest_refresh();

	ccp_worker_keys = ccp_queue_keeps_batch_keys();
	units = ccp_worker_claim_units();
	share = Max(1, (CCP_WORKER_MAX_INFLIGHT - CCP_WORKER_RESERVED) /
				Max(list_length(units), 1));
	do
	{
		ListCell   *lc;

		progress = false;
		foreach(lc, units)
		{
			CcpClaimUnit *unit = lfirst(lc);

			if (ccp_worker_may_claim(unit, share) &&
				ccp_worker_claim_unit(unit, &wake))
				progress = true;
		}
	} while (progress);

	/* the next backoff that expires */
	ccp_worker_exec("SELECT (extract(epoch FROM (min(next_attempt_at) - now())) * 1000)::int8"
					" FROM ccpurge.queue WHERE state = 'queued' AND next_attempt_at > now()",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			ccp_worker_wake_in(&wake, (long) Max(DatumGetInt64(d), 1));
	}
	ccp_worker_end();
	return wake;
}

/*
 * ccp_worker_finish_batch moves a batch whose exchange is over (or could
 * not start) to the list of batches to record; it holds no ticket.
 */
static void
ccp_worker_finish_batch(CcpBatch *batch)
{
	MemoryContext old;

	Assert(batch->x.ticket == -1);
	old = MemoryContextSwitchTo(TopMemoryContext);
	ccp_finished = lappend(ccp_finished, batch);
	MemoryContextSwitchTo(old);
}

/*
 * ccp_worker_start drives a claimed batch's exchange to its send step and
 * starts the request with curl multi; a batch that cannot be sent (no
 * ticket or token, see ccp_exchange_prepare) goes to be recorded.  No
 * transaction is open; a token request is logged when the batch is
 * recorded.  An error here (a URL no longer allowed, a full token cache, a
 * vendor build failure) becomes this batch's outcome instead of stopping
 * every other request in flight.
 */
static void
ccp_worker_start(CcpBatch *batch)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	volatile bool started = false;

	PG_TRY();
	{
		if (ccp_exchange_prepare(&batch->x) == CCP_STEP_SEND)
		{
			(void) ccp_http_start(&batch->srv->http, &batch->x.req, batch);
			started = true;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* no transaction to abort: release what the error may have held */
		LWLockReleaseAll();
		ConditionVariableCancelSleep();
		ccp_exchange_abandon(&batch->x);
		MemoryContextSwitchTo(batch->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ccp_outcome_transient(&batch->x.out, 0,
							  psprintf("could not send the request: %s",
									   edata->message));
	}
	PG_END_TRY();

	if (started)
	{
		MemoryContextSwitchTo(TopMemoryContext);
		ccp_inflight = lappend(ccp_inflight, batch);
	}
	else
		ccp_worker_finish_batch(batch);
	MemoryContextSwitchTo(old);
}

/*
 * ccp_worker_complete hands the answer of a finished request to its
 * exchange, which logs it and decides: a refused token is refreshed and
 * the batch started again, anything else is queued for recording.
 */
static void
ccp_worker_complete(CcpHttpCall *call)
{
	CcpBatch   *batch = ccp_http_call_arg(call);
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	CcpHttpResult res;
	CcpStep		step;

	ccp_inflight = list_delete_ptr(ccp_inflight, batch);
	ccp_http_finish(call, &res);
	step = ccp_exchange_answer(&batch->x, &res);
	MemoryContextSwitchTo(old);

	if (step == CCP_STEP_AGAIN)
		ccp_worker_start(batch);
	else
		ccp_worker_finish_batch(batch);
}

/* ccp_worker_free_finished frees the batches that have been recorded. */
static void
ccp_worker_free_finished(void)
{
	ListCell   *lc;

	foreach(lc, ccp_finished)
		MemoryContextDelete(((CcpBatch *) lfirst(lc))->cxt);
	list_free(ccp_finished);
	ccp_finished = NIL;
}

/*
 * ccp_worker_failure_reason says in a sentence why rows failed, for the
 * log line of ccp_worker_report_failure.
 */
static const char *
ccp_worker_failure_reason(CcpFailure why)
{
	switch (why)
	{
		case CCP_FAILED_REFUSED:
			return "the vendor refused the request for good.";
		case CCP_FAILED_RETRIES_EXHAUSTED:
			return psprintf("the request failed transiently as often as ccpurge.max_attempts (%d) allows.",
							ccp_max_attempts);
		case CCP_FAILED_ITEMS_REFUSED:
			return "the receiver answered per item and refused these items.";
		case CCP_FAILED_SERVER_UNUSABLE:
			return "the server or the requesting role's user mapping for it cannot be used.";
		case CCP_FAILED_UNKNOWN_OPERATION:
			return "this version of ccpurge does not know the operation.";
	}
	return "unknown reason.";		/* keep compiler quiet */
}

/*
 * ccp_worker_report_failure reports rows that have just failed for good:
 * one server log line and one NOTIFY ccpurge_failed, whose payload is a
 * JSON object with the same facts.  rows holds (request_id int8, items
 * int8) per request whose rows failed, ordered by request id; nothing is
 * reported when there is none.  Any role can LISTEN, so both say only
 * ccpurge's own words: request ids, counts, server, operation, the code of
 * why and the HTTP status (0: none), never an item or the vendor's text.
 * batch_id, unique per failure, keeps the payload unique, as NOTIFY folds
 * equal payloads of one transaction into one.  The payload names at most
 * CCP_NOTIFY_MAX_IDS request ids and counts them all.  Runs in the
 * transaction that failed the rows, so the notification goes out when it
 * commits.
 */
static void
ccp_worker_report_failure(int64 batch_id, const char *server,
						  const char *operation, CcpFailure why,
						  int http_status, SPITupleTable *rows, uint64 nrows)
{
	const char *code = ccp_failure_codes[why];
	const char *reason = ccp_worker_failure_reason(why);
	StringInfoData ids;
	StringInfoData payload;
	int64		items = 0;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	if (nrows == 0)
		return;
	/* an unknown operation may be any text: keep the payload in bounds */
	operation = ccp_clip(pstrdup(operation), NAMEDATALEN - 1);

	initStringInfo(&ids);
	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"batch_id\": " INT64_FORMAT ", \"request_ids\": [",
					 batch_id);
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc,
													 1, &isnull));

		items += DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc,
											 2, &isnull));
		appendStringInfo(&ids, "%s" INT64_FORMAT, i > 0 ? "," : "", id);
		if (i < CCP_NOTIFY_MAX_IDS)
			appendStringInfo(&payload, "%s" INT64_FORMAT, i > 0 ? "," : "", id);
	}
	appendStringInfo(&payload, "], \"request_count\": " UINT64_FORMAT ", \"server\": ",
					 nrows);
	escape_json(&payload, server);
	appendStringInfoString(&payload, ", \"operation\": ");
	escape_json(&payload, operation);
	appendStringInfo(&payload, ", \"items\": " INT64_FORMAT ", \"code\": ", items);
	escape_json(&payload, code);
	if (http_status > 0)
		appendStringInfo(&payload, ", \"http_status\": %d}", http_status);
	else
		appendStringInfoString(&payload, ", \"http_status\": null}");

	ereport(LOG,
			(nrows == 1 ?
			 errmsg_plural("ccpurge request %s failed: %lld item on server \"%s\", operation \"%s\"",
						   "ccpurge request %s failed: %lld items on server \"%s\", operation \"%s\"",
						   (unsigned long) items,
						   ids.data, (long long) items, server, operation) :
			 errmsg_plural("ccpurge requests %s failed: %lld item on server \"%s\", operation \"%s\"",
						   "ccpurge requests %s failed: %lld items on server \"%s\", operation \"%s\"",
						   (unsigned long) items,
						   ids.data, (long long) items, server, operation),
			 http_status > 0 ?
			 errdetail("Code %s (HTTP status %d): %s", code, http_status, reason) :
			 errdetail("Code %s: %s", code, reason),
			 errhint("The message of these rows in ccpurge_status gives the full reason.")));

	values[0] = CStringGetTextDatum(payload.data);
	ccp_worker_exec("SELECT pg_catalog.pg_notify('ccpurge_failed', $1)",
					1, types, values, NULL, SPI_OK_SELECT);
}

/*
 * ccp_worker_report_batch reports the rows of a recorded batch that have
 * just failed for good, for the reason why.  Runs in the record
 * transaction, after the rows were marked.
 */
static void
ccp_worker_report_batch(const CcpBatch *batch, CcpFailure why)
{
	Oid			types[2] = {INT8ARRAYOID, INT8OID};
	Datum		values[2];
	Datum	   *ids = palloc(sizeof(Datum) * Max(batch->nrequest_ids, 1));

	for (int i = 0; i < batch->nrequest_ids; i++)
		ids[i] = Int64GetDatum(batch->request_ids[i]);
	values[0] = PointerGetDatum(construct_array(ids, batch->nrequest_ids, INT8OID,
												8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = Int64GetDatum(batch->batch_id);
	/* the batch's request ids lead to its rows through an index */
	ccp_worker_exec("SELECT request_id, sum(nitems)::int8 FROM ccpurge.queue"
					" WHERE request_id = ANY($1) AND batch_id = $2 AND state = 'failed'"
					" GROUP BY request_id ORDER BY request_id",
					2, types, values, NULL, SPI_OK_SELECT);
	ccp_worker_report_failure(batch->batch_id, batch->srv->servername,
							  batch->def->name, why, batch->x.out.http_status,
							  SPI_tuptable, SPI_processed);
}

/* An item the receiver refused, and its message. */
typedef struct CcpRefused
{
	const char *item;
	const char *message;
} CcpRefused;

/* ccp_worker_refused_cmp orders CcpRefused by item, for qsort and bsearch. */
static int
ccp_worker_refused_cmp(const void *a, const void *b)
{
	return strcmp(((const CcpRefused *) a)->item, ((const CcpRefused *) b)->item);
}

/*
 * ccp_worker_fail_items handles a batch the receiver answered per item:
 * its rows were just marked done, so the items it refused are moved out of
 * them into failed rows of the same request (split off, or the whole row
 * when every item of it was refused), with the first refused item's
 * message.  Runs in the record transaction.
 */
static void
ccp_worker_fail_items(const CcpBatch *batch)
{
	const CcpOutcome *out = &batch->x.out;
	CcpRefused *failed = palloc(sizeof(CcpRefused) * Max(batch->nitems, 1));
	int			nfailed = 0;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	SPITupleTable *rows;
	uint64		nrows;

	for (int i = 0; i < batch->nitems; i++)
	{
		if (!out->item_ok[i])
		{
			failed[nfailed].item = batch->items[i];
			failed[nfailed].message = out->item_message[i] ?
				out->item_message[i] : out->message;
			nfailed++;
		}
	}
	if (nfailed == 0)
		return;
	qsort(failed, nfailed, sizeof(CcpRefused), ccp_worker_refused_cmp);

	values[0] = Int64GetDatum(batch->batch_id);
	ccp_worker_exec("SELECT chunk_id, items FROM ccpurge.queue"
					" WHERE batch_id = $1 AND state = 'done' ORDER BY chunk_id",
					1, types, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 r = 0; r < nrows; r++)
	{
		bool		isnull;
		int64		chunk_id = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		Datum	   *keep;
		Datum	   *lost;
		int			nkeep = 0;
		int			nlost = 0;
		const char *message = NULL;
		Oid			utypes[4] = {INT8OID, TEXTARRAYOID, INT4OID, TEXTOID};
		Datum		uvalues[4];

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		keep = palloc(sizeof(Datum) * Max(n, 1));
		lost = palloc(sizeof(Datum) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			CcpRefused key = {TextDatumGetCString(elems[i]), NULL};
			CcpRefused *found = bsearch(&key, failed, nfailed, sizeof(CcpRefused),
										ccp_worker_refused_cmp);

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
			Oid			ftypes[2] = {INT8OID, TEXTOID};
			Datum		fvalues[2] = {uvalues[0], uvalues[3]};

			ccp_worker_exec("UPDATE ccpurge.queue SET state = 'failed', message = $2"
							" WHERE chunk_id = $1",
							2, ftypes, fvalues, NULL, SPI_OK_UPDATE);
		}
		else
		{
			uvalues[1] = PointerGetDatum(construct_array(lost, nlost, TEXTOID, -1, false, TYPALIGN_INT));
			uvalues[2] = Int32GetDatum(nlost);
			ccp_worker_exec("INSERT INTO ccpurge.queue (request_id, server, operation,"
							" params, role, items, nitems, state, attempts, next_attempt_at,"
							" batch_id, http_status, code, message, enqueued_at, finished_at)"
							" SELECT request_id, server, operation, params, role, $2, $3,"
							" 'failed', attempts, next_attempt_at, batch_id, http_status,"
							" code, $4, enqueued_at, finished_at"
							" FROM ccpurge.queue WHERE chunk_id = $1",
							4, utypes, uvalues, NULL, SPI_OK_INSERT);
			uvalues[1] = PointerGetDatum(construct_array(keep, nkeep, TEXTOID, -1, false, TYPALIGN_INT));
			uvalues[2] = Int32GetDatum(nkeep);
			ccp_worker_exec("UPDATE ccpurge.queue SET items = $2, nitems = $3"
							" WHERE chunk_id = $1",
							3, utypes, uvalues, NULL, SPI_OK_UPDATE);
		}
	}
	ccp_worker_report_batch(batch, CCP_FAILED_ITEMS_REFUSED);
}

/*
 * ccp_worker_record writes the outcome of every finished batch and the
 * pending request log in one transaction, then frees the batches.
 */
static void
ccp_worker_record(void)
{
	ListCell   *lc;

	ccp_worker_begin("ccpurge worker: recording results");
	if (!ccp_worker_queue_exists())
	{
		/* dropped while we were sending: nothing to record into */
		ccp_reqlog_discard();
		ccp_worker_end();
		ccp_worker_free_finished();
		return;
	}
	foreach(lc, ccp_finished)
	{
		CcpBatch   *batch = lfirst(lc);
		CcpOutcome *out = &batch->x.out;
		Oid			types[6] = {INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		const char *state;
		int64		delay_ms = 0;

		switch (ccp_exchange_settle(batch->srv, out, batch->attempts + 1,
									&delay_ms))
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

		values[0] = Int64GetDatum(batch->batch_id);
		values[1] = CStringGetTextDatum(state);
		values[2] = Int32GetDatum(out->http_status);
		nulls[2] = (out->http_status == 0) ? 'n' : ' ';
		values[3] = out->code ? CStringGetTextDatum(out->code) : (Datum) 0;
		nulls[3] = out->code ? ' ' : 'n';
		values[4] = CStringGetTextDatum(out->message);
		values[5] = Int64GetDatum(delay_ms);
		ccp_worker_exec("UPDATE ccpurge.queue SET state = $2, attempts = attempts + 1,"
						" http_status = $3, code = $4, message = $5,"
						" batch_id = CASE WHEN $2 = 'queued' THEN NULL ELSE batch_id END,"
						" next_attempt_at = now() + make_interval(secs => $6 / 1000.0),"
						" finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END"
						" WHERE batch_id = $1 AND state = 'sending'",
						6, types, values, nulls, SPI_OK_UPDATE);
		if (out->ok && out->item_ok != NULL)
			ccp_worker_fail_items(batch);
		else if (strcmp(state, "failed") == 0)
			ccp_worker_report_batch(batch, out->retry == CCP_FINAL ?
									CCP_FAILED_REFUSED :
									CCP_FAILED_RETRIES_EXHAUSTED);
	}
	ccp_reqlog_flush();
	ccp_worker_end();
	ccp_worker_free_finished();
}

/*
 * ccp_worker_drop_batches abandons every batch, started or not, after an
 * error: transfers are aborted and tickets given back.  Their rows stay
 * "sending" until the next claim queues them again.
 */
static void
ccp_worker_drop_batches(void)
{
	List	   *all = list_concat(list_concat(list_copy(ccp_inflight), ccp_started),
								  ccp_finished);
	ListCell   *lc;

	ccp_http_abort_all();
	foreach(lc, all)
	{
		CcpBatch   *batch = lfirst(lc);

		ccp_exchange_abandon(&batch->x);
		MemoryContextDelete(batch->cxt);
	}
	ccp_rate_release_all();
	list_free(all);
	list_free(ccp_inflight);
	list_free(ccp_started);
	list_free(ccp_finished);
	ccp_inflight = NIL;
	ccp_started = NIL;
	ccp_finished = NIL;
}

/*
 * ccpurge_worker_main is the worker's entry point: connect, publish the
 * latch, then claim, send and record until told to stop.
 */
void
ccpurge_worker_main(Datum main_arg)
{
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext loop_cxt;
	volatile bool need_claim = true;
	volatile long wake = -1;
	volatile TimestampTz wake_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* after a DROP DATABASE of our database, do not come back at once */
	for (;;)
	{
		TimestampTz hold;

		LWLockAcquire(ccp_shared->worker_lock, LW_SHARED);
		hold = ccp_shared->worker_hold_until;
		LWLockRelease(ccp_shared->worker_lock);
		if (hold <= GetCurrentTimestamp())
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	BackgroundWorkerInitializeConnection(ccp_database_name, NULL, 0);
	pgstat_report_appname("ccpurge worker");
	/*
	 * The worker's commits carry the request log, which is evidence: they
	 * are as durable as the server's synchronous_commit makes them, never
	 * less.
	 */
	/* the worker is a superuser: resolve nothing through user schemas */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	ccp_shared->worker_pid = MyProcPid;
	ccp_shared->worker_latch = MyLatch;
	ccp_shared->worker_dbid = MyDatabaseId;
	LWLockRelease(ccp_shared->worker_lock);
	before_shmem_exit(ccp_worker_detach, (Datum) 0);

	ccp_worker_owner = ResourceOwnerCreate(NULL, "ccpurge worker");
	CurrentResourceOwner = ccp_worker_owner;
	ccp_next_batch_id = GetCurrentTimestamp();
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "ccpurge worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("ccpurge worker started in database \"%s\"", ccp_database_name)));

	/*
	 * An error (the extension dropped under a claim, a catalog hiccup) ends
	 * up here: report it, abort the transaction and every request in
	 * flight, and go on; the rows of those requests are queued again.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		/* the error's context callbacks belong to frames that are gone */
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		MemoryContextSwitchTo(TopMemoryContext);
		CurrentResourceOwner = ccp_worker_owner;
		ccp_worker_drop_batches();
		/* rows of requests that went out are written at the next claim */
		ccp_reqlog_orphan_pending();
		ccp_recovered = false;
		need_claim = true;
		wake = -1;
		RESUME_INTERRUPTS();
		/* do not spin on an error that repeats, even if the latch is set */
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			need_claim = true;
			/* a changed ccpurge.retention changes when removal is due */
			ccp_next_purge = 0;
		}

		MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);

		if (ccp_finished != NIL)
		{
			ccp_worker_record();
			need_claim = true;
		}
		if (MyLatch->is_set)
		{
			ResetLatch(MyLatch);
			need_claim = true;
		}
		if (wake >= 0 && GetCurrentTimestamp() >= wake_at)
			need_claim = true;

		if (need_claim &&
			list_length(ccp_inflight) < CCP_WORKER_MAX_INFLIGHT)
		{
			need_claim = false;
			wake = ccp_worker_claim();
			wake_at = (wake >= 0) ? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wake) : 0;
			while (ccp_started != NIL)
			{
				CcpBatch   *batch = linitial(ccp_started);

				ccp_started = list_delete_first(ccp_started);
				ccp_worker_start(batch);
			}
		}

		if (ccp_inflight != NIL)
		{
			long		slice = CCP_WORKER_POLL_MS;
			CcpHttpCall *call;

			if (wake >= 0)
				slice = Min(slice, Max(wake, 1));
			call = ccp_http_next_done(slice);
			while (call != NULL)
			{
				ccp_worker_complete(call);
				call = ccp_http_next_done(0);
			}
			MemoryContextSwitchTo(old);
			continue;
		}
		MemoryContextSwitchTo(old);
		if (ccp_finished != NIL || ccp_started != NIL)
			continue;

		if (wake >= 0)
		{
			long		left = (long) ((wake_at - GetCurrentTimestamp()) / 1000);

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(left, 1), PG_WAIT_EXTENSION);
		}
		else
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH,
							 -1L, PG_WAIT_EXTENSION);
		need_claim = true;
		ResetLatch(MyLatch);
	}
}
