/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of ccpurge: the token cache slots, the rate limiter
 *	  slots, their locks and condition variables, the worker's latch, and
 *	  the request-log rows that rolled-back transactions hand to the worker.
 *
 * The layout is fixed at postmaster start from ccpurge.max_servers.  The
 * users of each part (auth.c, ratelimit.c, reqlog.c, worker.c, dropdb.c)
 * own its semantics; this file only reserves, initialises and hands out
 * the memory.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

CcpShared  *ccp_shared = NULL;

static shmem_request_hook_type ccp_prev_shmem_request_hook = NULL;
static shmem_startup_hook_type ccp_prev_shmem_startup_hook = NULL;

/* ccp_shmem_size computes the bytes needed for the shared state. */
static Size
ccp_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(CcpShared));

	size = add_size(size, mul_size(ccp_max_servers, sizeof(CcpTokenSlot)));
	size = add_size(size, mul_size(ccp_max_servers, sizeof(CcpRateSlot)));
	return size;
}

/* ccp_shmem_request_hook asks the postmaster for memory and locks. */
static void
ccp_shmem_request_hook(void)
{
	if (ccp_prev_shmem_request_hook)
		ccp_prev_shmem_request_hook();

	RequestAddinShmemSpace(ccp_shmem_size());
	RequestNamedLWLockTranche("ccpurge", 4);
}

/*
 * ccp_shmem_startup_hook creates or attaches the shared state.  Runs in the
 * postmaster and, under EXEC_BACKEND, in every backend.
 */
static void
ccp_shmem_startup_hook(void)
{
	bool		found;

	if (ccp_prev_shmem_startup_hook)
		ccp_prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ccp_shared = ShmemInitStruct("ccpurge", ccp_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("ccpurge");
		char	   *p = (char *) ccp_shared;

		memset(ccp_shared, 0, ccp_shmem_size());
		ccp_shared->token_lock = &locks[0].lock;
		ccp_shared->rate_lock = &locks[1].lock;
		ccp_shared->worker_lock = &locks[2].lock;
		ccp_shared->log_lock = &locks[3].lock;
		ConditionVariableInit(&ccp_shared->token_cv);
		ConditionVariableInit(&ccp_shared->rate_cv);
		pg_atomic_init_u64(&ccp_shared->digest_generation, 0);
		ccp_shared->nslots = ccp_max_servers;
		ccp_shared->started_at = GetCurrentTimestamp();
		p += MAXALIGN(sizeof(CcpShared));
		ccp_shared->tokens = (CcpTokenSlot *) p;
		p += mul_size(ccp_max_servers, sizeof(CcpTokenSlot));
		ccp_shared->rates = (CcpRateSlot *) p;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ccp_shmem_request installs the hooks; called from _PG_init. */
void
ccp_shmem_request(void)
{
	ccp_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ccp_shmem_request_hook;
	ccp_prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ccp_shmem_startup_hook;
}

/* ccp_shmem_ready tells whether the shared state exists in this process. */
bool
ccp_shmem_ready(void)
{
	return ccp_shared != NULL;
}

/*
 * ccp_wake_worker sets the background worker's latch, if it runs.  Safe to
 * call from a transaction callback: it neither allocates nor errors.
 */
void
ccp_wake_worker(void)
{
	Latch	   *latch;

	if (ccp_shared == NULL)
		return;
	/* a stale pointer is harmless: it points at a PGPROC latch */
	latch = ccp_shared->worker_latch;
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * ccp_shmem_strcpy copies the NUL-terminated src into dst, a buffer of size
 * bytes (size > 0), cutting it if needed at a character boundary of the
 * database encoding, so that a fixed-size shared buffer never holds half a
 * character that would later be stored.  src must be valid in that
 * encoding.  Neither allocates nor raises errors, so it may run in
 * transaction callbacks.
 */
void
ccp_shmem_strcpy(char *dst, const char *src, int size)
{
	int			len = strlen(src);

	if (len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}
