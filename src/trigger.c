/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The ccpurge_erase_on_delete trigger, its per-statement cache, and the
 *	  commit-time buffer it fills, with the transaction callbacks that
 *	  write the buffer to the queue; and ccpurge_check_trigger, the event
 *	  trigger that checks such a trigger when it is created.
 *
 * CREATE TRIGGER runs the event trigger ccpurge_check_trigger, which
 * makes the checks of a trigger's arguments at once, and binds a trigger
 * that names no server to its vendor's one server, so that adding a
 * server later leaves it alone.  With params "on_invalid": "skip", values
 * that fail validation are counted and left out, and the statement ends
 * with one WARNING giving their count (an ExecutorFinish hook).
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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ccpurge_erase_on_delete);
PG_FUNCTION_INFO_V1(ccpurge_check_trigger);
PG_FUNCTION_INFO_V1(ccpurge_bind_triggers);

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
	bool		skip_invalid;	/* params "on_invalid": "skip" */
	uint64		generation;
	CcpPending *pending;
} CcpTrigCache;

/*
 * A trigger's arguments (operation, column [, params [, server]]) as
 * ccp_trigger_args reads them; server is NULL when none is named.
 */
typedef struct CcpTrigArgs
{
	const CcpVendor *vendor;
	const CcpOpDef *def;
	Form_pg_attribute att;		/* the column */
	void	   *params;			/* the operation's own, without on_invalid */
	bool		skip_invalid;
	const char *server;
} CcpTrigArgs;

/* A trigger and its table, as errors name them. */
typedef struct CcpTrigName
{
	const char *trigger;
	const char *relation;
} CcpTrigName;

/* The trigger buffer, in TopTransactionContext; NIL when empty. */
static List *ccp_pending = NIL;

/* Bumped whenever ccp_pending is forgotten, to invalidate CcpTrigCache. */
static uint64 ccp_pending_generation = 1;

/* Values "on_invalid": "skip" left out since the last statement ended. */
static int64 ccp_skipped = 0;

static ExecutorFinish_hook_type ccp_prev_executor_finish = NULL;

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
 * ccp_item_valid tells whether def accepts item, catching the error its
 * validate_item raises.  Validation only looks at the string (it holds no
 * lock, buffer or other resource), so no subtransaction is needed to
 * recover from its errors; any other error is thrown on.
 */
static bool
ccp_item_valid(const CcpOpDef *def, const char *item)
{
	MemoryContext old = CurrentMemoryContext;
	volatile bool valid = true;

	PG_TRY();
	{
		def->validate_item(def, item);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			category;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (edata->elevel != ERROR ||
			(category != ERRCODE_DATA_EXCEPTION &&
			 category != ERRCODE_FDW_ERROR))
			PG_RE_THROW();
		FlushErrorState();
		FreeErrorData(edata);
		valid = false;
	}
	PG_END_TRY();
	return valid;
}

/*
 * ccp_pending_add validates one item of len bytes (not NUL-terminated)
 * and appends it to p at the current nest level.  The item only counts
 * once it is valid, so a caught validation error leaves no trace.  When
 * skip, an invalid item is counted in ccp_skipped and left out instead of
 * raising an error.
 */
static inline void
ccp_pending_add(CcpPending *p, const char *src, Size len, bool skip)
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
	if (!skip)
		p->def->validate_item(p->def, VARDATA(dst));
	else if (!ccp_item_valid(p->def, VARDATA(dst)))
	{
		ccp_skipped++;
		return;
	}
	b->used += need;
	seg->nitems++;
}

/*
 * ccp_trigger_subxact_callback keeps the trigger buffer in step with
 * subtransactions: items of an aborted subtransaction are dropped, those
 * of a committed one move to its parent, and the count of skipped values
 * of an aborted statement is forgotten.  Only the innermost segment of a
 * key can belong to the ending subtransaction.  It neither errors nor
 * allocates.
 */
static void
ccp_trigger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	/* the statement that skipped values failed: it reports nothing */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ccp_skipped = 0;
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
	ccp_skipped = 0;
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
 * ccp_trigger_executor_finish runs a statement's AFTER triggers (in
 * standard_ExecutorFinish), then raises the statement's one warning for
 * the values "on_invalid": "skip" left out, if any: their count, never the
 * values.
 */
static void
ccp_trigger_executor_finish(QueryDesc *queryDesc)
{
	int64		skipped;

	if (ccp_prev_executor_finish)
		ccp_prev_executor_finish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);

	skipped = ccp_skipped;
	ccp_skipped = 0;
	if (skipped > 0)
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("ccpurge_erase_on_delete skipped %lld invalid value",
							   "ccpurge_erase_on_delete skipped %lld invalid values",
							   (unsigned long) skipped, (long long) skipped),
				 errdetail("The trigger's params say \"on_invalid\": \"skip\", so values the vendor would refuse are not queued for erasure."),
				 errhint("Check the deleted rows' values, or use \"on_invalid\": \"error\" to make such a value fail the statement.")));
}

/*
 * ccp_trigger_register_callbacks installs the transaction callbacks and
 * the executor hook that reports skipped values.  Called once from
 * _PG_init when the library is preloaded.
 */
void
ccp_trigger_register_callbacks(void)
{
	RegisterXactCallback(ccp_trigger_xact_callback, NULL);
	RegisterSubXactCallback(ccp_trigger_subxact_callback, NULL);
	ccp_prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = ccp_trigger_executor_finish;
}


/* ----------
 * ccpurge_erase_on_delete
 * ----------
 */

/* ccp_trigger_error_context names the trigger in errors it raises. */
static void
ccp_trigger_error_context(void *arg)
{
	CcpTrigName *name = (CcpTrigName *) arg;

	errcontext("ccpurge_erase_on_delete trigger \"%s\" on relation \"%s\"",
			   name->trigger, name->relation);
}

/*
 * ccp_trigger_args reads and checks the arguments args[0..nargs-1] of
 * trigger tgname on the table described by desc (named relname) into *a:
 * their number, the operation, the column, the params (on_invalid taken
 * out) and the server's name as given.  Raises an ERROR for anything
 * invalid; the server itself is not looked up.
 */
static void
ccp_trigger_args(const char *tgname, const char *relname, TupleDesc desc,
				 int nargs, char **args, CcpTrigArgs *a)
{
	Jsonb	   *jb;

	memset(a, 0, sizeof(*a));
	if (nargs < 2 || nargs > 4)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must pass 2 to 4 arguments to ccpurge_erase_on_delete",
						tgname),
				 errdetail("It passes %d.", nargs),
				 errhint("The arguments are the operation, the column, and optionally the params as JSON and the server.")));

	a->def = ccp_op_lookup(args[0], &a->vendor);

	/* the column name is matched exactly, as a quoted identifier would be */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), args[1]) == 0)
		{
			a->att = att;
			break;
		}
	}
	if (a->att == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						args[1], relname),
				 errhint("The column name is matched exactly, including case.")));

	/* on_invalid is the trigger's own, not the operation's */
	jb = ccp_jsonb_parse(nargs >= 3 ? args[2] : "{}");
	if (JB_ROOT_IS_OBJECT(jb))
	{
		JsonbValue	key;
		JsonbValue *v;

		key.type = jbvString;
		key.val.string.val = "on_invalid";
		key.val.string.len = strlen("on_invalid");
		v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &key);
		if (v != NULL)
		{
			if (v->type == jbvString && v->val.string.len == 4 &&
				strncmp(v->val.string.val, "skip", 4) == 0)
				a->skip_invalid = true;
			else if (!(v->type == jbvString && v->val.string.len == 5 &&
					   strncmp(v->val.string.val, "error", 5) == 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for param \"on_invalid\" of trigger \"%s\"",
								tgname),
						 errhint("Use \"error\" (the default) or \"skip\".")));
			jb = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
													JsonbPGetDatum(jb),
													CStringGetTextDatum("on_invalid")));
		}
	}
	a->params = ccp_params_read(a->def, jb);
	if (ccp_params_itemless(a->def, a->params))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" passes params that select what to erase by themselves",
						tgname),
				 errdetail("A trigger erases the deleted rows' values of its column.")));
	a->server = nargs >= 4 ? args[3] : NULL;
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
	CcpTrigArgs a;
	CcpServer  *srv;
	CcpTrigCache *cache;
	char	   *params_text;
	MemoryContext old;

	ccp_require_preload();
	ccp_trigger_args(trig->tgname, RelationGetRelationName(rel),
					 RelationGetDescr(rel), trig->tgnargs, trig->tgargs, &a);
	srv = ccp_server_resolve(a.server, a.vendor, userid);
	params_text = ccp_params_text(a.def, a.params);

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	cache = palloc0(sizeof(CcpTrigCache));
	cache->relid = RelationGetRelid(rel);
	cache->userid = userid;
	cache->attnum = a.att->attnum;
	if (a.att->atttypid == TEXTOID || a.att->atttypid == VARCHAROID)
		cache->kind = 't';
	else if (a.att->atttypid == BPCHAROID)
		cache->kind = 'b';
	else
	{
		Oid			typoutput;
		bool		typisvarlena;

		cache->kind = 'o';
		getTypeOutputInfo(a.att->atttypid, &typoutput, &typisvarlena);
		fmgr_info_cxt(typoutput, &cache->outfunc, fcinfo->flinfo->fn_mcxt);
	}
	cache->def = a.def;
	cache->server = pstrdup(srv->servername);
	cache->params = pstrdup(params_text);
	cache->batch = Min(srv->batch_size, a.def->max_batch);
	cache->skip_invalid = a.skip_invalid;
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

		ccp_pending_add(cache->pending, s, strlen(s), cache->skip_invalid);
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
		ccp_pending_add(cache->pending, s, len, cache->skip_invalid);
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
	CcpTrigName name;
	Oid			userid = GetUserId();

	ccp_trigger_check(fcinfo);
	td = (TriggerData *) fcinfo->context;

	name.trigger = td->tg_trigger->tgname;
	name.relation = RelationGetRelationName(td->tg_relation);
	errctx.callback = ccp_trigger_error_context;
	errctx.arg = &name;
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
 * ccpurge_check_trigger: the checks of CREATE TRIGGER
 * ----------
 */

/*
 * ccp_trigger_fetch returns a copy of trigger trigoid's row of pg_trigger,
 * open as tgrel.
 */
static HeapTuple
ccp_trigger_fetch(Relation tgrel, Oid trigoid)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "could not find tuple for trigger %u", trigoid);
	tup = heap_copytuple(tup);
	systable_endscan(scan);
	return tup;
}

/*
 * ccp_trigger_bind rewrites the arguments of trigger trigoid on table
 * relid, and of the triggers cloned from it on the partitions of a
 * partitioned table, to the nargs args.  Needs the locks CREATE TRIGGER
 * holds.
 */
static void
ccp_trigger_bind(Oid trigoid, Oid relid, int nargs, char **args)
{
	Relation	tgrel = table_open(TriggerRelationId, RowExclusiveLock);
	List	   *oids = list_make1_oid(trigoid);
	StringInfoData buf;
	bytea	   *tgargs;
	ListCell   *lc;
	bool		added = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE;

	initStringInfo(&buf);
	for (int i = 0; i < nargs; i++)
		appendBinaryStringInfo(&buf, args[i], strlen(args[i]) + 1);
	tgargs = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(tgargs, VARHDRSZ + buf.len);
	memcpy(VARDATA(tgargs), buf.data, buf.len);

	/* the clones, at any depth; pg_trigger has no index on tgparentid */
	while (added)
	{
		SysScanDesc scan = systable_beginscan(tgrel, InvalidOid, false,
											  NULL, 0, NULL);
		HeapTuple	tup;

		added = false;
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);

			if (list_member_oid(oids, t->tgparentid) &&
				!list_member_oid(oids, t->oid))
			{
				oids = lappend_oid(oids, t->oid);
				added = true;
			}
		}
		systable_endscan(scan);
	}

	foreach(lc, oids)
	{
		HeapTuple	tup = ccp_trigger_fetch(tgrel, lfirst_oid(lc));
		HeapTuple	newtup;
		Datum		values[Natts_pg_trigger] = {0};
		bool		nulls[Natts_pg_trigger] = {0};
		bool		replace[Natts_pg_trigger] = {0};

		values[Anum_pg_trigger_tgnargs - 1] = Int16GetDatum(nargs);
		replace[Anum_pg_trigger_tgnargs - 1] = true;
		values[Anum_pg_trigger_tgargs - 1] = PointerGetDatum(tgargs);
		replace[Anum_pg_trigger_tgargs - 1] = true;
		newtup = heap_modify_tuple(tup, RelationGetDescr(tgrel), values, nulls,
								   replace);
		CatalogTupleUpdate(tgrel, &newtup->t_self, newtup);
		/* relcache entries hold the triggers' arguments */
		CacheInvalidateRelcacheByRelid(((Form_pg_trigger) GETSTRUCT(tup))->tgrelid);
	}
	table_close(tgrel, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * ccp_trigger_check_created checks a trigger that CREATE TRIGGER has just
 * made with ccpurge_erase_on_delete, as its first DELETE would: AFTER
 * DELETE only, a transition table of old rows when FOR EACH STATEMENT, and
 * its arguments, the server included (it exists and is of the
 * operation's vendor; privileges and user mappings belong to the roles
 * that will delete, and are checked then).  A trigger that names no
 * server is bound to the one server of its vendor: its arguments are
 * completed with it, so that adding another server later changes nothing
 * for it.  tup is its pg_trigger row.
 */
static void
ccp_trigger_check_created(HeapTuple tup, TupleDesc tgdesc, const char *tgname,
						  Relation rel)
{
	Form_pg_trigger form = (Form_pg_trigger) GETSTRUCT(tup);
	const char *relname = RelationGetRelationName(rel);
	int16		tgtype = form->tgtype;
	int			nargs = form->tgnargs;
	char	  **args = palloc0(sizeof(char *) * 4);
	CcpTrigName name = {tgname, relname};
	ErrorContextCallback errctx;
	CcpTrigArgs a;
	char	   *server;
	bool		isnull;

	errctx.callback = ccp_trigger_error_context;
	errctx.arg = &name;
	errctx.previous = error_context_stack;
	error_context_stack = &errctx;

	if (!TRIGGER_FOR_DELETE(tgtype) || TRIGGER_FOR_INSERT(tgtype) ||
		TRIGGER_FOR_UPDATE(tgtype) || TRIGGER_FOR_TRUNCATE(tgtype) ||
		TRIGGER_FOR_BEFORE(tgtype) || TRIGGER_FOR_INSTEAD(tgtype))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("trigger \"%s\" must be fired AFTER DELETE only", tgname),
				 errdetail("ccpurge_erase_on_delete queues the values of deleted rows."),
				 errhint("Create it with CREATE TRIGGER ... AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete(...).",
						 quote_identifier(relname))));
	(void) heap_getattr(tup, Anum_pg_trigger_tgoldtable, tgdesc, &isnull);
	if (!TRIGGER_FOR_ROW(tgtype) && isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("statement-level trigger \"%s\" has no transition table of old rows",
						tgname),
				 errhint("Create it with CREATE TRIGGER %s AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete(...).",
						 quote_identifier(tgname), quote_identifier(relname))));

	if (nargs > 0)
	{
		Datum		d = heap_getattr(tup, Anum_pg_trigger_tgargs, tgdesc, &isnull);
		bytea	   *b = DatumGetByteaPP(d);
		char	   *p = VARDATA_ANY(b);

		args = palloc0(sizeof(char *) * Max(nargs, 4));
		for (int i = 0; i < nargs; i++)
		{
			args[i] = pstrdup(p);
			p += strlen(p) + 1;
		}
	}
	ccp_trigger_args(tgname, relname, RelationGetDescr(rel), nargs, args, &a);
	server = ccp_server_name(a.server, a.vendor);

	if (nargs < 4)
	{
		if (nargs < 3)
			args[2] = "{}";
		args[3] = server;
		ccp_trigger_bind(form->oid, RelationGetRelid(rel), 4, args);
	}
	error_context_stack = errctx.previous;
}

/*
 * ccp_trigger_is_erase tells whether function funcoid is this library's
 * ccpurge_erase_on_delete, by its catalog row alone (no library of another
 * trigger's function is loaded to find out).
 */
static bool
ccp_trigger_is_erase(Oid funcoid)
{
	HeapTuple	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	bool		ours = false;

	if (!HeapTupleIsValid(proctup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(proctup))->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, proctup,
										  Anum_pg_proc_prosrc, &isnull);
		Datum		bin = SysCacheGetAttr(PROCOID, proctup,
										  Anum_pg_proc_probin, &isnull);

		ours = !isnull &&
			strcmp(TextDatumGetCString(src), "ccpurge_erase_on_delete") == 0 &&
			strstr(TextDatumGetCString(bin), "ccpurge") != NULL;
	}
	ReleaseSysCache(proctup);
	return ours;
}

/*
 * ccpurge_check_trigger() is the event trigger the extension creates on
 * ddl_command_end for CREATE TRIGGER (and only that tag, so that other
 * DDL never calls it): a trigger executing ccpurge_erase_on_delete is
 * checked at once (ccp_trigger_check_created), so that a mistake fails
 * the CREATE TRIGGER instead of the first DELETE.  Other triggers cost a
 * catalog look-up.
 */
Datum
ccpurge_check_trigger(PG_FUNCTION_ARGS)
{
	EventTriggerData *ev;
	CreateTrigStmt *stmt;
	Relation	rel;
	Relation	tgrel;
	Oid			relid;
	Oid			trigoid;
	HeapTuple	tup;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ccpurge_check_trigger can only be called as an event trigger")));
	ev = (EventTriggerData *) fcinfo->context;
	if (ev->parsetree == NULL || !IsA(ev->parsetree, CreateTrigStmt))
		PG_RETURN_VOID();
	stmt = (CreateTrigStmt *) ev->parsetree;

	/* the table is locked by the CREATE TRIGGER that just ran */
	relid = RangeVarGetRelid(stmt->relation, NoLock, false);
	trigoid = get_trigger_oid(relid, stmt->trigname, false);

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	tup = ccp_trigger_fetch(tgrel, trigoid);

	if (ccp_trigger_is_erase(((Form_pg_trigger) GETSTRUCT(tup))->tgfoid))
	{
		rel = table_open(relid, NoLock);
		ccp_trigger_check_created(tup, RelationGetDescr(tgrel), stmt->trigname,
								  rel);
		table_close(rel, NoLock);
	}
	table_close(tgrel, AccessShareLock);
	PG_RETURN_VOID();
}

/* A trigger ccpurge.bind_triggers looks at. */
typedef struct CcpUnbound
{
	Oid			trigoid;
	Oid			relid;
	char	   *tgname;
} CcpUnbound;

/*
 * ccp_trigger_bind_in checks and binds trigger u (a CcpUnbound) as CREATE
 * TRIGGER would (ccp_trigger_check_created).
 */
static void
ccp_trigger_bind_in(void *arg)
{
	CcpUnbound *u = arg;
	Relation	rel = table_open(u->relid, ShareRowExclusiveLock);
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);

	ccp_trigger_check_created(ccp_trigger_fetch(tgrel, u->trigoid),
							  RelationGetDescr(tgrel), u->tgname, rel);
	table_close(tgrel, AccessShareLock);
	table_close(rel, NoLock);
}

/*
 * ccp_trigger_bind_old checks and binds trigger u in a subtransaction: on
 * an error it changes nothing, gives a WARNING saying why, and returns
 * false.
 */
static bool
ccp_trigger_bind_old(CcpUnbound *u)
{
	char	   *why;

	if (ccp_subxact_call(ccp_trigger_bind_in, u, &why))
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("trigger \"%s\" on table \"%s\" was not bound to a ccpurge server",
					u->tgname, get_rel_name(u->relid)),
			 errdetail("CREATE TRIGGER would refuse it now: %s.", why),
			 errhint("Recreate it with CREATE TRIGGER; a trigger that names no server is bound to the one server of its vendor.")));
	return false;
}

/*
 * ccpurge.bind_triggers() checks and binds, as CREATE TRIGGER now does
 * (ccp_trigger_check_created), the triggers executing
 * ccpurge_erase_on_delete that were made before 1.2 and name no server:
 * each gets the one server of its vendor, so that adding another server
 * later changes nothing for it.  The update to 1.2 calls it once.  A
 * trigger that cannot be bound (no server of its vendor, or several; an
 * argument its first DELETE would refuse; BEFORE DELETE) keeps its
 * arguments, and a WARNING says why: the update never fails for it.
 * Returns how many triggers it bound.  Needs the rights of the update (a
 * superuser).
 */
Datum
ccpurge_bind_triggers(PG_FUNCTION_ARGS)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *todo = NIL;
	ListCell   *lc;
	int			bound = 0;

	/* clones on partitions are bound with their parent */
	scan = systable_beginscan(tgrel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);
		CcpUnbound *u;

		if (t->tgnargs >= 4 || OidIsValid(t->tgparentid) ||
			!ccp_trigger_is_erase(t->tgfoid))
			continue;
		u = palloc(sizeof(CcpUnbound));
		u->trigoid = t->oid;
		u->relid = t->tgrelid;
		u->tgname = pstrdup(NameStr(t->tgname));
		todo = lappend(todo, u);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);

	foreach(lc, todo)
	{
		if (ccp_trigger_bind_old(lfirst(lc)))
			bound++;
	}
	PG_RETURN_INT32(bound);
}
