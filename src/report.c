/*-------------------------------------------------------------------------
 *
 * report.c
 *	  Reports of queued requests that failed for good: one server log line
 *	  and one NOTIFY ccpurge_failed per failure, in ccpurge's own words.
 *
 * Any role can LISTEN, so a report says only what ccpurge knows of its
 * own: request ids, counts, server, operation, a code for why (CcpFailure)
 * and the HTTP status, never an item or the vendor's text; the vendor's
 * code and message stay in the rows, where ccpurge_status shows them to
 * whoever may see them.  The worker reports; the notification goes out
 * when the transaction that failed the rows commits.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

/*
 * Most request ids a ccpurge_failed notification names: with the other
 * members (a server name and an operation of at most NAMEDATALEN bytes,
 * escaped) it stays far below NOTIFY's limit of about 8000 bytes.
 */
#define CCP_NOTIFY_MAX_IDS			100

/* The code of each CcpFailure, in the notification and the log. */
static const char *const ccp_failure_codes[] = {
	[CCP_FAILED_REFUSED] = "refused",
	[CCP_FAILED_RETRIES_EXHAUSTED] = "retries_exhausted",
	[CCP_FAILED_RETRY_EXPIRED] = "retry_expired",
	[CCP_FAILED_ITEMS_REFUSED] = "items_refused",
	[CCP_FAILED_SERVER_UNUSABLE] = "server_unusable",
	[CCP_FAILED_UNKNOWN_OPERATION] = "unknown_operation",
};

static CcpStmt ccp_report_notify_stmt = {
	"SELECT pg_catalog.pg_notify('ccpurge_failed', $1)", 1, {TEXTOID}
};

/*
 * ccp_report_reason says in a sentence why rows failed, for the log line
 * of ccp_report_failure.
 */
static const char *
ccp_report_reason(CcpFailure why)
{
	switch (why)
	{
		case CCP_FAILED_REFUSED:
			return "the vendor refused the request for good.";
		case CCP_FAILED_RETRIES_EXHAUSTED:
			return psprintf("the request failed transiently as often as ccpurge.max_attempts (%d) allows.",
							ccp_max_attempts);
		case CCP_FAILED_RETRY_EXPIRED:
			return "the request failed transiently for longer than ccpurge.retry_for allows.";
		case CCP_FAILED_ITEMS_REFUSED:
			return "the receiver answered per item and refused these items.";
		case CCP_FAILED_SERVER_UNUSABLE:
			return "the server or the requesting role's user mapping for it cannot be used.";
		case CCP_FAILED_UNKNOWN_OPERATION:
			return "this version of ccpurge does not know the operation.";
	}
	return "unknown reason.";		/* keep compiler quiet */
}

/*
 * ccp_report_failure reports rows that have just failed for good: one
 * server log line and one NOTIFY ccpurge_failed, whose payload is a JSON
 * object with the same facts.  failed holds the nfailed requests whose
 * rows failed, with their items, ordered by request id; nothing is
 * reported when there is none.  The report names the requests, counts,
 * server, operation, the code of why and the HTTP status (0: none).
 * batch_id, unique per failure, keeps the payload unique, as NOTIFY folds
 * equal payloads of one transaction into one.  The payload names at most
 * CCP_NOTIFY_MAX_IDS request ids and counts them all.  The caller is
 * connected to SPI in the transaction that failed the rows, with
 * search_path pinned to pg_catalog (the worker).
 */
void
ccp_report_failure(int64 batch_id, const char *server, const char *operation,
				   CcpFailure why, int http_status,
				   const CcpFailedRequest *failed, int nfailed)
{
	const char *code = ccp_failure_codes[why];
	const char *reason = ccp_report_reason(why);
	StringInfoData ids;
	StringInfoData payload;
	int64		items = 0;
	Datum		values[1];

	if (nfailed == 0)
		return;
	/* an unknown operation may be any text: keep the payload in bounds */
	operation = ccp_clip(pstrdup(operation), NAMEDATALEN - 1);

	initStringInfo(&ids);
	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"batch_id\": " INT64_FORMAT ", \"request_ids\": [",
					 batch_id);
	for (int i = 0; i < nfailed; i++)
	{
		int64		id = failed[i].request_id;

		items += failed[i].items;
		appendStringInfo(&ids, "%s" INT64_FORMAT, i > 0 ? "," : "", id);
		if (i < CCP_NOTIFY_MAX_IDS)
			appendStringInfo(&payload, "%s" INT64_FORMAT, i > 0 ? "," : "", id);
	}
	appendStringInfo(&payload, "], \"request_count\": %d, \"server\": ",
					 nfailed);
	escape_json(&payload, server);
	appendStringInfoString(&payload, ", \"operation\": ");
	escape_json(&payload, operation);
	appendStringInfo(&payload, ", \"items\": " INT64_FORMAT ", \"code\": ", items);
	escape_json(&payload, code);
	if (http_status > 0)
		appendStringInfo(&payload, ", \"http_status\": %d}", http_status);
	else
		appendStringInfoString(&payload, ", \"http_status\": null}");

	ereport(LOG,
			(nfailed == 1 ?
			 errmsg_plural("ccpurge request %s failed: %lld item on server \"%s\", operation \"%s\"",
						   "ccpurge request %s failed: %lld items on server \"%s\", operation \"%s\"",
						   (unsigned long) items,
						   ids.data, (long long) items, server, operation) :
			 errmsg_plural("ccpurge requests %s failed: %lld item on server \"%s\", operation \"%s\"",
						   "ccpurge requests %s failed: %lld items on server \"%s\", operation \"%s\"",
						   (unsigned long) items,
						   ids.data, (long long) items, server, operation),
			 http_status > 0 ?
			 errdetail("Code %s (HTTP status %d): %s", code, http_status, reason) :
			 errdetail("Code %s: %s", code, reason),
			 errhint("The message of these rows in ccpurge_status gives the full reason.")));

	values[0] = CStringGetTextDatum(payload.data);
	(void) ccp_stmt_exec(&ccp_report_notify_stmt, values, NULL, SPI_OK_SELECT);
}
