/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  The rate limiter shared by every backend and worker of every
 *	  database: rate_limit (N per second, minute or hour) and max_inflight,
 *	  per vendor account.
 *
 * Vendors count requests in a sliding window, so the limiter keeps the time
 * of the last N requests of each server and lets a new one start only when
 * the oldest of them is a full period old.  The time kept is when the
 * request finished, not when it started: the vendor saw it arrive somewhere
 * in between, so measuring from the end can never overrun its window, and
 * a request still in flight blocks its entry altogether.  For N above
 * CCP_RATE_RING the window is scaled down proportionally (N/period becomes
 * CCP_RATE_RING/(period * CCP_RATE_RING / N)), which is never faster.
 *
 * Accounts.  A slot belongs to a vendor account (ccp_server_account), so
 * servers of one account, in one database or several, share one window
 * and one in-flight cap.  Each server that uses the slot is a voter with
 * its settings; the slot applies the strictest of them.  A server whose
 * settings change updates its vote; a dropped server's vote stays until
 * the slot is idle and reused, which errs on the safe side.
 *
 * Restarts.  A window the limiter cannot know is a full one: a slot that
 * appears after a start begins with its window full as of the moment
 * shared memory was created, unless the window file (read at the
 * limiter's first use) says otherwise.
 * Windows of CCP_RATE_PERSIST_US or longer (the ones a restart could
 * overrun, and would cost most to wait out) are written, whenever one of
 * their requests starts, to $PGDATA/pg_ccpurge/windows (mode 0600), and
 * loaded at start: an entry in flight then counts as finished at start.
 *
 * A ticket names the slot and entry a request holds; it must be given back
 * with ccp_rate_release() whatever happens to the request.  Tickets still
 * held when an error escapes are released by ccp_rate_release_all(), and at
 * process exit.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <signal.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/wait_event.h"

/* Ticket meaning "nothing was taken": the server has no limits. */
#define CCP_TICKET_NONE		(-2)
/* entry index meaning "counts toward max_inflight only" */
#define CCP_ENTRY_NONE		CCP_RATE_RING

#define CCP_MAX_HELD		256

/* Shortest window kept across restarts; shorter ones start full. */
#define CCP_RATE_PERSIST_US	((int64) 10 * USECS_PER_SEC)

/* The window file, in CCP_STATE_DIR, and its format. */
#define CCP_RATE_FILE		"windows"
#define CCP_RATE_MAGIC		0x43435057	/* "CCPW" */

/* One window as the file keeps it. */
typedef struct CcpRateRecord
{
	uint64		account;
	int			count;
	int64		period_us;
	int			used;
	TimestampTz sent[CCP_RATE_RING];
} CcpRateRecord;

static void ccp_rate_load(void);

static int	ccp_held[CCP_MAX_HELD];
static int	ccp_nheld = 0;
static bool ccp_rate_exit_registered = false;

/*
 * ccp_rate_slot_idle tells whether a limiter slot remembers nothing that
 * still limits its server: nothing in flight and every request of its
 * window a full period old.  Caller holds rate_lock.
 */
static bool
ccp_rate_slot_idle(const CcpRateSlot *s, TimestampTz now)
{
	if (s->inflight > 0)
		return false;
	for (int i = 0; i < s->used; i++)
	{
		if (s->sent[i] == DT_NOEND || s->sent[i] + s->period_us > now)
			return false;
	}
	return true;
}

/*
 * ccp_rate_vote records srv's settings among slot's voters and returns the
 * strictest settings of them all in *count, *period_us and *max_inflight.
 * A new voter takes a free place, or the last one.  Returns true when srv
 * had voted before with another rate (its server was altered).  Caller
 * holds rate_lock exclusively.
 */
static bool
ccp_rate_vote(CcpRateSlot *slot, const CcpServer *srv, int *count,
			  int64 *period_us, int *max_inflight)
{
	CcpRateVoter *mine = NULL;
	int			c = Min(srv->rate_count, CCP_RATE_RING);
	int64		p = (c > 0) ?
		(int64) srv->rate_period_ms * 1000 * c / srv->rate_count : 0;
	bool		altered;

	for (int i = 0; i < CCP_RATE_VOTERS && mine == NULL; i++)
	{
		CcpRateVoter *v = &slot->voters[i];

		if (v->dbid == MyDatabaseId && v->serverid == srv->serverid)
			mine = v;
	}
	for (int i = 0; i < CCP_RATE_VOTERS && mine == NULL; i++)
	{
		if (slot->voters[i].dbid == InvalidOid)
			mine = &slot->voters[i];
	}
	if (mine == NULL)
		mine = &slot->voters[CCP_RATE_VOTERS - 1];
	altered = (mine->dbid == MyDatabaseId && mine->serverid == srv->serverid &&
			   (mine->count != c || mine->period_us != p));
	mine->dbid = MyDatabaseId;
	mine->serverid = srv->serverid;
	mine->count = c;
	mine->period_us = p;
	mine->max_inflight = srv->max_inflight;

	*count = 0;
	*period_us = 0;
	*max_inflight = 0;
	for (int i = 0; i < CCP_RATE_VOTERS; i++)
	{
		CcpRateVoter *v = &slot->voters[i];

		if (v->dbid == InvalidOid)
			continue;
		/* fewer requests per time is stricter: c1/p1 < c2/p2 */
		if (v->count > 0 &&
			(*count == 0 ||
			 (double) v->count * (double) *period_us <
			 (double) *count * (double) v->period_us))
		{
			*count = v->count;
			*period_us = v->period_us;
		}
		if (v->max_inflight > 0 &&
			(*max_inflight == 0 || v->max_inflight < *max_inflight))
			*max_inflight = v->max_inflight;
	}
	return altered;
}

/*
 * ccp_rate_fill makes every entry of slot's window count as sent at "at":
 * the next request waits until a full period after it.  Caller holds
 * rate_lock exclusively.
 */
static void
ccp_rate_fill(CcpRateSlot *slot, TimestampTz at)
{
	for (int i = 0; i < slot->count; i++)
	{
		if (i >= slot->used || slot->sent[i] != DT_NOEND)
		{
			slot->sent[i] = at;
			slot->holder_pid[i] = 0;
		}
	}
	slot->used = slot->count;
}

/*
 * ccp_rate_slot finds or claims the limiter slot of srv's account and
 * brings its settings up to date.  Caller holds rate_lock exclusively.  A
 * slot of another account is reused only when it is idle (see above);
 * when none is, the call fails with a hint naming the setting, since
 * forgetting a window would let an account overrun its vendor's limit.
 */
static CcpRateSlot *
ccp_rate_slot(const CcpServer *srv)
{
	CcpRateSlot *slot = NULL;
	int			count;
	int64		period_us;
	int			max_inflight;
	bool		fresh = false;
	bool		altered;
	uint64		account = ccp_server_account(srv);
	TimestampTz now = GetCurrentTimestamp();

	if (!ccp_shared->windows_read)
	{
		ccp_rate_load();
		ccp_shared->windows_read = true;
	}
	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpRateSlot *s = &ccp_shared->rates[i];

		if (s->account == account)
		{
			slot = s;
			break;
		}
		/* prefer a free slot; else one whose history no longer matters */
		if (s->account == 0 && (slot == NULL || slot->account != 0))
			slot = s;
		else if (slot == NULL && ccp_rate_slot_idle(s, now))
			slot = s;
	}
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many ccpurge servers are in use"),
				 errdetail("All %d rate-limiter slots hold the recent requests of other servers.",
						   ccp_shared->nslots),
				 errhint("Increase \"ccpurge.max_servers\" and restart the server.")));
	if (slot->account != account)
	{
		memset(slot, 0, sizeof(*slot));
		slot->account = account;
		fresh = true;
	}

	altered = ccp_rate_vote(slot, srv, &count, &period_us, &max_inflight);
	if (slot->count != count || slot->period_us != period_us)
	{
		TimestampTz latest = 0;

		/*
		 * A changed limit keeps requests in flight.  A server altered by
		 * its owner starts a fresh window; a limit that changed because
		 * another server of the account voted, or since the window was
		 * saved, counts the whole new window as used since the latest
		 * request: never faster than either.
		 */
		for (int i = 0; i < slot->used; i++)
		{
			if (slot->sent[i] != DT_NOEND)
			{
				latest = Max(latest, slot->sent[i]);
				if (altered)
					slot->sent[i] = 0;
			}
		}
		slot->count = count;
		slot->period_us = period_us;
		if (slot->used > count)
			slot->used = count;
		if (latest != 0 && !altered)
			ccp_rate_fill(slot, latest);
	}
	/*
	 * A window first seen since the start that no file vouches for may
	 * have been used just before it.
	 */
	if (fresh && (period_us < CCP_RATE_PERSIST_US || !ccp_shared->windows_loaded))
		ccp_rate_fill(slot, ccp_shared->started_at);
	slot->max_inflight = max_inflight;
	return slot;
}

/*
 * ccp_rate_save writes the windows of CCP_RATE_PERSIST_US or longer to the
 * window file, replacing it.  Caller holds rate_lock.  A failure is
 * logged, never raised: after a restart, windows then start full.  Not
 * synced: it is for a crash of the server, not of the system.
 */
static void
ccp_rate_save(void)
{
	CcpRateRecord *recs;
	uint32		n = 0;

	recs = palloc0(sizeof(CcpRateRecord) * ccp_shared->nslots);
	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpRateSlot *s = &ccp_shared->rates[i];
		CcpRateRecord *r = &recs[n];

		if (s->account == 0 || s->period_us < CCP_RATE_PERSIST_US)
			continue;
		r->account = s->account;
		r->count = s->count;
		r->period_us = s->period_us;
		r->used = s->used;
		memcpy(r->sent, s->sent, sizeof(r->sent));
		n++;
	}
	if (!ccp_state_write(CCP_RATE_FILE, CCP_RATE_MAGIC, recs, n,
						 sizeof(CcpRateRecord), false))
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write the ccpurge window file \"%s/%s\": %m",
						CCP_STATE_DIR, CCP_RATE_FILE),
				 errdetail("After a restart, rate windows will start full.")));
	pfree(recs);
}

/*
 * ccp_rate_load fills the limiter slots with the windows of the window
 * file, an entry still in flight counting as finished at the start.
 * Called once after a start, at the limiter's first use, before any slot
 * is taken; caller holds rate_lock exclusively.  Without a readable file,
 * every window starts full.
 */
static void
ccp_rate_load(void)
{
	CcpRateRecord r;
	uint32		count;
	uint32		i;
	int			fd;
	int			n = 0;

	fd = ccp_state_open(CCP_RATE_FILE, CCP_RATE_MAGIC, &count);
	if (fd < 0)
	{
		/* no state at all: nothing was ever sent under a long window */
		ccp_shared->windows_loaded = (errno == ENOENT &&
									  access(CCP_STATE_DIR, F_OK) != 0);
		return;
	}
	for (i = 0; i < count && n < ccp_shared->nslots; i++)
	{
		CcpRateSlot *s = &ccp_shared->rates[n];

		if (read(fd, &r, sizeof(r)) != sizeof(r))
			break;
		if (r.account == 0 || r.count <= 0 || r.count > CCP_RATE_RING ||
			r.used < 0 || r.used > r.count)
			continue;
		s->account = r.account;
		s->count = r.count;
		s->period_us = r.period_us;
		s->used = r.used;
		for (int k = 0; k < r.used; k++)
			s->sent[k] = (r.sent[k] == DT_NOEND) ?
				ccp_shared->started_at : r.sent[k];
		n++;
	}
	ccp_shared->windows_loaded = (i == count);
	close(fd);
}

/*
 * ccp_rate_reap frees entries held by processes that died without giving
 * them back.  Caller holds rate_lock exclusively.
 */
static void
ccp_rate_reap(CcpRateSlot *slot)
{
	for (int i = 0; i < slot->used; i++)
	{
		if (slot->sent[i] == DT_NOEND && slot->holder_pid[i] != 0 &&
			kill(slot->holder_pid[i], 0) != 0)
		{
			slot->sent[i] = GetCurrentTimestamp();
			slot->holder_pid[i] = 0;
			if (slot->inflight > 0)
				slot->inflight--;
		}
	}
}

/*
 * ccp_rate_try takes an entry if one is free now.  Returns the entry index
 * (CCP_ENTRY_NONE without a rate), or -1 with *wait_us set to how long to
 * wait (0: until someone finishes).  Caller holds rate_lock exclusively.
 */
static int
ccp_rate_try(CcpRateSlot *slot, int64 *wait_us)
{
	TimestampTz now = GetCurrentTimestamp();
	int			entry = CCP_ENTRY_NONE;

	*wait_us = 0;
	if (slot->max_inflight > 0 && slot->inflight >= slot->max_inflight)
		return -1;
	if (slot->count > 0)
	{
		if (slot->used < slot->count)
			entry = slot->used++;
		else
		{
			TimestampTz oldest = DT_NOEND;

			for (int i = 0; i < slot->count; i++)
			{
				if (slot->sent[i] < oldest)
				{
					oldest = slot->sent[i];
					entry = i;
				}
			}
			if (oldest == DT_NOEND)
				return -1;
			if (oldest + slot->period_us > now)
			{
				*wait_us = oldest + slot->period_us - now;
				return -1;
			}
		}
		slot->sent[entry] = DT_NOEND;
		slot->holder_pid[entry] = MyProcPid;
	}
	slot->inflight++;
	slot->requests++;
	return entry;
}

/* ccp_rate_exit gives back every ticket this process holds at exit. */
static void
ccp_rate_exit(int code, Datum arg)
{
	ccp_rate_release_all();
}

/*
 * ccp_rate_acquire takes a ticket for one request to srv.  With wait, it
 * blocks until the server's rate_limit and max_inflight allow the request;
 * the wait ends early on a cancel or statement_timeout (an ERROR), and a
 * NOTICE is raised once it exceeds ccpurge.rate_limit_notice.  Without
 * wait, it returns -1 when the request cannot start now (see
 * ccp_rate_next_ms).  The ticket must be given back with ccp_rate_release.
 */
int
ccp_rate_acquire(const CcpServer *srv, bool wait)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		noticed = false;
	int			ticket = -1;

	if (srv->rate_count <= 0 && srv->max_inflight <= 0)
		return CCP_TICKET_NONE;
	if (!ccp_rate_exit_registered)
	{
		before_shmem_exit(ccp_rate_exit, (Datum) 0);
		ccp_rate_exit_registered = true;
	}
	if (ccp_nheld >= CCP_MAX_HELD)
		elog(ERROR, "too many ccpurge rate-limit tickets held");

	for (;;)
	{
		CcpRateSlot *slot;
		int64		wait_us;
		int			entry;
		long		sleep_ms;

		LWLockAcquire(ccp_shared->rate_lock, LW_EXCLUSIVE);
		slot = ccp_rate_slot(srv);
		ccp_rate_reap(slot);
		entry = ccp_rate_try(slot, &wait_us);
		if (entry >= 0)
			ticket = (int) (slot - ccp_shared->rates) * (CCP_RATE_RING + 1) + entry;
		if (entry >= 0 && entry != CCP_ENTRY_NONE &&
			slot->period_us >= CCP_RATE_PERSIST_US)
			ccp_rate_save();
		LWLockRelease(ccp_shared->rate_lock);

		if (ticket >= 0 || !wait)
			break;

		if (!noticed && ccp_rate_notice_ms > 0 &&
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
									   ccp_rate_notice_ms))
		{
			/* 0 means "no limit" for either setting */
			ereport(NOTICE,
					(errmsg("waiting for the rate limit of server \"%s\"",
							srv->servername),
					 srv->max_inflight == 0 ?
					 errdetail_plural("The server allows %d request per %d ms.",
									  "The server allows %d requests per %d ms.",
									  srv->rate_count,
									  srv->rate_count, srv->rate_period_ms) :
					 srv->rate_count == 0 ?
					 errdetail_plural("The server allows at most %d request in flight.",
									  "The server allows at most %d requests in flight.",
									  srv->max_inflight,
									  srv->max_inflight) :
					 errdetail_plural("The server allows %d request per %d ms and at most %d in flight.",
									  "The server allows %d requests per %d ms and at most %d in flight.",
									  srv->rate_count,
									  srv->rate_count, srv->rate_period_ms,
									  srv->max_inflight)));
			noticed = true;
		}
		sleep_ms = (wait_us > 0) ? (long) ((wait_us + 999) / 1000) : 100;
		sleep_ms = Min(Max(sleep_ms, 1), 1000);
		if (!noticed && ccp_rate_notice_ms > 0)
		{
			/* wake in time to raise the notice when it is due */
			long		secs;
			int			usecs;
			long		waited_ms;

			TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
			waited_ms = secs * 1000 + usecs / 1000;
			sleep_ms = Min(sleep_ms, Max(ccp_rate_notice_ms - waited_ms, 1));
		}
		/* sleeps on the latch and checks for interrupts */
		(void) ConditionVariableTimedSleep(&ccp_shared->rate_cv, sleep_ms,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (ticket >= 0)
		ccp_held[ccp_nheld++] = ticket;
	return ticket;
}

/*
 * ccp_rate_release gives a ticket back: the request has finished (or never
 * went out) now.  Unknown and "none" tickets are ignored.
 */
void
ccp_rate_release(const CcpServer *srv, int ticket)
{
	CcpRateSlot *slot;
	int			entry;
	bool		found = false;

	if (ticket < 0)
		return;
	for (int i = 0; i < ccp_nheld; i++)
	{
		if (ccp_held[i] == ticket)
		{
			ccp_held[i] = ccp_held[--ccp_nheld];
			found = true;
			break;
		}
	}
	if (!found)
		return;

	slot = &ccp_shared->rates[ticket / (CCP_RATE_RING + 1)];
	entry = ticket % (CCP_RATE_RING + 1);
	LWLockAcquire(ccp_shared->rate_lock, LW_EXCLUSIVE);
	if (entry != CCP_ENTRY_NONE && slot->sent[entry] == DT_NOEND &&
		slot->holder_pid[entry] == MyProcPid)
	{
		slot->sent[entry] = GetCurrentTimestamp();
		slot->holder_pid[entry] = 0;
	}
	if (slot->inflight > 0)
		slot->inflight--;
	LWLockRelease(ccp_shared->rate_lock);
	ConditionVariableBroadcast(&ccp_shared->rate_cv);
}

/*
 * ccp_rate_penalize records that the vendor refused a request for going too
 * fast: the whole window is treated as used from now on, so the next
 * request waits a full period.
 */
void
ccp_rate_penalize(const CcpServer *srv)
{
	CcpRateSlot *slot;
	TimestampTz now = GetCurrentTimestamp();

	if (srv->rate_count <= 0)
		return;
	LWLockAcquire(ccp_shared->rate_lock, LW_EXCLUSIVE);
	slot = ccp_rate_slot(srv);
	ccp_rate_fill(slot, now);
	if (slot->period_us >= CCP_RATE_PERSIST_US)
		ccp_rate_save();
	LWLockRelease(ccp_shared->rate_lock);
}

/*
 * ccp_rate_next_ms estimates how many milliseconds remain until srv can
 * take a new request (0: now or when a request in flight finishes).
 */
long
ccp_rate_next_ms(const CcpServer *srv)
{
	CcpRateSlot *slot;
	TimestampTz now = GetCurrentTimestamp();
	int64		wait_us = 0;

	if (srv->rate_count <= 0)
		return 0;
	LWLockAcquire(ccp_shared->rate_lock, LW_EXCLUSIVE);
	slot = ccp_rate_slot(srv);
	if (slot->used >= slot->count)
	{
		TimestampTz oldest = DT_NOEND;

		for (int i = 0; i < slot->count; i++)
			oldest = Min(oldest, slot->sent[i]);
		if (oldest != DT_NOEND && oldest + slot->period_us > now)
			wait_us = oldest + slot->period_us - now;
	}
	LWLockRelease(ccp_shared->rate_lock);
	return (long) ((wait_us + 999) / 1000);
}

/* ccp_rate_release_all gives back every ticket this process still holds. */
void
ccp_rate_release_all(void)
{
	while (ccp_nheld > 0)
		ccp_rate_release(NULL, ccp_held[ccp_nheld - 1]);
}

/*
 * ccp_rate_state reads, under the limiter lock, what the limiter knows of
 * vendor account account (ccp_server_account), for ccpurge_servers: the
 * requests in flight, the entries of its rate window in use (in flight or
 * finished less than a period ago; -1 without a rate limit) and when the
 * next entry frees itself while the window is full (0: not full, or only
 * when a request in flight finishes).  Returns false, with everything 0,
 * when the limiter has no slot for it.
 */
bool
ccp_rate_state(uint64 account, int *inflight, int *window_used,
			   TimestampTz *next_slot_at)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		found = false;

	*inflight = 0;
	*window_used = 0;
	*next_slot_at = 0;
	LWLockAcquire(ccp_shared->rate_lock, LW_SHARED);
	for (int i = 0; i < ccp_shared->nslots && !found; i++)
	{
		CcpRateSlot *s = &ccp_shared->rates[i];
		TimestampTz next = DT_NOEND;

		if (s->account != account)
			continue;
		found = true;
		*inflight = s->inflight;
		*window_used = s->count > 0 ? 0 : -1;
		for (int e = 0; e < s->used && s->count > 0; e++)
		{
			if (s->sent[e] == DT_NOEND || s->sent[e] + s->period_us > now)
				(*window_used)++;
			if (s->sent[e] != DT_NOEND)
				next = Min(next, s->sent[e] + s->period_us);
		}
		if (s->count > 0 && *window_used >= s->count && next != DT_NOEND)
			*next_slot_at = next;
	}
	LWLockRelease(ccp_shared->rate_lock);
	return found;
}
