/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The synchronous SQL functions (design section 3): one generic entry
 *	  point that serves every operation of every vendor.
 *
 * Two C functions do all the work:
 *   ccpurge_call(operation, items, params jsonb, server) takes the
 *	   operation by name, as ccpurge_enqueue does;
 *   ccpurge_call_named serves each operation's own SQL function
 *	   (ccpurge_delete_customers, ...), which the install script declares
 *	   with this C symbol.  The operation is the function's name without
 *	   "ccpurge_"; the argument named like the operation's items_arg holds
 *	   the items, "server" the server, and every other argument is a param
 *	   of the same name.
 * Result rows are built for the columns the SQL function declares, matched
 * by name among (item, request_no, ok, http_status, code, message,
 * success_count): the row shape is the function's, and this file knows no
 * operation or vendor by name.
 *
 * Every call validates all of its input before the first request: the
 * params through the operation, NULL or empty lists and elements and
 * values the vendor would refuse (items through input.c), and the server.
 * Items are then made distinct, split into chunks of the server's batch
 * size and sent one chunk after another; each chunk's outcome becomes one
 * row per item (one row per request for a request that the params alone
 * select).  A failed chunk does not stop the others.  ccpurge_progress
 * shows the call while it runs (progress.c).  Under ccpurge.dry_run
 * nothing is sent or logged: every row says "dry run", with ok NULL.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(ccpurge_call);
PG_FUNCTION_INFO_V1(ccpurge_call_named);

/* The result columns a synchronous function may declare. */
typedef enum CcpApiColumn
{
	CCP_COL_ITEM,
	CCP_COL_REQUEST_NO,
	CCP_COL_OK,
	CCP_COL_HTTP_STATUS,
	CCP_COL_CODE,
	CCP_COL_MESSAGE,
	CCP_COL_SUCCESS_COUNT,
	CCP_NCOLS
} CcpApiColumn;

static const char *const ccp_api_column_names[CCP_NCOLS] = {
	"item", "request_no", "ok", "http_status", "code", "message",
	"success_count"
};

/*
 * What a SQL function's declaration says, worked out at its first call and
 * kept in fn_extra: which operation, which argument is what, and which
 * result column each output attribute is.
 */
typedef struct CcpApiShape
{
	const CcpOpDef *def;		/* NULL for ccpurge_call: per call */
	const CcpVendor *vendor;
	int			items_argno;	/* -1: none */
	int			server_argno;	/* -1: none */
	int			nparams;
	int			param_argno[FUNC_MAX_ARGS];
	char	   *param_name[FUNC_MAX_ARGS];
	Oid			param_type[FUNC_MAX_ARGS];
	int			ncols;
	CcpApiColumn col[FUNC_MAX_ARGS];
	char	   *proname;		/* the SQL function's name, for progress */
} CcpApiShape;

/*
 * ccp_api_columns maps the output attributes of the function's result type
 * to result columns.  A column of another name is a declaration error.
 */
static void
ccp_api_columns(FunctionCallInfo fcinfo, CcpApiShape *shape)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts > FUNC_MAX_ARGS)
		elog(ERROR, "too many result columns");
	shape->ncols = desc->natts;
	for (int i = 0; i < desc->natts; i++)
	{
		const char *name = NameStr(TupleDescAttr(desc, i)->attname);
		int			c;

		for (c = 0; c < CCP_NCOLS; c++)
		{
			if (strcmp(name, ccp_api_column_names[c]) == 0)
				break;
		}
		if (c == CCP_NCOLS)
			elog(ERROR, "unexpected result column \"%s\"", name);
		shape->col[i] = (CcpApiColumn) c;
	}
}

/*
 * ccp_api_named_shape works out the shape of the operation's own SQL
 * function being called, from its catalog entry.  Allocates in mcxt.
 */
static CcpApiShape *
ccp_api_named_shape(FunctionCallInfo fcinfo, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	CcpApiShape *shape = palloc0(sizeof(CcpApiShape));
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	tup;
	const char *proname;
	Oid		   *argtypes;
	char	  **argnames;
	char	   *argmodes;
	int			nargs;
	int			inarg = 0;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	proname = pstrdup(NameStr(((Form_pg_proc) GETSTRUCT(tup))->proname));
	shape->proname = (char *) proname;
	nargs = get_func_arg_info(tup, &argtypes, &argnames, &argmodes);
	ReleaseSysCache(tup);

	if (strncmp(proname, "ccpurge_", 8) != 0 ||
		(shape->def = ccp_op_by_name(proname + 8, &shape->vendor)) == NULL)
		elog(ERROR, "function \"%s\" serves no ccpurge operation", proname);

	shape->items_argno = -1;
	shape->server_argno = -1;
	for (int i = 0; i < nargs; i++)
	{
		if (argmodes != NULL && argmodes[i] != PROARGMODE_IN)
			continue;
		if (argnames == NULL || argnames[i] == NULL || argnames[i][0] == '\0')
			elog(ERROR, "every argument of function \"%s\" needs a name", proname);
		if (shape->def->items_arg != NULL &&
			strcmp(argnames[i], shape->def->items_arg) == 0)
			shape->items_argno = inarg;
		else if (strcmp(argnames[i], "server") == 0)
			shape->server_argno = inarg;
		else
		{
			shape->param_argno[shape->nparams] = inarg;
			shape->param_name[shape->nparams] = pstrdup(argnames[i]);
			shape->param_type[shape->nparams] = argtypes[i];
			shape->nparams++;
		}
		inarg++;
	}
	ccp_api_columns(fcinfo, shape);
	MemoryContextSwitchTo(old);
	return shape;
}

/*
 * ccp_api_push_arg adds argument argno of the call, of type type, to a
 * jsonb under construction as one value: NULL as null, integers as
 * numbers, text as a string, text[] as an array of strings (NULL elements
 * as null) and jsonb as it is.  The params reader judges the values.
 */
static void
ccp_api_push_arg(JsonbParseState **st, FunctionCallInfo fcinfo, int argno,
				 Oid type)
{
	JsonbValue	v;

	if (PG_ARGISNULL(argno))
	{
		v.type = jbvNull;
		pushJsonbValue(st, WJB_VALUE, &v);
		return;
	}
	switch (type)
	{
		case INT4OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric,
																PG_GETARG_DATUM(argno)));
			pushJsonbValue(st, WJB_VALUE, &v);
			break;
		case TEXTOID:
			v.type = jbvString;
			v.val.string.val = text_to_cstring(PG_GETARG_TEXT_PP(argno));
			v.val.string.len = strlen(v.val.string.val);
			pushJsonbValue(st, WJB_VALUE, &v);
			break;
		case JSONBOID:
			{
				Jsonb	   *jb = PG_GETARG_JSONB_P(argno);

				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
				pushJsonbValue(st, WJB_VALUE, &v);
			}
			break;
		case TEXTARRAYOID:
			{
				Datum	   *elems;
				bool	   *nulls;
				int			n;

				deconstruct_array(PG_GETARG_ARRAYTYPE_P(argno), TEXTOID, -1,
								  false, TYPALIGN_INT, &elems, &nulls, &n);
				pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
				for (int i = 0; i < n; i++)
				{
					if (nulls[i])
						v.type = jbvNull;
					else
					{
						v.type = jbvString;
						v.val.string.val = TextDatumGetCString(elems[i]);
						v.val.string.len = strlen(v.val.string.val);
					}
					pushJsonbValue(st, WJB_ELEM, &v);
				}
				pushJsonbValue(st, WJB_END_ARRAY, NULL);
			}
			break;
		default:
			elog(ERROR, "unsupported argument type %u", type);
	}
}

/*
 * ccp_api_params_from_args builds the params object of a named call from
 * its param arguments; NULL when the function has none.
 */
static Jsonb *
ccp_api_params_from_args(FunctionCallInfo fcinfo, const CcpApiShape *shape)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;

	if (shape->nparams == 0)
		return NULL;
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < shape->nparams; i++)
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = shape->param_name[i];
		k.val.string.len = strlen(shape->param_name[i]);
		pushJsonbValue(&st, WJB_KEY, &k);
		ccp_api_push_arg(&st, fcinfo, shape->param_argno[i],
						 shape->param_type[i]);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * ccp_api_emit adds one row for item (NULL for a request without items)
 * with the outcome of its request, in the columns the function declares.
 * Where the vendor answered per item, ok and message are item i's own;
 * for a dry run, ok is NULL.
 */
static void
ccp_api_emit(ReturnSetInfo *rsinfo, const CcpApiShape *shape,
			 const char *item, int i, int request_no, const CcpOutcome *out,
			 bool dry_run)
{
	Datum		values[FUNC_MAX_ARGS];
	bool		nulls[FUNC_MAX_ARGS];

	for (int a = 0; a < shape->ncols; a++)
	{
		nulls[a] = false;
		switch (shape->col[a])
		{
			case CCP_COL_ITEM:
				nulls[a] = (item == NULL);
				if (item != NULL)
					values[a] = CStringGetTextDatum(item);
				break;
			case CCP_COL_REQUEST_NO:
				values[a] = Int32GetDatum(request_no);
				break;
			case CCP_COL_OK:
				nulls[a] = dry_run;
				values[a] = BoolGetDatum(out->item_ok != NULL && item != NULL ?
										 out->item_ok[i] : out->ok);
				break;
			case CCP_COL_HTTP_STATUS:
				nulls[a] = (out->http_status == 0);
				values[a] = Int32GetDatum(out->http_status);
				break;
			case CCP_COL_CODE:
				nulls[a] = (out->code == NULL);
				if (out->code != NULL)
					values[a] = CStringGetTextDatum(out->code);
				break;
			case CCP_COL_MESSAGE:
				values[a] = CStringGetTextDatum(out->item_message != NULL &&
												item != NULL &&
												out->item_message[i] != NULL ?
												out->item_message[i] :
												out->message);
				break;
			case CCP_COL_SUCCESS_COUNT:
				nulls[a] = (out->success_count < 0);
				values[a] = Int32GetDatum(out->success_count);
				break;
			case CCP_NCOLS:
				break;
		}
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* What ccp_api_request needs besides the request itself. */
typedef struct CcpApiCall
{
	ReturnSetInfo *rsinfo;
	const CcpApiShape *shape;
	const CcpServer *srv;
	const CcpOpDef *def;
} CcpApiCall;

/*
 * ccp_api_request sends one request of a call (a CcpChunkFn, see
 * ccp_exchange_chunks), or under ccpurge.dry_run only pretends to, and
 * adds its rows.  A dry run's rows have ok NULL and the message "dry run".
 */
static void
ccp_api_request(const void *params, char **items, int n, int request_no,
				bool last, int64 intent_id, void *arg)
{
	CcpApiCall *call = arg;
	CcpOutcome	out;

	if (ccp_dry_run)
	{
		memset(&out, 0, sizeof(out));
		out.message = "dry run";
		out.success_count = -1;
	}
	else
		ccp_exchange(call->srv, call->def, params, items, n, CCP_ORIGIN_SYNC,
					 0, intent_id, &out);
	if (n == 0)
		ccp_api_emit(call->rsinfo, call->shape, NULL, 0, request_no, &out,
					 ccp_dry_run);
	for (int i = 0; i < n; i++)
		ccp_api_emit(call->rsinfo, call->shape, items[i], i, request_no, &out,
					 ccp_dry_run);
	ccp_progress_advance(last ? n : 0);
}

/*
 * ccp_api_send sends the items in chunks of the server's batch size (or
 * one request without items when the params alone select what to erase)
 * and returns the rows.  When the operation needs several requests per
 * chunk (Ozonetel's campaign list), every chunk goes out once per
 * request's params.  While it runs, ccpurge_progress shows the call.
 */
static void
ccp_api_send(FunctionCallInfo fcinfo, const CcpApiShape *shape,
			 const CcpServer *srv, const CcpOpDef *def, const void *params,
			 char **items, int nitems)
{
	CcpApiCall	call;

	call.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	call.shape = shape;
	call.srv = srv;
	call.def = def;
	ccp_progress_begin(shape->proname, srv->servername, nitems,
					   ccp_exchange_requests(srv, def, params, nitems));
	PG_TRY();
	{
		ccp_exchange_chunks(srv, def, params, items, nitems, !ccp_dry_run,
							ccp_api_request, &call);
	}
	PG_FINALLY();
	{
		ccp_progress_end();
	}
	PG_END_TRY();
	ccp_reqlog_flush_at_statement_end();
}

/*
 * ccp_api_run is one synchronous call of operation def of vendor: items
 * (a text[], NULL if not given; items_arg names it in messages), params
 * (NULL: none) and the server name (NULL: the vendor's only server).  It
 * validates everything, then sends and returns the rows.  The call runs
 * in a memory context of its own, freed when it returns, since these
 * functions are called once per row; the rows go to the tuplestore, which
 * lives in the query's memory.
 */
static Datum
ccp_api_run(FunctionCallInfo fcinfo, const CcpApiShape *shape,
			const CcpOpDef *def, const CcpVendor *vendor, ArrayType *items_arr,
			Jsonb *params, const char *servername)
{
	MemoryContext call_cxt;
	MemoryContext caller_cxt = CurrentMemoryContext;
	const char *argname = def->items_arg ? def->items_arg : "items";
	void	   *p;
	char	  **items = NULL;
	int			n = 0;
	CcpServer  *srv;

	ccp_require_preload();
	ccp_require_writable();
	call_cxt = AllocSetContextCreate(caller_cxt, "ccpurge call",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(call_cxt);

	p = ccp_params_read(def, params);
	items = ccp_items_for_params(items_arr, def, p, argname, &n);
	srv = ccp_server_resolve(servername, vendor, GetUserId());

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ccp_api_send(fcinfo, shape, srv, def, p, items, n);

	MemoryContextSwitchTo(caller_cxt);
	MemoryContextDelete(call_cxt);
	return (Datum) 0;
}

/*
 * ccpurge_call(operation text, items text[], params jsonb, server text):
 * any operation by name, with rows of every result column.
 */
Datum
ccpurge_call(PG_FUNCTION_ARGS)
{
	CcpApiShape *shape = fcinfo->flinfo->fn_extra;
	const CcpVendor *vendor;
	const CcpOpDef *def;
	char	   *opname;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be NULL")));
	opname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	def = ccp_op_by_name(opname, &vendor);
	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown operation \"%s\"", opname)));
	if (shape == NULL)
	{
		shape = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
									   sizeof(CcpApiShape));
		ccp_api_columns(fcinfo, shape);
		shape->proname = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt,
											 get_func_name(fcinfo->flinfo->fn_oid));
		fcinfo->flinfo->fn_extra = shape;
	}
	return ccp_api_run(fcinfo, shape, def, vendor,
					   PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
					   PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
					   PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)));
}

/*
 * ccpurge_call_named serves an operation's own SQL function; see the file
 * header for how its arguments are read.
 */
Datum
ccpurge_call_named(PG_FUNCTION_ARGS)
{
	CcpApiShape *shape = fcinfo->flinfo->fn_extra;

	if (shape == NULL)
	{
		shape = ccp_api_named_shape(fcinfo, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = shape;
	}
	return ccp_api_run(fcinfo, shape, shape->def, shape->vendor,
					   shape->items_argno < 0 || PG_ARGISNULL(shape->items_argno) ?
					   NULL : PG_GETARG_ARRAYTYPE_P(shape->items_argno),
					   ccp_api_params_from_args(fcinfo, shape),
					   shape->server_argno < 0 || PG_ARGISNULL(shape->server_argno) ?
					   NULL : text_to_cstring(PG_GETARG_TEXT_PP(shape->server_argno)));
}

/*
 * The C symbols that the install and update scripts of 1.0 and 1.1 bind
 * their synchronous functions to.  An installation whose library is newer
 * than its SQL (between a package update and ALTER EXTENSION ccpurge
 * UPDATE) still calls them; they are the named call.  1.2 binds every
 * operation's function to ccpurge_call_named itself.
 */
#define CCP_API_LEGACY_SYMBOL(fn) \
	PG_FUNCTION_INFO_V1(fn); \
	Datum fn(PG_FUNCTION_ARGS) { return ccpurge_call_named(fcinfo); }

CCP_API_LEGACY_SYMBOL(ccpurge_delete_customers)
CCP_API_LEGACY_SYMBOL(ccpurge_delete_called_routes)
CCP_API_LEGACY_SYMBOL(ccpurge_delete_caller_numbers)
CCP_API_LEGACY_SYMBOL(ccpurge_delete_calldata)
CCP_API_LEGACY_SYMBOL(ccpurge_delete_bulk_data)
CCP_API_LEGACY_SYMBOL(ccpurge_erase)
