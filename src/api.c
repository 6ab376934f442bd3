/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The synchronous SQL functions (design section 3) and the validation
 *	  of operation parameters they share with the queue.
 *
 * Every function validates all of its input before the first request:
 * NULL or empty lists and elements, values the vendor would refuse, and the
 * server (items through input.c).  Items are then made distinct, split into chunks of the server's
 * batch size and sent one chunk after another; each chunk's outcome becomes
 * one row per item.  A failed chunk does not stop the others.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"


#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(ccpurge_delete_customers);
PG_FUNCTION_INFO_V1(ccpurge_delete_called_routes);
PG_FUNCTION_INFO_V1(ccpurge_delete_caller_numbers);
PG_FUNCTION_INFO_V1(ccpurge_delete_calldata);
PG_FUNCTION_INFO_V1(ccpurge_delete_bulk_data);
PG_FUNCTION_INFO_V1(ccpurge_erase);

/*
 * ccp_api_op returns the operation a SQL function serves, and its vendor;
 * the operation must exist.
 */
static const CcpOpDef *
ccp_api_op(const char *name, const CcpVendor **vendor)
{
	const CcpOpDef *def = ccp_op_by_name(name, vendor);

	if (def == NULL)
		elog(ERROR, "unknown ccpurge operation \"%s\"", name);
	return def;
}

/* ccp_api_server_arg returns the optional trailing server argument. */
static char *
ccp_api_server_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * ccp_api_emit_items adds one row per item of a chunk to the result:
 * (item, request_no, ok, http_status, code, message).  Where the vendor
 * answered per item, ok and message are the item's own.
 */
static void
ccp_api_emit_items(ReturnSetInfo *rsinfo, char **items, int nitems,
				   int request_no, const CcpOutcome *out)
{
	Datum		values[6];
	bool		nulls[6] = {false};

	values[1] = Int32GetDatum(request_no);
	values[2] = BoolGetDatum(out->ok);
	values[3] = Int32GetDatum(out->http_status);
	nulls[3] = (out->http_status == 0);
	values[4] = out->code ? CStringGetTextDatum(out->code) : (Datum) 0;
	nulls[4] = (out->code == NULL);
	values[5] = CStringGetTextDatum(out->message);
	for (int i = 0; i < nitems; i++)
	{
		values[0] = CStringGetTextDatum(items[i]);
		if (out->item_ok != NULL)
		{
			values[2] = BoolGetDatum(out->item_ok[i]);
			values[5] = CStringGetTextDatum(out->item_message[i] ?
											out->item_message[i] : out->message);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * ccp_api_run_items sends the items in chunks of the server's batch size
 * and returns the rows.  When the operation needs several requests per
 * chunk (Ozonetel's campaign list), every chunk goes out once per request's
 * params.  Each chunk runs in a memory context that is reset afterwards.
 */
static void
ccp_api_run_items(FunctionCallInfo fcinfo, const CcpServer *srv,
				  const CcpOpDef *def, CcpParams *params,
				  char **items, int nitems)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext chunk_cxt;
	MemoryContext old;
	List	   *parts = ccp_params_split(def, params);
	ListCell   *lc;
	int			batch = Min(srv->batch_size, def->max_batch);
	int			request_no = 0;

	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "ccpurge chunk",
									  ALLOCSET_DEFAULT_SIZES);
	foreach(lc, parts)
	{
		const CcpParams *part = lfirst(lc);

		for (int start = 0; start < nitems; start += batch)
		{
			int			n = Min(batch, nitems - start);
			CcpOutcome	out;

			CHECK_FOR_INTERRUPTS();
			old = MemoryContextSwitchTo(chunk_cxt);
			ccp_exchange(srv, def, part, items + start, n, CCP_ORIGIN_SYNC, 0, &out);
			ccp_api_emit_items(rsinfo, items + start, n, ++request_no, &out);
			MemoryContextSwitchTo(old);
			MemoryContextReset(chunk_cxt);
		}
	}
	MemoryContextDelete(chunk_cxt);
	ccp_reqlog_flush();
}

/*
 * ccp_api_call_begin makes and enters the memory context of one call of a
 * synchronous function, so that what the call allocates (its arguments,
 * items, server, requests) is freed when it returns: these functions are
 * called once per row.  Rows go to the tuplestore, which lives in the
 * query's memory.
 */
static MemoryContext
ccp_api_call_begin(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "ccpurge call",
											  ALLOCSET_DEFAULT_SIZES);

	MemoryContextSwitchTo(cxt);
	return cxt;
}

/*
 * ccp_api_call_end leaves and frees the context ccp_api_call_begin made;
 * on an error the context goes with its parent.
 */
static void
ccp_api_call_end(MemoryContext cxt)
{
	MemoryContextSwitchTo(cxt->parent);
	MemoryContextDelete(cxt);
}

/*
 * ccp_api_simple serves the functions whose arguments are an item list and
 * the server: delete_customers, delete_called_routes and erase.
 */
static Datum
ccp_api_simple(FunctionCallInfo fcinfo, const char *opname,
			   const char *argname)
{
	MemoryContext call_cxt;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_api_op(opname, &vendor);
	CcpParams	params;
	CcpServer  *srv;
	char	  **items;
	int			n;

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	items = ccp_items_from_array(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0),
								 def, argname, &n);
	srv = ccp_server_resolve(ccp_api_server_arg(fcinfo, 1), vendor, GetUserId());
	ccp_params_init(&params);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_api_run_items(fcinfo, srv, def, &params, items, n);
	ccp_api_call_end(call_cxt);
	return (Datum) 0;
}

/* ccpurge_delete_customers(customer_numbers text[], server text) */
Datum
ccpurge_delete_customers(PG_FUNCTION_ARGS)
{
	return ccp_api_simple(fcinfo, "delete_customers", "customer_numbers");
}

/* ccpurge_delete_called_routes(dnids text[], server text) */
Datum
ccpurge_delete_called_routes(PG_FUNCTION_ARGS)
{
	return ccp_api_simple(fcinfo, "delete_called_routes", "dnids");
}

/* ccpurge_erase(items text[], server text): the webhook vendor's erase */
Datum
ccpurge_erase(PG_FUNCTION_ARGS)
{
	return ccp_api_simple(fcinfo, "erase", "items");
}

/* ccpurge_delete_caller_numbers(vdn_id, campaign_id, access_codes, server) */
Datum
ccpurge_delete_caller_numbers(PG_FUNCTION_ARGS)
{
	MemoryContext call_cxt;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_api_op("delete_caller_numbers", &vendor);
	CcpParams	params;
	CcpServer  *srv;
	char	  **items;
	int			n;

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	ccp_isales_check_campaign_args(PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
					  PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	items = ccp_items_from_array(PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
								 def, "access_codes", &n);
	srv = ccp_server_resolve(ccp_api_server_arg(fcinfo, 3), vendor, GetUserId());
	ccp_params_init(&params);
	params.vdn_id = PG_GETARG_INT32(0);
	params.campaign_id = PG_GETARG_INT32(1);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_api_run_items(fcinfo, srv, def, &params, items, n);
	ccp_api_call_end(call_cxt);
	return (Datum) 0;
}

/*
 * ccpurge_delete_calldata(vdn_id, campaign_id, filter, server): one request
 * with the filter as its body; returns one row with successCount.
 */
Datum
ccpurge_delete_calldata(PG_FUNCTION_ARGS)
{
	MemoryContext call_cxt;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_api_op("delete_calldata", &vendor);
	CcpParams	params;
	CcpServer  *srv;
	CcpOutcome	out;
	Datum		values[6];
	bool		nulls[6] = {false};

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	ccp_isales_check_campaign_args(PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
					  PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("filter must not be NULL"),
				 errhint("Give at least one of sessionId, called, customField or recycleTime.")));
	ccp_params_init(&params);
	params.vdn_id = PG_GETARG_INT32(0);
	params.campaign_id = PG_GETARG_INT32(1);
	params.filter = PG_GETARG_JSONB_P(2);
	ccp_isales_validate_filter(params.filter);
	srv = ccp_server_resolve(ccp_api_server_arg(fcinfo, 3), vendor, GetUserId());

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_exchange(srv, def, &params, NULL, 0, CCP_ORIGIN_SYNC, 0, &out);
	values[0] = Int32GetDatum(1);
	values[1] = BoolGetDatum(out.ok);
	values[2] = Int32GetDatum(out.http_status);
	nulls[2] = (out.http_status == 0);
	values[3] = out.code ? CStringGetTextDatum(out.code) : (Datum) 0;
	nulls[3] = (out.code == NULL);
	values[4] = CStringGetTextDatum(out.message);
	values[5] = Int32GetDatum(out.success_count);
	nulls[5] = (out.success_count < 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	ccp_reqlog_flush();
	ccp_api_call_end(call_cxt);
	return (Datum) 0;
}

/*
 * ccpurge_delete_bulk_data(phone_numbers, campaign_names, server): Ozonetel
 * DeleteBulkData, 100 phone numbers by 100 campaigns per request.
 */
Datum
ccpurge_delete_bulk_data(PG_FUNCTION_ARGS)
{
	MemoryContext call_cxt;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_api_op("delete_bulk_data", &vendor);
	CcpParams	params;
	CcpServer  *srv;
	char	  **items;
	char	  **names;
	int			n;
	int			ncampaigns;

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	items = ccp_items_from_array(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0),
								 def, "phone_numbers", &n);
	names = ccp_text_array(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
							   "campaign_names", &ncampaigns);
	ccp_params_init(&params);
	ccp_ozonetel_set_campaigns(names, ncampaigns, &params);
	srv = ccp_server_resolve(ccp_api_server_arg(fcinfo, 2), vendor, GetUserId());
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_api_run_items(fcinfo, srv, def, &params, items, n);
	ccp_api_call_end(call_cxt);
	return (Datum) 0;
}
