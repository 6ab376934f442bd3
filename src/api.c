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

#include <cjson/cJSON.h>

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

/* ccp_api_campaigns validates Ozonetel campaign names into params. */
static void
ccp_api_campaigns(char **names, int n, CcpParams *params)
{
	for (int i = 0; i < n; i++)
		ccp_ozonetel_validate_campaign(names[i]);
	n = ccp_items_distinct(names, n);
	params->campaign_names = NIL;
	for (int i = 0; i < n; i++)
		params->campaign_names = lappend(params->campaign_names, names[i]);
}

/* ccp_api_check_vdn validates iSales vdnId and campaignId arguments. */
static void
ccp_api_check_vdn(bool vdn_null, int vdn_id, bool campaign_null, int campaign_id)
{
	if (vdn_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("vdn_id must not be NULL")));
	if (vdn_id < 1 || vdn_id > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("vdn_id %d is out of range", vdn_id),
				 errdetail("A VDN id is an integer from 1 to 9999.")));
	if (campaign_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("campaign_id must not be NULL")));
	if (campaign_id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("campaign_id %d is out of range", campaign_id),
				 errdetail("Campaign ids are not negative.")));
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
 * and returns the rows.  For Ozonetel the campaign list is chunked too and
 * every phone chunk goes out once per campaign chunk.  Each chunk runs in a
 * memory context that is reset afterwards.
 */
static void
ccp_api_run_items(FunctionCallInfo fcinfo, const CcpServer *srv,
				  const CcpOpDef *def, CcpParams *params,
				  char **items, int nitems)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext chunk_cxt;
	MemoryContext old;
	List	   *campaigns = params->campaign_names;
	int			ncampaigns = Max(list_length(campaigns), 1);
	int			batch = Min(srv->batch_size, def->max_batch);
	int			request_no = 0;

	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "ccpurge chunk",
									  ALLOCSET_DEFAULT_SIZES);
	for (int c = 0; c < ncampaigns; c += CCP_OZONETEL_MAX_CAMPAIGNS)
	{
		if (campaigns != NIL)
			params->campaign_names =
				list_copy_head(campaigns, Min(c + CCP_OZONETEL_MAX_CAMPAIGNS, ncampaigns));
		if (campaigns != NIL && c > 0)
			params->campaign_names = list_delete_first_n(params->campaign_names, c);

		for (int start = 0; start < nitems; start += batch)
		{
			int			n = Min(batch, nitems - start);
			CcpOutcome	out;

			CHECK_FOR_INTERRUPTS();
			old = MemoryContextSwitchTo(chunk_cxt);
			ccp_exchange(srv, def, params, items + start, n, CCP_ORIGIN_SYNC, 0, &out);
			ccp_api_emit_items(rsinfo, items + start, n, ++request_no, &out);
			MemoryContextSwitchTo(old);
			MemoryContextReset(chunk_cxt);
		}
	}
	params->campaign_names = campaigns;
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
 * the server: delete_customers and delete_called_routes.
 */
static Datum
ccp_api_simple(FunctionCallInfo fcinfo, CcpOperation op, const char *argname)
{
	MemoryContext call_cxt;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_op_def(op, &vendor);
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
	return ccp_api_simple(fcinfo, CCP_OP_DELETE_CUSTOMERS, "customer_numbers");
}

/* ccpurge_delete_called_routes(dnids text[], server text) */
Datum
ccpurge_delete_called_routes(PG_FUNCTION_ARGS)
{
	return ccp_api_simple(fcinfo, CCP_OP_DELETE_CALLED_ROUTES, "dnids");
}

/* ccpurge_erase(items text[], server text): the webhook vendor's erase */
Datum
ccpurge_erase(PG_FUNCTION_ARGS)
{
	return ccp_api_simple(fcinfo, CCP_OP_ERASE, "items");
}

/* ccpurge_delete_caller_numbers(vdn_id, campaign_id, access_codes, server) */
Datum
ccpurge_delete_caller_numbers(PG_FUNCTION_ARGS)
{
	MemoryContext call_cxt;
	const CcpVendor *vendor;
	const CcpOpDef *def = ccp_op_def(CCP_OP_DELETE_CALLER_NUMBERS, &vendor);
	CcpParams	params;
	CcpServer  *srv;
	char	  **items;
	int			n;

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	ccp_api_check_vdn(PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
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
	const CcpOpDef *def = ccp_op_def(CCP_OP_DELETE_CALLDATA, &vendor);
	CcpParams	params;
	CcpServer  *srv;
	CcpOutcome	out;
	Datum		values[6];
	bool		nulls[6] = {false};

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = ccp_api_call_begin();
	ccp_api_check_vdn(PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
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
	const CcpOpDef *def = ccp_op_def(CCP_OP_DELETE_BULK_DATA, &vendor);
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
	ccp_api_campaigns(names, ncampaigns, &params);
	srv = ccp_server_resolve(ccp_api_server_arg(fcinfo, 2), vendor, GetUserId());
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_api_run_items(fcinfo, srv, def, &params, items, n);
	ccp_api_call_end(call_cxt);
	return (Datum) 0;
}

/*
 * ccp_api_param_int reads an integer member of a params object; returns
 * false when absent.  Anything but an integral number is an error.
 */
static bool
ccp_api_param_int(cJSON *root, const char *key, int *value)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(root, key);

	if (item == NULL)
		return false;
	if (!cJSON_IsNumber(item) || !(item->valuedouble >= INT_MIN && item->valuedouble <= INT_MAX) ||
		item->valuedouble != (double) (int) item->valuedouble)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parameter \"%s\" must be an integer", key)));
	*value = (int) item->valuedouble;
	return true;
}

/*
 * ccp_params_from_jsonb validates the params of ccpurge_enqueue for the
 * operation def and fills out.  The accepted keys are: none for the CEC
 * operations; vdn_id and campaign_id for delete_caller_numbers, plus
 * archiveHistory for delete_calldata; campaign_names for delete_bulk_data.
 * Raises an ERROR for missing, unknown or malformed keys.
 */
void
ccp_params_from_jsonb(const CcpOpDef *def, Jsonb *params, CcpParams *out)
{
	char	   *text = JsonbToCString(NULL, &params->root, VARSIZE(params));
	cJSON	   *root = cJSON_Parse(text);
	cJSON	   *member;
	const char *allowed;

	ccp_params_init(out);
	if (root == NULL || !cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object")));
	}

	switch (def->op)
	{
		case CCP_OP_DELETE_CALLER_NUMBERS:
			allowed = "vdn_id, campaign_id";
			break;
		case CCP_OP_DELETE_CALLDATA:
			allowed = "vdn_id, campaign_id, archiveHistory";
			break;
		case CCP_OP_DELETE_BULK_DATA:
			allowed = "campaign_names";
			break;
		default:
			allowed = "";
			break;
	}

	PG_TRY();
	{
		cJSON_ArrayForEach(member, root)
		{
			bool		known = false;
			char	   *copy = pstrdup(allowed);
			char	   *tok;
			char	   *save;

			for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
				if (strcmp(tok, member->string) == 0)
					known = true;
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown parameter \"%s\" for operation \"%s\"",
								member->string, def->name),
						 allowed[0] ? errhint("Valid parameters are: %s.", allowed)
						 : errhint("This operation takes no parameters.")));
		}

		if (def->op == CCP_OP_DELETE_CALLER_NUMBERS || def->op == CCP_OP_DELETE_CALLDATA)
		{
			int			vdn = 0;
			int			campaign = 0;
			bool		has_vdn = ccp_api_param_int(root, "vdn_id", &vdn);
			bool		has_campaign = ccp_api_param_int(root, "campaign_id", &campaign);

			ccp_api_check_vdn(!has_vdn, vdn, !has_campaign, campaign);
			out->vdn_id = vdn;
			out->campaign_id = campaign;
			if (def->op == CCP_OP_DELETE_CALLDATA &&
				ccp_api_param_int(root, "archiveHistory", &out->archive_history) &&
				out->archive_history != 0 && out->archive_history != 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("archiveHistory must be 0 or 1")));
		}
		if (def->op == CCP_OP_DELETE_BULK_DATA)
		{
			cJSON	   *arr = cJSON_GetObjectItemCaseSensitive(root, "campaign_names");
			char	  **names;
			int			n = 0;

			if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("delete_bulk_data needs a non-empty \"campaign_names\" array")));
			names = palloc(sizeof(char *) * cJSON_GetArraySize(arr));
			cJSON_ArrayForEach(member, arr)
			{
				if (!cJSON_IsString(member))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("campaign_names must contain only strings")));
				names[n++] = pstrdup(member->valuestring);
			}
			ccp_api_campaigns(names, n, out);
		}
	}
	PG_FINALLY();
	{
		cJSON_Delete(root);
	}
	PG_END_TRY();
}
