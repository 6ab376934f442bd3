/*-------------------------------------------------------------------------
 *
 * auth.c
 *	  The shared token cache: one token per vendor account
 *	  (ccp_server_account: vendor, URL and account identity), reused by
 *	  every backend and worker of every database, refreshed before it
 *	  expires, with at most one refresh in flight across all processes,
 *	  and kept across restarts.
 *
 * A process that needs a token and finds none valid marks the slot as
 * refreshing and asks the vendor; every other process waits on a condition
 * variable and then reuses what it got.  A caller whose token was refused
 * (HTTP 401, "Token Expired") passes that token back as "stale": if the slot
 * still holds it, it is refreshed; if someone already replaced it, the new
 * one is used without another request.  That keeps Ozonetel, which allows
 * ten tokens an hour and kills the previous token with each new one, happy.
 *
 * A failed refresh is remembered for ccpurge.token_failure_hold so that a
 * wrong secret does not turn into one token request per waiting backend.
 *
 * Restarts.  Every new token is written, with its account, credential
 * fingerprint and expiry, to $PGDATA/pg_ccpurge/tokens (mode 0600, in a
 * directory only the server's owner can enter), and the tokens still valid
 * there are loaded at the cache's first use after a start, so that a
 * restart or a crash does not cost a token request: Ozonetel allows ten an
 * hour.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <signal.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/wait_event.h"

static bool ccp_token_exit_registered = false;

/* The token file, in CCP_STATE_DIR, and its format. */
#define CCP_TOKEN_FILE		"tokens"
#define CCP_TOKEN_MAGIC		0x43435054	/* "CCPT" */

/* One token as the file keeps it. */
typedef struct CcpTokenRecord
{
	uint64		account;
	uint32		cred_hash;
	TimestampTz issued_at;
	TimestampTz expires_at;
	char		token[CCP_TOKEN_MAX];
} CcpTokenRecord;

/*
 * ccp_token_save writes every live token to the token file, replacing it
 * atomically.  Caller holds token_lock, so that two writers never mix.  A
 * failure is logged, never raised: the token works without the file.
 */
static void
ccp_token_save(void)
{
	TimestampTz now = GetCurrentTimestamp();
	CcpTokenRecord *recs;
	uint32		n = 0;

	recs = palloc0(sizeof(CcpTokenRecord) * ccp_shared->nslots);
	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpTokenSlot *s = &ccp_shared->tokens[i];
		CcpTokenRecord *r = &recs[n];

		if (s->account == 0 || s->token[0] == '\0' || s->expires_at <= now)
			continue;
		r->account = s->account;
		r->cred_hash = s->cred_hash;
		r->issued_at = s->issued_at;
		r->expires_at = s->expires_at;
		strlcpy(r->token, s->token, CCP_TOKEN_MAX);
		n++;
	}
	if (!ccp_state_write(CCP_TOKEN_FILE, CCP_TOKEN_MAGIC, recs, n,
						 sizeof(CcpTokenRecord), true))
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write the ccpurge token file \"%s/%s\": %m",
						CCP_STATE_DIR, CCP_TOKEN_FILE),
				 errdetail("A restart will request new tokens.")));
	explicit_bzero(recs, sizeof(CcpTokenRecord) * ccp_shared->nslots);
	pfree(recs);
}

/*
 * ccp_token_load fills the token slots with the tokens of the token file
 * that are still valid.  Called once after a start, at the cache's first
 * use, before any slot is taken; caller holds token_lock exclusively.
 */
static void
ccp_token_load(void)
{
	TimestampTz now = GetCurrentTimestamp();
	CcpTokenRecord r;
	uint32		count;
	int			fd;
	int			n = 0;

	fd = ccp_state_open(CCP_TOKEN_FILE, CCP_TOKEN_MAGIC, &count);
	if (fd < 0)
		return;
	for (uint32 i = 0; i < count && n < ccp_shared->nslots; i++)
	{
		CcpTokenSlot *s = &ccp_shared->tokens[n];

		if (read(fd, &r, sizeof(r)) != sizeof(r))
			break;
		if (r.account == 0 || r.expires_at <= now ||
			memchr(r.token, '\0', CCP_TOKEN_MAX) == NULL)
			continue;
		s->account = r.account;
		s->cred_hash = r.cred_hash;
		s->issued_at = r.issued_at;
		s->expires_at = r.expires_at;
		strlcpy(s->token, r.token, CCP_TOKEN_MAX);
		n++;
	}
	explicit_bzero(&r, sizeof(r));
	close(fd);
}

/*
 * ccp_token_cred_hash fingerprints what a token request of srv depends on:
 * its URL, credentials, TLS settings and token lifetime.
 */
static uint32
ccp_token_cred_hash(const CcpServer *srv)
{
	uint32		h = hash_bytes((const unsigned char *) srv->url, strlen(srv->url));

	for (int i = 0; i < srv->vendor->ncreds; i++)
	{
		if (srv->cred[i])
			h = hash_combine(h, hash_bytes((const unsigned char *) srv->cred[i],
										   strlen(srv->cred[i])));
	}
	/* a changed TLS setting may turn a failed token request into a good one */
	if (srv->http.ca_file)
		h = hash_combine(h, hash_bytes((const unsigned char *) srv->http.ca_file,
									   strlen(srv->http.ca_file)));
	h = hash_combine(h, (uint32) srv->http.verify_tls);
	/* and so may a changed proxy or proxy credential */
	{
		const char *proxy_settings[] = {srv->http.proxy, srv->http.no_proxy,
		srv->http.proxy_user, srv->http.proxy_password};

		for (int i = 0; i < lengthof(proxy_settings); i++)
		{
			if (proxy_settings[i])
				h = hash_combine(h, hash_bytes((const unsigned char *) proxy_settings[i],
											   strlen(proxy_settings[i])));
		}
	}
	return hash_combine(h, (uint32) srv->token_ttl);
}

/*
 * ccp_token_slot finds or claims the slot of srv.  Caller holds token_lock
 * exclusively.  A slot is reused for another server only when it holds
 * nothing that matters any more: no live token (a new token would kill it
 * at vendors that keep one per account), no refresh in progress, and no
 * remembered failure.  When every slot is in use the call fails with a
 * hint naming the setting, instead of dropping a token silently.
 */
static CcpTokenSlot *
ccp_token_slot(const CcpServer *srv)
{
	CcpTokenSlot *victim = NULL;
	TimestampTz now = GetCurrentTimestamp();
	uint64		account = ccp_server_account(srv);

	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpTokenSlot *s = &ccp_shared->tokens[i];

		if (s->account == account)
			return s;
		if (s->account == 0)
		{
			if (victim == NULL || victim->account != 0)
				victim = s;
		}
		else if (victim == NULL && !s->refreshing && s->expires_at <= now &&
				 s->fail_until <= now)
			victim = s;
	}
	if (victim == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many ccpurge servers hold tokens"),
				 errdetail("All %d token slots hold live tokens, and reusing one would lose its token.",
						   ccp_shared->nslots),
				 errhint("Increase \"ccpurge.max_servers\" and restart the server.")));
	memset(victim, 0, sizeof(*victim));
	victim->account = account;
	return victim;
}

/*
 * ccp_token_release_mine clears the refreshing mark of any slot this
 * process holds.  Runs at process exit, since a FATAL error does not pass
 * through PG_CATCH.
 */
static void
ccp_token_release_mine(int code, Datum arg)
{
	bool		any = false;

	if (ccp_shared == NULL)
		return;
	LWLockAcquire(ccp_shared->token_lock, LW_EXCLUSIVE);
	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpTokenSlot *s = &ccp_shared->tokens[i];

		if (s->refreshing && s->refresher_pid == MyProcPid)
		{
			s->refreshing = false;
			any = true;
		}
	}
	LWLockRelease(ccp_shared->token_lock);
	if (any)
		ConditionVariableBroadcast(&ccp_shared->token_cv);
}

/* ccp_token_finish_refresh stores the outcome of a refresh and wakes all. */
static void
ccp_token_finish_refresh(CcpTokenSlot *slot, const CcpServer *srv,
						 uint32 cred_hash, const char *token, int ttl_s,
						 const char *error, int status)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(ccp_shared->token_lock, LW_EXCLUSIVE);
	/* the slot cannot have been reused: it was marked refreshing */
	if (token != NULL || error != NULL)
		slot->cred_hash = cred_hash;
	if (token != NULL)
	{
		int			margin = Min(60, ttl_s / 10);

		strlcpy(slot->token, token, CCP_TOKEN_MAX);
		slot->issued_at = now;
		slot->expires_at = TimestampTzPlusMilliseconds(now,
													   (int64) (ttl_s - margin) * 1000);
		slot->generation++;
		slot->tokens_issued++;
		ccp_token_save();
	}
	else if (error != NULL)
	{
		slot->fail_until = TimestampTzPlusMilliseconds(now, ccp_token_fail_hold_ms);
		ccp_shmem_strcpy(slot->fail_message, error, sizeof(slot->fail_message));
		slot->fail_status = status;
	}
	slot->refreshing = false;
	slot->refresher_pid = 0;
	LWLockRelease(ccp_shared->token_lock);
	ConditionVariableBroadcast(&ccp_shared->token_cv);
}

/*
 * ccp_token_fetch asks the vendor for a new token.  Returns the token or
 * NULL with *error and *status (the HTTP status, 0 if none) set.  Every
 * request is written to the request log.
 */
static char *
ccp_token_fetch(const CcpServer *srv, int *ttl_s, char **error, int *status,
				CcpOrigin origin)
{
	CcpHttpRequest req;
	CcpHttpResult res;
	CcpOutcome	out;
	char	   *token = NULL;

	memset(&req, 0, sizeof(req));
	srv->vendor->build_token_request(srv, &req);
	ccp_http_perform(&srv->http, &req, &res);

	memset(&out, 0, sizeof(out));
	out.http_status = res.status;
	*status = res.status;
	out.success_count = -1;
	if (res.transport_error)
	{
		*error = psprintf("token request failed: %s", res.error);
		out.ok = false;
	}
	else if (srv->vendor->parse_token(srv, &res, &token, ttl_s, error))
		out.ok = true;
	else
		out.ok = false;
	out.message = out.ok ? pstrdup("token issued") : *error;
	/* a vendor may echo the credentials it refuses */
	ccp_outcome_clean(srv, &out, token);
	if (!out.ok)
		*error = out.message;
	ccp_reqlog_write(srv, "token", NULL, 0, &out, res.elapsed_ms, origin, 0,
					 NULL, 0, NULL, 0);
	return out.ok ? token : NULL;
}

/*
 * ccp_token_refresh fetches a token for a slot this process has marked as
 * refreshing, and stores the outcome whatever happens, so that the mark
 * never outlives the attempt.  Returns the token or NULL with *fail set.
 */
static char *
ccp_token_refresh(CcpTokenSlot *slot, const CcpServer *srv, uint32 cred_hash,
				  char **fail, int *status, CcpOrigin origin)
{
	char	   *fresh = NULL;
	int			ttl_s = 0;

	PG_TRY();
	{
		fresh = ccp_token_fetch(srv, &ttl_s, fail, status, origin);
	}
	PG_CATCH();
	{
		ccp_token_finish_refresh(slot, srv, cred_hash, NULL, 0, NULL, 0);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ccp_token_finish_refresh(slot, srv, cred_hash, fresh, ttl_s, *fail,
							 *status);
	return fresh;
}

/*
 * ccp_token_get returns in *token a valid token for srv, or false with
 * *error and *http_status (of the failed token request, 0 if it got no
 * answer) set when none could be had.  stale, if not NULL, is a token the
 * vendor just refused: it will not be returned again.  Vendors without
 * tokens get *token = NULL and true.  Waiting for another process's refresh
 * can be interrupted by a cancel.  The caller must not hold any LWLock.
 */
bool
ccp_token_get(const CcpServer *srv, const char *stale, char **token,
			  char **error, int *http_status, CcpOrigin origin)
{
	uint32		cred_hash;
	CcpTokenSlot *slot;
	char	   *fail = NULL;

	*token = NULL;
	*error = NULL;
	*http_status = 0;
	if (srv->vendor->build_token_request == NULL)
		return true;

	if (!ccp_token_exit_registered)
	{
		before_shmem_exit(ccp_token_release_mine, (Datum) 0);
		ccp_token_exit_registered = true;
	}

	cred_hash = ccp_token_cred_hash(srv);
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		LWLockAcquire(ccp_shared->token_lock, LW_EXCLUSIVE);
		if (!ccp_shared->tokens_read)
		{
			ccp_token_load();
			ccp_shared->tokens_read = true;
		}
		slot = ccp_token_slot(srv);
		if (slot->cred_hash != cred_hash && !slot->refreshing)
		{
			slot->token[0] = '\0';
			slot->fail_until = 0;
		}
		if (slot->token[0] != '\0' && slot->cred_hash == cred_hash &&
			now < slot->expires_at &&
			(stale == NULL || strcmp(stale, slot->token) != 0))
		{
			*token = pstrdup(slot->token);
			LWLockRelease(ccp_shared->token_lock);
			break;
		}
		if (slot->refreshing && slot->refresher_pid != MyProcPid &&
			kill(slot->refresher_pid, 0) == 0)
		{
			LWLockRelease(ccp_shared->token_lock);
			(void) ConditionVariableTimedSleep(&ccp_shared->token_cv, 100,
											   PG_WAIT_EXTENSION);
			/* a refused stale token is replaced by whatever arrived */
			continue;
		}
		if (now < slot->fail_until && slot->cred_hash == cred_hash)
		{
			fail = pstrdup(slot->fail_message);
			*http_status = slot->fail_status;
			LWLockRelease(ccp_shared->token_lock);
			break;
		}
		slot->refreshing = true;
		slot->refresher_pid = MyProcPid;
		LWLockRelease(ccp_shared->token_lock);

		*token = ccp_token_refresh(slot, srv, cred_hash, &fail, http_status,
								   origin);
		break;
	}
	ConditionVariableCancelSleep();

	if (*token == NULL)
	{
		*error = fail ? fail : pstrdup("no token available");
		return false;
	}
	return true;
}

/*
 * ccp_token_expiry returns, read under the token cache lock, until when
 * the token cached for vendor account account (ccp_server_account) is
 * used before it is refreshed; 0 when none is cached.  The token itself
 * is never copied.
 */
TimestampTz
ccp_token_expiry(uint64 account)
{
	TimestampTz latest = 0;

	LWLockAcquire(ccp_shared->token_lock, LW_SHARED);
	for (int i = 0; i < ccp_shared->nslots; i++)
	{
		CcpTokenSlot *s = &ccp_shared->tokens[i];

		if (s->account == account &&
			s->token[0] != '\0' && s->expires_at > latest)
			latest = s->expires_at;
	}
	LWLockRelease(ccp_shared->token_lock);
	return latest;
}
