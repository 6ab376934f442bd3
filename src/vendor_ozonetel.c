/*-------------------------------------------------------------------------
 *
 * vendor_ozonetel.c
 *	  The Ozonetel CCaaS vendor: token requests and DeleteBulkData.
 *
 * Ozonetel hands out a JWT for an account (userName plus apiKey) that lives
 * 60 minutes; every new token invalidates the previous ones and only ten
 * may be made an hour, so auth.c shares one token per account across all
 * backends and this file only says how to ask for one and how to read the
 * answer.
 *
 * The one operation, DeleteBulkData, removes phone numbers from campaigns.
 * A request carries at most 100 phone numbers and 100 campaign names; the
 * caller splits the lists and calls the build function once per pair of
 * chunks.  Phone numbers travel as JSON numbers, as in the vendor's own
 * example, which is why they are restricted to what a JSON number keeps
 * exactly.
 *
 * This file owns the validation of phone numbers and campaign names, the
 * request bodies, and the classification of the vendor's answers into
 * success, permanent failure, and the retry classes of CcpRetry.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <time.h>

#include <cjson/cJSON.h>

#include "common/base64.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/scansup.h"
#include "utils/json.h"

/* Vendor limits of one DeleteBulkData request. */
#define OZO_MAX_PHONES			100
#define OZO_MAX_CAMPAIGNS		100

/* The params of delete_bulk_data. */
typedef struct OzoParams
{
	List	   *campaign_names; /* of char *, distinct, validated */
} OzoParams;

/*
 * Longest phone number accepted, in digits.  Ozonetel takes phone numbers
 * as JSON numbers, and many JSON parsers (JavaScript's, and Jackson or
 * cJSON reading into a double) hold every number as an IEEE 754 double.
 * A double represents every integer up to 2^53 = 9007199254740992 exactly,
 * so every integer of at most 15 digits (below 10^15) survives the trip
 * unchanged, whereas some 16-digit ones do not.  E.164 numbers have at
 * most 15 digits, so no real phone number is lost by this limit.
 */
#define OZO_MAX_PHONE_DIGITS	15

/* Longest campaign name accepted, in characters. */
#define OZO_MAX_CAMPAIGN_CHARS	255

/* Token lifetime Ozonetel documents, and the shortest one we assume. */
#define OZO_TOKEN_TTL_S			3600
#define OZO_TOKEN_MIN_TTL_S		60

/* How much of a user value an error message quotes, in characters. */
#define OZO_QUOTE_CHARS			40

/*
 * Why a phone number is refused, as found by ozo_phone_problem(); the
 * validator turns it into an error report.
 */
typedef enum OzoPhoneProblem
{
	OZO_PHONE_OK,
	OZO_PHONE_EMPTY,
	OZO_PHONE_NOT_DIGITS,
	OZO_PHONE_LEADING_ZERO,
	OZO_PHONE_TOO_LONG
} OzoPhoneProblem;

/*
 * ozo_quote returns s, or a palloc'd copy of its first OZO_QUOTE_CHARS
 * characters followed by "...", for quoting a user value in a message.
 * s must be valid in the database encoding.
 */
static const char *
ozo_quote(const char *s)
{
	int			len = strlen(s);
	int			clip;

	if (len <= OZO_QUOTE_CHARS)
		return s;
	clip = pg_mbcharcliplen(s, len, OZO_QUOTE_CHARS);
	if (clip >= len)
		return s;
	return psprintf("%.*s...", clip, s);
}

/*
 * ozo_phone_problem says whether item is a phone number DeleteBulkData can
 * carry as a JSON number: 1 to OZO_MAX_PHONE_DIGITS ASCII digits, the
 * first not a zero.  It never reports an error, so the build function can
 * use it as a last guard before pasting the item into JSON verbatim.
 */
static OzoPhoneProblem
ozo_phone_problem(const char *item)
{
	size_t		len = 0;

	if (item[0] == '\0')
		return OZO_PHONE_EMPTY;
	for (const char *p = item; *p; p++, len++)
	{
		if (*p < '0' || *p > '9')
			return OZO_PHONE_NOT_DIGITS;
	}
	if (item[0] == '0')
		return OZO_PHONE_LEADING_ZERO;
	if (len > OZO_MAX_PHONE_DIGITS)
		return OZO_PHONE_TOO_LONG;
	return OZO_PHONE_OK;
}

/*
 * ozo_validate_phone is the validate_item function of delete_bulk_data: it
 * raises an error for a phone number that ozo_phone_problem() refuses.
 */
static void
ozo_validate_phone(const CcpOpDef *def, const char *item)
{
	if (item == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("phone number must not be null")));

	switch (ozo_phone_problem(item))
	{
		case OZO_PHONE_OK:
			break;
		case OZO_PHONE_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone number \"\""),
					 errdetail("A phone number must not be empty.")));
			break;
		case OZO_PHONE_NOT_DIGITS:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone number \"%s\"", ozo_quote(item)),
					 errdetail("A phone number for Ozonetel may contain only the digits 0 to 9."),
					 errhint("Remove spaces, punctuation and any leading \"+\".")));
			break;
		case OZO_PHONE_LEADING_ZERO:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone number \"%s\"", ozo_quote(item)),
					 errdetail("Ozonetel receives phone numbers as JSON numbers, which cannot keep a leading zero."),
					 errhint("Write the number without its leading zeros.")));
			break;
		case OZO_PHONE_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone number \"%s\"", ozo_quote(item)),
					 errdetail("A phone number for Ozonetel may have at most %d digits, the most a JSON number is sure to keep exactly.",
							   OZO_MAX_PHONE_DIGITS)));
			break;
	}
}

/*
 * ozo_validate_campaign raises an error unless name is a campaign
 * name DeleteBulkData can match: not empty, not blank (only white space or
 * invisible characters; Ozonetel answers "Passed campaign are invalid"),
 * free of control characters (see ccp_text_problem), and at most
 * OZO_MAX_CAMPAIGN_CHARS characters.  Leading and trailing spaces are
 * kept: they may be part of a real campaign's name.  name must be valid in
 * the database encoding.
 */
static void
ozo_validate_campaign(const char *name)
{
	int			nchars;

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("campaign name must not be null")));

	switch (ccp_text_problem(name, strlen(name)))
	{
		case CCP_TEXT_CONTROL:
			/* not quoted: a control character could garble the message */
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid campaign name"),
					 errdetail("A campaign name must not contain control characters.")));
			break;
		case CCP_TEXT_BLANK:
			if (name[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid campaign name \"\""),
						 errdetail("A campaign name must not be empty.")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid campaign name \"%s\"", ozo_quote(name)),
					 errdetail("A campaign name must contain something other than white space.")));
			break;
		case CCP_TEXT_OK:
			break;
	}

	nchars = pg_mbstrlen(name);
	if (nchars > OZO_MAX_CAMPAIGN_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("campaign name \"%s\" is too long", ozo_quote(name)),
				 errdetail("A campaign name may have at most %d characters, but this one has %d.",
						   OZO_MAX_CAMPAIGN_CHARS, nchars)));
}

/*
 * ozo_check_api_key raises an error if the api_key mapping option cannot
 * be sent as an HTTP header value.  The option validator should already
 * have refused such a key; this guards against header injection.  The
 * message never shows the key.
 */
static void
ozo_check_api_key(const char *key)
{
	for (const char *p = key; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c < 0x20 || c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
					 errmsg("invalid value for user mapping option \"api_key\""),
					 errdetail("The API key contains a control character and cannot be sent in an HTTP header.")));
	}
	if (key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("invalid value for user mapping option \"api_key\""),
				 errdetail("The API key is empty.")));
}

/*
 * ozo_json_oom frees a partly built tree and reports that cJSON ran out of
 * memory.  what names the body being built, for the detail.
 */
static void
ozo_json_oom(cJSON *root, const char *what)
{
	cJSON_Delete(root);
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("cJSON could not allocate the %s.", what)));
}

/*
 * ozo_message_is says whether a vendor message equals want, ignoring case,
 * surrounding white space and a trailing period: Ozonetel writes "Token
 * Should Not be Null or Empty." with a period and the others without.
 */
static bool
ozo_message_is(const char *msg, const char *want)
{
	size_t		len;
	size_t		wantlen = strlen(want);

	while (*msg && scanner_isspace(*msg))
		msg++;
	len = strlen(msg);
	while (len > 0 && (scanner_isspace(msg[len - 1]) || msg[len - 1] == '.'))
		len--;
	return len == wantlen && pg_strncasecmp(msg, want, len) == 0;
}

/* ozo_message_has says whether msg contains part, ignoring case. */
static bool
ozo_message_has(const char *msg, const char *part)
{
	size_t		partlen = strlen(part);

	for (const char *p = msg; *p; p++)
	{
		if (pg_strncasecmp(p, part, partlen) == 0)
			return true;
	}
	return false;
}

/*
 * ozo_json_status returns object["status"] as a palloc'd string, also when
 * it is a JSON boolean, or NULL when it is absent.
 */
static char *
ozo_json_status(cJSON *object)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(object, "status");

	if (cJSON_IsBool(item))
		return pstrdup(cJSON_IsTrue(item) ? "true" : "false");
	return ccp_json_get_string(object, "status");
}

/*
 * ozo_jwt_ttl returns the seconds left until the "exp" claim of a JWT, or
 * -1 when the token carries none that can be read.  The payload is the
 * second dot-separated part, base64url without padding; it is turned into
 * standard base64 for pg_b64_decode.  Nothing here raises an error for a
 * malformed token: Ozonetel's documented lifetime applies then.
 */
static int
ozo_jwt_ttl(const char *token)
{
	const char *start = strchr(token, '.');
	const char *stop;
	int			len;
	int			padded;
	char	   *b64;
	char	   *raw;
	int			rawlen;
	cJSON	   *claims;
	cJSON	   *exp;
	double		expires;
	double		left;

	if (start == NULL)
		return -1;
	start++;
	stop = strchr(start, '.');
	if (stop == NULL)
		return -1;
	len = stop - start;
	if (len == 0 || len % 4 == 1 || len > CCP_TOKEN_MAX)
		return -1;

	padded = len + (4 - len % 4) % 4;
	b64 = palloc(padded + 1);
	for (int i = 0; i < len; i++)
	{
		char		c = start[i];

		b64[i] = (c == '-') ? '+' : (c == '_') ? '/' : c;
	}
	for (int i = len; i < padded; i++)
		b64[i] = '=';
	b64[padded] = '\0';

	raw = palloc(pg_b64_dec_len(padded) + 1);
	rawlen = pg_b64_decode(b64, padded, raw, pg_b64_dec_len(padded));
	pfree(b64);
	if (rawlen < 0)
	{
		pfree(raw);
		return -1;
	}

	/* nothing between parse and delete can raise an error */
	claims = cJSON_ParseWithLength(raw, rawlen);
	pfree(raw);
	if (claims == NULL)
		return -1;
	exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
	if (!cJSON_IsNumber(exp))
	{
		cJSON_Delete(claims);
		return -1;
	}
	expires = exp->valuedouble;
	cJSON_Delete(claims);

	left = expires - (double) time(NULL);
	if (left > OZO_TOKEN_TTL_S)
		return OZO_TOKEN_TTL_S;
	if (left < OZO_TOKEN_MIN_TTL_S)
		return OZO_TOKEN_MIN_TTL_S;
	return (int) left;
}

/*
 * ozo_build_token_request fills every field of req with the token request
 * of srv's account: POST {url}/ca_apis/CAToken/generateToken with the API
 * key in the "apiKey" header and {"userName": ...} as body.  srv must carry
 * both credentials; everything is allocated in the current memory context.
 */
static void
ozo_build_token_request(const CcpServer *srv, CcpHttpRequest *req)
{
	const char *username;
	cJSON	   *root;

	ozo_check_api_key(srv->cred[1]);
	username = srv->cred[0];

	req->method = "POST";
	req->url = ccp_join_url(srv, "/ca_apis/CAToken/generateToken");
	req->headers = NIL;
	ccp_add_header(req, "apiKey", srv->cred[1]);
	ccp_add_header(req, "Content-Type", "application/json");

	/* build the whole tree before anything can raise an error */
	root = cJSON_CreateObject();
	if (root == NULL ||
		cJSON_AddStringToObject(root, "userName", username) == NULL)
		ozo_json_oom(root, "token request body");
	ccp_set_json_body(req, root);
}

/*
 * ozo_parse_token reads the answer to a token request.  On success
 * ({"token": "<JWT>", "message": ""} with HTTP 2xx) it sets *token to a
 * palloc'd copy and *ttl_s to the seconds the token may be used, and
 * returns true.  Otherwise it sets *error to a message built from the
 * vendor's "message" and returns false.  Neither the API key nor the token
 * ever appears in *error.  res must be an HTTP answer, not a transport
 * error.
 */
static bool
ozo_parse_token(const CcpServer *srv, const CcpHttpResult *res,
				char **token, int *ttl_s, char **error)
{
	cJSON	   *root;
	volatile bool ok = false;

	*token = NULL;
	*error = NULL;

	root = ccp_json_parse_body(res);
	if (root == NULL || !cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		*error = psprintf("token request failed: answer is not valid JSON (HTTP %d)",
						  res->status);
		return false;
	}

	PG_TRY();
	{
		char	   *tok = ccp_json_get_string(root, "token");
		char	   *msg = ccp_json_get_string(root, "message");
		bool		success = (res->status >= 200 && res->status < 300);

		if (msg != NULL && msg[0] != '\0')
			msg = ccp_vendor_text(msg);
		else
			msg = NULL;

		if (success && tok != NULL && tok[0] != '\0')
		{
			size_t		toklen = strlen(tok);
			bool		printable = true;

			/* the token goes into a header: it must be one plain word */
			for (const char *p = tok; *p; p++)
			{
				if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
				{
					printable = false;
					break;
				}
			}

			if (toklen >= CCP_TOKEN_MAX)
				*error = psprintf("token request failed: answer carries a token of %zu bytes, more than the %d allowed (HTTP %d)",
								  toklen, CCP_TOKEN_MAX - 1, res->status);
			else if (!printable)
				*error = psprintf("token request failed: answer carries a token that is not printable ASCII (HTTP %d)",
								  res->status);
			else
			{
				int			left = ozo_jwt_ttl(tok);

				*token = tok;
				*ttl_s = (left > 0) ? left : OZO_TOKEN_TTL_S;
				ok = true;
			}
		}
		else if (msg != NULL)
			*error = psprintf("token request refused: %s (HTTP %d)",
							  msg, res->status);
		else if (success)
			*error = psprintf("token request refused: answer has no token (HTTP %d)",
							  res->status);
		else
			*error = psprintf("token request refused: answer has no message (HTTP %d)",
							  res->status);
	}
	PG_CATCH();
	{
		cJSON_Delete(root);
		PG_RE_THROW();
	}
	PG_END_TRY();

	cJSON_Delete(root);

	return ok;
}

/*
 * ozo_build_delete_bulk_data fills every field of req with one
 * DeleteBulkData request: DELETE {url}/ca_apis/DeleteBulkData with the API
 * key, the bearer token and the body
 *   {"userName": ..., "phoneNumber": [8187867008, ...], "campaignName": [...]}.
 * items are 1..OZO_MAX_PHONES validated, distinct phone numbers, and
 * params->campaign_names holds 1..OZO_MAX_CAMPAIGNS names (the caller
 * splits longer lists).  Phone numbers are pasted into the body as raw
 * JSON numbers, digit for digit, so they are checked once more here.
 */
static void
ozo_build_delete_bulk_data(const CcpServer *srv, const CcpChunk *chunk,
						   CcpHttpRequest *req)
{
	const OzoParams *params = chunk->params;
	char	  **items = chunk->items;
	int			nitems = chunk->nitems;
	const char *token = chunk->token;
	int			ncampaigns = list_length(params->campaign_names);
	const char **campaigns;
	const char *username;
	cJSON	   *root;
	cJSON	   *phones;
	cJSON	   *names;
	bool		built;
	ListCell   *lc;
	int			i;

	if (nitems < 1 || nitems > OZO_MAX_PHONES)
		elog(ERROR, "delete_bulk_data request with %d phone numbers", nitems);
	if (ncampaigns < 1 || ncampaigns > OZO_MAX_CAMPAIGNS)
		elog(ERROR, "delete_bulk_data request with %d campaign names",
			 ncampaigns);
	if (token == NULL || token[0] == '\0')
		elog(ERROR, "delete_bulk_data request without a token");
	for (i = 0; i < nitems; i++)
	{
		if (items[i] == NULL || ozo_phone_problem(items[i]) != OZO_PHONE_OK)
			elog(ERROR, "delete_bulk_data request with an unvalidated phone number");
	}
	ozo_check_api_key(srv->cred[1]);

	/* everything that can raise an error happens before the tree exists */
	username = srv->cred[0];
	campaigns = palloc(ncampaigns * sizeof(char *));
	i = 0;
	foreach(lc, params->campaign_names)
	{
		const char *name = (const char *) lfirst(lc);

		ozo_validate_campaign(name);
		campaigns[i++] = name;
	}

	req->method = "DELETE";
	req->url = ccp_join_url(srv, "/ca_apis/DeleteBulkData");
	req->headers = NIL;
	ccp_add_header(req, "apiKey", srv->cred[1]);
	ccp_add_header(req, "Authorization", psprintf("Bearer %s", token));
	ccp_add_header(req, "Content-Type", "application/json");

	root = cJSON_CreateObject();
	built = (root != NULL &&
			 cJSON_AddStringToObject(root, "userName", username) != NULL);
	phones = built ? cJSON_AddArrayToObject(root, "phoneNumber") : NULL;
	built = built && phones != NULL;
	for (i = 0; built && i < nitems; i++)
	{
		/* raw, not a double: the digits go out exactly as validated */
		cJSON	   *n = cJSON_CreateRaw(items[i]);

		built = (n != NULL && cJSON_AddItemToArray(phones, n));
		if (!built && n != NULL)
			cJSON_Delete(n);
	}
	names = built ? cJSON_AddArrayToObject(root, "campaignName") : NULL;
	built = built && names != NULL;
	for (i = 0; built && i < ncampaigns; i++)
	{
		cJSON	   *s = cJSON_CreateString(campaigns[i]);

		built = (s != NULL && cJSON_AddItemToArray(names, s));
		if (!built && s != NULL)
			cJSON_Delete(s);
	}
	if (!built)
		ozo_json_oom(root, "DeleteBulkData request body");

	ccp_set_json_body(req, root);
}

/*
 * ozo_parse_delete_bulk_data reads a DeleteBulkData answer,
 * {"status": ..., "message": ...}, into out (whose http_status is set).
 * ok needs HTTP 2xx and status "true" or "Success" in any case; code is
 * the status and message the vendor's message.  Token complaints ask for a
 * new token, "Max limit exceeded" and "still being processed" for a rate
 * wait, HTTP 5xx and 429 for a later retry; anything else is final.
 */
static void
ozo_parse_delete_bulk_data(const CcpServer *srv, const CcpChunk *chunk,
						   const CcpHttpResult *res, CcpOutcome *out)
{
	cJSON	   *root;
	bool		http_ok = (res->status >= 200 && res->status < 300);
	bool		transient = (res->status >= 500 || res->status == 429);

	out->ok = false;
	out->code = NULL;
	out->success_count = -1;
	out->retry = CCP_FINAL;

	root = ccp_json_parse_body(res);
	if (root == NULL || !cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		out->message = pstrdup("answer is not valid JSON");
		out->retry = transient ? CCP_RETRY_TRANSIENT : CCP_FINAL;
		return;
	}

	PG_TRY();
	{
		char	   *status = ozo_json_status(root);
		char	   *msg = ccp_json_get_string(root, "message");

		if (status != NULL)
			out->code = ccp_vendor_text(status);
		if (msg != NULL && msg[0] != '\0')
			msg = ccp_vendor_text(msg);
		else
			msg = NULL;

		out->ok = http_ok && status != NULL &&
			(pg_strcasecmp(status, "true") == 0 ||
			 pg_strcasecmp(status, "success") == 0);

		if (msg != NULL)
			out->message = msg;
		else if (out->ok)
			out->message = pstrdup("deletion accepted");
		else if (status == NULL)
			out->message = pstrdup("answer has no status");
		else
			out->message = pstrdup("answer has no message");

		if (out->ok)
			out->retry = CCP_FINAL;
		else if (msg != NULL &&
				 (ozo_message_is(msg, "Token Expired") ||
				  ozo_message_is(msg, "Invalid Token") ||
				  ozo_message_is(msg, "Token Should Not be Null or Empty")))
			out->retry = CCP_RETRY_TOKEN;
		else if (msg != NULL &&
				 (ozo_message_is(msg, "Max limit exceeded") ||
				  ozo_message_has(msg, "still being processed")))
			out->retry = CCP_RETRY_RATE;
		else if (transient)
			out->retry = CCP_RETRY_TRANSIENT;
		else
			out->retry = CCP_FINAL;
	}
	PG_CATCH();
	{
		cJSON_Delete(root);
		PG_RE_THROW();
	}
	PG_END_TRY();

	cJSON_Delete(root);
}

/*
 * ozo_read_params reads the campaign_names array of a params object (the
 * SQL argument of the same name, or ccpurge_enqueue's params): every name
 * valid, duplicates dropped, the order kept.
 */
static void *
ozo_read_params(const CcpOpDef *def, Jsonb *params)
{
	OzoParams  *out = palloc0(sizeof(OzoParams));
	int			n;
	char	  **names = ccp_jsonb_text_array_member(params, "campaign_names", &n);

	if (names == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation \"%s\" needs the parameter \"campaign_names\"",
						def->name),
				 errdetail("DeleteBulkData erases phone numbers from the campaigns it names.")));
	for (int i = 0; i < n; i++)
		ozo_validate_campaign(names[i]);
	n = ccp_items_distinct(names, n);
	for (int i = 0; i < n; i++)
		out->campaign_names = lappend(out->campaign_names, names[i]);
	return out;
}

/* ozo_params_text gives validated params as canonical JSON text. */
static char *
ozo_params_text(const CcpOpDef *def, const void *params)
{
	const OzoParams *p = params;
	StringInfoData s;
	ListCell   *lc;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"campaign_names\": [");
	foreach(lc, p->campaign_names)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&s, ", ");
		escape_json(&s, (const char *) lfirst(lc));
	}
	appendStringInfoString(&s, "]}");
	return s.data;
}

/*
 * ozo_split_params cuts the campaign list into the vendor's limit per
 * request: one OzoParams per slice of at most OZO_MAX_CAMPAIGNS names, so
 * that every chunk of phone numbers goes out once per slice.
 */
static List *
ozo_split_params(const CcpOpDef *def, const void *params)
{
	const OzoParams *p = params;
	List	   *parts = NIL;
	int			n = list_length(p->campaign_names);

	for (int start = 0; start < n; start += OZO_MAX_CAMPAIGNS)
	{
		OzoParams  *part = palloc(sizeof(OzoParams));

		part->campaign_names =
			list_copy_head(list_delete_first_n(list_copy(p->campaign_names), start),
						   OZO_MAX_CAMPAIGNS);
		parts = lappend(parts, part);
	}
	return parts;
}

static const CcpOpDef ozo_ops[] = {
	{
		.name = "delete_bulk_data",
		.items_arg = "phone_numbers",
		.max_batch = OZO_MAX_PHONES,
		.max_item_len = OZO_MAX_PHONE_DIGITS,
		.validate_item = ozo_validate_phone,
		.build = ozo_build_delete_bulk_data,
		.parse = ozo_parse_delete_bulk_data,
		.param_keys = "campaign_names",
		.read_params = ozo_read_params,
		.params_text = ozo_params_text,
		.split_params = ozo_split_params,
	},
};

const CcpVendor ccp_vendor_ozonetel = {
	.name = "ozonetel",
	.ncreds = 2,
	.cred_names = {"username", "api_key"},
	.account_cred = 0,
	.max_batch = OZO_MAX_PHONES,
	.default_rate_limit = "2/minute",
	.default_max_inflight = 1,
	.has_token_ttl = false,
	.build_token_request = ozo_build_token_request,
	.parse_token = ozo_parse_token,
	.ops = ozo_ops,
	.nops = lengthof(ozo_ops),
};
