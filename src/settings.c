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
char	   *ccp_database_name = NULL;
int			ccp_max_attempts = 0;
int			ccp_retry_for_s = 3 * 24 * 3600;
int			ccp_retry_base_ms = 1000;
int			ccp_retry_max_ms = 300000;
int			ccp_batch_linger_ms = 200;
int			ccp_retention_s = 7 * 24 * 3600;
int			ccp_max_servers = 64;
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
}
