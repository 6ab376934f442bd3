/*-------------------------------------------------------------------------
 *
 * ccpurge.c
 *	  Module load: GUC definitions, shared memory hooks and worker
 *	  registration; and the switch to the owner of ccpurge's tables.
 *
 * ccpurge must be loaded through shared_preload_libraries, because its token
 * cache, rate limiter and background worker live in shared memory.  When it
 * is loaded any other way the GUCs that can change at run time are still
 * defined (so that SET and SHOW work), but every SQL function refuses to
 * run; see ccp_require_preload().
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* GUC variables */
bool		ccp_allow_insecure_http = false;
char	   *ccp_database_name = NULL;
int			ccp_max_attempts = 10;
int			ccp_retry_base_ms = 1000;
int			ccp_retry_max_ms = 300000;
int			ccp_batch_linger_ms = 200;
int			ccp_retention_s = 7 * 24 * 3600;
int			ccp_max_servers = 64;
int			ccp_rate_notice_ms = 3000;

static bool ccp_preloaded = false;

/*
 * _PG_init defines the GUCs and, when preloaded, reserves shared memory and
 * registers the background worker.
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("ccpurge.allow_insecure_http",
							 "Allows plain http to hosts that are not loopback addresses.",
							 "Secrets and personal data would cross the network unencrypted.",
							 &ccp_allow_insecure_http,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.max_attempts",
							"Attempts a queued item gets before it is marked failed.",
							NULL,
							&ccp_max_attempts,
							10, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.retry_backoff",
							"First retry delay of a transiently failed batch; it doubles per attempt.",
							NULL,
							&ccp_retry_base_ms,
							1000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.retry_backoff_max",
							"Longest retry delay of a transiently failed batch.",
							NULL,
							&ccp_retry_max_ms,
							300000, 10, 86400000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.batch_linger",
							"How long the worker waits for more items to fill a vendor batch.",
							NULL,
							&ccp_batch_linger_ms,
							200, 0, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.retention",
							"How long finished queue items are kept before they are removed.",
							NULL,
							&ccp_retention_s,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.rate_limit_notice",
							"Rate-limit wait after which a synchronous call raises a notice.",
							NULL,
							&ccp_rate_notice_ms,
							3000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* settings fixed at server start can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("ccpurge.database_name",
								   "Database the ccpurge background worker connects to.",
								   NULL,
								   &ccp_database_name,
								   "postgres",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);

		DefineCustomIntVariable("ccpurge.max_servers",
								"Number of servers the shared token cache and rate limiter can track.",
								NULL,
								&ccp_max_servers,
								64, 4, 10000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("ccpurge");

	if (!process_shared_preload_libraries_in_progress)
		return;

	ccp_preloaded = true;
	ccp_shmem_request();
	ccp_worker_register();
	ccp_queue_register_callbacks();
	ccp_reqlog_register_callbacks();
}

/*
 * ccp_require_preload raises an error unless the library was loaded through
 * shared_preload_libraries.  Every SQL entry point calls it first.
 */
void
ccp_require_preload(void)
{
	if (!ccp_preloaded || !ccp_shmem_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ccpurge must be loaded via \"shared_preload_libraries\""),
				 errdetail("The shared token cache, rate limiter and queue worker live in shared memory."),
				 errhint("Add ccpurge to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

/*
 * ccp_require_writable raises an error, before anything is sent, when the
 * requests of the calling function could not be recorded: on a hot standby
 * and in a read-only transaction.  Otherwise a vendor would erase first and
 * the call would fail after, on the request log's INSERT, leaving no
 * record (and on a standby an Ozonetel token request would kill the
 * primary's token).
 */
void
ccp_require_writable(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot erase or queue erasures during recovery"),
				 errdetail("Every request ccpurge sends must be recorded, and a hot standby cannot write."),
				 errhint("Run it on the primary.")));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot erase or queue erasures in a read-only transaction"),
				 errdetail("Every request ccpurge sends must be recorded, and a read-only transaction cannot write.")));
}

/*
 * ccp_owner_begin makes the current user owner, as a restricted operation,
 * with search_path pinned to pg_catalog so that no function or operator
 * the caller created can be picked up by SQL that runs with the owner's
 * rights.  Pair it with ccp_owner_end() on success; on an error,
 * ccp_owner_restore_user() in PG_FINALLY gives the identity back and the
 * (sub)transaction abort undoes the setting.
 */
void
ccp_owner_begin(Oid owner, CcpOwnerState *state)
{
	GetUserIdAndSecContext(&state->save_userid, &state->save_sec);
	SetUserIdAndSecContext(owner, state->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	state->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/* ccp_owner_restore_user gives back the identity saved by ccp_owner_begin. */
void
ccp_owner_restore_user(const CcpOwnerState *state)
{
	SetUserIdAndSecContext(state->save_userid, state->save_sec);
}

/* ccp_owner_end undoes ccp_owner_begin after a successful statement. */
void
ccp_owner_end(const CcpOwnerState *state)
{
	AtEOXact_GUC(false, state->guc_level);
	ccp_owner_restore_user(state);
}
