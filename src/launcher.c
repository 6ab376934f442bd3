/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  One worker per database: the launcher (a static background worker)
 *	  starts a dynamic worker for each database where ccpurge is installed,
 *	  and the extension's lifecycle (CREATE, DROP) tells it when.
 *
 * Shared memory holds ccpurge.max_databases database slots (CcpDbWorker),
 * protected by worker_lock.  A slot names a database that needs a worker;
 * its worker publishes its latch there.  A slot is claimed by whoever
 * first finds the database needs a worker:
 *   - the launcher at start, for every database that accepts connections
 *     and is not a template: the worker it starts there leaves at once,
 *     freeing the slot, when the extension is not installed;
 *   - a transaction that committed a CREATE EXTENSION ccpurge, queued
 *     items, or handed request-log rows over (ccp_wake_worker);
 * and freed by the worker when it finds the extension gone (DROP
 * EXTENSION, which wakes it at commit), by DROP DATABASE (dropdb.c), or by
 * the launcher when the database no longer exists.  Each claim bumps the
 * slot's generation, which the worker gets in bgw_extra, so that a worker
 * of an old claim never writes into a reused slot.
 *
 * The launcher sleeps on its latch without a timeout while every slot is
 * served; the postmaster sets it when a worker it started stops (it is
 * their bgw_notify_pid), and ccp_wake_worker sets it when a slot needs a
 * worker.  It restarts a worker that stopped while its database still
 * needs one (after CCP_LAUNCHER_RESTART_MS), and retries every
 * CCP_LAUNCHER_RETRY_MS while no background worker slot is free
 * (max_worker_processes); meanwhile enqueueing in that database is an
 * error that says why (ccp_launcher_require).
 *
 * The same utility hook refuses DROP EXTENSION ccpurge while the queue
 * holds items that are queued, sending or failed, which the drop would
 * lose without a word.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/genam.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_database.h"
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
#include "utils/fmgroids.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Least time between two starts of a worker for one claim of a slot. */
#define CCP_LAUNCHER_RESTART_MS		5000

/* How often the launcher retries while no background worker slot is free. */
#define CCP_LAUNCHER_RETRY_MS		10000

/* What the launcher knows of the worker it started for a slot. */
typedef struct CcpLaunched
{
	BackgroundWorkerHandle *handle; /* NULL: none started, or it stopped */
	uint32		generation;		/* of the claim it was started for */
	TimestampTz started_at;
} CcpLaunched;

static CcpLaunched *ccp_launched = NULL;	/* ndbs entries, launcher only */
static List *ccp_launcher_probes = NIL; /* Oids of databases not yet looked at */

static ProcessUtility_hook_type ccp_launcher_prev_utility = NULL;
static bool ccp_launcher_ext_changed = false;	/* CREATE/DROP EXTENSION ccpurge */

/*
 * ccp_launcher_register registers the launcher.  Called from _PG_init while
 * shared_preload_libraries is processed.
 */
void
ccp_launcher_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ccpurge");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ccpurge_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "ccpurge launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "ccpurge launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * ccp_launcher_find returns the slot of database dbid, or NULL.  Caller
 * holds worker_lock.
 */
static CcpDbWorker *
ccp_launcher_find(Oid dbid)
{
	for (int i = 0; i < ccp_shared->ndbs; i++)
	{
		if (ccp_shared->dbs[i].dbid == dbid)
			return &ccp_shared->dbs[i];
	}
	return NULL;
}

/*
 * ccp_launcher_claim claims a free slot for database dbid and returns it,
 * or NULL when every slot is taken.  Caller holds worker_lock exclusively
 * and knows dbid has no slot.
 */
static CcpDbWorker *
ccp_launcher_claim(Oid dbid)
{
	CcpDbWorker *slot = ccp_launcher_find(InvalidOid);

	if (slot == NULL)
		return NULL;
	slot->dbid = dbid;
	slot->generation++;
	slot->noroom = false;
	slot->pid = 0;
	slot->latch = NULL;
	slot->hold_until = 0;
	slot->inflight = 0;
	return slot;
}

/*
 * ccp_launcher_free frees slot, if it still belongs to claim generation.
 * Caller holds worker_lock exclusively.
 */
static void
ccp_launcher_free(CcpDbWorker *slot, uint32 generation)
{
	if (slot->generation != generation)
		return;
	slot->dbid = InvalidOid;
	slot->generation++;
	slot->noroom = false;
	slot->pid = 0;
	slot->latch = NULL;
	slot->hold_until = 0;
	slot->inflight = 0;
}

/*
 * ccp_wake_worker wakes the worker of the current database, or, when it has
 * none, has the launcher start one.  Called when a transaction that
 * changed the queue or the extension commits, and when request-log rows
 * are handed over.  Neither allocates nor raises errors.
 */
void
ccp_wake_worker(void)
{
	CcpDbWorker *slot;
	Latch	   *latch = NULL;

	if (ccp_shared == NULL || !OidIsValid(MyDatabaseId) || !ccp_serve_database)
		return;
	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	slot = ccp_launcher_find(MyDatabaseId);
	if (slot == NULL)
		slot = ccp_launcher_claim(MyDatabaseId);
	if (slot != NULL)
		latch = slot->latch ? slot->latch : ccp_shared->launcher_latch;
	LWLockRelease(ccp_shared->worker_lock);
	/* a stale pointer is harmless: it points at a PGPROC latch */
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * ccp_launcher_wake sets the launcher's latch, if it runs.
 */
void
ccp_launcher_wake(void)
{
	Latch	   *latch = ccp_shared->launcher_latch;

	if (latch != NULL)
		SetLatch(latch);
}

/*
 * ccp_launcher_serves tells whether the current database has a worker, or
 * will get one at the next ccp_wake_worker (never where
 * ccpurge.serve_database is off).  No catalog access, no allocation: it
 * runs in transaction callbacks.
 */
bool
ccp_launcher_serves(void)
{
	CcpDbWorker *slot;
	bool		ok;

	if (ccp_shared == NULL || !ccp_serve_database)
		return false;
	LWLockAcquire(ccp_shared->worker_lock, LW_SHARED);
	slot = ccp_launcher_find(MyDatabaseId);
	ok = (slot != NULL) ? !slot->noroom : ccp_launcher_find(InvalidOid) != NULL;
	LWLockRelease(ccp_shared->worker_lock);
	return ok;
}

/*
 * ccp_launcher_require raises an error when no worker can serve the current
 * database, so that nothing is queued that would wait forever.  Called
 * before items are queued.  A database whose ccpurge.serve_database is off
 * has no worker by the administrator's choice: items wait there.
 */
void
ccp_launcher_require(void)
{
	CcpDbWorker *slot;
	bool		full = false;
	bool		noroom = false;

	if (!ccp_serve_database)
		return;
	LWLockAcquire(ccp_shared->worker_lock, LW_SHARED);
	slot = ccp_launcher_find(MyDatabaseId);
	if (slot != NULL)
		noroom = slot->noroom;
	else
		full = (ccp_launcher_find(InvalidOid) == NULL);
	LWLockRelease(ccp_shared->worker_lock);

	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no ccpurge worker can serve this database"),
				 errdetail_plural("Workers already serve %d database, as many as \"ccpurge.max_databases\" allows.",
								  "Workers already serve %d databases, as many as \"ccpurge.max_databases\" allows.",
								  ccp_shared->ndbs, ccp_shared->ndbs),
				 errhint("Increase \"ccpurge.max_databases\" (and \"max_worker_processes\") and restart the server, or drop the extension in a database that no longer needs it.")));
	if (noroom)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no ccpurge worker can serve this database"),
				 errdetail("No background worker slot is free to start one."),
				 errhint("Increase \"max_worker_processes\" and restart the server.")));
}

/*
 * ccp_launcher_hold keeps the worker of database dbid away until "until"
 * (DROP DATABASE, see dropdb.c): returns its pid (0: none connected) and,
 * in *index and *generation, what ccp_launcher_unhold needs; *index is -1
 * when no slot names dbid.
 */
int
ccp_launcher_hold(Oid dbid, TimestampTz until, int *index, uint32 *generation)
{
	CcpDbWorker *slot;
	int			pid = 0;

	*index = -1;
	if (!OidIsValid(dbid))
		return 0;
	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	slot = ccp_launcher_find(dbid);
	if (slot != NULL)
	{
		*index = slot - ccp_shared->dbs;
		*generation = slot->generation;
		slot->hold_until = until;
		pid = slot->pid;
	}
	LWLockRelease(ccp_shared->worker_lock);
	return pid;
}

/*
 * ccp_launcher_unhold ends the hold ccp_launcher_hold set on slot index for
 * claim generation: with dropped, the database is gone and the slot is
 * freed; otherwise the worker may come back at once.
 */
void
ccp_launcher_unhold(int index, uint32 generation, bool dropped)
{
	CcpDbWorker *slot = &ccp_shared->dbs[index];

	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (dropped)
		ccp_launcher_free(slot, generation);
	else if (slot->generation == generation)
		slot->hold_until = 0;
	LWLockRelease(ccp_shared->worker_lock);
	ccp_launcher_wake();
}

/* ----------
 * The worker's side
 * ----------
 */

/*
 * ccp_launcher_attach makes the calling worker the one of slot index for
 * claim generation and returns the slot's database, or InvalidOid when
 * the slot was freed or claimed again meanwhile, or another worker that
 * is still alive serves it (one a previous launcher started).  With latch
 * NULL, only looks.
 */
Oid
ccp_launcher_attach(int index, uint32 generation, Latch *latch)
{
	CcpDbWorker *slot = &ccp_shared->dbs[index];
	Oid			dbid = InvalidOid;

	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (slot->generation == generation && OidIsValid(slot->dbid))
	{
		dbid = slot->dbid;
		if (latch != NULL && slot->pid != 0 && slot->pid != MyProcPid &&
			kill(slot->pid, 0) == 0)
			dbid = InvalidOid;
		else if (latch != NULL)
		{
			slot->pid = MyProcPid;
			slot->latch = latch;
		}
	}
	LWLockRelease(ccp_shared->worker_lock);
	return dbid;
}

/*
 * ccp_launcher_hold_until returns until when the worker of slot index must
 * stay away from its database (DROP DATABASE), 0 for not at all.
 */
TimestampTz
ccp_launcher_hold_until(int index)
{
	TimestampTz hold;

	LWLockAcquire(ccp_shared->worker_lock, LW_SHARED);
	hold = ccp_shared->dbs[index].hold_until;
	LWLockRelease(ccp_shared->worker_lock);
	return hold;
}

/*
 * ccp_launcher_detach forgets the calling worker in slot index; with
 * release, it frees the slot too (the extension is not installed there),
 * if it still belongs to claim generation.
 */
void
ccp_launcher_detach(int index, uint32 generation, bool release)
{
	CcpDbWorker *slot = &ccp_shared->dbs[index];

	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		slot->inflight = 0;
	}
	if (release)
		ccp_launcher_free(slot, generation);
	LWLockRelease(ccp_shared->worker_lock);
	ccp_launcher_wake();
}

/*
 * ccp_launcher_inflight_share publishes that the worker of slot index has
 * inflight batches claimed or in flight, and returns how many it may have:
 * ccpurge.worker_inflight shared equally among the databases whose workers
 * have some, at most CCP_WORKER_MAX_INFLIGHT and at least 2.  Reads the
 * other slots without the lock: a share is a hint, not an invariant.
 */
int
ccp_launcher_inflight_share(int index, int inflight)
{
	int			busy = 1;

	ccp_shared->dbs[index].inflight = inflight;
	for (int i = 0; i < ccp_shared->ndbs; i++)
	{
		if (i != index && ccp_shared->dbs[i].inflight > 0)
			busy++;
	}
	return Min(CCP_WORKER_MAX_INFLIGHT, Max(2, ccp_worker_inflight / busy));
}

/* ----------
 * The launcher
 * ----------
 */

/*
 * ccp_launcher_databases returns the Oids of the databases a worker may
 * connect to: those that accept connections and are not templates (a
 * worker there would make CREATE DATABASE fail).  Runs its own
 * transaction; allocates in the caller's context.
 */
static List *
ccp_launcher_databases(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(cxt);
		dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return dbs;
}

/*
 * ccp_launcher_start starts the worker of slot index for its claim
 * generation.  Returns false when no background worker slot is free.
 */
static bool
ccp_launcher_start(int index, uint32 generation)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ccpurge");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ccpurge_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "ccpurge worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "ccpurge worker");
	worker.bgw_main_arg = Int32GetDatum(index);
	memcpy(worker.bgw_extra, &generation, sizeof(generation));
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		return false;
	}
	MemoryContextSwitchTo(old);
	ccp_launched[index].handle = handle;
	ccp_launched[index].generation = generation;
	ccp_launched[index].started_at = GetCurrentTimestamp();
	return true;
}

/*
 * ccp_launcher_wake_in lowers *wake (ms, -1 for none) to ms.
 */
static void
ccp_launcher_wake_in(long *wake, long ms)
{
	ms = Max(ms, 1);
	*wake = (*wake < 0) ? ms : Min(*wake, ms);
}

/*
 * ccp_launcher_slot_pass looks after slot index: forgets a worker that
 * stopped, frees the slot of a database that is gone, and starts a worker
 * where one is needed and allowed now.  Lowers *wake to when it must look
 * again.  *dbs is the list of existing databases, read at most once per
 * pass.
 */
static void
ccp_launcher_slot_pass(int index, List **dbs, bool *dbs_read, long *wake)
{
	CcpLaunched *l = &ccp_launched[index];
	CcpDbWorker *slot = &ccp_shared->dbs[index];
	TimestampTz now = GetCurrentTimestamp();
	Oid			dbid;
	uint32		generation;
	TimestampTz hold;
	bool		restart;

	if (l->handle != NULL)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(l->handle, &pid) != BGWH_STOPPED)
			return;				/* running: the postmaster tells us its end */
		pfree(l->handle);
		l->handle = NULL;
	}

	LWLockAcquire(ccp_shared->worker_lock, LW_SHARED);
	dbid = slot->dbid;
	generation = slot->generation;
	hold = slot->hold_until;
	LWLockRelease(ccp_shared->worker_lock);
	if (!OidIsValid(dbid))
		return;
	if (hold > now)
	{
		ccp_launcher_wake_in(wake, (long) ((hold - now) / 1000) + 1);
		return;
	}

	/* a worker of this claim ran before: it stopped or failed */
	restart = (l->generation == generation && l->started_at != 0);
	if (restart)
	{
		TimestampTz allowed;

		if (!*dbs_read)
		{
			*dbs = ccp_launcher_databases();
			*dbs_read = true;
		}
		if (!list_member_oid(*dbs, dbid))
		{
			LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
			ccp_launcher_free(slot, generation);
			LWLockRelease(ccp_shared->worker_lock);
			return;
		}
		allowed = TimestampTzPlusMilliseconds(l->started_at,
											  CCP_LAUNCHER_RESTART_MS);
		if (allowed > now)
		{
			ccp_launcher_wake_in(wake, (long) ((allowed - now) / 1000) + 1);
			return;
		}
	}

	if (ccp_launcher_start(index, generation))
	{
		LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
		slot->noroom = false;
		LWLockRelease(ccp_shared->worker_lock);
		return;
	}
	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (!slot->noroom && slot->generation == generation)
	{
		slot->noroom = true;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a ccpurge worker for database %u", dbid),
				 errhint("Increase \"max_worker_processes\" and restart the server.")));
	}
	LWLockRelease(ccp_shared->worker_lock);
	ccp_launcher_wake_in(wake, CCP_LAUNCHER_RETRY_MS);
}

/*
 * ccp_launcher_pass claims slots for the databases still to look at, then
 * looks after every slot.  Returns how many ms until it must look again,
 * or -1 when only a latch can bring news.
 */
static long
ccp_launcher_pass(void)
{
	long		wake = -1;
	List	   *dbs = NIL;
	bool		dbs_read = false;

	while (ccp_launcher_probes != NIL)
	{
		Oid			dbid = linitial_oid(ccp_launcher_probes);
		bool		claimed = true;

		LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
		if (ccp_launcher_find(dbid) == NULL)
			claimed = (ccp_launcher_claim(dbid) != NULL);
		LWLockRelease(ccp_shared->worker_lock);
		if (!claimed)
			break;				/* a slot frees when a worker leaves */
		ccp_launcher_probes = list_delete_first(ccp_launcher_probes);
	}
	for (int i = 0; i < ccp_shared->ndbs; i++)
		ccp_launcher_slot_pass(i, &dbs, &dbs_read, &wake);
	list_free(dbs);
	return wake;
}

/*
 * ccp_launcher_exit forgets the launcher's latch at exit.
 */
static void
ccp_launcher_exit(int code, Datum arg)
{
	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	if (ccp_shared->launcher_latch == MyLatch)
		ccp_shared->launcher_latch = NULL;
	LWLockRelease(ccp_shared->worker_lock);
}

/*
 * ccpurge_launcher_main is the launcher's entry point: publish the latch,
 * look at every database once, then start and restart workers as slots
 * are claimed and workers stop.
 */
void
ccpurge_launcher_main(Datum main_arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* shared catalogs only: pg_database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("ccpurge launcher");

	ccp_launched = MemoryContextAllocZero(TopMemoryContext,
										  sizeof(CcpLaunched) * ccp_shared->ndbs);
	/*
	 * Workers of a previous launcher (it was terminated; a crash takes them
	 * all) are asked to leave: this launcher starts its own, whose end it
	 * hears of.
	 */
	LWLockAcquire(ccp_shared->worker_lock, LW_EXCLUSIVE);
	ccp_shared->launcher_latch = MyLatch;
	for (int i = 0; i < ccp_shared->ndbs; i++)
	{
		if (ccp_shared->dbs[i].pid != 0)
			(void) kill(ccp_shared->dbs[i].pid, SIGTERM);
	}
	LWLockRelease(ccp_shared->worker_lock);
	before_shmem_exit(ccp_launcher_exit, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "ccpurge launcher",
									 ALLOCSET_DEFAULT_SIZES);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		ccp_launcher_probes = ccp_launcher_databases();
		MemoryContextSwitchTo(old);
	}

	for (;;)
	{
		MemoryContext old;
		long		wake;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ResetLatch(MyLatch);
		MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);
		wake = ccp_launcher_pass();
		MemoryContextSwitchTo(old);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						 (wake >= 0 ? WL_TIMEOUT : 0),
						 wake, PG_WAIT_EXTENSION);
	}
}

/* ----------
 * The extension's lifecycle
 * ----------
 */

/*
 * ccp_launcher_names_ccpurge tells whether a DROP EXTENSION's object list
 * names ccpurge.
 */
static bool
ccp_launcher_names_ccpurge(DropStmt *drop)
{
	ListCell   *lc;

	foreach(lc, drop->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "ccpurge") == 0)
			return true;
	}
	return false;
}

/*
 * ccp_launcher_extension_row sets *schema and *owner to the schema
 * extension ext is installed in and the role that owns it (PostgreSQL 15
 * exports no function for either).
 */
static void
ccp_launcher_extension_row(Oid ext, Oid *schema, Oid *owner)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	*schema = *owner = InvalidOid;
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		*schema = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * ccp_launcher_drops_ccpurge tells whether a utility statement drops the
 * extension ccpurge of this database: DROP EXTENSION naming it, DROP
 * SCHEMA ... CASCADE of the schema it is installed in, or DROP OWNED BY
 * a role that owns it.
 */
static bool
ccp_launcher_drops_ccpurge(Node *stmt)
{
	Oid			ext;
	Oid			schema;
	Oid			owner;
	ListCell   *lc;

	if (IsA(stmt, DropStmt) &&
		((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
		return ccp_launcher_names_ccpurge((DropStmt *) stmt);
	if (!(IsA(stmt, DropStmt) &&
		  ((DropStmt *) stmt)->removeType == OBJECT_SCHEMA &&
		  ((DropStmt *) stmt)->behavior == DROP_CASCADE) &&
		!IsA(stmt, DropOwnedStmt))
		return false;
	/* a statement that may drop it: is it here? */
	ext = get_extension_oid("ccpurge", true);
	if (!OidIsValid(ext))
		return false;
	ccp_launcher_extension_row(ext, &schema, &owner);
	if (IsA(stmt, DropStmt))
	{
		foreach(lc, ((DropStmt *) stmt)->objects)
		{
			if (get_namespace_oid(strVal(lfirst(lc)), true) == schema)
				return true;
		}
		return false;
	}
	foreach(lc, ((DropOwnedStmt *) stmt)->roles)
	{
		if (get_rolespec_oid(lfirst(lc), true) == owner)
			return true;
	}
	return false;
}

/*
 * ccp_launcher_refuse_drop raises an error when ccpurge.queue holds items
 * that are queued, sending or failed: DROP EXTENSION would lose them.
 * Runs before the drop, in its transaction, as its caller (who owns the
 * extension, and so the queue, or is a superuser).
 */
static void
ccp_launcher_refuse_drop(void)
{
	int64		counts[3] = {0, 0, 0};

	if (!OidIsValid(get_extension_oid("ccpurge", true)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT"
					" pg_catalog.sum(nitems) FILTER (WHERE state OPERATOR(pg_catalog.=) 'queued'),"
					" pg_catalog.sum(nitems) FILTER (WHERE state OPERATOR(pg_catalog.=) 'sending'),"
					" pg_catalog.sum(nitems) FILTER (WHERE state OPERATOR(pg_catalog.=) 'failed')"
					" FROM ccpurge.queue"
					" WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'sending', 'failed'])",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count the items of ccpurge.queue");
	for (int i = 0; i < 3; i++)
	{
		bool		isnull;
		/* sum(integer) is a bigint */
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, i + 1, &isnull);

		if (!isnull)
			counts[i] = DatumGetInt64(d);
	}
	SPI_finish();
	if (counts[0] + counts[1] + counts[2] == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot drop extension ccpurge while items are queued, sending or failed"),
			 errdetail("%lld items are queued, %lld sending and %lld failed; dropping the extension would lose them.",
					   (long long) counts[0], (long long) counts[1],
					   (long long) counts[2]),
			 errhint("Wait for queued and sending items with ccpurge_wait(), retry failed ones with ccpurge_retry_failed(), or cancel items with ccpurge_cancel(); see ccpurge_status.")));
}

/*
 * ccp_launcher_utility_hook refuses a statement that would drop the
 * extension and with it queued work (ccp_launcher_drops_ccpurge), and
 * remembers a CREATE or DROP of the extension so that its commit wakes
 * the database's worker or has one started.
 */
static void
ccp_launcher_utility_hook(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		ours = false;

	if (ccp_launcher_drops_ccpurge(stmt))
	{
		ours = true;
		ccp_launcher_refuse_drop();
	}
	else if (IsA(stmt, CreateExtensionStmt) &&
			 strcmp(((CreateExtensionStmt *) stmt)->extname, "ccpurge") == 0)
		ours = true;

	if (ccp_launcher_prev_utility)
		ccp_launcher_prev_utility(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (ours)
	{
		ccp_launcher_ext_changed = true;
		/* off by the administrator's choice: no warning */
		if (IsA(stmt, CreateExtensionStmt) && ccp_serve_database &&
			!ccp_launcher_serves())
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no ccpurge worker can serve this database"),
					 errdetail("Workers already serve as many databases as \"ccpurge.max_databases\" allows, or no background worker slot is free."),
					 errhint("Increase \"ccpurge.max_databases\" (and \"max_worker_processes\") and restart the server.")));
	}
}

/*
 * ccp_launcher_xact_callback wakes the worker (or has one started) once a
 * CREATE or DROP EXTENSION ccpurge has committed.
 */
static void
ccp_launcher_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (ccp_launcher_ext_changed)
				ccp_wake_worker();
			ccp_launcher_ext_changed = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			ccp_launcher_ext_changed = false;
			break;
		default:
			break;
	}
}

/*
 * ccp_launcher_register_hooks installs the utility hook and the
 * transaction callback.  Called once from _PG_init when preloaded.
 */
void
ccp_launcher_register_hooks(void)
{
	ccp_launcher_prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = ccp_launcher_utility_hook;
	RegisterXactCallback(ccp_launcher_xact_callback, NULL);
}
