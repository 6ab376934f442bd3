/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  The progress of running synchronous calls, for ccpurge_progress: one
 *	  slot per backend in shared memory, written only by its backend.
 *
 * A synchronous call (api.c) marks its start with ccp_progress_begin, each
 * finished request with ccp_progress_advance and its end with
 * ccp_progress_end; the exchange (exchange.c) says what it is waiting for
 * with ccp_progress_wait, which does nothing outside such a call (the
 * worker's exchanges).  Nothing goes through SQL.
 *
 * Each slot belongs to one backend, indexed by MyBackendId, so writers
 * take no lock.  Readers copy a slot under a change counter, as
 * pgstat_report_activity's st_changecount works: the writer makes the
 * counter odd before it writes and even again after, with write barriers
 * in between; a reader retries until it sees the same even count before
 * and after its copy.  A slot is cleared when its call ends, on an error
 * (api.c's PG_FINALLY) and at process exit.
 *
 * The slots have shared memory of their own, reserved by the hooks this
 * file installs from _PG_init, so that shmem.c's layout is untouched.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ccpurge_progress);

/* One backend's running synchronous call; pid 0: none. */
typedef struct CcpProgressSlot
{
	uint32		changecount;	/* odd while the owner writes */
	int			pid;
	Oid			dbid;
	char		function[NAMEDATALEN];
	char		server[NAMEDATALEN];
	int64		items_total;
	int64		items_done;
	int			requests_total;
	int			requests_done;
	CcpProgressWait waiting_for;
	TimestampTz started_at;
} CcpProgressSlot;

static CcpProgressSlot *ccp_progress_slots = NULL;
static CcpProgressSlot *ccp_progress_mine = NULL;	/* set during a call */
static bool ccp_progress_exit_registered = false;

static shmem_request_hook_type ccp_progress_prev_request_hook = NULL;
static shmem_startup_hook_type ccp_progress_prev_startup_hook = NULL;

/* ccp_progress_size is the shared memory of every backend's slot. */
static Size
ccp_progress_size(void)
{
	return mul_size(MaxBackends, sizeof(CcpProgressSlot));
}

/* ccp_progress_request_hook reserves the slots' memory. */
static void
ccp_progress_request_hook(void)
{
	if (ccp_progress_prev_request_hook)
		ccp_progress_prev_request_hook();
	RequestAddinShmemSpace(ccp_progress_size());
}

/* ccp_progress_startup_hook creates or attaches the slots. */
static void
ccp_progress_startup_hook(void)
{
	bool		found;

	if (ccp_progress_prev_startup_hook)
		ccp_progress_prev_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ccp_progress_slots = ShmemInitStruct("ccpurge progress",
										 ccp_progress_size(), &found);
	if (!found)
		memset(ccp_progress_slots, 0, ccp_progress_size());
	LWLockRelease(AddinShmemInitLock);
}

/* ccp_progress_register installs the hooks; called from _PG_init. */
void
ccp_progress_register(void)
{
	ccp_progress_prev_request_hook = shmem_request_hook;
	shmem_request_hook = ccp_progress_request_hook;
	ccp_progress_prev_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ccp_progress_startup_hook;
}

/* ccp_progress_write_begin opens a change of the caller's own slot s. */
static inline void
ccp_progress_write_begin(CcpProgressSlot *s)
{
	s->changecount++;
	pg_write_barrier();
}

/* ccp_progress_write_end closes the change opened above. */
static inline void
ccp_progress_write_end(CcpProgressSlot *s)
{
	pg_write_barrier();
	s->changecount++;
}

/* ccp_progress_exit clears the slot of a call still running at exit. */
static void
ccp_progress_exit(int code, Datum arg)
{
	ccp_progress_end();
}

/*
 * ccp_progress_begin shows a synchronous call of function (its SQL name)
 * to server as running, with the items and requests it will send.  Does
 * nothing without the slots or outside a backend with a backend id.  The
 * caller must end it with ccp_progress_end, also on error.
 */
void
ccp_progress_begin(const char *function, const char *server,
				   int64 items_total, int requests_total)
{
	CcpProgressSlot *s;

	if (ccp_progress_slots == NULL || MyBackendId < 1 ||
		MyBackendId > MaxBackends)
		return;
	if (!ccp_progress_exit_registered)
	{
		before_shmem_exit(ccp_progress_exit, (Datum) 0);
		ccp_progress_exit_registered = true;
	}
	s = &ccp_progress_slots[MyBackendId - 1];
	ccp_progress_write_begin(s);
	s->pid = MyProcPid;
	s->dbid = MyDatabaseId;
	strlcpy(s->function, function, sizeof(s->function));
	ccp_shmem_strcpy(s->server, server, sizeof(s->server));
	s->items_total = items_total;
	s->items_done = 0;
	s->requests_total = requests_total;
	s->requests_done = 0;
	s->waiting_for = CCP_WAIT_NONE;
	s->started_at = GetCurrentTimestamp();
	ccp_progress_write_end(s);
	ccp_progress_mine = s;
}

/*
 * ccp_progress_advance records one more finished request of the running
 * call, which finished items more items (items whose every request is
 * done).  Does nothing outside a call.
 */
void
ccp_progress_advance(int64 items)
{
	CcpProgressSlot *s = ccp_progress_mine;

	if (s == NULL)
		return;
	ccp_progress_write_begin(s);
	s->requests_done++;
	s->items_done += items;
	s->waiting_for = CCP_WAIT_NONE;
	ccp_progress_write_end(s);
}

/*
 * ccp_progress_wait says what the running call waits for now (CCP_WAIT_NONE:
 * nothing).  Does nothing outside a call, so the worker's exchanges may
 * call it freely.
 */
void
ccp_progress_wait(CcpProgressWait what)
{
	CcpProgressSlot *s = ccp_progress_mine;

	if (s == NULL || s->waiting_for == what)
		return;
	ccp_progress_write_begin(s);
	s->waiting_for = what;
	ccp_progress_write_end(s);
}

/*
 * ccp_progress_end clears the slot of the running call, if any.  Neither
 * allocates nor raises errors.
 */
void
ccp_progress_end(void)
{
	CcpProgressSlot *s = ccp_progress_mine;

	if (s == NULL)
		return;
	ccp_progress_write_begin(s);
	s->pid = 0;
	ccp_progress_write_end(s);
	ccp_progress_mine = NULL;
}

/*
 * ccp_progress_copy copies slot s into *copy consistently, retrying while
 * its owner writes (see the file header).
 */
static void
ccp_progress_copy(volatile CcpProgressSlot *s, CcpProgressSlot *copy)
{
	for (;;)
	{
		uint32		before = s->changecount;
		uint32		after;

		pg_read_barrier();
		memcpy(copy, (CcpProgressSlot *) s, sizeof(*copy));
		pg_read_barrier();
		after = s->changecount;
		if (before == after && (before & 1) == 0)
			return;
		CHECK_FOR_INTERRUPTS();
	}
}

/* Texts of CcpProgressWait, as ccpurge_progress shows them. */
static const char *const ccp_progress_wait_names[] = {
	[CCP_WAIT_NONE] = NULL,
	[CCP_WAIT_RATE] = "rate limit",
	[CCP_WAIT_TOKEN] = "token",
	[CCP_WAIT_HTTP] = "http"
};

/*
 * ccpurge_progress() returns (pid, function, server, items_total,
 * items_done, requests_total, requests_done, waiting_for, started_at), one
 * row per synchronous call running in the current database.
 */
Datum
ccpurge_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	ccp_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; ccp_progress_slots != NULL && i < MaxBackends; i++)
	{
		CcpProgressSlot s;
		Datum		values[9];
		bool		nulls[9] = {0};
		const char *wait;

		if (ccp_progress_slots[i].pid == 0)
			continue;
		ccp_progress_copy(&ccp_progress_slots[i], &s);
		if (s.pid == 0 || s.dbid != MyDatabaseId)
			continue;
		wait = ccp_progress_wait_names[s.waiting_for];
		values[0] = Int32GetDatum(s.pid);
		values[1] = CStringGetTextDatum(s.function);
		values[2] = CStringGetTextDatum(s.server);
		values[3] = Int64GetDatum(s.items_total);
		values[4] = Int64GetDatum(s.items_done);
		values[5] = Int32GetDatum(s.requests_total);
		values[6] = Int32GetDatum(s.requests_done);
		nulls[7] = (wait == NULL);
		if (wait != NULL)
			values[7] = CStringGetTextDatum(wait);
		values[8] = TimestampTzGetDatum(s.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
