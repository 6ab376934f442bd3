/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that drains ccpurge.queue: its loop and its
 *	  batches.
 *
 * One worker per database where ccpurge is installed, started by the
 * launcher (launcher.c) as a dynamic background worker: its slot index is
 * its main argument, the slot's claim generation its bgw_extra.  It leaves,
 * freeing its slot, when the extension is not (or no longer) installed in
 * its database.  Its loop follows worker_spi: signal handlers that
 * only set flags and the latch, WaitLatch with a wait event, config reload,
 * and short transactions.  It is woken by the latch that committing
 * transactions set (queue_store.c), so an idle worker sleeps without a
 * timeout and makes no system calls.
 *
 * A cycle has three steps, none of which holds a transaction open across
 * the network:
 *   claim:   in one short transaction, coalesce queued rows of the same
 *            server, operation, parameters and role into batches of the
 *            vendor's size (splitting the last row if needed), mark them
 *            "sending", and take a rate-limit ticket for each;
 *   send:    after commit, drive each batch's exchange (exchange.c): get a
 *            token and start the requests with curl multi, several servers
 *            at once, each within its limits;
 *   record:  when answers arrive, in one short transaction mark rows done,
 *            failed, or queued again with exponential backoff and jitter
 *            (for ccpurge.retry_for), and write the request log.
 * A server that keeps failing transiently gets one batch, a probe, per
 * backoff period, until one succeeds (its circuit breaker, breaker.c);
 * then all its queued rows are due at once.  The rows it holds back fail
 * when ccpurge.retry_for runs out.
 * What each step does to the rows is in queue_store.c.  Every row that
 * fails for good, here or when its batch cannot be resolved at claim, is
 * reported once through report.c.  Rows found "sending" when the worker
 * starts belonged to a worker that died; they are queued again and re-sent,
 * as deletion is idempotent.  DROP DATABASE of the worker's database makes
 * it leave and stay away for a while (dropdb.c).
 *
 * Batch keys.  A batch's key (the webhook's Idempotency-Key) is a random
 * one (ccp_random_key), written with the batch's number of items to its
 * rows (ccpurge.queue.batch_key, batch_nitems) when they are first claimed
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
 * Fairness.  The worker's in-flight slots (its share of
 * ccpurge.worker_inflight among the busy databases, see
 * ccp_launcher_inflight_share) are shared among units, for now servers
 * (ccp_worker_unit).  A claim hands them out in rounds, one batch per unit
 * per round, the unit with the oldest due row first.  A unit with nothing in flight may take any free slot.  A unit
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
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/*
 * In-flight slots that only a unit with nothing in flight may take (see
 * the header comment).
 */
#define CCP_WORKER_RESERVED			4

/* Longest poll slice while requests are in flight. */
#define CCP_WORKER_POLL_MS			20

/* Least time between two removals of rows past their retention. */
#define CCP_WORKER_PURGE_INTERVAL_MS	30000

/* How soon the worker looks again at due rows someone else had locked. */
#define CCP_WORKER_RELOCK_MS		1000

/*
 * Least time between two passes that chain the request log's new rows
 * while the worker is busy: each pass reads the unchained rows through an
 * index that keeps an entry of every row chained since the last vacuum,
 * which an old snapshot (a session in ccpurge_wait, say) keeps from
 * going, so a pass per claim would cost a drain time quadratic in its
 * requests.  A claim that leaves the pass for later has the worker look
 * again once it is due, so the rows of a worker gone idle are chained
 * within the interval.
 */
#define CCP_WORKER_SEAL_INTERVAL_MS	1000

/* One batch: queue rows claimed together and sent as one request. */
typedef struct CcpBatch
{
	MemoryContext cxt;
	int64		batch_id;
	CcpServer  *srv;
	const CcpOpDef *def;
	void	   *params;			/* the operation's own */
	CcpBatchRows rows;			/* what its rows hold */
	char	   *batch_key;		/* of its rows' attempt generation */
	const char *unit;			/* ccp_worker_unit of its rows */
	TimestampTz claimed_at;		/* for its server's circuit breaker */
	int			ticket;			/* from the claim until the exchange takes it */
	CcpExchange x;				/* the request, from claim to outcome */
	int64		receipt_log_id; /* the log row whose receipts hold the
								 * digests of its rows' items, in their
								 * order; 0: none do */
} CcpBatch;

/*
 * A group of due rows as one claim works through it.  The claim lowers
 * due->queued by the items it takes, and clears due->batch_key when the
 * rows of a kept batch start a new generation.
 */
typedef struct CcpClaimGroup
{
	CcpDueGroup *due;
	bool		exhausted;		/* nothing more to claim from it now */
} CcpClaimGroup;

/* A unit of fairness in one claim: its due groups, its batches in flight. */
typedef struct CcpClaimUnit
{
	const char *name;
	List	   *groups;			/* CcpClaimGroup *, oldest first */
	int			inflight;
} CcpClaimUnit;

static List *ccp_inflight = NIL;	/* CcpBatch *, request running */
static List *ccp_started = NIL; /* CcpBatch *, claimed, not yet started */
static List *ccp_finished = NIL;	/* CcpBatch *, waiting to be recorded */
static int64 ccp_next_batch_id = 0;
static bool ccp_recovered = false;
static TimestampTz ccp_next_purge = 0;	/* see ccp_worker_housekeeping */
static TimestampTz ccp_next_seal = 0;	/* see ccp_worker_seal */
static bool ccp_seal_owed = false;	/* see ccp_worker_seal */
static int	ccp_worker_index = -1;	/* the launcher's slot of this worker */
static uint32 ccp_worker_generation = 0;	/* of the slot's claim */
static bool ccp_worker_gone = false;	/* the extension is not installed */

/* In-flight slots of this worker now, see ccp_launcher_inflight_share. */
static int	ccp_worker_limit = CCP_WORKER_MAX_INFLIGHT;

/*
 * The queue has the column batch_key (see ccp_store_keeps_batch_keys); set
 * by each claim.  Without it every claim is of fresh rows.
 */
static bool ccp_worker_keys = true;

/*
 * Resource owner for the work between transactions: digests and HMACs
 * register their crypto contexts with the current resource owner.
 */
static ResourceOwner ccp_worker_owner = NULL;

/*
 * ccp_worker_detach forgets the worker's latch at exit, and leaves the
 * request-log rows it could not write to its successor.
 */
static void
ccp_worker_detach(int code, Datum arg)
{
	ccp_reqlog_orphan_pending();
	ccp_launcher_detach(ccp_worker_index, ccp_worker_generation,
						ccp_worker_gone);
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

/*
 * ccp_worker_queue_exists tells whether ccpurge is installed here; the
 * worker has nothing to do otherwise.  Needs a transaction.
 */
static bool
ccp_worker_queue_exists(void)
{
	return OidIsValid(get_extension_oid("ccpurge", true));
}

/* What ccp_worker_resolve_in resolves, and for which batch. */
typedef struct CcpResolve
{
	CcpBatch   *batch;
	const char *server;
	Oid			role;
	Jsonb	   *params;
} CcpResolve;

/*
 * ccp_worker_resolve_in resolves the operation, server and parameters of
 * a CcpResolve's batch, allocating in the batch's context.
 */
static void
ccp_worker_resolve_in(void *arg)
{
	CcpResolve *r = arg;
	CcpBatch   *batch = r->batch;
	const CcpVendor *vendor;

	MemoryContextSwitchTo(batch->cxt);
	batch->def = ccp_op_by_name(batch->def->name, &vendor);
	batch->srv = ccp_server_resolve(r->server, vendor, r->role);
	batch->params = ccp_params_read(batch->def, r->params);
}

/*
 * ccp_worker_resolve resolves the server and parameters of a batch inside a
 * subtransaction, so that a dropped server or mapping becomes an error
 * message for the rows (*error) instead of ending the worker.  Allocates
 * in the batch's context.
 */
static bool
ccp_worker_resolve(CcpBatch *batch, const char *server, Oid role,
				   Jsonb *params, char **error)
{
	CcpResolve	r = {batch, server, role, params};

	return ccp_subxact_call(ccp_worker_resolve_in, &r, error);
}

/*
 * ccp_worker_fail_key marks every due queued row of group failed with
 * message, under a batch id of their own, and reports them: its server or
 * mapping cannot be used any more, or its operation is unknown.  Runs in
 * the claim transaction.
 */
static void
ccp_worker_fail_key(const CcpDueGroup *group, const char *message)
{
	int64		batch_id = ++ccp_next_batch_id;
	CcpFailedRequest *failed;
	int			nfailed;

	nfailed = ccp_store_fail_group(group, batch_id, message, &failed);
	ccp_report_failure(batch_id, group->server, group->operation,
					   ccp_op_by_name(group->operation, NULL) == NULL ?
					   CCP_FAILED_UNKNOWN_OPERATION :
					   CCP_FAILED_SERVER_UNUSABLE,
					   0, failed, nfailed);
}

/*
 * ccp_worker_expire_group marks failed, under a batch id of their own,
 * the due rows of group that its server's open circuit breaker held back
 * until ccpurge.retry_for ran out, and reports them.  Runs in the claim
 * transaction.
 */
static void
ccp_worker_expire_group(const CcpDueGroup *group)
{
	int64		batch_id = ++ccp_next_batch_id;
	CcpFailedRequest *failed;
	int			nfailed;

	nfailed = ccp_store_expire_group(group, batch_id, ccp_retry_for_s, &failed);
	ccp_report_failure(batch_id, group->server, group->operation,
					   CCP_FAILED_RETRY_EXPIRED, 0, failed, nfailed);
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
 * ccp_worker_seal chains the request log's new rows (chain.c), the worker
 * being the one writer of the chain, before a claim: at most once per
 * CCP_WORKER_SEAL_INTERVAL_MS, in a transaction of its own, which commits
 * as durably as the server's settings make any commit (the chain is
 * evidence too).  A claim that writes nothing then commits without a WAL
 * flush, and chaining costs at most one flush a second however many
 * calls' rows it chains.  A claim made too soon after a pass leaves the
 * rows it may have brought owed (ccp_seal_owed), and housekeeping has the
 * worker look again once the next pass is due.
 */
static void
ccp_worker_seal(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now < ccp_next_seal)
	{
		ccp_seal_owed = true;
		return;
	}
	ccp_next_seal = TimestampTzPlusMilliseconds(now, CCP_WORKER_SEAL_INTERVAL_MS);
	ccp_seal_owed = false;
	ccp_worker_begin("ccpurge worker: chaining the request log");
	(void) ccp_chain_seal();
	ccp_worker_end();
}

/*
 * ccp_worker_housekeeping queues again, once per worker, every row a
 * previous worker left in "sending", writes the request-log rows that
 * rolled-back transactions handed over, and removes done and canceled rows
 * past ccpurge.retention.  Runs in a claim transaction.  Returns how many
 * ms until the next removal or an owed chaining pass (ccp_worker_seal) is
 * due, or -1 when neither is waiting.
 */
static long
ccp_worker_housekeeping(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		due_ms;
	long		wake = -1;

	bool		recovering = !ccp_recovered;

	if (recovering)
	{
		int64		items;
		int64		rows = ccp_store_requeue_interrupted(&items);

		if (rows > 0)
			ereport(LOG,
					(errmsg_plural("ccpurge worker queued %lld interrupted item again",
								   "ccpurge worker queued %lld interrupted items again",
								   (unsigned long) items, (long long) items),
					 errdetail_plural("%lld queue row was left in state \"sending\" when a worker stopped or failed.",
									  "%lld queue rows were left in state \"sending\" when a worker stopped or failed.",
									  (unsigned long) rows, (long long) rows)));
	}
	/* request-log rows of rolled-back synchronous calls */
	ccp_reqlog_adopt_orphans();
	/* rows written after this claim's chaining pass: the next one's */
	if (ccp_reqlog_pending())
		ccp_seal_owed = true;
	ccp_reqlog_flush();
	if (recovering)
	{
		/* requests sent by a worker that stopped before their answer */
		int64		unknown = ccp_reqlog_mark_unknown();

		if (unknown > 0)
		{
			/* finished rows now: the next chaining pass's */
			ccp_seal_owed = true;
			ereport(LOG,
					(errmsg_plural("ccpurge worker marked %lld request whose answer was not recorded \"outcome unknown\"",
								   "ccpurge worker marked %lld requests whose answers were not recorded \"outcome unknown\"",
								   (unsigned long) unknown, (long long) unknown)));
		}
		ccp_recovered = true;
	}
	/* a chaining pass owed (ccp_worker_seal): look again when it is due */
	if (ccp_seal_owed)
		ccp_worker_wake_in(&wake, (long) Max((ccp_next_seal - now) / 1000 + 1, 1));

	/*
	 * Removal runs when the oldest finished row falls due, but at most once
	 * per CCP_WORKER_PURGE_INTERVAL_MS, so a busy queue is not scanned at
	 * every claim; ccp_next_purge is 0 when no finished row was known.
	 */
	if (ccp_next_purge != 0 && now < ccp_next_purge)
	{
		ccp_worker_wake_in(&wake, (long) ((ccp_next_purge - now) / 1000) + 1);
		return wake;
	}

	if (!ccp_store_purge(ccp_retention_s, &due_ms))
	{
		ccp_next_purge = 0;
		return wake;
	}
	ccp_next_purge = TimestampTzPlusMilliseconds(now,
												 Max(due_ms + 1,
													 CCP_WORKER_PURGE_INTERVAL_MS));
	ccp_worker_wake_in(&wake, (long) ((ccp_next_purge - now) / 1000) + 1);
	return wake;
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
 * The due groups of the last look at the queue (ccp_store_due_groups, in
 * ccp_due_cxt), kept across claims while nothing but the worker's own
 * claims can have changed them; each claim lowers a group's count by what
 * it took and moves its first row past them.  Whatever else changes the
 * queue makes them stale: a commit that sets the latch (new work, a retry,
 * a cancel), a timer that expires (a backoff, a lingering batch, the rate
 * limit, a lock held by another session), an outcome that queues rows
 * again, a reload, an error.  On a long drain this spares a scan of every
 * queued row at each claim.
 */
static MemoryContext ccp_due_cxt = NULL;
static List *ccp_due_groups = NIL;
static bool ccp_due_stale = true;

/*
 * ccp_worker_due_groups returns the due groups a claim works through: the
 * cached fresh groups with items left, or, when they are stale or used
 * up, the queue's as it is now.  Kept batches are claimed only from a new
 * look (a claim takes all of one).  The list is allocated in the current
 * memory context, its groups in ccp_due_cxt.  Needs the claim transaction.
 */
static List *
ccp_worker_due_groups(void)
{
	List	   *live = NIL;
	ListCell   *lc;
	MemoryContext old;

	if (!ccp_due_stale)
	{
		foreach(lc, ccp_due_groups)
		{
			CcpDueGroup *g = lfirst(lc);

			if (g->queued > 0 && g->batch_key == NULL)
				live = lappend(live, g);
		}
		if (live != NIL)
			return live;
	}
	if (ccp_due_cxt == NULL)
		ccp_due_cxt = AllocSetContextCreate(TopMemoryContext,
											"ccpurge due groups",
											ALLOCSET_SMALL_SIZES);
	MemoryContextReset(ccp_due_cxt);
	ccp_due_groups = NIL;
	/* SPI leaves its own context current: copy what it read */
	foreach(lc, ccp_store_due_groups(CCP_WORKER_MAX_INFLIGHT, ccp_worker_keys))
	{
		CcpDueGroup *g = lfirst(lc);
		CcpDueGroup *copy;

		old = MemoryContextSwitchTo(ccp_due_cxt);
		copy = palloc(sizeof(CcpDueGroup));
		*copy = *g;
		copy->server = pstrdup(g->server);
		copy->operation = pstrdup(g->operation);
		copy->params = pstrdup(g->params);
		copy->batch_key = g->batch_key ? pstrdup(g->batch_key) : NULL;
		ccp_due_groups = lappend(ccp_due_groups, copy);
		MemoryContextSwitchTo(old);
	}
	ccp_due_stale = false;
	return list_copy(ccp_due_groups);
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
	List	   *due = ccp_worker_due_groups();
	List	   *units = NIL;
	ListCell   *lg;

	foreach(lg, due)
	{
		CcpClaimGroup *group = palloc0(sizeof(CcpClaimGroup));
		CcpClaimUnit *unit = NULL;
		const char *name;
		ListCell   *lc;

		group->due = lfirst(lg);
		name = ccp_worker_unit(group->due->server, group->due->role);
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
	int			free = ccp_worker_limit - list_length(ccp_inflight) -
		list_length(ccp_started);

	if (free <= 0)
		return false;
	if (unit->inflight == 0)
		return true;
	return free > Min(CCP_WORKER_RESERVED, ccp_worker_limit / 4) &&
		unit->inflight < share;
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
	CcpDueGroup *due = group->due;
	char	   *error = NULL;
	int64	   *kept_ids = NULL;
	int			nkept = 0;
	int			limit;
	int			claimed = 0;
	long		breaker_ms = 0;
	bool		receipts;
	MemoryContext old;

	if (!ccp_worker_resolve(batch, due->server, due->role,
							ccp_jsonb_parse(due->params), &error))
	{
		ccp_worker_fail_key(due, error);
		due->queued = 0;
		return false;
	}
	limit = Min(batch->srv->batch_size, batch->def->max_batch);

	/* a server that keeps failing gets one probe per backoff period */
	if (!ccp_breaker_allow(batch->srv, &breaker_ms))
	{
		ccp_worker_expire_group(due);
		ccp_worker_wake_in(wake, breaker_ms);
		return false;
	}

	if (due->batch_key != NULL)
	{
		bool		whole;

		/* a kept batch: all its rows, or none */
		if (!ccp_store_lock_kept(due->batch_key, &kept_ids, &nkept, &claimed,
								 &whole))
		{
			/* nobody wakes the worker when the other session ends */
			ccp_worker_wake_in(wake, CCP_WORKER_RELOCK_MS);
			return false;
		}
		if (!whole || claimed > limit)
		{
			/*
			 * Items were taken away, or it no longer fits the server's
			 * batch size: the rest is not the batch sent under the key, so
			 * it starts a new generation.
			 */
			ccp_store_new_generation(kept_ids, nkept);
			due->batch_key = NULL;
			ccp_due_stale = true;
		}
	}
	else if (due->queued < limit && due->age_ms < ccp_batch_linger_ms)
	{
		/* linger for a fuller batch */
		ccp_worker_wake_in(wake, ccp_batch_linger_ms - due->age_ms);
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
	batch->batch_key = due->batch_key ? pstrdup(due->batch_key) : ccp_random_key();
	MemoryContextSwitchTo(old);
	if (due->batch_key != NULL)
		ccp_store_mark_sending(batch->batch_id, batch->batch_key, claimed,
							   kept_ids, nkept, true);
	else
	{
		claimed = ccp_store_claim_fresh(due, batch->batch_id, batch->batch_key,
										limit, ccp_worker_keys, &due->first);
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
	ccp_store_batch_rows(batch->batch_id, batch->cxt, &batch->rows);
	batch->claimed_at = GetCurrentTimestamp();
	ccp_breaker_sent(batch->srv);
	/* the exchange holds the ticket from here on */
	old = MemoryContextSwitchTo(batch->cxt);
	ccp_exchange_init(&batch->x, batch->srv, batch->def, batch->params,
					  batch->rows.items, batch->rows.nitems, batch->batch_key,
					  CCP_ORIGIN_WORKER, batch->rows.request_id, false);
	MemoryContextSwitchTo(old);
	batch->x.ticket = batch->ticket;
	batch->ticket = -1;
	/* every queue request the batch carries goes into its log rows */
	batch->x.request_ids = batch->rows.request_ids;
	batch->x.nrequest_ids = batch->rows.nrequest_ids;
	/* durable when the claim commits, before the request leaves */
	batch->x.intent_id = ccp_reqlog_intent(batch->srv, batch->def->name,
										   batch->rows.items, batch->rows.nitems,
										   batch->rows.request_id,
										   batch->rows.request_ids,
										   batch->rows.nrequest_ids,
										   batch->x.scope, &receipts);
	/* its rows can point at those receipts once done (ccp_store_record) */
	if (receipts && batch->rows.verbatim)
		batch->receipt_log_id = batch->x.intent_id;

	due->queued -= claimed;
	if (due->batch_key != NULL || due->queued <= 0)
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
		def = ccp_op_by_name(group->due->operation, NULL);
		if (def == NULL)
		{
			ccp_worker_fail_key(group->due, "unknown operation");
			group->due->queued = 0;
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
	int			reserved;
	bool		progress;
	int64		due_ms;

	ccp_worker_seal();
	ccp_worker_begin("ccpurge worker: claiming batches");
	if (!ccp_worker_queue_exists())
	{
		/* DROP EXTENSION: leave once nothing is in flight */
		ccp_worker_gone = true;
		ccp_worker_end();
		return -1;
	}
	wake = ccp_worker_housekeeping();
	/* requests are logged between transactions, under the current key */
	ccp_digest_refresh();

	ccp_worker_keys = ccp_store_keeps_batch_keys();
	units = ccp_worker_claim_units();
	ccp_worker_limit = ccp_launcher_inflight_share(ccp_worker_index,
												   list_length(ccp_inflight) +
												   Max(list_length(units), 1));
	reserved = Min(CCP_WORKER_RESERVED, ccp_worker_limit / 4);
	share = Max(1, (ccp_worker_limit - reserved) / Max(list_length(units), 1));
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
	if (ccp_store_next_due(&due_ms))
		ccp_worker_wake_in(&wake, (long) Max(due_ms, 1));
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
		ccp_exchange_unsent(&batch->x);
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
 * ccp_worker_report_batch reports the rows of a recorded batch that have
 * just failed for good, for the reason why.  Runs in the record
 * transaction, after the rows were marked.
 */
static void
ccp_worker_report_batch(const CcpBatch *batch, CcpFailure why)
{
	CcpFailedRequest *failed;
	int			nfailed;

	nfailed = ccp_store_failed_requests(batch->batch_id, batch->rows.request_ids,
										batch->rows.nrequest_ids, &failed);
	ccp_report_failure(batch->batch_id, batch->srv->servername,
					   batch->def->name, why, batch->x.out.http_status,
					   failed, nfailed);
}

/*
 * ccp_worker_refused_any tells whether the receiver, answering per item,
 * refused any item of batch.
 */
static bool
ccp_worker_refused_any(const CcpBatch *batch)
{
	const CcpOutcome *out = &batch->x.out;

	if (out->item_ok == NULL)
		return false;
	for (int i = 0; i < batch->rows.nitems; i++)
	{
		if (!out->item_ok[i])
			return true;
	}
	return false;
}

/*
 * ccp_worker_fail_items handles a batch the receiver answered per item and
 * refused some items of (ccp_worker_refused_any): its rows were just
 * marked done, so the refused items are moved out of them into failed
 * rows of their requests, with their messages, and reported.  Runs in the
 * record transaction.
 */
static void
ccp_worker_fail_items(const CcpBatch *batch)
{
	const CcpOutcome *out = &batch->x.out;
	int			n = batch->rows.nitems;
	char	  **items = palloc(sizeof(char *) * Max(n, 1));
	char	  **messages = palloc(sizeof(char *) * Max(n, 1));
	int			nfailed = 0;

	for (int i = 0; i < n; i++)
	{
		if (!out->item_ok[i])
		{
			items[nfailed] = batch->rows.items[i];
			messages[nfailed] = out->item_message[i] ?
				out->item_message[i] : out->message;
			nfailed++;
		}
	}
	ccp_store_fail_items(batch->batch_id, items, messages, nfailed);
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
		int64		delay_ms = 0;
		CcpSettle	settle;
		bool		refused = out->ok && ccp_worker_refused_any(batch);
		bool		whole;

		settle = ccp_exchange_settle(batch->srv, out, batch->rows.attempts + 1,
									 (GetCurrentTransactionStartTimestamp() -
									  batch->rows.enqueued_at) / 1000,
									 &delay_ms);
		/* done with every item: the rows point at the items' receipts */
		whole = ccp_worker_keys && batch->receipt_log_id != 0 && !refused;
		ccp_store_record(batch->batch_id, settle, out->http_status, out->code,
						 out->message, delay_ms,
						 whole ? batch->receipt_log_id : 0);
		/* rows queued again change the due groups */
		if (settle != CCP_SETTLE_DONE)
			ccp_due_stale = true;
		/* a server back from an outage: what backed off goes at once */
		if (ccp_breaker_record(batch->srv, out, batch->claimed_at,
							   batch->x.no_room))
		{
			ccp_store_hasten(batch->srv->servername);
			ccp_due_stale = true;
		}
		if (out->ok && out->item_ok != NULL)
		{
			if (refused)
				ccp_worker_fail_items(batch);
		}
		else if (settle == CCP_SETTLE_FAILED)
			ccp_worker_report_batch(batch, out->retry == CCP_FINAL ?
									CCP_FAILED_REFUSED :
									CCP_FAILED_RETRIES_EXHAUSTED);
		else if (settle == CCP_SETTLE_EXPIRED)
			ccp_worker_report_batch(batch, CCP_FAILED_RETRY_EXPIRED);
		/* erased: no clear text of the items stays */
		if (settle == CCP_SETTLE_DONE && !whole)
			ccp_store_forget_done(batch->batch_id, ccp_worker_keys);
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
 * ccp_worker_connect connects to the database of the worker's slot and
 * tells whether ccpurge is installed there; the worker leaves otherwise.
 * Returns false, without connecting, when the slot was freed or claimed
 * again meanwhile.
 */
static bool
ccp_worker_connect(void)
{
	Oid			dbid;
	bool		installed;
	char	   *dbname;

	dbid = ccp_launcher_attach(ccp_worker_index, ccp_worker_generation, NULL);
	if (!OidIsValid(dbid))
		return false;
	/* after a DROP DATABASE of our database, do not come back at once */
	while (ccp_launcher_hold_until(ccp_worker_index) > GetCurrentTimestamp())
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("ccpurge worker");

	StartTransactionCommand();
	/* ccpurge.serve_database is read from the database's settings */
	installed = ccp_worker_queue_exists() && ccp_serve_database;
	dbname = MemoryContextStrdup(TopMemoryContext,
								 get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	if (!installed)
	{
		ccp_worker_gone = true;
		return false;
	}
	if (!OidIsValid(ccp_launcher_attach(ccp_worker_index, ccp_worker_generation,
										MyLatch)))
		return false;
	ereport(LOG,
			(errmsg("ccpurge worker started in database \"%s\"", dbname)));
	return true;
}

/*
 * ccpurge_worker_main is the worker's entry point: connect, publish the
 * latch, then claim, send and record until told to stop, or until the
 * extension is dropped.
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

	ccp_worker_index = DatumGetInt32(main_arg);
	memcpy(&ccp_worker_generation, MyBgworkerEntry->bgw_extra,
		   sizeof(ccp_worker_generation));
	before_shmem_exit(ccp_worker_detach, (Datum) 0);
	if (!ccp_worker_connect())
		proc_exit(0);
	/*
	 * The worker's commits carry the request log, which is evidence: they
	 * are as durable as the server's synchronous_commit makes them, never
	 * less.
	 */
	/* the worker is a superuser: resolve nothing through user schemas */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	ccp_worker_owner = ResourceOwnerCreate(NULL, "ccpurge worker");
	CurrentResourceOwner = ccp_worker_owner;
	ccp_next_batch_id = GetCurrentTimestamp();
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "ccpurge worker loop",
									 ALLOCSET_DEFAULT_SIZES);
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
		ccp_due_stale = true;
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
			ccp_due_stale = true;
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
			ccp_due_stale = true;
		}
		if (wake >= 0 && GetCurrentTimestamp() >= wake_at)
		{
			need_claim = true;
			ccp_due_stale = true;
		}

		if (need_claim &&
			list_length(ccp_inflight) < ccp_worker_limit)
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
		if (ccp_worker_gone)
		{
			ereport(LOG,
					(errmsg("ccpurge worker stopped: the extension is no longer installed in this database")));
			proc_exit(0);
		}
		(void) ccp_launcher_inflight_share(ccp_worker_index, 0);

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
		ccp_due_stale = true;
		ResetLatch(MyLatch);
	}
}
