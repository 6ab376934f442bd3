/*-------------------------------------------------------------------------
 *
 * console.c
 *	  The shared-memory part of the ccpurge_servers view: what the rate
 *	  limiter and the token cache know of one server right now.
 *
 * ccpurge.server_state(server oid) reads the server's options for its
 * vendor and effective rate_limit, the limiter's slot (ratelimit.c) and
 * the token cache (auth.c), each under its own lock, taken shared.  It
 * shows no secret and no token, only when the cached token is refreshed.
 * The view adds what the queue and the request log say (see
 * src/sql/50_console.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(ccpurge_server_state);

/* ccp_console_option returns option name of a server's options, or NULL. */
static const char *
ccp_console_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

/*
 * ccpurge.server_state(server oid) returns (vendor, rate_limit, inflight,
 * window_used, next_slot_at, token_expires_at) of a ccpurge server of the
 * current database: rate_limit as set or the vendor's default (NULL:
 * none), window_used NULL without a rate limit, next_slot_at NULL while
 * the window has room, token_expires_at NULL without a cached token.
 * NULL for an oid that is no such server.
 */
Datum
ccpurge_server_state(PG_FUNCTION_ARGS)
{
	Oid			serverid = PG_GETARG_OID(0);
	ForeignServer *server;
	const CcpVendor *vendor;
	const char *vendor_name;
	const char *rate_limit;
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {0};
	int			inflight;
	int			window_used;
	TimestampTz next_slot_at;
	TimestampTz expiry;

	ccp_require_preload();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	server = GetForeignServerExtended(serverid, FSV_MISSING_OK);
	if (server == NULL ||
		server->fdwid != GetForeignDataWrapperByName("ccpurge", false)->fdwid)
		PG_RETURN_NULL();

	vendor_name = ccp_console_option(server->options, "vendor");
	vendor = vendor_name ? ccp_vendor_by_name(vendor_name) : NULL;
	rate_limit = ccp_console_option(server->options, "rate_limit");
	if (rate_limit == NULL && vendor != NULL)
		rate_limit = vendor->default_rate_limit;
	(void) ccp_rate_state(serverid, &inflight, &window_used, &next_slot_at);
	expiry = ccp_token_expiry(serverid);

	nulls[0] = (vendor_name == NULL);
	if (vendor_name != NULL)
		values[0] = CStringGetTextDatum(vendor_name);
	nulls[1] = (rate_limit == NULL);
	if (rate_limit != NULL)
		values[1] = CStringGetTextDatum(rate_limit);
	values[2] = Int32GetDatum(inflight);
	nulls[3] = (rate_limit == NULL || window_used < 0);
	values[3] = Int32GetDatum(Max(window_used, 0));
	nulls[4] = (next_slot_at == 0);
	values[4] = TimestampTzGetDatum(next_slot_at);
	nulls[5] = (expiry == 0);
	values[5] = TimestampTzGetDatum(expiry);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc),
													  values, nulls)));
}
