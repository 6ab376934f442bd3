/*-------------------------------------------------------------------------
 *
 * explain.c
 *	  ccpurge_explain: the vendor requests a synchronous call would send,
 *	  built but not sent.
 *
 * ccpurge_explain(operation, items, params, server) validates exactly as
 * ccpurge_enqueue and ccpurge_call do (NULL params are '{}'), cuts the items into the requests a
 * synchronous call sends (ccp_exchange_chunks) and builds each with the
 * vendor's own builder through the exchange (ccp_exchange_build).  It takes
 * no rate-limit ticket and no token, and sends and logs nothing.
 *
 * Nothing secret may show.  Each request is built twice: once with the
 * mapping's credentials and a made-up token, once with every credential
 * changed character by character and another made-up token.  In each,
 * ccp_redact replaces the secrets and the token (in every form it knows);
 * whatever still differs between the two builds, word by word, depends on
 * a secret (a signature, an HMAC) and is shown as CCP_REDACTED too.  So no
 * vendor file needs to say which of its headers are signatures.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(ccpurge_explain);

/* One of the two builds of a request: its server copy and token. */
typedef struct CcpExplainSide
{
	const CcpServer *srv;
	const char *token;			/* NULL for vendors without tokens */
	CcpHttpRequest req;
} CcpExplainSide;

/* What ccp_explain_request needs. */
typedef struct CcpExplainCall
{
	ReturnSetInfo *rsinfo;
	const CcpOpDef *def;
	CcpExplainSide side[2];
	const char *batch_key;		/* the same in both builds */
} CcpExplainCall;

/*
 * ccp_explain_shift returns a palloc'd copy of s with every letter and
 * digit replaced by the next one of its kind (z by a, 9 by 0): a
 * different credential of the same length and character classes, which
 * a vendor's builder accepts wherever it accepts s.
 */
static char *
ccp_explain_shift(const char *s)
{
	char	   *r = pstrdup(s);

	for (char *p = r; *p != '\0'; p++)
	{
		if (*p >= 'a' && *p <= 'z')
			*p = (*p == 'z') ? 'a' : *p + 1;
		else if (*p >= 'A' && *p <= 'Z')
			*p = (*p == 'Z') ? 'A' : *p + 1;
		else if (*p >= '0' && *p <= '9')
			*p = (*p == '9') ? '0' : *p + 1;
	}
	return r;
}

/* ccp_explain_word tells whether c belongs to a word (see ccp_explain_mask). */
static inline bool
ccp_explain_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || (c & 0x80) != 0;
}

/*
 * ccp_explain_mask returns, palloc'd, a (one build's redacted text) with
 * every word that differs from the same word of b (the other build's)
 * replaced by CCP_REDACTED.  Words are runs of letters, digits, '_' and
 * non-ASCII bytes; everything between them must be equal, or the whole
 * text is CCP_REDACTED.
 */
static char *
ccp_explain_mask(const char *a, const char *b)
{
	StringInfoData buf;

	initStringInfo(&buf);
	while (*a != '\0' || *b != '\0')
	{
		if (ccp_explain_word(*a) && ccp_explain_word(*b))
		{
			int			la = 0;
			int			lb = 0;

			while (ccp_explain_word(a[la]))
				la++;
			while (ccp_explain_word(b[lb]))
				lb++;
			if (la == lb && memcmp(a, b, la) == 0)
				appendBinaryStringInfo(&buf, a, la);
			else
				appendStringInfoString(&buf, CCP_REDACTED);
			a += la;
			b += lb;
		}
		else if (*a == *b && !ccp_explain_word(*a))
		{
			appendStringInfoChar(&buf, *a);
			a++;
			b++;
		}
		else
			return pstrdup(CCP_REDACTED);
	}
	return buf.data;
}

/*
 * ccp_explain_text shows one part of a request (the URL, a header, the
 * body): side 0's text and side 1's, each redacted of its own secrets and
 * token, then masked where they still differ.
 */
static char *
ccp_explain_text(const CcpExplainCall *call, const char *a, const char *b)
{
	return ccp_explain_mask(ccp_redact(call->side[0].srv, a, call->side[0].token),
							ccp_redact(call->side[1].srv, b, call->side[1].token));
}

/*
 * ccp_explain_request builds one request twice (a CcpChunkFn, see
 * ccp_exchange_chunks) and adds its row.
 */
static void
ccp_explain_request(const void *params, char **items, int n, int request_no,
					bool last, int64 intent_id, void *arg)
{
	CcpExplainCall *call = arg;
	CcpHttpRequest *a = &call->side[0].req;
	CcpHttpRequest *b = &call->side[1].req;
	Datum		values[6];
	bool		nulls[6] = {0};
	Datum	   *headers;
	int			nheaders;
	ListCell   *la;
	ListCell   *lb;
	int			h = 0;

	for (int s = 0; s < 2; s++)
	{
		CcpExchange x;

		ccp_exchange_init(&x, call->side[s].srv, call->def, params, items, n,
						  call->batch_key, CCP_ORIGIN_SYNC, 0, false);
		ccp_exchange_build(&x, call->side[s].token);
		call->side[s].req = x.req;
	}

	values[0] = Int32GetDatum(request_no);
	values[1] = CStringGetTextDatum(a->method);
	values[2] = CStringGetTextDatum(ccp_explain_text(call, a->url, b->url));
	nheaders = list_length(a->headers);
	headers = palloc(sizeof(Datum) * Max(nheaders, 1));
	forboth(la, a->headers, lb, b->headers)
		headers[h++] = CStringGetTextDatum(ccp_explain_text(call, lfirst(la),
															lfirst(lb)));
	if (list_length(b->headers) != nheaders)
		elog(ERROR, "two builds of one request have different headers");
	values[3] = PointerGetDatum(construct_array(headers, nheaders, TEXTOID,
												-1, false, TYPALIGN_INT));
	nulls[4] = (a->body == NULL);
	if (a->body != NULL)
		values[4] = CStringGetTextDatum(ccp_explain_text(call, a->body,
														 b->body ? b->body : ""));
	values[5] = Int32GetDatum(n);
	tuplestore_putvalues(call->rsinfo->setResult, call->rsinfo->setDesc,
						 values, nulls);
}

/*
 * ccpurge_explain(operation text, items text[], params jsonb, server text)
 * returns (request_no, method, url, headers, body, item_count): the
 * requests a synchronous call of the operation would send, in order, with
 * secrets, tokens and signatures shown as CCP_REDACTED.  Validation errors
 * are those of the call.
 */
Datum
ccpurge_explain(PG_FUNCTION_ARGS)
{
	const CcpVendor *vendor;
	const CcpOpDef *def;
	void	   *params;
	char	  **items;
	int			n;
	CcpServer  *srv;
	CcpServer  *other;
	CcpExplainCall call;

	ccp_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be NULL")));
	def = ccp_op_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &vendor);
	params = ccp_params_read(def, PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2));
	items = ccp_items_for_params(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
								 def, params, "items", &n);
	srv = ccp_server_resolve(PG_ARGISNULL(3) ? NULL :
							 text_to_cstring(PG_GETARG_TEXT_PP(3)),
							 vendor, GetUserId());

	other = palloc(sizeof(CcpServer));
	*other = *srv;
	for (int i = 0; i < vendor->ncreds; i++)
		other->cred[i] = ccp_explain_shift(srv->cred[i]);
	memset(&call, 0, sizeof(call));
	call.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	call.def = def;
	call.side[0].srv = srv;
	call.side[1].srv = other;
	if (vendor->build_token_request != NULL)
	{
		call.side[0].token = ccp_random_key();
		call.side[1].token = ccp_random_key();
	}
	call.batch_key = ccp_random_key();

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	/* no intents: nothing is sent */
	ccp_exchange_chunks(srv, def, params, items, n, false, ccp_explain_request,
						&call);
	return (Datum) 0;
}
