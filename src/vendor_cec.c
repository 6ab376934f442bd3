/*-------------------------------------------------------------------------
 *
 * vendor_cec.c
 *	  Huawei Cognitive Engagement Center (vendor "cec"): the C1 token
 *	  request, customer data deletion and called-route deletion.
 *
 * C1 auth: POST tokenByAkSk with the app key and secret gives an AccessToken
 * valid for X-Token-Expire seconds; business calls send it as a Bearer token
 * together with X-APP-Key.  There is no refresh call, so auth.c simply asks
 * again before expiry.  Bodies go out in UTF-8 whatever the database
 * encoding is.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <cjson/cJSON.h>

#define CEC_TOKEN_PATH		"/apigovernance/api/oauth/tokenByAkSk"
#define CEC_CUSTOMERS_PATH	"/apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata"
#define CEC_ROUTES_PATH		"/apiaccess/rest/cc-management/v1/calledRoute/deleteCalledRoute"

/* cec_build_token_request builds the tokenByAkSk request. */
static void
cec_build_token_request(const CcpServer *srv, CcpHttpRequest *req)
{
	cJSON	   *root = cJSON_CreateObject();

	cJSON_AddStringToObject(root, "app_key", srv->cred[0]);
	cJSON_AddStringToObject(root, "app_secret", srv->cred[1]);
	memset(req, 0, sizeof(*req));
	req->method = "POST";
	req->url = ccp_join_url(srv, CEC_TOKEN_PATH);
	ccp_add_header(req, "Content-Type", "application/json");
	ccp_add_header(req, "X-Token-Expire", psprintf("%d", srv->token_ttl));
	ccp_set_json_body(req, root);
}

/*
 * cec_parse_token reads the tokenByAkSk answer.  On success *token and
 * *ttl_s are set; otherwise *error says why, without any secret.
 */
static bool
cec_parse_token(const CcpServer *srv, const CcpHttpResult *res,
				char **token, int *ttl_s, char **error)
{
	cJSON	   *root = ccp_json_parse_body(res);
	char	   *tok;
	char	   *expires;

	tok = ccp_json_get_string(root, "AccessToken");
	expires = ccp_json_get_string(root, "Expires");
	if (res->status < 200 || res->status > 299 || tok == NULL || tok[0] == '\0')
	{
		char	   *why = ccp_json_get_string(root, "error_msg");

		if (why == NULL)
			why = ccp_json_get_string(root, "retMsg");
		*error = psprintf("token request refused (HTTP %d)%s%s",
						  res->status, why ? ": " : "", why ? why : "");
		cJSON_Delete(root);
		return false;
	}
	cJSON_Delete(root);
	if (strlen(tok) >= CCP_TOKEN_MAX)
	{
		*error = pstrdup("token answer is longer than ccpurge can cache");
		return false;
	}
	*token = tok;
	*ttl_s = expires ? atoi(expires) : srv->token_ttl;
	if (*ttl_s <= 0 || *ttl_s > srv->token_ttl)
		*ttl_s = srv->token_ttl;
	return true;
}

/* cec_add_auth adds the C1 business-call headers. */
static void
cec_add_auth(const CcpServer *srv, CcpHttpRequest *req, const char *token)
{
	ccp_add_header(req, "Content-Type", "application/json");
	ccp_add_header(req, "Authorization", psprintf("Bearer %s", token));
	ccp_add_header(req, "X-APP-Key", srv->cred[0]);
}

/* cec_build_customers builds one cleancustpersonaldata request. */
static void
cec_build_customers(const CcpServer *srv, const CcpChunk *chunk,
					CcpHttpRequest *req)
{
	char	  **items = chunk->items;
	int			nitems = chunk->nitems;
	const char *token = chunk->token;
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *arr = cJSON_AddArrayToObject(root, "customNos");

	for (int i = 0; i < nitems; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(items[i]));
	memset(req, 0, sizeof(*req));
	req->method = "POST";
	req->url = ccp_join_url(srv, CEC_CUSTOMERS_PATH);
	cec_add_auth(srv, req, token);
	ccp_set_json_body(req, root);
}

/* cec_build_routes builds one deleteCalledRoute request: "dnids": "1,2". */
static void
cec_build_routes(const CcpServer *srv, const CcpChunk *chunk,
				 CcpHttpRequest *req)
{
	char	  **items = chunk->items;
	int			nitems = chunk->nitems;
	const char *token = chunk->token;
	StringInfoData ids;
	cJSON	   *root;

	initStringInfo(&ids);
	for (int i = 0; i < nitems; i++)
	{
		if (i > 0)
			appendStringInfoChar(&ids, ',');
		appendStringInfoString(&ids, items[i]);
	}
	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "dnids", ids.data);
	memset(req, 0, sizeof(*req));
	req->method = "POST";
	req->url = ccp_join_url(srv, CEC_ROUTES_PATH);
	cec_add_auth(srv, req, token);
	ccp_set_json_body(req, root);
}

/*
 * cec_classify_status handles what the HTTP status alone decides; it
 * returns true when out is complete.  The meanings are the seed documents':
 * 401 unauthorized (the token, so refresh once), 403 authentication failed,
 * 400/404 request errors, 500 business failure.
 */
static bool
cec_classify_status(const CcpHttpResult *res, const char *vendor_msg,
					CcpOutcome *out)
{
	const char *what;

	if (res->status >= 200 && res->status <= 299)
		return false;
	switch (res->status)
	{
		case 400:
			what = "incorrect request";
			break;
		case 401:
			what = "unauthorized";
			break;
		case 403:
			what = "authentication failed";
			break;
		case 404:
			what = "requested content not found";
			break;
		case 500:
			what = "business failure";
			break;
		default:
			what = "unexpected HTTP status";
			break;
	}
	out->ok = false;
	out->message = vendor_msg ? psprintf("%s (HTTP %d): %s", what, res->status, vendor_msg)
		: psprintf("%s (HTTP %d)", what, res->status);
	if (res->status == 401)
		out->retry = CCP_RETRY_TOKEN;
	else if (res->status >= 500 || res->status == 429)
		out->retry = CCP_RETRY_TRANSIENT;
	else
		out->retry = CCP_FINAL;
	return true;
}

/*
 * cec_parse_answer reads a CEC business answer: the code under code_key,
 * the text under msg_key and, when content is not NULL, data.content.
 * Returns true when out is complete (an HTTP failure or an undocumented
 * answer); otherwise out->ok and out->code are set, *msg holds the text to
 * show, and the caller words the message.
 */
static bool
cec_parse_answer(const CcpHttpResult *res, const char *code_key,
				 const char *msg_key, char **msg, char **content,
				 CcpOutcome *out)
{
	cJSON	   *root = ccp_json_parse_body(res);
	bool		parsed = (root != NULL);

	*msg = ccp_json_get_string(root, msg_key);
	out->code = ccp_json_get_string(root, code_key);
	if (content != NULL)
		*content = parsed ?
			ccp_json_get_string(cJSON_GetObjectItemCaseSensitive(root, "data"),
								"content") : NULL;
	cJSON_Delete(root);

	if (cec_classify_status(res, *msg, out))
		return true;
	out->retry = CCP_FINAL;
	if (!parsed || out->code == NULL)
	{
		out->ok = false;
		out->message = pstrdup("answer is not the documented JSON");
		return true;
	}
	out->ok = (strcmp(out->code, "0") == 0);
	if (*msg == NULL)
		*msg = pstrdup(out->ok ? "deleted" : "vendor reported a failure");
	return false;
}

/* cec_parse_customers reads {"retCode": "0", "retMsg": "..."}. */
static void
cec_parse_customers(const CcpServer *srv, const CcpChunk *chunk,
					const CcpHttpResult *res, CcpOutcome *out)
{
	char	   *msg;

	if (!cec_parse_answer(res, "retCode", "retMsg", &msg, NULL, out))
		out->message = msg;
}

/*
 * cec_parse_routes reads {"returnCode", "description", "data": {"content"}}.
 * On partial success the content reads "Success:...,Failed:..." and goes
 * into the message, since the vendor does not answer per id.
 */
static void
cec_parse_routes(const CcpServer *srv, const CcpChunk *chunk,
				 const CcpHttpResult *res, CcpOutcome *out)
{
	char	   *desc;
	char	   *content;

	if (cec_parse_answer(res, "returnCode", "description", &desc, &content, out))
		return;
	if (content != NULL && strncmp(content, "Success:", 8) == 0)
		out->message = psprintf("%s; %s", desc, content);
	else
		out->message = desc;
}

/*
 * cec_validate_dnid accepts a called-route id: digits only, since ids go
 * out joined by commas and the vendor's ids are numeric.
 */
static void
cec_validate_dnid(const CcpOpDef *def, const char *item)
{
	ccp_validate_nonempty_item(def, item);
	for (const char *p = item; *p; p++)
	{
		if (*p < '0' || *p > '9')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid called-route id \"%s\"", item),
					 errdetail("Called-route ids (dnids) consist of digits only.")));
	}
}

static const CcpOpDef cec_ops[] = {
	{
		.name = "delete_customers",
		.items_arg = "customer_numbers",
		.max_batch = 1000,
		/* not documented; 256 covers phone numbers, ids and e-mail addresses */
		.max_item_len = 256,
		.validate_item = ccp_validate_nonempty_item,
		.build = cec_build_customers,
		.parse = cec_parse_customers,
	},
	{
		.name = "delete_called_routes",
		.items_arg = "dnids",
		.max_batch = 1000,
		.max_item_len = 32,
		.validate_item = cec_validate_dnid,
		.build = cec_build_routes,
		.parse = cec_parse_routes,
	},
};

const CcpVendor ccp_vendor_cec = {
	.name = "cec",
	.ncreds = 2,
	.cred_names = {"app_key", "app_secret"},
	.account_cred = 0,
	.max_batch = 1000,
	.default_rate_limit = NULL,
	.default_max_inflight = 0,
	.has_token_ttl = true,
	.build_token_request = cec_build_token_request,
	.parse_token = cec_parse_token,
	.ops = cec_ops,
	.nops = lengthof(cec_ops),
};
