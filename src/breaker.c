/*-------------------------------------------------------------------------
 *
 * breaker.c
 *	  The circuit breaker of each server, in shared memory, and the
 *	  retry backoff that it and the queue share.
 *
 * While a server keeps failing transiently (transport errors, timeouts,
 * 5xx, token failures), sending it every due batch would only add load to
 * a vendor that is down.  So the worker asks the breaker before it claims
 * a batch for a server (ccp_breaker_allow) and tells it each outcome
 * (ccp_breaker_record).  A server is "closed" (normal) until batches fail
 * transiently twice in a row (one failure may be a blip, and the queue's
 * backoff already covers it); it is then "open": the worker sends it one
 * batch, a probe, per backoff period (ccp_backoff_ms of the failures in a row, so
 * ccpurge.retry_backoff doubling up to ccpurge.retry_backoff_max, with
 * jitter), and nothing else.  Any answer of the vendor that is not a
 * transient failure (success, or a refusal for good, which proves the
 * server up) closes it again, and the worker resumes at full speed.  A
 * vendor's "too fast" (429, "Max limit exceeded") belongs to the rate
 * limiter and changes nothing here, nor does a batch that found no
 * rate-limit room and was not sent.
 *
 * Failures of batches claimed before the breaker last opened or sent a
 * probe do not count again: the batches in flight when a vendor goes down
 * all fail at once, and that is one failure, not sixteen.
 *
 * The state lives in a small shared array, one slot per failing server (a
 * server without failures holds none), keyed by database and server oid, so that it
 * outlives a worker restart.  When every slot is taken, a server has no
 * breaker and is sent to as before.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

/* Transient failures in a row that open a server's breaker. */
#define CCP_BREAKER_THRESHOLD	2

/*
 * The breaker of one failing server: open from CCP_BREAKER_THRESHOLD
 * failures on.  dbid InvalidOid: a free slot.
 */
typedef struct CcpBreakerSlot
{
	Oid			dbid;
	Oid			serverid;
	int			failures;		/* transient failures in a row that counted */
	TimestampTz since;			/* opened, or last probe or failure */
	TimestampTz probe_at;		/* the next probe may be claimed from then */
} CcpBreakerSlot;

typedef struct CcpBreakerShared
{
	LWLock	   *lock;
	int			nslots;
	CcpBreakerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} CcpBreakerShared;

static CcpBreakerShared *ccp_breakers = NULL;

static shmem_request_hook_type ccp_breaker_prev_request = NULL;
static shmem_startup_hook_type ccp_breaker_prev_startup = NULL;

/* ccp_breaker_size is the size of the shared array. */
static Size
ccp_breaker_size(void)
{
	return add_size(offsetof(CcpBreakerShared, slots),
					mul_size(ccp_max_servers, sizeof(CcpBreakerSlot)));
}

/* ccp_breaker_request_hook reserves the shared array and its lock. */
static void
ccp_breaker_request_hook(void)
{
	if (ccp_breaker_prev_request)
		ccp_breaker_prev_request();
	RequestAddinShmemSpace(ccp_breaker_size());
	RequestNamedLWLockTranche("ccpurge breaker", 1);
}

/* ccp_breaker_startup_hook attaches to the shared array, making it once. */
static void
ccp_breaker_startup_hook(void)
{
	bool		found;

	if (ccp_breaker_prev_startup)
		ccp_breaker_prev_startup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ccp_breakers = ShmemInitStruct("ccpurge breaker", ccp_breaker_size(), &found);
	if (!found)
	{
		memset(ccp_breakers, 0, ccp_breaker_size());
		ccp_breakers->lock = &(GetNamedLWLockTranche("ccpurge breaker"))->lock;
		ccp_breakers->nslots = ccp_max_servers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * ccp_breaker_register installs the shared-memory hooks.  Called once
 * from _PG_init while the library is preloaded.
 */
void
ccp_breaker_register(void)
{
	ccp_breaker_prev_request = shmem_request_hook;
	shmem_request_hook = ccp_breaker_request_hook;
	ccp_breaker_prev_startup = shmem_startup_hook;
	shmem_startup_hook = ccp_breaker_startup_hook;
}

/*
 * ccp_backoff_ms is the delay after the n-th transient failure in a row
 * (n >= 1): ccpurge.retry_backoff doubled n - 1 times, at most
 * ccpurge.retry_backoff_max, with full jitter over its upper half.
 */
int64
ccp_backoff_ms(int n)
{
	double		delay = ccp_retry_base_ms;

	for (int i = 1; i < n && delay < ccp_retry_max_ms; i++)
		delay *= 2;
	delay = Min(delay, (double) ccp_retry_max_ms);
	return (int64) (delay * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

/*
 * ccp_breaker_slot returns the slot of srv in the current database, or
 * with create a free one made its own, or NULL.  The caller holds the lock
 * (exclusively with create).
 */
static CcpBreakerSlot *
ccp_breaker_slot(const CcpServer *srv, bool create)
{
	CcpBreakerSlot *free = NULL;

	for (int i = 0; i < ccp_breakers->nslots; i++)
	{
		CcpBreakerSlot *slot = &ccp_breakers->slots[i];

		if (slot->dbid == MyDatabaseId && slot->serverid == srv->serverid)
			return slot;
		if (free == NULL && slot->dbid == InvalidOid)
			free = slot;
	}
	if (!create || free == NULL)
		return NULL;
	memset(free, 0, sizeof(*free));
	free->dbid = MyDatabaseId;
	free->serverid = srv->serverid;
	return free;
}

/*
 * ccp_breaker_allow tells whether the worker may claim a batch for srv
 * now: always while its breaker is closed, once per backoff period while
 * it is open.  When not, *wait_ms says how soon to ask again.  A claim
 * that then sends a batch calls ccp_breaker_sent.
 */
bool
ccp_breaker_allow(const CcpServer *srv, long *wait_ms)
{
	CcpBreakerSlot *slot;
	TimestampTz now = GetCurrentTimestamp();
	bool		allow = true;

	if (ccp_breakers == NULL)
		return true;
	LWLockAcquire(ccp_breakers->lock, LW_SHARED);
	slot = ccp_breaker_slot(srv, false);
	if (slot != NULL && slot->failures >= CCP_BREAKER_THRESHOLD &&
		now < slot->probe_at)
	{
		allow = false;
		*wait_ms = (long) ((slot->probe_at - now) / 1000) + 1;
	}
	LWLockRelease(ccp_breakers->lock);
	return allow;
}

/*
 * ccp_breaker_sent notes that the worker has claimed a batch for srv:
 * while the breaker is open, that batch is the probe of this backoff
 * period, and the next may follow one backoff period later.
 */
void
ccp_breaker_sent(const CcpServer *srv)
{
	CcpBreakerSlot *slot;
	TimestampTz now = GetCurrentTimestamp();

	if (ccp_breakers == NULL)
		return;
	LWLockAcquire(ccp_breakers->lock, LW_EXCLUSIVE);
	slot = ccp_breaker_slot(srv, false);
	if (slot != NULL && slot->failures >= CCP_BREAKER_THRESHOLD &&
		now >= slot->probe_at)
	{
		slot->since = now;
		slot->probe_at = TimestampTzPlusMilliseconds(now, ccp_backoff_ms(slot->failures));
	}
	LWLockRelease(ccp_breakers->lock);
}

/*
 * ccp_breaker_record tells srv's breaker the outcome out of a batch
 * claimed at claimed_at, which was sent unless no_room: a transient
 * failure counts towards opening it, or keeps it open for a longer
 * backoff; any other answer closes it.  Returns true when it closed an
 * open breaker.
 */
bool
ccp_breaker_record(const CcpServer *srv, const CcpOutcome *out,
				   TimestampTz claimed_at, bool no_room)
{
	CcpBreakerSlot *slot;
	TimestampTz now = GetCurrentTimestamp();
	bool		closed = false;

	if (ccp_breakers == NULL || no_room || out->retry == CCP_RETRY_RATE)
		return false;
	LWLockAcquire(ccp_breakers->lock, LW_EXCLUSIVE);
	if (out->ok || out->retry == CCP_FINAL)
	{
		slot = ccp_breaker_slot(srv, false);
		if (slot != NULL)
		{
			closed = slot->failures >= CCP_BREAKER_THRESHOLD;
			slot->dbid = InvalidOid;
		}
	}
	else
	{
		slot = ccp_breaker_slot(srv, true);
		if (slot != NULL && (slot->failures == 0 || claimed_at >= slot->since))
		{
			slot->failures++;
			slot->since = now;
			slot->probe_at = TimestampTzPlusMilliseconds(now, ccp_backoff_ms(slot->failures));
		}
	}
	LWLockRelease(ccp_breakers->lock);
	return closed;
}
