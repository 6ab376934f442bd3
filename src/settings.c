/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  ccpurge's settings (GUCs, prefix "ccpurge."): the variables every
 *	  file reads, and their definitions.
 *
 * Settings that can change at run time are defined whenever the library
 * is loaded, so that SET and SHOW work even without preloading; those
 * fixed at server start only while shared_preload_libraries is processed.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

/* GUC variables */
bool		ccp_allow_insecure_http = false;
bool		ccp_serve_database = true;
char	   *ccp_database_name = NULL;
int			ccp_max_attempts = 0;
int			ccp_retry_for_s = 3 * 24 * 3600;
int			ccp_retry_base_ms = 1000;
int			ccp_retry_max_ms = 300000;
int			ccp_batch_linger_ms = 200;
int			ccp_retention_s = 7 * 24 * 3600;
int			ccp_max_servers = 64;
int			ccp_max_databases = 4;
int			ccp_worker_inflight = 32;
int			ccp_rate_notice_ms = 3000;
int			ccp_token_fail_hold_ms = 2000;
bool		ccp_dry_run = false;

/*
 * ccp_define_settings defines every setting and reserves the prefix.
 * Called once, from _PG_init.
 */
void
ccp_define_settings(void)
{
	DefineCustomBoolVariable("ccpurge.allow_insecure_http",
							 "Allows plain http to hosts that are not loopback addresses.",
							 "Secrets and personal data would cross the network unencrypted.",
							 &ccp_allow_insecure_http,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("ccpurge.serve_database",
							 "Whether a ccpurge worker serves the database; set it per database.",
							 "With off (ALTER DATABASE ... SET), no worker runs there and queued items wait.",
							 &ccp_serve_database,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.max_attempts",
							"Most attempts a queued item gets before it is marked failed; 0 means no cap.",
							"Transient failures are retried for ccpurge.retry_for in any case.",
							&ccp_max_attempts,
							0, 0, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.retry_for",
							"How long transient failures of a queued item are retried before it is marked failed.",
							"Counted from when the item was queued.",
							&ccp_retry_for_s,
							3 * 24 * 3600, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
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

	DefineCustomIntVariable("ccpurge.worker_inflight",
							"Most requests all ccpurge workers keep in flight together.",
							"Each database whose worker has work gets an equal share, at most 16.",
							&ccp_worker_inflight,
							32, 2, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("ccpurge.token_failure_hold",
							"How long the failure of a token request answers later calls before the vendor is asked again.",
							"Spares the vendor a token request per waiting session while a secret is wrong.",
							&ccp_token_fail_hold_ms,
							2000, 0, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("ccpurge.dry_run",
							 "Makes the synchronous functions validate and return their rows without sending anything.",
							 "Rows then have ok NULL and the message \"dry run\"; nothing is logged.",
							 &ccp_dry_run,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/* settings fixed at server start can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("ccpurge.database_name",
								   "No longer used: a worker serves every database where ccpurge is installed.",
								   NULL,
								   &ccp_database_name,
								   "",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);
		if (ccp_database_name != NULL && ccp_database_name[0] != '\0')
			ereport(WARNING,
					(errmsg("\"ccpurge.database_name\" is ignored"),
					 errdetail("A ccpurge worker serves every database where the extension is installed."),
					 errhint("Remove the setting from the server's configuration.")));

		DefineCustomIntVariable("ccpurge.max_databases",
								"Most databases ccpurge workers serve at once.",
								"Each needs a background worker slot: max_worker_processes must leave room for them and the launcher.",
								&ccp_max_databases,
								4, 1, 1000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
		if (ccp_max_databases + 1 > max_worker_processes)
			ereport(WARNING,
					(errmsg("\"ccpurge.max_databases\" (%d) leaves no room for the ccpurge launcher in \"max_worker_processes\" (%d)",
							ccp_max_databases, max_worker_processes),
					 errhint("Set \"max_worker_processes\" to at least %d.",
							 ccp_max_databases + 1)));

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
}
