/*-------------------------------------------------------------------------
 *
 * console.c
 *	  The shared-memory part of the ccpurge_servers view: what the rate
 *	  limiter and the token cache know of one server right now.
 *
 * ccpurge.server_state(server oid) reads the server's options for its
 * vendor and effective rate_limit, and, for the vendor account each of its
 * user mappings uses (ccp_server_account: vendor, URL and the account's
 * credential), the limiter's slot (ratelimit.c) and the token cache
 * (auth.c), each under its own lock, taken shared.  Servers of one
 * account show the same state, which they share.  It
 * shows no secret and no token, only when the cached token is refreshed.
 * The view adds what the queue and the request log say (see
 * src/sql/50_console.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

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
 * ccp_console_accounts returns the vendor accounts (ccp_server_account)
 * that the user mappings of server use, palloc'd, and sets *n: one per
 * mapping, or one without an account credential for vendors that have
 * none (the URL names the account).
 */
static uint64 *
ccp_console_accounts(ForeignServer *server, const CcpVendor *vendor, int *n)
{
	CcpServer	srv;
	const char *url = ccp_console_option(server->options, "url");
	char	   *base;
	size_t		len;
	uint64	   *accounts;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	*n = 0;
	if (url == NULL)
		return NULL;
	/* as option.c keeps it: without trailing slashes after the host */
	base = pstrdup(url);
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/' &&
		   (strstr(base, "://") == NULL || base + len - 1 >= strstr(base, "://") + 3))
		base[--len] = '\0';
	memset(&srv, 0, sizeof(srv));
	srv.vendor = vendor;
	srv.url = base;
	if (vendor->account_cred < 0)
	{
		accounts = palloc(sizeof(uint64));
		accounts[(*n)++] = ccp_server_account(&srv);
		return accounts;
	}

	rel = table_open(UserMappingRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_user_mapping_umserver, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(server->serverid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	accounts = palloc(sizeof(uint64) * 8);
	while ((tup = systable_getnext(scan)) != NULL && *n < 8)
	{
		bool		isnull;
		Datum		opts = heap_getattr(tup, Anum_pg_user_mapping_umoptions,
										RelationGetDescr(rel), &isnull);
		const char *cred;

		if (isnull)
			continue;
		cred = ccp_console_option(untransformRelOptions(opts),
								  vendor->cred_names[vendor->account_cred]);
		if (cred == NULL)
			continue;
		srv.cred[vendor->account_cred] = unconstify(char *, cred);
		accounts[(*n)++] = ccp_server_account(&srv);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return accounts;
}

/*
 * ccpurge.server_state(server oid) returns (vendor, rate_limit, inflight,
 * window_used, next_slot_at, token_expires_at, account) of a ccpurge
 * server of the current database: rate_limit as set or the vendor's
 * default (NULL: none), window_used NULL without a rate limit,
 * next_slot_at NULL while the window has room, token_expires_at NULL
 * without a cached token, account the vendor accounts its user mappings
 * use, each as "vendor:" and 8 hex digits of the account's hash, the same
 * for every server that shares the account's state.  NULL for an oid that
 * is no such server.
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
	Datum		values[7];
	bool		nulls[7] = {0};
	StringInfoData account;
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
	inflight = 0;
	window_used = -1;
	next_slot_at = 0;
	expiry = 0;
	initStringInfo(&account);
	if (vendor != NULL)
	{
		int			n;
		uint64	   *accounts = ccp_console_accounts(server, vendor, &n);

		/* the busiest of the accounts its mappings use */
		for (int i = 0; i < n; i++)
		{
			int			a_inflight;
			int			a_used;
			TimestampTz a_next;

			if (ccp_rate_state(accounts[i], &a_inflight, &a_used, &a_next))
			{
				inflight = Max(inflight, a_inflight);
				window_used = Max(window_used, a_used);
				next_slot_at = Max(next_slot_at, a_next);
			}
			expiry = Max(expiry, ccp_token_expiry(accounts[i]));
			appendStringInfo(&account, "%s%s:%08x", i > 0 ? " " : "",
							 vendor->name, (uint32) (accounts[i] >> 32));
		}
	}

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
	nulls[6] = (account.len == 0);
	values[6] = CStringGetTextDatum(account.data);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc),
													  values, nulls)));
}
