/*-------------------------------------------------------------------------
 *
 * reqlog.c
 *	  The request log: one row in ccpurge.request_log per HTTP request,
 *	  with a keyed digest of the items (digest.c) instead of the items.
 *
 * Rows are collected in backend memory while requests go out and written
 * by ccp_reqlog_flush() in one statement: at the end of a synchronous SQL
 * function (in the caller's transaction), and by the worker in its own
 * short transactions, since it never keeps a transaction open across the
 * network.  The table is readable only by its owner; rows are inserted
 * with the owner's rights, so callers need no privilege on it.
 *
 * The requests went out whatever becomes of the caller's transaction, so
 * the rows must outlive a rollback: rows written (or still waiting) when a
 * transaction or savepoint rolls back are copied into shared memory, or
 * synced spill files, and the worker writes them in its own transaction.
 * And they must outlive a crash: before a synchronous request leaves, its
 * row (reading "outcome unknown", with a log_id reserved for it) is made
 * durable in the backend's intent file (intent.c), which the worker
 * adopts when the backend is gone; the worker's own requests have their
 * row committed before they leave (ccp_reqlog_intent).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "access/relation.h"
#include "commands/sequence.h"
#include "storage/bufmgr.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "common/file_perm.h"
#include "storage/fd.h"
#include "commands/dbcommands.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

typedef struct CcpLogEntry
{
	TimestampTz at;
	char	   *server;
	const char *vendor;			/* static */
	const char *operation;		/* static */
	const char *origin;
	Oid			role;			/* name looked up at flush, in a transaction */
	int64		request_id;		/* 0: none */
	int			item_count;
	char	   *digest;			/* hex HMAC of the items; NULL: none */
	int			key_id;			/* of the digest's key */
	char	   *request_ids;	/* "{1,2}": the queue requests; NULL: none */
	char	   *scope;			/* JSON text; NULL: none */
	bool		ok;
	int			http_status;	/* 0: none */
	char	   *code;
	char	   *message;
	double		duration_ms;
	int			level;			/* nest level that wrote it, 0: not written */
	int64		log_id;			/* the intent row it finishes; 0: a new row */
	bool		reserved;		/* log_id is this new row's own, reserved by
								 * a synchronous request's intent */
	bool		ok_unknown;		/* ok is NULL: the outcome is not known */
	bool		from_spill;		/* adopted from a spill file, see below */
	/* the receipts (receipt.c) */
	int			nreceipts;		/* items of hmacs and item_ok */
	int			receipt_key;	/* key_id of hmacs */
	uint8	   *hmacs;			/* NULL: written, or none to write */
	uint8	   *item_ok;		/* per-item outcomes; NULL: the request's */
} CcpLogEntry;

/*
 * Rows of rolled-back transactions go to the worker through a ring in
 * shared memory; when it is full they are spilled to files in
 * $PGDATA/pg_ccpurge, written and synced before the abort completes, so
 * that no cap drops a row.  The worker adopts both, and removes a spill
 * file only when the transaction that wrote its rows commits; if that
 * transaction fails, the rows that came from files are not handed on
 * again (the files are still there).
 */
static List *ccp_spill_adopted = NIL;	/* file names, in TopMemoryContext */
static uint32 ccp_spill_seq = 0;

/*
 * A transaction keeps the rows it wrote until it ends, to hand them to the
 * worker if it rolls back.  Beyond CCP_LOG_KEEP rows of the top level,
 * they are kept in a temporary file of this process instead of memory, so
 * that a statement of many thousand calls stays within a fixed amount of
 * memory.  The file is in base/pgsql_tmp, whose files PostgreSQL removes
 * at a restart.
 */
#define CCP_LOG_KEEP		1000
static int	ccp_keep_fd = -1;
static char ccp_keep_path[MAXPGPATH];
static uint32 ccp_keep_seq = 0;

static bool ccp_reqlog_keep_end(bool orphan, bool durable);
static void ccp_reqlog_to_record(const struct CcpLogEntry *e, CcpLogRecord *r);
static struct CcpLogEntry *ccp_reqlog_from_record(const CcpLogRecord *r);
static bool ccp_reqlog_write_record(int fd, const struct CcpLogEntry *e);

static MemoryContext ccp_log_cxt = NULL;
static List *ccp_log_pending = NIL;	/* not yet inserted */
static List *ccp_log_written = NIL; /* inserted by the open transaction */

/*
 * Rows of synchronous calls are written when the statement that made the
 * calls ends (ccp_reqlog_flush_at_statement_end): a function called once
 * per row then costs one INSERT per statement, not one per call.  The
 * executor's nesting is counted as pg_stat_statements does, so that the
 * end of the outermost statement is known.
 */
static ExecutorRun_hook_type ccp_prev_executor_run = NULL;
static ExecutorFinish_hook_type ccp_prev_executor_finish = NULL;
static ExecutorEnd_hook_type ccp_prev_executor_end = NULL;
static int	ccp_exec_level = 0;
static bool ccp_log_deferred = false;	/* pending rows wait for a statement end */
static bool ccp_log_flushing = false;

/* Most rows a statement's calls leave pending before they are written. */
#define CCP_LOG_FLUSH_ROWS	1000

/*
 * The INSERT of ccp_reqlog_flush, prepared once per process (it runs once
 * per synchronous call, and calls come once per row): into a log with
 * keyed digests ([1]), or into the log of 1.0 or 1.1 ([0]), which this
 * library serves until ALTER EXTENSION ccpurge UPDATE; rows then go
 * without a digest, as there is no key to make one.  Both take the same
 * 17 arrays, one per column; [1] takes an 18th, the log_id an intent
 * reserved (NULL: a new one), and inserts nothing for a log_id already
 * there (see intent.c: the row of a request and its intent record).
 */
#define CCP_LOG_UNNEST \
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)," \
	" pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)," \
	" pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8)," \
	" pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11)," \
	" pg_catalog.unnest($12), pg_catalog.unnest($13), pg_catalog.unnest($14)," \
	" pg_catalog.unnest($15), pg_catalog.unnest($16), pg_catalog.unnest($17)"
#define CCP_LOG_ALIAS \
	" AS r(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15," \
	" a16, a17"

#define CCP_LOG_TYPES \
	TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, \
	TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, BYTEAARRAYOID, \
	BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, \
	INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID

static CcpStmt ccp_log_insert_stmt[2] = {
	{
		"INSERT INTO ccpurge.request_log (logged_at, server, vendor, operation,"
		" origin, role, request_id, item_count, ok, http_status,"
		" code, message, duration_ms)"
		" SELECT r.a1, r.a2, r.a3, r.a4, r.a5, r.a6, r.a7, r.a8, r.a10, r.a11,"
		" r.a12, r.a13, r.a14" CCP_LOG_UNNEST ")" CCP_LOG_ALIAS ")",
		17, {CCP_LOG_TYPES}
	},
	{
		"INSERT INTO ccpurge.request_log (log_id, logged_at, server, vendor,"
		" operation, origin, role, request_id, item_count, items_hmac, ok,"
		" http_status, code, message, duration_ms, key_id, request_ids, scope)"
		" SELECT COALESCE(r.a18, pg_catalog.nextval("
		"'ccpurge.request_log_log_id_seq'::pg_catalog.regclass)),"
		" r.a1, r.a2, r.a3, r.a4, r.a5, r.a6, r.a7, r.a8, r.a9, r.a10,"
		" r.a11, r.a12, r.a13, r.a14, r.a15, r.a16::pg_catalog.int8[],"
		" r.a17::pg_catalog.jsonb" CCP_LOG_UNNEST ", pg_catalog.unnest($18))"
		CCP_LOG_ALIAS ", a18) ON CONFLICT (log_id) DO NOTHING RETURNING log_id",
		18, {CCP_LOG_TYPES, INT8ARRAYOID}
	}
};

/*
 * ccp_reqlog_put copies s (if not NULL) to *p, advances *p past it and
 * returns the copy; NULL for NULL.
 */
static char *
ccp_reqlog_put(char **p, const char *s)
{
	char	   *copy = *p;
	size_t		len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	memcpy(copy, s, len);
	*p += len;
	return copy;
}

/*
 * ccp_reqlog_ids_text returns the n queue request ids as the text of an
 * int8[] ("{1,2}"), palloc'd, or NULL when there are none.
 */
static char *
ccp_reqlog_ids_text(const int64 *request_ids, int n)
{
	StringInfoData buf;

	if (n <= 0)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < n; i++)
		appendStringInfo(&buf, "%s" INT64_FORMAT, i > 0 ? "," : "",
						 request_ids[i]);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * ccp_reqlog_entry makes the log entry of one HTTP request, in the log's
 * memory context; arguments as for ccp_reqlog_write.  receipts_due: the
 * entry's row gets its items' receipts when it is written (not a worker's
 * intent row, which wrote them).  digested: the entry of the same
 * request's intent (a synchronous one), whose digests are taken instead of
 * being computed again; NULL for none.
 */
static CcpLogEntry *
ccp_reqlog_entry(const CcpServer *srv, const char *operation,
				 char **items, int nitems, const CcpOutcome *out,
				 double elapsed_ms, CcpOrigin origin, int64 request_id,
				 const int64 *request_ids, int nrequest_ids,
				 const char *scope, bool receipts_due,
				 const struct CcpLogEntry *digested)
{
	MemoryContext old;
	CcpLogEntry *e;
	char	   *ids = ccp_reqlog_ids_text(request_ids, nrequest_ids);
	char	   *digest = NULL;
	int			key_id = 0;
	uint8		hmac[PG_SHA256_DIGEST_LENGTH];
	Size		receipts;
	bool		want_hmacs;

	if (digested != NULL)
	{
		digest = digested->digest;
		key_id = digested->key_id;
	}
	else if (nitems > 0 && ccp_digest_items(items, nitems, hmac, &key_id))
	{
		digest = palloc(PG_SHA256_DIGEST_STRING_LENGTH);
		hex_encode((const char *) hmac, sizeof(hmac), digest);
		digest[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	}

	if (ccp_log_cxt == NULL)
		ccp_log_cxt = AllocSetContextCreate(TopMemoryContext, "ccpurge request log",
											ALLOCSET_DEFAULT_SIZES);
	/*
	 * One allocation holds the entry and its strings: entries of a call are
	 * kept until its transaction ends, and calls come once per row.  vendor
	 * and operation names are static.
	 */
	/*
	 * Each item's receipt: its HMAC, unless an intent row wrote it already
	 * or the log has no receipts (before the update to 1.2), and its own
	 * outcome where the vendor answered per item.
	 */
	want_hmacs = (nitems > 0 && items != NULL && receipts_due &&
				  (!IsTransactionState() || ccp_receipt_writable()));
	receipts = (want_hmacs ? (Size) nitems * PG_SHA256_DIGEST_LENGTH : 0) +
		(nitems > 0 && out->item_ok != NULL ? nitems : 0);
	old = MemoryContextSwitchTo(ccp_log_cxt);
	e = palloc0(MAXALIGN(sizeof(CcpLogEntry)) + receipts +
				strlen(srv->servername) + 1 +
				(digest ? strlen(digest) + 1 : 0) +
				(ids ? strlen(ids) + 1 : 0) +
				(scope ? strlen(scope) + 1 : 0) +
				(out->code ? strlen(out->code) + 1 : 0) +
				(out->message ? strlen(out->message) + 1 : 0));
	{
		char	   *p = (char *) e + MAXALIGN(sizeof(CcpLogEntry));

		e->server = ccp_reqlog_put(&p, srv->servername);
		e->digest = ccp_reqlog_put(&p, digest);
		e->key_id = key_id;
		e->request_ids = ccp_reqlog_put(&p, ids);
		e->scope = ccp_reqlog_put(&p, scope);
		e->code = ccp_reqlog_put(&p, out->code);
		e->message = ccp_reqlog_put(&p, out->message);
		if (receipts > 0)
		{
			e->nreceipts = nitems;
			if (want_hmacs)
			{
				e->hmacs = (uint8 *) p;
				p += (Size) nitems * PG_SHA256_DIGEST_LENGTH;
				if (digested != NULL && digested->hmacs != NULL)
				{
					memcpy(e->hmacs, digested->hmacs,
						   (Size) nitems * PG_SHA256_DIGEST_LENGTH);
					e->receipt_key = digested->receipt_key;
				}
				else if (!ccp_digest_each(items, nitems, e->hmacs,
										  &e->receipt_key))
					e->hmacs = NULL;
			}
			if (out->item_ok != NULL)
			{
				e->item_ok = (uint8 *) p;
				for (int i = 0; i < nitems; i++)
					e->item_ok[i] = out->item_ok[i] ? 1 : 0;
			}
		}
	}
	e->at = GetCurrentTimestamp();
	e->vendor = srv->vendor->name;
	e->operation = operation;
	e->origin = (origin == CCP_ORIGIN_SYNC) ? "sync" : "worker";
	e->role = srv->userid;
	e->request_id = request_id;
	e->item_count = nitems;
	/* a request that erased only some of its items is not ok */
	e->ok = ccp_outcome_all_ok(out, nitems);
	e->http_status = out->http_status;
	e->duration_ms = elapsed_ms;
	MemoryContextSwitchTo(old);
	return e;
}

/*
 * Intents of synchronous requests (see intent.c) that the open transaction
 * wrote and whose answer has not been recorded yet, with whether the
 * request is being sent; in ccp_intent_cxt, emptied at transaction end.
 */
typedef struct CcpOpenIntent
{
	CcpLogEntry *e;				/* in ccp_log_cxt */
	bool		sending;
} CcpOpenIntent;

static MemoryContext ccp_intent_cxt = NULL;
static List *ccp_intents_open = NIL;

/*
 * ccp_reqlog_intent_take removes the open intent of log_id intent_id and
 * returns its entry, for the caller to free, or NULL when there is none
 * (the worker's intent rows, or no intent at all).
 */
static CcpLogEntry *
ccp_reqlog_intent_take(int64 intent_id)
{
	ListCell   *lc;

	if (intent_id == 0)
		return NULL;
	foreach(lc, ccp_intents_open)
	{
		CcpOpenIntent *oi = lfirst(lc);

		if (oi->e->log_id == intent_id)
		{
			CcpLogEntry *e = oi->e;

			ccp_intents_open = foreach_delete_current(ccp_intents_open, lc);
			pfree(oi);
			return e;
		}
	}
	return NULL;
}

/*
 * ccp_reqlog_write records one HTTP request for the request log; operation
 * must be a static string (an operation's name, or "token").  The row
 * is kept in memory until ccp_reqlog_flush(); items may be NULL when the
 * request carried none (token requests).  intent_id is the log_id of the
 * request's durable record: a worker's intent row, which the row's
 * outcome finishes, or a synchronous request's intent, whose log_id the
 * new row takes (its time too: when the request was recorded).  Needs no
 * transaction, so the worker can call it between transactions, but needs
 * a resource owner for the digest.
 */
void
ccp_reqlog_write(const CcpServer *srv, const char *operation,
				 char **items, int nitems, const CcpOutcome *out,
				 double elapsed_ms, CcpOrigin origin, int64 request_id,
				 const int64 *request_ids, int nrequest_ids,
				 const char *scope, int64 intent_id)
{
	CcpLogEntry *intent = ccp_reqlog_intent_take(intent_id);
	CcpLogEntry *e = ccp_reqlog_entry(srv, operation, items, nitems, out,
									  elapsed_ms, origin, request_id,
									  request_ids, nrequest_ids, scope,
									  intent_id == 0 || intent != NULL,
									  intent);
	MemoryContext old;

	e->log_id = intent_id;
	if (intent != NULL)
	{
		e->reserved = true;
		e->at = intent->at;
		pfree(intent);
		/* the answer, for the worker if this process dies (intent.c) */
		ccp_intent_end(ccp_reqlog_write_record(ccp_intent_begin(false), e),
					   false);
	}
	old = MemoryContextSwitchTo(ccp_log_cxt);
	ccp_log_pending = lappend(ccp_log_pending, e);
	MemoryContextSwitchTo(old);
}

/*
 * ccp_reqlog_seq_durable flushes the WAL that holds the state of sequence
 * seqid, so that a log_id reserved for an intent is never handed out again
 * after a crash.  That WAL is usually flushed already: the sequence logs
 * 32 values ahead in one record, and when the values it logged are used
 * up (or a checkpoint has passed since), this call takes one more value,
 * wasted, so that the record the next reservation needs is written now
 * and flushed by the commit of this call.  Separate one-item calls so make
 * one WAL flush each, their commit's.
 */
static void
ccp_reqlog_seq_durable(Oid seqid)
{
	Relation	rel = relation_open(seqid, AccessShareLock);
	Buffer		buf = ReadBuffer(rel, 0);
	Page		page;
	HeapTupleHeader tup;
	XLogRecPtr	lsn;
	int64		log_cnt;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	lsn = PageGetLSN(page);
	tup = (HeapTupleHeader) PageGetItem(page, PageGetItemId(page, FirstOffsetNumber));
	log_cnt = ((Form_pg_sequence_data) ((char *) tup + tup->t_hoff))->log_cnt;
	UnlockReleaseBuffer(buf);
	relation_close(rel, AccessShareLock);
	XLogFlush(lsn);
	if (log_cnt == 0 || lsn <= GetRedoRecPtr())
		(void) nextval_internal(seqid, false);
}

/*
 * ccp_reqlog_sync_intents makes the intents of n requests of a synchronous
 * call durable before any of them is sent (intent.c), and sets ids[i] to
 * the log_id reserved for chunks[i]'s request, 0 for all when the log
 * keeps no intents (an installation not yet updated to 1.2).  Each
 * request hands its id to ccp_exchange, which says when it is being sent
 * (ccp_reqlog_sending).  The caller is in a transaction, not connected to
 * SPI, and holds no rate-limit ticket or other resource an error would
 * leak.
 */
void
ccp_reqlog_sync_intents(const CcpServer *srv, const CcpOpDef *def,
						const CcpChunk *chunks, int n, int64 *ids)
{
	Oid			logid;
	Oid			seqid;
	CcpOutcome	out;
	CcpLogEntry **entries;
	int			fd;
	bool		written = true;
	MemoryContext old;

	memset(ids, 0, sizeof(int64) * n);
	if (!ccp_ccpurge_table("request_log", &logid, NULL) ||
		get_attnum(logid, "row_hash") == InvalidAttrNumber ||
		!ccp_ccpurge_table("request_log_log_id_seq", &seqid, NULL))
		return;
	if (ccp_intent_cxt == NULL)
		ccp_intent_cxt = AllocSetContextCreate(TopMemoryContext,
											   "ccpurge intents",
											   ALLOCSET_SMALL_SIZES);
	memset(&out, 0, sizeof(out));
	out.success_count = -1;
	out.code = "outcome_unknown";
	out.message = "no answer was recorded: the session or the server ended before this request's answer, and it may not have been sent";
	entries = palloc(sizeof(CcpLogEntry *) * n);
	for (int i = 0; i < n; i++)
	{
		CcpLogEntry *e = ccp_reqlog_entry(srv, def->name, chunks[i].items,
										  chunks[i].nitems, &out, 0,
										  CCP_ORIGIN_SYNC, 0, NULL, 0,
										  ccp_params_scope(def, chunks[i].params),
										  true, NULL);

		/* the sequence's own access check is the extension's business */
		e->log_id = ids[i] = nextval_internal(seqid, false);
		e->reserved = true;
		e->ok_unknown = true;
		entries[i] = e;
	}
	ccp_reqlog_seq_durable(seqid);
	fd = ccp_intent_begin(true);
	for (int i = 0; i < n && written; i++)
		written = ccp_reqlog_write_record(fd, entries[i]);
	ccp_intent_end(written, true);
	old = MemoryContextSwitchTo(ccp_intent_cxt);
	for (int i = 0; i < n; i++)
	{
		CcpOpenIntent *oi = palloc(sizeof(CcpOpenIntent));

		oi->e = entries[i];
		oi->sending = false;
		ccp_intents_open = lappend(ccp_intents_open, oi);
	}
	MemoryContextSwitchTo(old);
	pfree(entries);
}

/*
 * ccp_reqlog_sending says that the request of intent intent_id is being
 * sent: if the call is interrupted now, its row reads "outcome unknown".
 */
void
ccp_reqlog_sending(int64 intent_id)
{
	ListCell   *lc;

	foreach(lc, ccp_intents_open)
	{
		CcpOpenIntent *oi = lfirst(lc);

		if (oi->e->log_id == intent_id)
			oi->sending = true;
	}
}

/*
 * ccp_reqlog_intents_forget forgets every open intent; their records are
 * settled with the transaction.  Their entries are freed with the log's
 * memory context.
 */
static void
ccp_reqlog_intents_forget(void)
{
	ccp_intents_open = NIL;
	if (ccp_intent_cxt != NULL)
		MemoryContextReset(ccp_intent_cxt);
}

/*
 * ccp_reqlog_intents_interrupted makes a pending "outcome unknown" row of
 * each open intent whose request was being sent when an error ended the
 * call, and forgets the intents of requests that were never sent (their
 * records are settled with the transaction).  Runs in transaction
 * callbacks: raises no error.
 */
static void
ccp_reqlog_intents_interrupted(void)
{
	ListCell   *lc;
	MemoryContext old;

	if (ccp_intents_open == NIL)
		return;
	old = MemoryContextSwitchTo(ccp_log_cxt);
	foreach(lc, ccp_intents_open)
	{
		CcpOpenIntent *oi = lfirst(lc);

		if (!oi->sending)
			continue;
		oi->e->message = "no answer was recorded: the call was canceled or failed while the request was in flight";
		ccp_log_pending = lappend(ccp_log_pending, oi->e);
	}
	MemoryContextSwitchTo(old);
	ccp_reqlog_intents_forget();
}

/*
 * ccp_reqlog_discard forgets every row this process holds, written or not;
 * for the worker, when the table they belong in is gone.
 */
void
ccp_reqlog_discard(void)
{
	ccp_reqlog_intents_forget();
	ccp_log_pending = NIL;
	ccp_log_written = NIL;
	(void) ccp_reqlog_keep_end(false, false);
	if (ccp_log_cxt != NULL)
		MemoryContextReset(ccp_log_cxt);
}

/*
 * ccp_reqlog_worker_db tells whether a worker serves this process's
 * database (or will, once it has started).  No catalog access: it runs in
 * transaction callbacks.
 */
static bool
ccp_reqlog_worker_db(void)
{
	return ccp_launcher_serves();
}

/*
 * ccp_reqlog_to_record copies entry e into the fixed-size record r, text cut
 * at character boundaries, and request ids or a scope too long for it left
 * out rather than cut.
 */
static void
ccp_reqlog_to_record(const CcpLogEntry *e, CcpLogRecord *r)
{
	memset(r, 0, sizeof(*r));
	r->dbid = MyDatabaseId;
	r->at = e->at;
	ccp_shmem_strcpy(r->server, e->server, sizeof(r->server));
	ccp_shmem_strcpy(r->vendor, e->vendor, sizeof(r->vendor));
	ccp_shmem_strcpy(r->operation, e->operation, sizeof(r->operation));
	r->worker = (strcmp(e->origin, "worker") == 0);
	r->role = e->role;
	r->request_id = e->request_id;
	r->item_count = e->item_count;
	r->has_digest = (e->digest != NULL);
	if (e->digest)
		ccp_shmem_strcpy(r->digest, e->digest, sizeof(r->digest));
	r->key_id = e->key_id;
	r->log_id = e->log_id;
	r->reserved = e->reserved;
	r->ok_unknown = e->ok_unknown;
	r->has_request_ids = (e->request_ids != NULL &&
						  strlen(e->request_ids) < sizeof(r->request_ids));
	if (r->has_request_ids)
		strcpy(r->request_ids, e->request_ids);
	r->has_scope = (e->scope != NULL && strlen(e->scope) < sizeof(r->scope));
	if (r->has_scope)
		strcpy(r->scope, e->scope);
	r->ok = e->ok;
	r->http_status = e->http_status;
	r->has_code = (e->code != NULL);
	if (e->code)
		ccp_shmem_strcpy(r->code, e->code, sizeof(r->code));
	if (e->message)
		ccp_shmem_strcpy(r->message, e->message, sizeof(r->message));
	r->duration_ms = e->duration_ms;
	r->nreceipts = e->nreceipts;
	r->receipt_key = e->receipt_key;
	r->has_hmacs = (e->hmacs != NULL);
	r->has_item_ok = (e->item_ok != NULL);
}

/*
 * ccp_reqlog_write_record writes entry e to file fd as a record followed
 * by its receipts.  Raises no error (it runs in aborts); returns false
 * when the write failed.
 */
static bool
ccp_reqlog_write_record(int fd, const CcpLogEntry *e)
{
	CcpLogRecord r;

	ccp_reqlog_to_record(e, &r);
	if (write(fd, &r, sizeof(r)) != sizeof(r))
		return false;
	if (r.has_hmacs &&
		write(fd, e->hmacs, (Size) r.nreceipts * PG_SHA256_DIGEST_LENGTH) !=
		(ssize_t) ((Size) r.nreceipts * PG_SHA256_DIGEST_LENGTH))
		return false;
	if (r.has_item_ok &&
		write(fd, e->item_ok, r.nreceipts) != (ssize_t) r.nreceipts)
		return false;
	return true;
}

/*
 * ccp_reqlog_from_record returns a pending-list entry, palloc'd in the
 * current context, for record r.
 */
static CcpLogEntry *
ccp_reqlog_from_record(const CcpLogRecord *r)
{
	CcpLogEntry *e = palloc0(sizeof(CcpLogEntry));

	e->at = r->at;
	e->server = pstrdup(r->server);
	e->vendor = pstrdup(r->vendor);
	e->operation = pstrdup(r->operation);
	e->origin = r->worker ? "worker" : "sync";
	e->role = r->role;
	e->request_id = r->request_id;
	e->item_count = r->item_count;
	e->digest = r->has_digest ? pstrdup(r->digest) : NULL;
	e->key_id = r->key_id;
	e->log_id = r->log_id;
	e->reserved = r->reserved;
	e->ok_unknown = r->ok_unknown;
	e->request_ids = r->has_request_ids ? pstrdup(r->request_ids) : NULL;
	e->scope = r->has_scope ? pstrdup(r->scope) : NULL;
	e->ok = r->ok;
	e->http_status = r->http_status;
	e->code = r->has_code ? pstrdup(r->code) : NULL;
	e->message = pstrdup(r->message);
	e->duration_ms = r->duration_ms;
	e->nreceipts = r->nreceipts;
	e->receipt_key = r->receipt_key;
	return e;
}

/*
 * ccp_reqlog_read_record reads the next record of file fd and its
 * receipts into a new entry, palloc'd in the current context; NULL at the
 * end of the file or of its whole records.
 */
static CcpLogEntry *
ccp_reqlog_read_record(int fd)
{
	CcpLogRecord r;
	CcpLogEntry *e;

	if (read(fd, &r, sizeof(r)) != sizeof(r))
		return NULL;
	e = ccp_reqlog_from_record(&r);
	if (r.has_hmacs)
	{
		Size		len = (Size) r.nreceipts * PG_SHA256_DIGEST_LENGTH;

		e->hmacs = palloc(len);
		if (read(fd, e->hmacs, len) != (ssize_t) len)
			return NULL;
	}
	if (r.has_item_ok)
	{
		e->item_ok = palloc(r.nreceipts);
		if (read(fd, e->item_ok, r.nreceipts) != (ssize_t) r.nreceipts)
			return NULL;
	}
	return e;
}

/*
 * ccp_reqlog_spill writes entries, as records with their receipts, to a
 * new spill file, synced and then renamed into place, so that a file the
 * worker sees is whole.  Runs in the abort of a transaction, so it uses
 * plain system calls and raises no error; returns false when the file
 * could not be written.
 */
static bool
ccp_reqlog_spill(List *entries)
{
	ListCell   *lc;
	char		dir[MAXPGPATH];
	char		tmp[MAXPGPATH];
	char		path[MAXPGPATH];
	int			fd;
	bool		ok;

	snprintf(dir, sizeof(dir), "%s/%s", DataDir, CCP_SPILL_DIR);
	(void) mkdir(dir, pg_dir_create_mode);
	snprintf(path, sizeof(path), "%s/spill-%u-%d-%u.rec", dir,
			 MyDatabaseId, MyProcPid, ++ccp_spill_seq);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, pg_file_create_mode);
	if (fd < 0)
		return false;
	ok = true;
	foreach(lc, entries)
		ok = ok && ccp_reqlog_write_record(fd, lfirst(lc));
	ok = ok && pg_fsync(fd) == 0;
	if (close(fd) != 0)
		ok = false;
	if (ok)
		ok = (rename(tmp, path) == 0);
	if (!ok)
	{
		(void) unlink(tmp);
		return false;
	}
	/* the rename must survive a crash too */
	fd = open(dir, O_RDONLY | PG_BINARY, 0);
	if (fd >= 0)
	{
		(void) pg_fsync(fd);
		(void) close(fd);
	}
	return true;
}

/*
 * ccp_reqlog_adopt_files reads record files of this database into the
 * pending list, their rows marked as from a file, and remembers the files,
 * to be removed when the transaction commits: spill files, or (intents)
 * the intent files of backends that are gone (intent.c).  The worker calls
 * it in a transaction.
 */
static void
ccp_reqlog_adopt_files(bool intents)
{
	char		dir[MAXPGPATH];
	char		prefix[32];
	DIR		   *d;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "%s/%s", DataDir, CCP_SPILL_DIR);
	snprintf(prefix, sizeof(prefix), "spill-%u-", MyDatabaseId);
	d = AllocateDir(dir);
	if (d == NULL)
		return;
	while ((de = ReadDir(d, dir)) != NULL)
	{
		char		path[MAXPGPATH];
		int			fd;
		CcpLogEntry *e;
		MemoryContext old;

		if (intents ? !ccp_intent_orphaned(de->d_name, MyDatabaseId) :
			(strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
			 strlen(de->d_name) < 4 ||
			 strcmp(de->d_name + strlen(de->d_name) - 4, ".rec") != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			continue;
		old = MemoryContextSwitchTo(ccp_log_cxt);
		while ((e = ccp_reqlog_read_record(fd)) != NULL)
		{
			ListCell   *same = NULL;

			e->from_spill = true;

			/*
			 * An answer follows its intent in the file, at most a window of
			 * intents and their answers later: it replaces the intent.
			 */
			for (int i = list_length(ccp_log_pending) - 1, seen = 0;
				 intents && i >= 0 && seen < 2 * CCP_INTENT_WINDOW + 2 &&
				 same == NULL; i--, seen++)
			{
				CcpLogEntry *prior = list_nth(ccp_log_pending, i);

				if (prior->reserved && prior->log_id == e->log_id)
					same = list_nth_cell(ccp_log_pending, i);
			}
			if (same != NULL)
				lfirst(same) = e;
			else
				ccp_log_pending = lappend(ccp_log_pending, e);
		}
		MemoryContextSwitchTo(TopMemoryContext);
		ccp_spill_adopted = lappend(ccp_spill_adopted, pstrdup(path));
		MemoryContextSwitchTo(old);
		CloseTransientFile(fd);
	}
	FreeDir(d);
}

/*
 * ccp_reqlog_spills_done removes the adopted spill files when their rows
 * are committed, and only forgets them otherwise (they are read again).
 */
static void
ccp_reqlog_spills_done(bool committed)
{
	ListCell   *lc;

	foreach(lc, ccp_spill_adopted)
	{
		if (committed)
			(void) unlink((char *) lfirst(lc));
		pfree(lfirst(lc));
	}
	list_free(ccp_spill_adopted);
	ccp_spill_adopted = NIL;
}

/*
 * ccp_reqlog_orphan hands rows whose transaction rolled back to the worker
 * through shared memory, or, when durable (the rows of requests whose
 * intents are in this backend's intent file) or beyond the ring, through
 * a synced spill file.  Runs in transaction callbacks: it must not access
 * catalogs or raise errors.  Rows of a database the worker does not serve,
 * or that could not be kept, are counted in a warning.  Returns false
 * when a durable hand-over failed (the intent file must then stay).
 */
static bool
ccp_reqlog_orphan(List *entries, bool durable)
{
	ListCell   *lc;
	int			lost = 0;
	List	   *spill = NIL;
	bool		kept = true;

	if (entries == NIL || ccp_shared == NULL)
		return true;
	LWLockAcquire(ccp_shared->log_lock, LW_EXCLUSIVE);
	foreach(lc, entries)
	{
		CcpLogEntry *e = lfirst(lc);
		CcpLogRecord *r;

		/* still in its spill file, which stays until it is written */
		if (e->from_spill)
			continue;
		if (!ccp_reqlog_worker_db())
		{
			lost++;
			continue;
		}
		/* the ring's records have no room for receipts */
		if (!durable && ccp_shared->log_count < CCP_LOG_RING &&
			e->hmacs == NULL && e->item_ok == NULL)
		{
			r = &ccp_shared->log_ring[ccp_shared->log_count++];
			ccp_reqlog_to_record(e, r);
		}
		else
			spill = lappend(spill, e);
	}
	LWLockRelease(ccp_shared->log_lock);
	if (spill != NIL && !ccp_reqlog_spill(spill))
	{
		/* the intent file still holds them, as "outcome unknown" */
		if (durable)
			kept = false;
		else
			lost += list_length(spill);
	}
	list_free(spill);
	ccp_wake_worker();
	if (lost > 0)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg_plural("%d request log row of a rolled-back transaction was not kept",
							   "%d request log rows of a rolled-back transaction were not kept",
							   lost, lost),
				 errdetail("The ccpurge worker serves another database, or its spill file could not be written.")));
	return kept && lost == 0;
}

/*
 * ccp_reqlog_orphan_pending hands the rows not yet written to the worker;
 * for a worker that leaves, or recovers from an error, between
 * transactions, where no abort callback would do it.
 */
void
ccp_reqlog_orphan_pending(void)
{
	(void) ccp_reqlog_orphan(ccp_log_pending, false);
	ccp_log_pending = NIL;
}

/*
 * ccp_reqlog_adopt_orphans moves the rows that rolled-back transactions of
 * this database handed over into this process's pending rows, for the next
 * ccp_reqlog_flush().  Rows of other databases are dropped: only the
 * worker's database is served.
 */
void
ccp_reqlog_adopt_orphans(void)
{
	MemoryContext old;

	if (ccp_shared == NULL)
		return;
	if (ccp_log_cxt == NULL)
		ccp_log_cxt = AllocSetContextCreate(TopMemoryContext, "ccpurge request log",
											ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ccp_log_cxt);
	LWLockAcquire(ccp_shared->log_lock, LW_EXCLUSIVE);
	for (int i = 0; i < ccp_shared->log_count; i++)
	{
		CcpLogRecord *r = &ccp_shared->log_ring[i];

		if (r->dbid != MyDatabaseId)
			continue;
		ccp_log_pending = lappend(ccp_log_pending, ccp_reqlog_from_record(r));
	}
	ccp_shared->log_count = 0;
	LWLockRelease(ccp_shared->log_lock);
	MemoryContextSwitchTo(old);
	if (ccp_spill_adopted == NIL)
	{
		/*
		 * Spill files first: a row with its outcome goes in before the
		 * intent record of the same log_id, which then adds nothing.
		 */
		ccp_reqlog_adopt_files(false);
		ccp_reqlog_adopt_files(true);
	}
}

/*
 * ccp_reqlog_keep writes written entries of the top-level transaction to
 * this process's keep file (see CCP_LOG_KEEP) and frees them.  Raises an
 * error when the file cannot be written; the transaction then rolls back
 * and hands everything to the worker.
 */
static void
ccp_reqlog_keep(List *entries)
{
	ListCell   *lc;

	if (ccp_keep_fd < 0)
	{
		char		dir[MAXPGPATH];

		snprintf(dir, sizeof(dir), "%s/base/%s", DataDir, PG_TEMP_FILES_DIR);
		(void) mkdir(dir, pg_dir_create_mode);
		snprintf(ccp_keep_path, sizeof(ccp_keep_path), "%s/%sccpurge%d.%u",
				 dir, PG_TEMP_FILE_PREFIX, MyProcPid, ++ccp_keep_seq);
		ccp_keep_fd = open(ccp_keep_path, O_RDWR | O_CREAT | O_TRUNC | PG_BINARY,
						   pg_file_create_mode);
		if (ccp_keep_fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", ccp_keep_path)));
	}
	foreach(lc, entries)
	{
		CcpLogEntry *e = lfirst(lc);

		/* a row from a spill file stays there until it is committed */
		if (e->from_spill)
			continue;
		if (!ccp_reqlog_write_record(ccp_keep_fd, e))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", ccp_keep_path)));
		pfree(e);
	}
}

/*
 * ccp_reqlog_keep_end closes and removes the keep file; with orphan, the
 * rows in it are first handed to the worker (a rollback), durably or not
 * as for ccp_reqlog_orphan, whose result it returns.  Runs at the end of a
 * transaction: raises no error.
 */
static bool
ccp_reqlog_keep_end(bool orphan, bool durable)
{
	bool		kept = true;

	if (ccp_keep_fd < 0)
		return true;
	if (orphan && lseek(ccp_keep_fd, 0, SEEK_SET) == 0)
	{
		CcpLogEntry *e;
		List	   *batch = NIL;

		while ((e = ccp_reqlog_read_record(ccp_keep_fd)) != NULL)
		{
			batch = lappend(batch, e);
			if (list_length(batch) >= CCP_LOG_RING)
			{
				kept &= ccp_reqlog_orphan(batch, durable);
				list_free_deep(batch);
				batch = NIL;
			}
		}
		kept &= ccp_reqlog_orphan(batch, durable);
		list_free_deep(batch);
	}
	(void) close(ccp_keep_fd);
	(void) unlink(ccp_keep_path);
	ccp_keep_fd = -1;
	return kept;
}

/*
 * ccp_reqlog_xact_callback keeps the rows of a committed transaction
 * written, and wakes the worker to chain them, and hands those of a
 * rolled-back one to the worker.  A transaction that sent requests cannot
 * be prepared (as postgres_fdw refuses to prepare one that used a remote
 * connection): a later ROLLBACK PREPARED would lose the rows of requests
 * that went out, as no process holds them any more.  The refusal aborts
 * the transaction, which hands its rows to the worker.
 */
static void
ccp_reqlog_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (ccp_log_written != NIL || ccp_log_pending != NIL ||
				ccp_keep_fd >= 0 || ccp_intent_active())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that sent ccpurge requests"),
						 errdetail("The request log rows of the requests it sent would be lost if the prepared transaction were rolled back."),
						 errhint("Make synchronous ccpurge calls outside transactions that use two-phase commit, or queue the work with ccpurge_enqueue.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			{
				bool		durable = ccp_intent_active();
				bool		kept = true;

				/* rows whose statement end never came: the worker writes them */
				if (ccp_log_pending != NIL)
				{
					kept = ccp_reqlog_orphan(ccp_log_pending, durable);
					ccp_log_pending = NIL;
				}
				ccp_log_deferred = false;
				/* the worker chains the new rows (see chain.c) */
				if (event == XACT_EVENT_COMMIT && ccp_log_written != NIL &&
					!IsBackgroundWorker)
					ccp_wake_worker();
				ccp_log_written = NIL;
				(void) ccp_reqlog_keep_end(false, false);
				if (event == XACT_EVENT_COMMIT)
					ccp_reqlog_spills_done(true);
				if (ccp_log_pending == NIL && ccp_log_cxt != NULL)
					MemoryContextReset(ccp_log_cxt);
				/* the intents' rows are in this commit (see intent.c) */
				ccp_reqlog_intents_forget();
				if (kept)
					ccp_intent_settle(XactLastCommitEnd);
			}
			break;
		case XACT_EVENT_ABORT:
			{
				bool		durable;
				bool		kept;

				ccp_reqlog_intents_interrupted();
				durable = ccp_intent_active();
				kept = ccp_reqlog_orphan(list_concat(ccp_log_written,
													 ccp_log_pending),
										 durable);
				if (ccp_log_cxt != NULL)
				{
					MemoryContext old = MemoryContextSwitchTo(ccp_log_cxt);

					kept &= ccp_reqlog_keep_end(true, durable);
					MemoryContextSwitchTo(old);
				}
				/* every row is in a synced spill file now */
				if (kept)
					ccp_intent_settle(InvalidXLogRecPtr);
			}
			ccp_log_written = NIL;
			ccp_log_pending = NIL;
			ccp_log_deferred = false;
			ccp_log_flushing = false;
			ccp_exec_level = 0;
			ccp_reqlog_spills_done(false);
			if (ccp_log_cxt != NULL)
				MemoryContextReset(ccp_log_cxt);
			break;
		default:
			break;
	}
}

/*
 * ccp_reqlog_subxact_callback hands the rows written inside a rolled-back
 * savepoint to the worker, and passes those of a released one up.
 */
static void
ccp_reqlog_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	int			level;
	List	   *lost = NIL;
	List	   *kept = NIL;
	ListCell   *lc;

	MemoryContext old;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		ccp_reqlog_intents_interrupted();
	if (event == SUBXACT_EVENT_ABORT_SUB && ccp_log_pending != NIL)
	{
		/* rows of a call the error cut short: their requests went out */
		(void) ccp_reqlog_orphan(ccp_log_pending, ccp_intent_active());
		ccp_log_pending = NIL;
	}
	if (ccp_log_written == NIL ||
		(event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	/* the ending subtransaction is still the current one here */
	level = GetCurrentTransactionNestLevel();
	old = MemoryContextSwitchTo(ccp_log_cxt);
	foreach(lc, ccp_log_written)
	{
		CcpLogEntry *e = lfirst(lc);

		if (e->level < level)
			kept = lappend(kept, e);
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			e->level = level - 1;
			kept = lappend(kept, e);
		}
		else
			lost = lappend(lost, e);
	}
	MemoryContextSwitchTo(old);
	ccp_log_written = kept;
	(void) ccp_reqlog_orphan(lost, ccp_intent_active());
}

/* ccp_reqlog_executor_run counts the executor's nesting around a run. */
static void
ccp_reqlog_executor_run(QueryDesc *queryDesc, ScanDirection direction,
						uint64 count, bool execute_once)
{
	ccp_exec_level++;
	PG_TRY();
	{
		if (ccp_prev_executor_run)
			ccp_prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		ccp_exec_level--;
	}
	PG_END_TRY();
}

/* ccp_reqlog_executor_finish counts the nesting around a finish, too. */
static void
ccp_reqlog_executor_finish(QueryDesc *queryDesc)
{
	ccp_exec_level++;
	PG_TRY();
	{
		if (ccp_prev_executor_finish)
			ccp_prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		ccp_exec_level--;
	}
	PG_END_TRY();
}

/*
 * ccp_reqlog_executor_end writes, when the outermost statement ends, the
 * rows its synchronous calls left pending.
 */
static void
ccp_reqlog_executor_end(QueryDesc *queryDesc)
{
	if (ccp_prev_executor_end)
		ccp_prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);

	if (ccp_exec_level == 0 && ccp_log_deferred && !ccp_log_flushing &&
		IsTransactionState())
	{
		bool		snapshot = !ActiveSnapshotSet();

		ccp_log_flushing = true;
		PG_TRY();
		{
			/* the statement's own snapshot is gone with it */
			if (snapshot)
				PushActiveSnapshot(GetTransactionSnapshot());
			ccp_reqlog_flush();
			if (snapshot)
				PopActiveSnapshot();
		}
		PG_FINALLY();
		{
			ccp_log_flushing = false;
			ccp_log_deferred = false;
		}
		PG_END_TRY();
	}
}

/*
 * ccp_reqlog_flush_at_statement_end leaves the pending rows of a
 * synchronous call to be written when the statement that made the call
 * ends, or writes them now when CCP_LOG_FLUSH_ROWS are pending.  The
 * caller is in a transaction and not connected to SPI.
 */
void
ccp_reqlog_flush_at_statement_end(void)
{
	/* a statement of very many calls writes in slices, to bound memory */
	if (list_length(ccp_log_pending) >= CCP_LOG_FLUSH_ROWS)
		ccp_reqlog_flush();
	else if (ccp_log_pending != NIL)
		ccp_log_deferred = true;
}

/* ccp_reqlog_register_callbacks installs the callbacks; from _PG_init. */
void
ccp_reqlog_register_callbacks(void)
{
	RegisterXactCallback(ccp_reqlog_xact_callback, NULL);
	RegisterSubXactCallback(ccp_reqlog_subxact_callback, NULL);
	ccp_prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = ccp_reqlog_executor_run;
	ccp_prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = ccp_reqlog_executor_finish;
	ccp_prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = ccp_reqlog_executor_end;
}

/*
 * ccp_reqlog_resent records, besides the row of the answer, one row per
 * time libcurl sent a request again on a new connection after the first
 * one failed unseen: the earlier sends reached the vendor or not, and
 * their outcome is unknown (ok NULL, code "outcome_unknown").  Arguments
 * as for ccp_reqlog_write.
 */
void
ccp_reqlog_resent(const CcpServer *srv, const char *operation,
				  char **items, int nitems, CcpOrigin origin,
				  int64 request_id, const int64 *request_ids,
				  int nrequest_ids, const char *scope, int resends)
{
	CcpOutcome	out;

	memset(&out, 0, sizeof(out));
	out.success_count = -1;
	out.code = "outcome_unknown";
	out.message = "sent, then sent again by libcurl on a new connection: the first connection failed before any answer";
	for (int i = 0; i < resends; i++)
	{
		ccp_reqlog_write(srv, operation, items, nitems, &out, 0, origin,
						 request_id, request_ids, nrequest_ids, scope, 0);
		((CcpLogEntry *) llast(ccp_log_pending))->ok_unknown = true;
	}
}

/*
 * ccp_reqlog_set_text sets one text value of a column vector, NULL when s
 * is NULL.
 */
static void
ccp_reqlog_set_text(Datum *value, bool *isnull, const char *s)
{
	*value = s ? CStringGetTextDatum(s) : (Datum) 0;
	*isnull = (s == NULL);
}

/* The outcome of intent rows (see ccp_reqlog_intent), prepared once. */
static CcpStmt ccp_log_finish_stmt = {
	"UPDATE ccpurge.request_log AS l SET ok = u.ok, http_status = u.http_status,"
	" code = u.code, message = u.message, duration_ms = u.duration_ms"
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
	" pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
	" pg_catalog.unnest($6))"
	" AS u(log_id, ok, http_status, code, message, duration_ms)"
	" WHERE l.log_id OPERATOR(pg_catalog.=) u.log_id AND l.row_hash IS NULL"
	/* the log's rows through its index, never a scan of the whole log */
	" AND l.log_id OPERATOR(pg_catalog.=) ANY ($1)",
	6, {INT8ARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	FLOAT8ARRAYOID}, NULL, true
};

/*
 * ccp_reqlog_finish_intents writes the outcomes of pending entries that
 * finish an intent row, as the log's owner, leaves the other entries
 * pending (written entries are kept, as by ccp_reqlog_flush) and returns
 * how many are left.  Needs a transaction; connects to SPI itself.
 */
static int
ccp_reqlog_finish_intents(Oid owner)
{
	List	   *rest = NIL;
	List	   *done = NIL;
	ListCell   *lc;
	Datum	   *cols[6];
	bool	   *colnulls[6];
	Datum		args[6];
	int			n = 0;
	MemoryContext old;

	foreach(lc, ccp_log_pending)
	{
		CcpLogEntry *e = lfirst(lc);

		if (e->log_id != 0 && !e->reserved)
			done = lappend(done, e);
		else
			rest = lappend(rest, e);
	}
	if (done == NIL)
	{
		list_free(rest);
		return list_length(ccp_log_pending);
	}
	ccp_stmt_columns_alloc(&ccp_log_finish_stmt, list_length(done), cols,
							 colnulls);
	foreach(lc, done)
	{
		CcpLogEntry *e = lfirst(lc);

		cols[0][n] = Int64GetDatum(e->log_id);
		cols[1][n] = BoolGetDatum(e->ok);
		cols[2][n] = Int32GetDatum(e->http_status);
		colnulls[2][n] = (e->http_status == 0);
		ccp_reqlog_set_text(&cols[3][n], &colnulls[3][n], e->code);
		ccp_reqlog_set_text(&cols[4][n], &colnulls[4][n], e->message);
		cols[5][n] = Float8GetDatum(e->duration_ms);
		n++;
	}
	ccp_stmt_columns_args(&ccp_log_finish_stmt, n, cols, colnulls, args);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) ccp_stmt_exec_as(owner, &ccp_log_finish_stmt, args, NULL,
							SPI_OK_UPDATE);
	/* the receipts went with the intent row; per-item outcomes come now */
	foreach(lc, done)
	{
		CcpLogEntry *e = lfirst(lc);

		if (e->item_ok != NULL && ccp_receipt_writable())
			ccp_receipt_set_outcomes(owner, e->log_id, e->item_ok,
									 e->nreceipts);
	}
	SPI_finish();

	foreach(lc, done)
		((CcpLogEntry *) lfirst(lc))->level = GetCurrentTransactionNestLevel();
	old = MemoryContextSwitchTo(ccp_log_cxt);
	ccp_log_written = list_concat(ccp_log_written, done);
	ccp_log_pending = rest;
	MemoryContextSwitchTo(old);
	return list_length(rest);
}

/* The row of a request about to be sent, prepared once. */
static CcpStmt ccp_log_intent_stmt = {
	"INSERT INTO ccpurge.request_log (server, vendor, operation, origin, role,"
	" request_id, item_count, items_hmac, key_id, request_ids, scope, ok, code,"
	" message, duration_ms)"
	" VALUES ($1, $2, $3, 'worker', $4, $5, $6, $7, $8, $9::pg_catalog.int8[],"
	" $10::pg_catalog.jsonb, NULL, 'pending', 'sent; no answer yet', 0)"
	" RETURNING log_id",
	10, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT4OID, BYTEAOID,
	INT4OID, TEXTOID, TEXTOID}
};

/*
 * ccp_reqlog_intent writes, in the worker's claim transaction, the row of
 * a request it is about to send: everything but the outcome (ok NULL,
 * code "pending"), so that once the transaction commits the request has a
 * durable record before it leaves.  Returns the row's log_id, which the
 * answer's ccp_reqlog_write finishes, or 0 when the log has no room for
 * it (an installation not yet updated to 1.2).  *receipts says whether the
 * items' receipts were written with it, in the order of items.  The
 * caller is the worker, connected to SPI.
 */
int64
ccp_reqlog_intent(const CcpServer *srv, const char *operation,
				  char **items, int nitems, int64 request_id,
				  const int64 *request_ids, int nrequest_ids,
				  const char *scope, bool *receipts)
{
	Oid			relid;
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	uint8		hmac[PG_SHA256_DIGEST_LENGTH];
	int			key_id;
	bool		isnull;
	int64		log_id;
	char	   *role = GetUserNameFromId(srv->userid, true);

	*receipts = false;
	if (!ccp_ccpurge_table("request_log", &relid, NULL) ||
		get_attnum(relid, "row_hash") == InvalidAttrNumber)
		return 0;
	values[0] = CStringGetTextDatum(srv->servername);
	values[1] = CStringGetTextDatum(srv->vendor->name);
	values[2] = CStringGetTextDatum(operation);
	values[3] = CStringGetTextDatum(role ? role : "(dropped role)");
	values[4] = Int64GetDatum(request_id);
	nulls[4] = (request_id == 0) ? 'n' : ' ';
	values[5] = Int32GetDatum(nitems);
	nulls[6] = nulls[7] = 'n';
	if (nitems > 0 && ccp_digest_items(items, nitems, hmac, &key_id))
	{
		bytea	   *b = palloc(VARHDRSZ + sizeof(hmac));

		memcpy(VARDATA(b), hmac, sizeof(hmac));
		SET_VARSIZE(b, VARHDRSZ + sizeof(hmac));
		values[6] = PointerGetDatum(b);
		values[7] = Int32GetDatum(key_id);
		nulls[6] = nulls[7] = ' ';
	}
	nulls[8] = 'n';
	if (nrequest_ids > 0)
	{
		values[8] = CStringGetTextDatum(ccp_reqlog_ids_text(request_ids,
															nrequest_ids));
		nulls[8] = ' ';
	}
	values[9] = scope ? CStringGetTextDatum(scope) : (Datum) 0;
	nulls[9] = scope ? ' ' : 'n';
	(void) ccp_stmt_exec(&ccp_log_intent_stmt, values, nulls,
						 SPI_OK_INSERT_RETURNING);
	log_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));

	/* each item's receipt, in the same transaction, before it leaves */
	if (nitems > 0 && ccp_receipt_writable())
	{
		uint8	   *hmacs = palloc((Size) nitems * PG_SHA256_DIGEST_LENGTH);
		uint8	   *no_outcomes = NULL;

		if (ccp_digest_each(items, nitems, hmacs, &key_id))
		{
			ccp_receipt_insert(InvalidOid, 1, &log_id, &key_id, &hmacs,
							   &no_outcomes, &nitems);
			*receipts = true;
		}
		pfree(hmacs);
	}
	return log_id;
}

/* Intent rows whose answer never came, prepared once. */
static CcpStmt ccp_log_unknown_stmt = {
	"UPDATE ccpurge.request_log SET code = 'outcome_unknown',"
	" message = 'no answer was recorded: the worker stopped while the request was in flight'"
	" WHERE row_hash IS NULL AND code OPERATOR(pg_catalog.=) 'pending'",
	0, {InvalidOid}
};

/*
 * ccp_reqlog_mark_unknown marks every intent row still pending "outcome
 * unknown" (ok stays NULL), so that a request sent by a worker that
 * stopped before it recorded the answer keeps a row that says so, and
 * returns how many.  The worker calls it when it starts or recovers from
 * an error, connected to SPI, after it has written the outcomes it held.
 */
int64
ccp_reqlog_mark_unknown(void)
{
	Oid			relid;

	if (!ccp_ccpurge_table("request_log", &relid, NULL) ||
		get_attnum(relid, "row_hash") == InvalidAttrNumber)
		return 0;
	return (int64) ccp_stmt_exec(&ccp_log_unknown_stmt, NULL, NULL,
								 SPI_OK_UPDATE);
}

/*
 * ccp_reqlog_write_receipts writes the receipts of the pending entries,
 * whose rows the INSERT just made returned their log ids in SPI_tuptable,
 * in the entries' order (the order of the INSERT's rows).  A row with a
 * reserved log_id that was there already (written from an intent file,
 * see intent.c) was skipped and returned nothing: its receipts were
 * written with it.  Connected to SPI, as the log's owner.
 */
static void
ccp_reqlog_write_receipts(Oid owner)
{
	int			n = list_length(ccp_log_pending);
	int64	   *log_ids = palloc(sizeof(int64) * n);
	int		   *key_ids = palloc(sizeof(int) * n);
	uint8	  **hmacs = palloc(sizeof(uint8 *) * n);
	uint8	  **item_ok = palloc(sizeof(uint8 *) * n);
	int		   *nitems = palloc(sizeof(int) * n);
	int			m = 0;
	int			i = 0;
	ListCell   *lc;

	foreach(lc, ccp_log_pending)
	{
		CcpLogEntry *e = lfirst(lc);
		bool		isnull;
		int64		log_id;

		if (i >= (int) SPI_processed)
			break;
		log_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1,
											 &isnull));
		/* skipped: already written */
		if (e->reserved && e->log_id != log_id)
			continue;
		if (e->hmacs != NULL)
		{
			log_ids[m] = log_id;
			key_ids[m] = e->receipt_key;
			hmacs[m] = e->hmacs;
			item_ok[m] = e->item_ok;
			nitems[m] = e->nreceipts;
			m++;
		}
		i++;
	}
	if (i != (int) SPI_processed)
		elog(ERROR, "the ccpurge request log returned " UINT64_FORMAT " rows for %d",
			 SPI_processed, i);
	if (m > 0 && ccp_receipt_writable())
		ccp_receipt_insert(owner, m, log_ids, key_ids, hmacs, item_ok, nitems);
}

/* ccp_reqlog_pending tells whether rows wait for ccp_reqlog_flush. */
bool
ccp_reqlog_pending(void)
{
	return ccp_log_pending != NIL;
}

/*
 * ccp_reqlog_flush writes every pending row in one INSERT.  Must run inside
 * a transaction with an active snapshot; SPI must not be connected by the
 * caller (it connects itself).  The insert runs as the table's owner.
 */
void
ccp_reqlog_flush(void)
{
	int			n = list_length(ccp_log_pending);
	Oid			relid;
	Oid			owner;
	Datum		args[18];
	Datum	   *cols[18];
	bool	   *colnulls[18];
	ListCell   *lc;
	int			i = 0;
	int			keyed;
	MemoryContext old;

	if (n == 0)
		return;

	if (!ccp_ccpurge_table("request_log", &relid, &owner))
	{
		/* the extension is gone; nothing to write to */
		ccp_reqlog_discard();
		return;
	}
	keyed = (get_attnum(relid, "items_hmac") != InvalidAttrNumber) ? 1 : 0;

	/* outcomes of intent rows update them; the rest are new rows */
	n = ccp_reqlog_finish_intents(owner);
	if (n == 0)
	{
		ccp_log_pending = NIL;
		return;
	}

	ccp_stmt_columns_alloc(&ccp_log_insert_stmt[keyed], n, cols, colnulls);
	foreach(lc, ccp_log_pending)
	{
		CcpLogEntry *e = lfirst(lc);

		cols[0][i] = TimestampTzGetDatum(e->at);
		cols[1][i] = CStringGetTextDatum(e->server);
		cols[2][i] = CStringGetTextDatum(e->vendor);
		cols[3][i] = CStringGetTextDatum(e->operation);
		cols[4][i] = CStringGetTextDatum(e->origin);
		{
			char	   *role = GetUserNameFromId(e->role, true);

			cols[5][i] = CStringGetTextDatum(role ? role : "(dropped role)");
		}
		cols[6][i] = Int64GetDatum(e->request_id);
		colnulls[6][i] = (e->request_id == 0);
		cols[7][i] = Int32GetDatum(e->item_count);
		colnulls[8][i] = (e->digest == NULL);
		if (e->digest != NULL)
		{
			bytea	   *hmac = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

			hex_decode(e->digest, PG_SHA256_DIGEST_LENGTH * 2, VARDATA(hmac));
			SET_VARSIZE(hmac, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
			cols[8][i] = PointerGetDatum(hmac);
		}
		cols[14][i] = Int32GetDatum(e->key_id);
		colnulls[14][i] = (e->digest == NULL);
		ccp_reqlog_set_text(&cols[15][i], &colnulls[15][i], e->request_ids);
		ccp_reqlog_set_text(&cols[16][i], &colnulls[16][i], e->scope);
		cols[9][i] = BoolGetDatum(e->ok);
		colnulls[9][i] = e->ok_unknown;
		cols[10][i] = Int32GetDatum(e->http_status);
		colnulls[10][i] = (e->http_status == 0);
		ccp_reqlog_set_text(&cols[11][i], &colnulls[11][i], e->code);
		ccp_reqlog_set_text(&cols[12][i], &colnulls[12][i], e->message);
		cols[13][i] = Float8GetDatum(e->duration_ms);
		if (keyed)
		{
			cols[17][i] = Int64GetDatum(e->log_id);
			colnulls[17][i] = !e->reserved;
		}
		i++;
	}
	ccp_stmt_columns_args(&ccp_log_insert_stmt[keyed], n, cols, colnulls, args);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) ccp_stmt_exec_as(owner, &ccp_log_insert_stmt[keyed], args, NULL,
							keyed ? SPI_OK_INSERT_RETURNING : SPI_OK_INSERT);
	if (keyed)
		ccp_reqlog_write_receipts(owner);
	SPI_finish();

	/* written, but only as durable as this transaction */
	foreach(lc, ccp_log_pending)
		((CcpLogEntry *) lfirst(lc))->level = GetCurrentTransactionNestLevel();
	if (GetCurrentTransactionNestLevel() == 1 &&
		list_length(ccp_log_written) >= CCP_LOG_KEEP)
	{
		/* beyond the memory budget: kept in a file (see CCP_LOG_KEEP) */
		ccp_reqlog_keep(ccp_log_pending);
		list_free(ccp_log_pending);
	}
	else
	{
		old = MemoryContextSwitchTo(ccp_log_cxt);
		ccp_log_written = list_concat(ccp_log_written, ccp_log_pending);
		MemoryContextSwitchTo(old);
	}
	ccp_log_pending = NIL;
}
