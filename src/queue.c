/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The durable queue's enqueue side: ccpurge_enqueue, the
 *	  ccpurge_erase_on_delete trigger, ccpurge_wait, ccpurge_retry and
 *	  ccpurge_cancel, and the transaction callbacks that tie them to the
 *	  enqueuing transaction (design section 4).
 *
 * Every item is validated in the enqueuing transaction exactly as the
 * synchronous functions validate it, so bad input fails there and never in
 * the worker.  Rows of ccpurge.queue hold up to one vendor batch of items;
 * they are written with the table owner's rights, as callers have no
 * privilege on the table.
 *
 * ccpurge_enqueue inserts at once.  The trigger, which must cost little
 * more than the DELETE that fires it, only appends each old value to a
 * backend-local buffer in TopTransactionContext; the buffer is written to
 * the queue at pre-commit, one request per (server, operation, params,
 * role).  The buffer remembers the subtransaction nest level of what it
 * holds, so that ROLLBACK TO SAVEPOINT forgets the items queued since the
 * savepoint; on abort the whole buffer goes with TopTransactionContext.
 * At commit, a transaction that queued anything sets the worker's latch:
 * that is how the worker wakes without polling.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(ccpurge_enqueue);
PG_FUNCTION_INFO_V1(ccpurge_erase_on_delete);
PG_FUNCTION_INFO_V1(ccpurge_wait);
PG_FUNCTION_INFO_V1(ccpurge_retry);
PG_FUNCTION_INFO_V1(ccpurge_cancel);

/* Sizes of the trigger buffer's blocks: the first, and the largest. */
#define CCP_BLOCK_MIN		(8 * 1024)
#define CCP_BLOCK_MAX		(4 * 1024 * 1024)

/* How often ccpurge_wait looks at the queue, in milliseconds. */
#define CCP_WAIT_POLL_MS	100

/* The queue table, its request id sequence and their owner. */
typedef struct CcpQueueRel
{
	Oid			relid;
	Oid			seqid;
	Oid			owner;
	bool		batch_keys;		/* it has batch_key and batch_nitems */
} CcpQueueRel;

/*
 * A block of buffered items.  Each item is stored as a text datum (4-byte
 * header, no terminator counted in its length) followed by a NUL, so that
 * it serves both as a C string for validation and as an array element at
 * flush time; items start at int-aligned offsets.
 */
typedef struct CcpItemBlock
{
	struct CcpItemBlock *next;
	Size		used;
	Size		size;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CcpItemBlock;

/*
 * The items one key received at one subtransaction nest level.  A key's
 * segments have strictly increasing levels: committing a subtransaction
 * merges its segment into the parent level's, aborting one drops it.
 */
typedef struct CcpSegment
{
	int			level;
	int64		nitems;
	CcpItemBlock *head;
	CcpItemBlock *tail;
} CcpSegment;

/* Items waiting for commit, for one (server, operation, params, role). */
typedef struct CcpPending
{
	char	   *server;
	const CcpOpDef *def;
	char	   *params;			/* normalised params as JSON text */
	Oid			role;
	int			batch;			/* items per queue row */
	List	   *segments;		/* of CcpSegment * */
} CcpPending;

/*
 * What a trigger needs per row, worked out once per statement and kept in
 * fn_extra (allocated in fn_mcxt).  pending is valid while generation
 * equals ccp_pending_generation.
 */
typedef struct CcpTrigCache
{
	Oid			relid;
	Oid			userid;
	AttrNumber	attnum;
	char		kind;			/* 't' text/varchar, 'b' bpchar, 'o' other */
	FmgrInfo	outfunc;		/* output function, for kind 'o' */
	const CcpOpDef *def;
	char	   *server;
	char	   *params;
	int			batch;
	uint64		generation;
	CcpPending *pending;
} CcpTrigCache;

/* The trigger buffer, in TopTransactionContext; NIL when empty. */
static List *ccp_pending = NIL;

/* Bumped whenever ccp_pending is forgotten, to invalidate CcpTrigCache. */
static uint64 ccp_pending_generation = 1;

/* This transaction queued or requeued work: wake the worker at commit. */
static bool ccp_queue_touched = false;

/* INSERT of one queue row, prepared once per backend. */
static SPIPlanPtr ccp_insert_plan = NULL;


/* ----------
 * Helpers shared by the SQL functions
 * ----------
 */

/*
 * ccp_queue_lookup finds the queue table, its request id sequence and
 * their owner.  When they do not exist it returns false if missing_ok, and
 * raises an ERROR otherwise.
 */
static bool
ccp_queue_lookup(CcpQueueRel *rel, bool missing_ok)
{
	Oid			nsp = get_namespace_oid("ccpurge", true);
	HeapTuple	tp;

	rel->relid = OidIsValid(nsp) ? get_relname_relid("queue", nsp) : InvalidOid;
	rel->seqid = OidIsValid(nsp) ? get_relname_relid("request_id_seq", nsp) : InvalidOid;
	if (!OidIsValid(rel->relid) || !OidIsValid(rel->seqid))
	{
		if (missing_ok)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the ccpurge queue does not exist in this database"),
				 errhint("Create the extension with CREATE EXTENSION ccpurge.")));
	}
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(rel->relid));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", rel->relid);
	rel->owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	rel->batch_keys = get_attnum(rel->relid, "batch_key") != InvalidAttrNumber;
	return true;
}

/*
 * ccp_queue_keeps_batch_keys tells whether ccpurge.queue exists and has
 * the columns batch_key and batch_nitems, which version 1.2 added: until
 * ALTER EXTENSION ccpurge UPDATE, this library runs with the queue of 1.0
 * or 1.1, where batches keep no key across attempts.  Needs a transaction.
 */
bool
ccp_queue_keeps_batch_keys(void)
{
	CcpQueueRel rel;

	return ccp_queue_lookup(&rel, true) && rel.batch_keys;
}

/*
 * ccp_queue_spi runs one statement as the queue's owner and checks that
 * SPI answered expect.  The caller must be connected to SPI.  A new
 * snapshot is taken for the statement (READ COMMITTED sees fresh data).
 */
static void
ccp_queue_spi(const CcpQueueRel *rel, const char *sql, int nargs,
			  Oid *types, Datum *values, int expect)
{
	CcpOwnerState owner;
	volatile int ret;

	ccp_owner_begin(rel->owner, &owner);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	}
	PG_FINALLY();
	{
		ccp_owner_restore_user(&owner);
	}
	PG_END_TRY();
	ccp_owner_end(&owner);
	if (ret != expect)
		elog(ERROR, "unexpected SPI result %d for a ccpurge queue statement", ret);
}

/*
 * ccp_queue_op returns the operation called name and its vendor.  An
 * unknown name is an ERROR whose hint lists the valid operations.
 */
static const CcpOpDef *
ccp_queue_op(const char *name, const CcpVendor **vendor)
{
	const CcpOpDef *def = ccp_op_by_name(name, vendor);

	if (def == NULL)
	{
		StringInfoData ops;

		initStringInfo(&ops);
		for (int v = 0; v < ccp_vendor_count(); v++)
		{
			const CcpVendor *each = ccp_vendor_at(v);

			for (int o = 0; o < each->nops; o++)
				appendStringInfo(&ops, "%s%s", ops.len > 0 ? ", " : "",
								 each->ops[o].name);
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown ccpurge operation \"%s\"", name),
				 errhint("Valid operations are: %s.", ops.data)));
	}
	return def;
}

/* ccp_queue_jsonb parses JSON text into a jsonb datum. */
static Datum
ccp_queue_jsonb(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * ccp_queue_insert stores the distinct, validated text datums items under
 * request_id, in rows of at most batch items.
 * The caller must be connected to SPI and have an active snapshot.  Each
 * row is one execution of a saved plan, which costs far less than slicing
 * one big array in SQL (that is quadratic in the number of items); the
 * plan is analysed again by the plan cache if the extension is recreated.
 */
static void
ccp_queue_insert(const CcpQueueRel *rel, const char *server,
				 const char *operation, Datum params, Oid role,
				 Datum *items, int64 nitems, int batch, int64 request_id)
{
	Oid			types[7] = {
		INT8OID, TEXTOID, TEXTOID, JSONBOID, REGROLEOID, TEXTARRAYOID, INT4OID
	};
	Datum		values[7];
	CcpOwnerState owner;

	Assert(nitems >= 0 && request_id > 0);
	batch = Max(batch, 1);
	values[0] = Int64GetDatum(request_id);
	values[1] = CStringGetTextDatum(server);
	values[2] = CStringGetTextDatum(operation);
	values[3] = params;
	values[4] = ObjectIdGetDatum(role);

	ccp_owner_begin(rel->owner, &owner);
	PG_TRY();
	{
		if (ccp_insert_plan == NULL)
		{
			SPIPlanPtr	plan;

			plan = SPI_prepare("INSERT INTO ccpurge.queue (request_id, server,"
							   " operation, params, role, items, nitems)"
							   " VALUES ($1, $2, $3, $4, $5, $6, $7)",
							   7, types);
			if (plan == NULL)
				elog(ERROR, "could not prepare the ccpurge queue insert: %s",
					 SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "could not save the ccpurge queue insert plan");
			ccp_insert_plan = plan;
		}
		/* a request its params alone select is one row without items */
		for (int64 start = 0; start < nitems || (start == 0 && nitems == 0);
			 start += batch)
		{
			int			n = (int) Min((int64) batch, nitems - start);
			ArrayType  *arr;
			int			ret;

			arr = construct_array(items + start, n, TEXTOID, -1, false,
								  TYPALIGN_INT);
			values[5] = PointerGetDatum(arr);
			values[6] = Int32GetDatum(n);
			ret = SPI_execute_plan(ccp_insert_plan, values, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not insert into the ccpurge queue: %s",
					 SPI_result_code_string(ret));
			pfree(arr);
		}
	}
	PG_FINALLY();
	{
		ccp_owner_restore_user(&owner);
	}
	PG_END_TRY();
	ccp_owner_end(&owner);

	ccp_queue_touched = true;
}

/*
 * ccp_queue_store stores items under a new request id and returns it.
 * When the operation needs several requests per chunk of items (an
 * Ozonetel campaign list over the vendor's limit), each request's params
 * get rows of their own, all under the one request id, so that every queue
 * row is exactly one vendor request.
 */
static int64
ccp_queue_store(const CcpQueueRel *rel, const char *server,
				const CcpOpDef *def, const char *params_text, Oid role,
				Datum *items, int64 nitems, int batch)
{
	List	   *parts;
	ListCell   *lc;
	int64		request_id = nextval_internal(rel->seqid, false);

	if (def->split_params == NULL)
	{
		ccp_queue_insert(rel, server, def->name, ccp_queue_jsonb(params_text),
						 role, items, nitems, batch, request_id);
		return request_id;
	}

	parts = ccp_params_split(def,
							 ccp_params_read(def,
											 DatumGetJsonbP(ccp_queue_jsonb(params_text))));
	foreach(lc, parts)
		ccp_queue_insert(rel, server, def->name,
						 ccp_queue_jsonb(ccp_params_text(def, lfirst(lc))),
						 role, items, nitems, batch, request_id);
	return request_id;
}

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
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(request_id)};
	Oid			userid = GetUserId();
	bool		own_xact = false;
	bool		allowed = true;

	ccp_queue_spi(rel, "SELECT role::oid, xmin FROM ccpurge.queue"
				  " WHERE request_id = $1",
				  1, types, values, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			role = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 2, &isnull));

		if (!is_member_of_role(userid, role))
			allowed = false;
		if (TransactionIdIsCurrentTransactionId(xmin))
			own_xact = true;
	}
	if (SPI_processed == 0 && superuser())
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("ccpurge request %lld does not exist",
						(long long) request_id),
				 errdetail("It was never queued, or its items were removed after \"ccpurge.retention\".")));
	if (SPI_processed == 0 || !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for ccpurge request %lld",
						(long long) request_id),
				 errdetail("The request does not exist, or it was queued by a role the current user is not a member of.")));
	SPI_freetuptable(SPI_tuptable);

	if (for_wait && own_xact)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot wait for ccpurge request %lld in the transaction that changed it",
						(long long) request_id),
				 errdetail("The worker sees the request only after this transaction commits, so the wait would never end."),
				 errhint("Commit first, then call ccpurge_wait.")));
}

/*
 * ccp_queue_sum runs a statement returning one bigint as the queue's owner
 * and returns it (0 for NULL).  The caller must be connected to SPI.
 */
static int64
ccp_queue_sum(const CcpQueueRel *rel, const char *sql, int nargs,
			  Oid *types, Datum *values)
{
	bool		isnull;
	int64		result = 0;

	ccp_queue_spi(rel, sql, nargs, types, values, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetInt64(d);
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
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
	def = ccp_queue_op(text_to_cstring(PG_GETARG_TEXT_PP(0)), &vendor);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("params must not be NULL"),
				 errhint("Pass '{}' for an operation without parameters.")));
	params = ccp_params_read(def, PG_GETARG_JSONB_P(2));
	if (ccp_params_itemless(def, params))
	{
		/* a calldata filter: one request, no items */
		if (!PG_ARGISNULL(1) &&
			ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(1)),
						   ARR_DIMS(PG_GETARG_ARRAYTYPE_P(1))) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("operation \"%s\" takes no items with these params",
							def->name),
					 errdetail("The params alone select what is erased.")));
	}
	else
		items = ccp_items_from_array(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
									 def, "items", &n);
	srv = ccp_server_resolve(PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
							 vendor, GetUserId());

	texts = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		texts[i] = CStringGetTextDatum(items[i]);
	}

	ccp_queue_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	request_id = ccp_queue_store(&rel, srv->servername, def,
								 ccp_params_text(def, params),
								 GetUserId(), texts, n,
								 Min(srv->batch_size, def->max_batch));
	SPI_finish();

	PG_RETURN_INT64(request_id);
}


/* ----------
 * The trigger buffer
 * ----------
 */

/*
 * ccp_pending_get returns the buffer entry of a key, creating it.  Called
 * once per statement and trigger, so a list walk is cheap enough.
 */
static CcpPending *
ccp_pending_get(const char *server, const CcpOpDef *def, const char *params,
				Oid role, int batch)
{
	ListCell   *lc;
	CcpPending *p;
	MemoryContext old;

	foreach(lc, ccp_pending)
	{
		p = lfirst(lc);
		if (p->def == def && p->role == role &&
			strcmp(p->server, server) == 0 && strcmp(p->params, params) == 0)
			return p;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc0(sizeof(CcpPending));
	p->server = pstrdup(server);
	p->def = def;
	p->params = pstrdup(params);
	p->role = role;
	p->batch = batch;
	ccp_pending = lappend(ccp_pending, p);
	MemoryContextSwitchTo(old);
	return p;
}

/* ccp_segment_free releases a segment and its blocks. */
static void
ccp_segment_free(CcpSegment *seg)
{
	CcpItemBlock *b = seg->head;

	while (b != NULL)
	{
		CcpItemBlock *next = b->next;

		pfree(b);
		b = next;
	}
	pfree(seg);
}

/*
 * ccp_pending_add validates one item of len bytes (not NUL-terminated)
 * and appends it to p at the current nest level.  The item only counts
 * once it is valid, so a caught validation error leaves no trace.
 */
static inline void
ccp_pending_add(CcpPending *p, const char *src, Size len)
{
	int			level = GetCurrentTransactionNestLevel();
	CcpSegment *seg = (p->segments != NIL) ? llast(p->segments) : NULL;
	CcpItemBlock *b;
	Size		need = INTALIGN(VARHDRSZ + len + 1);
	char	   *dst;

	if (seg == NULL || seg->level != level)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		Assert(seg == NULL || seg->level < level);
		seg = palloc0(sizeof(CcpSegment));
		seg->level = level;
		p->segments = lappend(p->segments, seg);
		MemoryContextSwitchTo(old);
	}

	b = seg->tail;
	if (b == NULL || b->size - b->used < need)
	{
		Size		size = (b == NULL) ? CCP_BLOCK_MIN : Min(b->size * 2, CCP_BLOCK_MAX);

		size = Max(size, need);
		b = MemoryContextAllocHuge(TopTransactionContext,
								   offsetof(CcpItemBlock, data) + size);
		b->next = NULL;
		b->used = 0;
		b->size = size;
		if (seg->tail != NULL)
			seg->tail->next = b;
		else
			seg->head = b;
		seg->tail = b;
	}

	dst = b->data + b->used;
	SET_VARSIZE(dst, VARHDRSZ + len);
	memcpy(VARDATA(dst), src, len);
	VARDATA(dst)[len] = '\0';
	p->def->validate_item(p->def, VARDATA(dst));
	b->used += need;
	seg->nitems++;
}

/*
 * ccp_queue_subxact_callback keeps the trigger buffer in step with
 * subtransactions: items of an aborted subtransaction are dropped, those
 * of a committed one move to its parent.  Only the innermost segment of a
 * key can belong to the ending subtransaction.  It neither errors nor
 * allocates.
 */
static void
ccp_queue_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	if (ccp_pending == NIL ||
		(event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB))
		return;

	/* the ending subtransaction is still the current one here */
	level = GetCurrentTransactionNestLevel();
	foreach(lc, ccp_pending)
	{
		CcpPending *p = lfirst(lc);
		int			nseg = list_length(p->segments);
		CcpSegment *seg;
		CcpSegment *prev;

		if (nseg == 0)
			continue;
		seg = llast(p->segments);
		if (seg->level < level)
			continue;
		Assert(seg->level == level);

		if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			p->segments = list_delete_last(p->segments);
			ccp_segment_free(seg);
			continue;
		}

		prev = (nseg > 1) ? list_nth(p->segments, nseg - 2) : NULL;
		if (prev != NULL && prev->level == level - 1)
		{
			/* hand the blocks over to the parent level's segment */
			if (seg->head != NULL)
			{
				if (prev->tail != NULL)
					prev->tail->next = seg->head;
				else
					prev->head = seg->head;
				prev->tail = seg->tail;
			}
			prev->nitems += seg->nitems;
			p->segments = list_delete_last(p->segments);
			pfree(seg);
		}
		else
			seg->level = level - 1;
	}
}

/*
 * ccp_queue_forget drops the trigger buffer and the wake flag at the end
 * of a transaction; the memory goes with TopTransactionContext.
 */
static void
ccp_queue_forget(void)
{
	ccp_pending = NIL;
	ccp_pending_generation++;
	ccp_queue_touched = false;
}

/*
 * ccp_queue_flush writes the trigger buffer to the queue: per key, one
 * request id and rows of at most the key's batch size, duplicates
 * removed.  Runs at pre-commit or pre-prepare, inside the transaction.
 */
static void
ccp_queue_flush(void)
{
	CcpQueueRel rel;
	MemoryContext cxt;
	MemoryContext old;
	ListCell   *lc;
	int64		total = 0;

	foreach(lc, ccp_pending)
	{
		CcpPending *p = lfirst(lc);
		ListCell   *ls;

		foreach(ls, p->segments)
			total += ((CcpSegment *) lfirst(ls))->nitems;
	}
	if (total == 0)
	{
		ccp_pending = NIL;
		return;
	}

	if (!ccp_queue_lookup(&rel, true))
	{
		/* DROP EXTENSION ... CASCADE ran after the triggers fired */
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_plural("%lld item queued by triggers is not erased",
							   "%lld items queued by triggers are not erased",
							   (unsigned long) total, (long long) total),
				 errdetail("The ccpurge queue no longer exists: the extension was dropped after the triggers fired.")));
		ccp_pending = NIL;
		return;
	}

	cxt = AllocSetContextCreate(TopTransactionContext, "ccpurge queue flush",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	foreach(lc, ccp_pending)
	{
		CcpPending *p = lfirst(lc);
		ListCell   *ls;
		int64		n = 0;
		Datum	   *items;

		foreach(ls, p->segments)
			n += ((CcpSegment *) lfirst(ls))->nitems;
		if (n == 0)
			continue;

		items = MemoryContextAllocHuge(cxt, sizeof(Datum) * n);
		n = 0;
		foreach(ls, p->segments)
		{
			CcpSegment *seg = lfirst(ls);

			for (CcpItemBlock *b = seg->head; b != NULL; b = b->next)
			{
				for (Size off = 0; off < b->used;)
				{
					char	   *item = b->data + off;

					items[n++] = PointerGetDatum(item);
					off += INTALIGN(VARSIZE(item) + 1);
				}
			}
		}
		n = ccp_datums_distinct(items, n);
		(void) ccp_queue_store(&rel, p->server, p->def, p->params, p->role,
							   items, n, p->batch);
		pfree(items);
	}

	SPI_finish();
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	ccp_pending = NIL;
	/* trigger caches must not append to entries that are gone */
	ccp_pending_generation++;
}

/*
 * ccp_queue_xact_callback flushes the trigger buffer before commit or
 * prepare, wakes the worker once a transaction that queued work has
 * committed, and forgets the buffer at every end of transaction.
 */
static void
ccp_queue_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (ccp_pending != NIL)
				ccp_queue_flush();
			break;
		case XACT_EVENT_COMMIT:
			if (ccp_queue_touched)
				ccp_wake_worker();
			ccp_queue_forget();
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ccp_queue_forget();
			break;
		default:
			break;
	}
}

/*
 * ccp_queue_register_callbacks installs the transaction callbacks.  Called
 * once from _PG_init when the library is preloaded.
 */
void
ccp_queue_register_callbacks(void)
{
	RegisterXactCallback(ccp_queue_xact_callback, NULL);
	RegisterSubXactCallback(ccp_queue_subxact_callback, NULL);
}


/* ----------
 * ccpurge_erase_on_delete
 * ----------
 */

/* ccp_trigger_error_context names the trigger in errors it raises. */
static void
ccp_trigger_error_context(void *arg)
{
	TriggerData *td = (TriggerData *) arg;

	errcontext("ccpurge_erase_on_delete trigger \"%s\" on relation \"%s\"",
			   td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation));
}

/*
 * ccp_trigger_check refuses to run in anything but an AFTER DELETE
 * trigger, and a statement-level one without a transition table.
 */
static void
ccp_trigger_check(FunctionCallInfo fcinfo)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ccpurge_erase_on_delete can only be called as a trigger")));
	if (!TRIGGER_FIRED_BY_DELETE(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must be fired AFTER DELETE",
						td->tg_trigger->tgname),
				 errdetail("ccpurge_erase_on_delete queues the values of deleted rows."),
				 errhint("Create it with CREATE TRIGGER ... AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete(...).",
						 quote_identifier(RelationGetRelationName(td->tg_relation)))));
	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) && td->tg_oldtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("statement-level trigger \"%s\" has no transition table of old rows",
						td->tg_trigger->tgname),
				 errhint("Create it with CREATE TRIGGER %s AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete(...).",
						 quote_identifier(td->tg_trigger->tgname),
						 quote_identifier(RelationGetRelationName(td->tg_relation)))));
}

/*
 * ccp_trigger_setup parses and validates the trigger's arguments
 * (operation, column [, params [, server]]) for the current user and
 * stores the result in fn_extra.  Raises an ERROR for anything invalid.
 */
static CcpTrigCache *
ccp_trigger_setup(FunctionCallInfo fcinfo, Oid userid)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *trig = td->tg_trigger;
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	const CcpVendor *vendor;
	const CcpOpDef *def;
	void	   *params;
	CcpServer  *srv;
	CcpTrigCache *cache;
	AttrNumber	attnum = InvalidAttrNumber;
	Form_pg_attribute att = NULL;
	char	   *params_text;
	MemoryContext old;

	ccp_require_preload();
	if (trig->tgnargs < 2 || trig->tgnargs > 4)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must pass 2 to 4 arguments to ccpurge_erase_on_delete",
						trig->tgname),
				 errdetail("It passes %d.", trig->tgnargs),
				 errhint("The arguments are the operation, the column, and optionally the params as JSON and the server.")));

	def = ccp_queue_op(trig->tgargs[0], &vendor);

	/* the column name is matched exactly, as a quoted identifier would be */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), trig->tgargs[1]) == 0)
		{
			attnum = a->attnum;
			att = a;
			break;
		}
	}
	if (att == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						trig->tgargs[1], RelationGetRelationName(rel)),
				 errhint("The column name is matched exactly, including case.")));

	params = ccp_params_read(def,
							 DatumGetJsonbP(ccp_queue_jsonb(trig->tgnargs >= 3 ?
															trig->tgargs[2] : "{}")));
	if (ccp_params_itemless(def, params))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" passes params that select what to erase by themselves",
						trig->tgname),
				 errdetail("A trigger erases the deleted rows' values of its column.")));
	srv = ccp_server_resolve(trig->tgnargs >= 4 ? trig->tgargs[3] : NULL,
							 vendor, userid);
	params_text = ccp_params_text(def, params);

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	cache = palloc0(sizeof(CcpTrigCache));
	cache->relid = RelationGetRelid(rel);
	cache->userid = userid;
	cache->attnum = attnum;
	if (att->atttypid == TEXTOID || att->atttypid == VARCHAROID)
		cache->kind = 't';
	else if (att->atttypid == BPCHAROID)
		cache->kind = 'b';
	else
	{
		Oid			typoutput;
		bool		typisvarlena;

		cache->kind = 'o';
		getTypeOutputInfo(att->atttypid, &typoutput, &typisvarlena);
		fmgr_info_cxt(typoutput, &cache->outfunc, fcinfo->flinfo->fn_mcxt);
	}
	cache->def = def;
	cache->server = pstrdup(srv->servername);
	cache->params = pstrdup(params_text);
	cache->batch = Min(srv->batch_size, def->max_batch);
	cache->generation = 0;
	cache->pending = NULL;
	MemoryContextSwitchTo(old);

	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/*
 * ccp_trigger_add converts one non-NULL column value to text and adds it
 * to the buffer.  text and varchar are copied without a conversion; char(n)
 * loses its padding, as a cast to text would drop it.
 */
static inline void
ccp_trigger_add(CcpTrigCache *cache, Datum value)
{
	if (cache->kind == 'o')
	{
		char	   *s = OutputFunctionCall(&cache->outfunc, value);

		ccp_pending_add(cache->pending, s, strlen(s));
	}
	else
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(value);
		const char *s = VARDATA_ANY(v);
		Size		len = VARSIZE_ANY_EXHDR(v);

		if (cache->kind == 'b')
		{
			while (len > 0 && s[len - 1] == ' ')
				len--;
		}
		ccp_pending_add(cache->pending, s, len);
	}
}

/*
 * ccp_trigger_add_table adds the column of every row of the statement's
 * transition table.  It reads through a read pointer of its own, as other
 * triggers may read the same tuplestore.
 */
static void
ccp_trigger_add_table(CcpTrigCache *cache, TriggerData *td)
{
	Tuplestorestate *ts = td->tg_oldtable;
	TupleTableSlot *slot;
	MemoryContext rowcxt;
	MemoryContext old;
	int			readptr;
	uint32		nrows = 0;

	slot = MakeSingleTupleTableSlot(RelationGetDescr(td->tg_relation),
									&TTSOpsMinimalTuple);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "ccpurge trigger rows",
								   ALLOCSET_DEFAULT_SIZES);
	readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);

	/*
	 * Tuples read back from a spilled tuplestore belong to the slot, which
	 * frees each when it stores the next; so only the conversion runs in
	 * the context that is reset.
	 */
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, cache->attnum, &isnull);

		if (!isnull)
		{
			old = MemoryContextSwitchTo(rowcxt);
			ccp_trigger_add(cache, value);
			MemoryContextSwitchTo(old);
		}
		if ((++nrows & 1023) == 0)
		{
			MemoryContextReset(rowcxt);
			CHECK_FOR_INTERRUPTS();
		}
	}

	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowcxt);
}

/*
 * ccpurge_erase_on_delete() is an AFTER DELETE trigger queueing the old
 * value of a column: FOR EACH ROW one value per call, FOR EACH STATEMENT
 * every row of the REFERENCING OLD TABLE transition table.  NULL values are
 * skipped.  TG_ARGV = (operation, column [, params json [, server]]).
 */
Datum
ccpurge_erase_on_delete(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	CcpTrigCache *cache;
	ErrorContextCallback errctx;
	Oid			userid = GetUserId();

	ccp_trigger_check(fcinfo);
	td = (TriggerData *) fcinfo->context;

	errctx.callback = ccp_trigger_error_context;
	errctx.arg = td;
	errctx.previous = error_context_stack;
	error_context_stack = &errctx;

	cache = (CcpTrigCache *) fcinfo->flinfo->fn_extra;
	if (cache == NULL || cache->relid != RelationGetRelid(td->tg_relation) ||
		cache->userid != userid)
		cache = ccp_trigger_setup(fcinfo, userid);
	if (cache->generation != ccp_pending_generation)
	{
		cache->pending = ccp_pending_get(cache->server, cache->def,
										 cache->params, userid, cache->batch);
		cache->generation = ccp_pending_generation;
	}

	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		bool		isnull;
		Datum		value = heap_getattr(td->tg_trigtuple, cache->attnum,
										 RelationGetDescr(td->tg_relation),
										 &isnull);

		if (!isnull)
			ccp_trigger_add(cache, value);
	}
	else
		ccp_trigger_add_table(cache, td);

	error_context_stack = errctx.previous;
	return PointerGetDatum(NULL);
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
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(request_id)};
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
	ccp_queue_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, true);

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		finished = ccp_queue_sum(&rel,
								 "SELECT count(*) FROM ccpurge.queue"
								 " WHERE request_id = $1 AND state IN ('queued', 'sending')",
								 1, types, values) == 0;
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
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(request_id)};
	CcpQueueRel rel;
	int64		requeued;

	ccp_require_preload();
	ccp_require_writable();
	ccp_queue_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, false);
	/* a new attempt generation: the next claim gives them a new batch key */
	requeued = ccp_queue_sum(&rel,
							 psprintf("WITH requeued AS ("
									  " UPDATE ccpurge.queue SET state = 'queued', attempts = 0,"
									  " next_attempt_at = now(), batch_id = NULL, http_status = NULL,"
									  " code = NULL, message = NULL, finished_at = NULL%s"
									  " WHERE request_id = $1 AND state IN ('failed', 'canceled')"
									  " RETURNING nitems)"
									  " SELECT sum(nitems)::int8 FROM requeued",
									  rel.batch_keys ?
									  ", batch_key = NULL, batch_nitems = NULL" : ""),
							 1, types, values);
	SPI_finish();
	if (requeued > 0)
		ccp_queue_touched = true;
	PG_RETURN_INT64(requeued);
}

/*
 * ccpurge_cancel(request_id) marks the request's queued and failed items
 * canceled and returns how many: retention keeps failed items, so cancel is
 * how a caller ends them.  Items the worker is sending are left alone.
 *
 * The UPDATE locks each row it changes, a lock the worker's FOR UPDATE
 * SKIP LOCKED claim respects; if the worker holds a row, the UPDATE waits
 * and then skips it when it is no longer queued.  A claim may also split a
 * row, inserting the rest of its items as a new queued row the UPDATE's
 * snapshot cannot see, so the UPDATE is repeated with a new snapshot until
 * one finds nothing more (in READ COMMITTED, where snapshots move).
 */
Datum
ccpurge_cancel(PG_FUNCTION_ARGS)
{
	int64		request_id = PG_GETARG_INT64(0);
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	CcpQueueRel rel;
	int64		canceled = 0;
	int64		sending;

	ccp_require_preload();
	ccp_require_writable();
	values[0] = Int64GetDatum(request_id);
	values[1] = CStringGetTextDatum(psprintf("canceled by %s",
											 GetUserNameFromId(GetUserId(), false)));
	ccp_queue_lookup(&rel, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ccp_queue_check_access(&rel, request_id, false);

	for (int round = 0; round < 5; round++)
	{
		int64		n;

		n = ccp_queue_sum(&rel,
						  "WITH canceled AS ("
						  " UPDATE ccpurge.queue SET state = 'canceled',"
						  " finished_at = now(), message = $2"
						  " WHERE request_id = $1 AND state IN ('queued', 'failed')"
						  " RETURNING nitems)"
						  " SELECT sum(nitems)::int8 FROM canceled",
						  2, types, values);
		canceled += n;
		if ((n == 0 && round > 0) || IsolationUsesXactSnapshot())
			break;
	}

	sending = ccp_queue_sum(&rel,
							"SELECT sum(nitems)::int8 FROM ccpurge.queue"
							" WHERE request_id = $1 AND state = 'sending'",
							1, types, values);
	SPI_finish();
	/* the worker times the removal of canceled rows after retention */
	if (canceled > 0)
		ccp_queue_touched = true;

	if (sending > 0)
		ereport(NOTICE,
				(errmsg_plural("%lld item of request %lld is being sent and was not canceled",
							   "%lld items of request %lld are being sent and were not canceled",
							   sending, (long long) sending, (long long) request_id),
				 errdetail("The worker finishes a batch it has started.")));

	PG_RETURN_INT64(canceled);
}
