/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The ccpurge_erase_on_delete trigger, its per-statement cache, and the
 *	  commit-time buffer it fills, with the transaction callbacks that
 *	  write the buffer to the queue.
 *
 * The trigger must cost little more than the DELETE that fires it, so it
 * only validates each old value exactly as the synchronous functions
 * validate items (bad input fails in the deleting transaction, never in
 * the worker) and appends it to a backend-local buffer in
 * TopTransactionContext.  At pre-commit the buffer is written to the queue
 * through queue_store.c, one request per (server, operation, params,
 * role), duplicates removed.  The buffer remembers the subtransaction nest
 * level of what it holds, so that ROLLBACK TO SAVEPOINT forgets the items
 * queued since the savepoint; on abort the whole buffer goes with
 * TopTransactionContext.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ccpurge_erase_on_delete);

/* Sizes of the trigger buffer's blocks: the first, and the largest. */
#define CCP_BLOCK_MIN		(8 * 1024)
#define CCP_BLOCK_MAX		(4 * 1024 * 1024)

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
 * ccp_trigger_subxact_callback keeps the trigger buffer in step with
 * subtransactions: items of an aborted subtransaction are dropped, those
 * of a committed one move to its parent.  Only the innermost segment of a
 * key can belong to the ending subtransaction.  It neither errors nor
 * allocates.
 */
static void
ccp_trigger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
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
 * ccp_pending_forget drops the trigger buffer at the end of a
 * transaction; the memory goes with TopTransactionContext.
 */
static void
ccp_pending_forget(void)
{
	ccp_pending = NIL;
	ccp_pending_generation++;
}

/*
 * ccp_pending_flush writes the trigger buffer to the queue: per key, one
 * request id and rows of at most the key's batch size, duplicates
 * removed.  Runs at pre-commit or pre-prepare, inside the transaction.
 */
static void
ccp_pending_flush(void)
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

	if (!ccp_store_lookup(&rel, true))
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
		(void) ccp_store_request(&rel, p->server, p->def->name,
								 ccp_params_requests(p->def, p->params),
								 p->role, items, n, p->batch);
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
 * ccp_trigger_xact_callback flushes the trigger buffer before commit or
 * prepare, and forgets it at every end of transaction.  The rows it
 * writes wake the worker at commit (see queue_store.c).
 */
static void
ccp_trigger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (ccp_pending != NIL)
				ccp_pending_flush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ccp_pending_forget();
			break;
		default:
			break;
	}
}

/*
 * ccp_trigger_register_callbacks installs the transaction callbacks.
 * Called once from _PG_init when the library is preloaded.
 */
void
ccp_trigger_register_callbacks(void)
{
	RegisterXactCallback(ccp_trigger_xact_callback, NULL);
	RegisterSubXactCallback(ccp_trigger_subxact_callback, NULL);
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

	def = ccp_op_lookup(trig->tgargs[0], &vendor);

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

	params = ccp_params_read(def, ccp_jsonb_parse(trig->tgnargs >= 3 ?
												  trig->tgargs[2] : "{}"));
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

