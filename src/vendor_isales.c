/*-------------------------------------------------------------------------
 *
 * vendor_isales.c
 *	  The Huawei CC-iSales vendor: the calldata filter validator, and the
 *	  two iSales operations (delete the calling numbers of a campaign,
 *	  delete outbound call data).
 *
 * iSales has no tokens: every request carries an Authorization header that
 * signs the method, path, query, a set of headers and the body with the
 * user mapping's ak and sk (the "C2" signer, in c2sign.c).
 *
 * Bodies are sent in UTF-8 whatever the database encoding is; items and
 * filter values are validated in the database encoding and converted when
 * the body is printed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <time.h>

#include "catalog/pg_type_d.h"
#include "cJSON.h"
#include "common/sha2.h"
#include "common/string.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "ccpurge.h"

/* Result codes the pipeline treats specially. */
#define ISALES_CODE_SUCCESS		"0200000"
#define ISALES_CODE_DB_ERROR	"0200006"

/*
 * Item and filter limits, as the vendor documents them: an accessCode is
 * a calling number of at most 24 digits (the vendor's table of callerNo
 * fields), a called number at most 24 characters of 0-9, "*" and "#".
 */
#define ISALES_ACCESS_CODE_MAX	24
#define ISALES_CALLED_MAX		24
#define ISALES_SESSION_ID_MAX	32
#define ISALES_CUSTOM_FIELD_MAX 200

#define ISALES_CALLER_NUMBERS_MAX	100

#define ISALES_CONTENT_TYPE		"application/json; charset=UTF-8"

#define ISALES_FILTER_KEYS \
	"sessionId, called, customField, recycleTime, recycleType, archiveHistory"

/*
 * A validated calldata filter.  Strings are NULL and numbers -1 when the key
 * is absent; strings are in the database encoding.
 */
typedef struct IsalesFilter
{
	char	   *session_id;
	char	   *called;
	char	   *custom_field;
	char	   *recycle_time;
	int			recycle_type;
	int			archive_history;
} IsalesFilter;

/*
 * The params of both operations: the campaign, and for delete_calldata the
 * optional archiveHistory and filter (a request selected by the filter
 * carries no items).
 */
typedef struct IsalesParams
{
	int			vdn_id;			/* 1..9999 */
	int			campaign_id;	/* >= 0 */
	int			archive_history;	/* 0 or 1; -1: not given */
	Jsonb	   *filter;			/* validated calldata filter, or NULL */
} IsalesParams;

/* The vendor's result codes and what they mean, for answers without text. */
typedef struct IsalesCodeText
{
	const char *code;
	const char *text;
} IsalesCodeText;

static const IsalesCodeText isales_codes[] = {
	{"0200000", "success"},
	{"0200001", "parameter error"},
	{"0200006", "database error"},
	{"0200007", "campaign does not exist"},
	{"0200028", "current state does not allow deletion (numbers being dialled, numbers already called and numbers of a running campaign cannot be deleted)"},
	{"0200030", "incorrect time format"},
	{"02000001", "parameter value is empty"},
	{"02000002", "parameter contains invalid characters"},
	{"02000003", "parameter is longer than the maximum length"},
	{"02000004", "parameter is shorter than the minimum length"},
	{"02000005", "parameter length is outside the allowed range"},
	{"02000006", "parameter has the wrong type"},
	{"02000007", "incorrect parameter value"},
	{"02000008", "parameter conversion error"},
	{"02000009", "incorrect parameter combination"},
	{"02000010", "hour and minute must be given together"},
	{"02000011", "too many parameters"},
};


/* ----------
 * Item and filter validation
 * ----------
 */

/*
 * isales_dial_string_ok says whether s holds only what a telephone keypad
 * can dial: the digits 0-9, "*" and "#".
 */
static bool
isales_dial_string_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '*' || s[i] == '#'))
			return false;
	}
	return true;
}

/*
 * isales_validate_access_code checks one calling number (accessCode) to be
 * deleted from a campaign: digits only, at most ISALES_ACCESS_CODE_MAX of
 * them, as the vendor's table of callerNo fields says.
 */
static void
isales_validate_access_code(const CcpOpDef *def, const char *item)
{
	ccp_validate_nonempty_item(def, item);
	for (const char *p = item; *p; p++)
	{
		if (*p < '0' || *p > '9')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("access code contains an invalid character"),
					 errdetail("CC-iSales access codes consist of digits only.")));
	}
}

/*
 * isales_validate_called checks one called number queued for call data
 * deletion (the "called" key of the vendor's filter).
 */
static void
isales_validate_called(const CcpOpDef *def, const char *item)
{
	ccp_validate_nonempty_item(def, item);
	if (!isales_dial_string_ok(item, strlen(item)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("called number contains an invalid character"),
				 errdetail("CC-iSales called numbers may contain only the digits 0-9, \"*\" and \"#\".")));
}

/* isales_json_type_name names the JSON type of a jsonb value for messages. */
static const char *
isales_json_type_name(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "not a scalar";
	}
}

/*
 * isales_filter_string checks that the value of filter key key is a
 * non-empty string of at most maxchars characters and returns it palloc'd.
 */
static char *
isales_filter_string(const char *key, const JsonbValue *v, int maxchars)
{
	int			nchars;

	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter key \"%s\" must be a string", key),
				 errdetail("The value given is %s.", isales_json_type_name(v))));
	if (v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter key \"%s\" must not be empty", key)));

	switch (ccp_text_problem(v->val.string.val, v->val.string.len))
	{
		case CCP_TEXT_BLANK:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calldata filter key \"%s\" must not be blank", key),
					 errdetail("A blank value selects nobody, and the vendor might read it as every record.")));
			break;
		case CCP_TEXT_CONTROL:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calldata filter key \"%s\" contains a control character", key),
					 errdetail("Filter values are sent as JSON strings and must be printable text.")));
			break;
		case CCP_TEXT_OK:
			break;
	}
	nchars = pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);
	if (nchars > maxchars)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter key \"%s\" is too long", key),
				 errdetail("The value has %d characters; CC-iSales accepts at most %d.",
						   nchars, maxchars)));

	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * isales_filter_small_int reads a small non-negative integer given either as
 * a JSON number or as a string of digits.  Returns -1 when the value is not
 * such an integer or lies outside min..max; the caller reports the error.
 */
static int
isales_filter_small_int(const JsonbValue *v, int min, int max)
{
	char	   *s;
	size_t		len;
	int			n;

	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	else
		return -1;

	len = strlen(s);
	if (len == 0 || len > 4)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
	}
	n = atoi(s);
	return (n >= min && n <= max) ? n : -1;
}

/*
 * isales_recycle_time_check checks a recycleTime value: the form must be
 * "yyyy-mm-dd hh:mm:ss" and it must name a real date and time.
 */
static void
isales_recycle_time_check(const char *s)
{
	static const char form[] = "dddd-dd-dd dd:dd:dd";
	int			year,
				month,
				day,
				hour,
				minute,
				second;

	if (strlen(s) != sizeof(form) - 1)
		goto bad_form;
	for (int i = 0; form[i]; i++)
	{
		if (form[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != form[i])
			goto bad_form;
	}

	if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d",
			   &year, &month, &day, &hour, &minute, &second) != 6)
		goto bad_form;

	if (year < 1 || month < 1 || month > 12 || day < 1 ||
		day > day_tab[isleap(year) ? 1 : 0][month - 1] ||
		hour > 23 || minute > 59 || second > 59)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter key \"recycleTime\" is not a valid date and time"),
				 errdetail("There is no date and time \"%s\".", s)));
	return;

bad_form:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("calldata filter key \"recycleTime\" must have the form yyyy-mm-dd hh:mm:ss"),
			 errdetail("The value given does not have that form."),
			 errhint("For example: \"2024-12-04 17:57:00\".")));
}

/*
 * isales_filter_value checks the value v of filter key key and stores it in
 * f.  Raises an ERROR for unknown keys and invalid values.
 */
static void
isales_filter_value(IsalesFilter *f, const char *key, const JsonbValue *v)
{
	if (strcmp(key, "sessionId") == 0)
		f->session_id = isales_filter_string(key, v, ISALES_SESSION_ID_MAX);
	else if (strcmp(key, "called") == 0)
	{
		f->called = isales_filter_string(key, v, ISALES_CALLED_MAX);
		if (!isales_dial_string_ok(f->called, strlen(f->called)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calldata filter key \"called\" contains an invalid character"),
					 errdetail("CC-iSales called numbers may contain only the digits 0-9, \"*\" and \"#\".")));
	}
	else if (strcmp(key, "customField") == 0)
		f->custom_field = isales_filter_string(key, v, ISALES_CUSTOM_FIELD_MAX);
	else if (strcmp(key, "recycleTime") == 0)
	{
		/* the form check below says more than a length limit would */
		f->recycle_time = isales_filter_string(key, v, INT_MAX);
		isales_recycle_time_check(f->recycle_time);
	}
	else if (strcmp(key, "recycleType") == 0)
	{
		f->recycle_type = isales_filter_small_int(v, 1, 3);
		if (f->recycle_type < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calldata filter key \"recycleType\" must be 1, 2 or 3"),
					 errdetail("1 deletes call data recycled on or before the day of recycleTime, 2 call data recycled on that day, 3 call data recycled at exactly that time.")));
	}
	else if (strcmp(key, "archiveHistory") == 0)
	{
		f->archive_history = isales_filter_small_int(v, 0, 1);
		if (f->archive_history < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calldata filter key \"archiveHistory\" must be 0 or 1"),
					 errdetail("0 deletes the call data, 1 moves it to the history table.")));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized calldata filter key \"%s\"", key),
				 errhint("Valid keys are: %s.", ISALES_FILTER_KEYS)));
}

/*
 * isales_parse_filter validates a calldata filter and returns its values in
 * f.  Raises an ERROR, before anything is sent, for anything the vendor
 * would refuse and for filters that select nothing, since the vendor reads
 * a filter without a selection key as "all call data of the campaign".
 */
static void
isales_parse_filter(Jsonb *filter, IsalesFilter *f)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	f->session_id = NULL;
	f->called = NULL;
	f->custom_field = NULL;
	f->recycle_time = NULL;
	f->recycle_type = -1;
	f->archive_history = -1;

	if (filter == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("calldata filter must not be null")));
	if (!JB_ROOT_IS_OBJECT(filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter must be a JSON object"),
				 errdetail("The filter given is a JSON %s.",
						   JB_ROOT_IS_SCALAR(filter) ? "scalar" : "array")));
	if (JB_ROOT_COUNT(filter) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter must not be empty"),
				 errdetail("An empty filter would delete all call data of the campaign."),
				 errhint("Give at least one of sessionId, called, customField or recycleTime.")));

	it = JsonbIteratorInit(&filter->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
			isales_filter_value(f, key, &v);
	}

	if (f->recycle_type >= 0 && f->recycle_time == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter key \"recycleType\" requires \"recycleTime\""),
				 errdetail("recycleType says how recycleTime is compared and has no meaning without it.")));

	if (f->session_id == NULL && f->called == NULL &&
		f->custom_field == NULL && f->recycle_time == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("calldata filter selects no call data"),
				 errdetail("A filter without sessionId, called, customField or recycleTime would delete all call data of the campaign."),
				 errhint("Give at least one of sessionId, called, customField or recycleTime.")));
}

/* ----------
 * Requests
 * ----------
 */

/*
 * isales_url_path returns the path of an absolute URL, as it goes on the
 * request line (without query or fragment), palloc'd; "/" if it has none.
 */
static char *
isales_url_path(const char *url)
{
	const char *p = strstr(url, "://");
	const char *end;

	p = (p != NULL) ? p + 3 : url;
	p += strcspn(p, "/?#");
	if (*p != '/')
		return pstrdup("/");
	end = p + strcspn(p, "?#");
	return pnstrdup(p, end - p);
}

/*
 * isales_timestamp writes the current UTC time as yyyy-MM-ddTHH:mm:ssZ, the
 * form C2 signs, into buf (at least 21 bytes).
 */
static void
isales_timestamp(char *buf, size_t size)
{
	time_t		now = time(NULL);
	struct tm	tm;

	if (gmtime_r(&now, &tm) == NULL ||
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		elog(ERROR, "could not format the current UTC time");
}

/*
 * isales_finish_request fills in req for a JSON body sent with method to
 * url: the signed headers (Host, Content-Type, Content-Length) and the C2
 * Authorization header computed over them.  body must be UTF-8.  Whatever
 * req held before is discarded, so every header sent is a signed one.
 */
static void
isales_finish_request(const CcpServer *srv, CcpHttpRequest *req,
					  const char *method, char *url, char *body)
{
	char		ts[32];
	char	   *auth;

	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = url;
	req->body = body;
	req->body_len = strlen(body);

	ccp_add_header(req, "Host", ccp_http_host_port(srv->url));
	ccp_add_header(req, "Content-Type", ISALES_CONTENT_TYPE);
	ccp_add_header(req, "Content-Length", psprintf("%zu", req->body_len));

	isales_timestamp(ts, sizeof(ts));
	auth = ccp_c2_authorization(srv->cred[0], srv->cred[1], ts, method,
								isales_url_path(url), NULL, req->headers,
								req->body, req->body_len);
	ccp_add_header(req, "Authorization", auth);
}

/* isales_check_campaign insists on the campaign params read_params checked. */
static void
isales_check_campaign(const IsalesParams *params)
{
	if (params->vdn_id < 1 || params->vdn_id > 9999 || params->campaign_id < 0)
		elog(ERROR, "iSales request without a valid vdn_id and campaign_id");
}

/*
 * isales_build_caller_numbers builds DELETE .../callerNo/{campaignId} with
 * body {"callerNo": [{"accessCode": "..."}, ...]} for 1..100 validated
 * access codes.
 */
static void
isales_build_caller_numbers(const CcpServer *srv, const CcpChunk *chunk,
							CcpHttpRequest *req)
{
	const IsalesParams *params = chunk->params;
	char	  **items = chunk->items;
	int			nitems = chunk->nitems;
	cJSON	   *root;
	cJSON	   *list;
	bool		failed = false;
	char	   *body;
	char	   *path;

	isales_check_campaign(params);
	if (nitems < 1 || nitems > ISALES_CALLER_NUMBERS_MAX)
		elog(ERROR, "iSales caller number request with %d items", nitems);

	/* nothing here can raise an ERROR until the tree is printed */
	root = cJSON_CreateObject();
	list = root ? cJSON_AddArrayToObject(root, "callerNo") : NULL;
	if (list == NULL)
		failed = true;
	for (int i = 0; i < nitems && !failed; i++)
	{
		cJSON	   *entry = cJSON_CreateObject();

		if (entry == NULL)
			failed = true;
		else if (!cJSON_AddItemToArray(list, entry))
		{
			cJSON_Delete(entry);
			failed = true;
		}
		else if (cJSON_AddStringToObject(entry, "accessCode", items[i]) == NULL)
			failed = true;
	}
	if (failed)
	{
		cJSON_Delete(root);
		root = NULL;
	}
	body = ccp_json_text(root);

	path = psprintf("/rest/isales/v1/openapi/campaigns/%d/callerNo/%d",
					params->vdn_id, params->campaign_id);
	isales_finish_request(srv, req, "DELETE", ccp_join_url(srv, path), body);
}

/*
 * isales_filter_body prints a calldata filter as the vendor's body, with
 * recycleType as a string and archiveHistory as a number, as documented.
 */
static char *
isales_filter_body(const IsalesFilter *f)
{
	char		recycle_type[12];
	cJSON	   *root = cJSON_CreateObject();
	bool		failed = (root == NULL);

	snprintf(recycle_type, sizeof(recycle_type), "%d", f->recycle_type);

	/* nothing here can raise an ERROR until the tree is printed */
	if (!failed && f->session_id != NULL)
		failed = cJSON_AddStringToObject(root, "sessionId", f->session_id) == NULL;
	if (!failed && f->called != NULL)
		failed = cJSON_AddStringToObject(root, "called", f->called) == NULL;
	if (!failed && f->custom_field != NULL)
		failed = cJSON_AddStringToObject(root, "customField", f->custom_field) == NULL;
	if (!failed && f->recycle_time != NULL)
		failed = cJSON_AddStringToObject(root, "recycleTime", f->recycle_time) == NULL;
	if (!failed && f->recycle_type >= 0)
		failed = cJSON_AddStringToObject(root, "recycleType", recycle_type) == NULL;
	if (!failed && f->archive_history >= 0)
		failed = cJSON_AddNumberToObject(root, "archiveHistory", f->archive_history) == NULL;

	if (failed)
	{
		cJSON_Delete(root);
		root = NULL;
	}
	return ccp_json_text(root);
}

/*
 * isales_build_calldata builds POST .../calldata/{campaignId}/delete for one
 * filter: with no items, the filter of ccpurge_delete_calldata
 * (params->filter); with one item, a queued called number, with the
 * queue's archiveHistory when set.
 */
static void
isales_build_calldata(const CcpServer *srv, const CcpChunk *chunk,
					  CcpHttpRequest *req)
{
	const IsalesParams *params = chunk->params;
	char	  **items = chunk->items;
	int			nitems = chunk->nitems;
	IsalesFilter f;
	char	   *path;

	isales_check_campaign(params);

	if (nitems == 0)
	{
		if (params->filter == NULL)
			elog(ERROR, "iSales calldata request without a filter");
		isales_parse_filter(params->filter, &f);
		if (f.archive_history < 0)
			f.archive_history = params->archive_history;
	}
	else if (nitems == 1)
	{
		memset(&f, 0, sizeof(f));
		f.called = items[0];
		f.recycle_type = -1;
		f.archive_history = params->archive_history;
	}
	else
		elog(ERROR, "iSales calldata request with %d items", nitems);

	path = psprintf("/rest/isales/v1/openapi/campaigns/%d/calldata/%d/delete",
					params->vdn_id, params->campaign_id);
	isales_finish_request(srv, req, "POST", ccp_join_url(srv, path),
						  isales_filter_body(&f));
}


/* ----------
 * Answers
 * ----------
 */

/* The parts of an iSales answer the outcome is made of. */
typedef struct IsalesAnswer
{
	char	   *code;			/* resultCode, else returnCode */
	char	   *desc;			/* resultDesc, else returnDesc; may be "" */
	int			success_count;	/* -1: absent */
} IsalesAnswer;

/* isales_code_text maps a vendor result code to its documented meaning. */
static const char *
isales_code_text(const char *code)
{
	for (int i = 0; i < lengthof(isales_codes); i++)
	{
		if (strcmp(isales_codes[i].code, code) == 0)
			return isales_codes[i].text;
	}
	return NULL;
}

/*
 * isales_vendor_text returns s, vendor text already made safe to store by
 * ccp_json_get_string, or NULL when there is none (the caller then falls
 * back to the documented meaning of the code).
 */
static char *
isales_vendor_text(char *s)
{
	return (s == NULL || s[0] == '\0') ? NULL : s;
}

/*
 * isales_read_answer copies what the outcome needs out of a parsed answer
 * (ccp_json_get_string returns palloc'd copies), so the tree can be freed
 * afterwards.
 */
static void
isales_read_answer(cJSON *root, IsalesAnswer *a)
{
	cJSON	   *count;

	a->code = ccp_json_get_string(root, "resultCode");
	if (a->code == NULL)
		a->code = ccp_json_get_string(root, "returnCode");
	a->desc = ccp_json_get_string(root, "resultDesc");
	if (a->desc == NULL || a->desc[0] == '\0')
		a->desc = ccp_json_get_string(root, "returnDesc");

	a->success_count = -1;
	count = cJSON_GetObjectItemCaseSensitive(root, "successCount");
	if (cJSON_IsNumber(count) && count->valuedouble >= 0 &&
		count->valuedouble <= INT_MAX)
		a->success_count = (int) count->valuedouble;
	else if (cJSON_IsString(count) && count->valuestring[0] != '\0' &&
			 strspn(count->valuestring, "0123456789") == strlen(count->valuestring) &&
			 strlen(count->valuestring) < 10)
		a->success_count = atoi(count->valuestring);
}

/*
 * isales_parse reads an iSales answer into out.  Success needs HTTP 2xx and
 * result code 0200000.  A 401 means the signature was refused; with no
 * token to refresh, it is final.  5xx, 429 and the vendor's database error
 * are worth retrying; everything else is final.
 */
static void
isales_parse(const CcpServer *srv, const CcpChunk *chunk,
			 const CcpHttpResult *res, CcpOutcome *out)
{
	int			status = res->status;
	bool		transient = (status >= 500 && status <= 599) || status == 429;
	bool		http_ok = (status >= 200 && status <= 299);
	cJSON	   *root;
	IsalesAnswer a;
	char	   *text;

	out->ok = false;
	out->code = NULL;
	out->success_count = -1;
	out->retry = CCP_FINAL;

	if (status == 401)
	{
		out->message = pstrdup("signature rejected (HTTP 401); check the ak and sk of the user mapping and the clock of both hosts");
		return;
	}

	root = ccp_json_parse_body(res);
	if (!cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		out->message = psprintf("the answer (HTTP %d) was not valid JSON", status);
		out->retry = transient ? CCP_RETRY_TRANSIENT : CCP_FINAL;
		return;
	}

	PG_TRY();
	{
		isales_read_answer(root, &a);
	}
	PG_FINALLY();
	{
		cJSON_Delete(root);
	}
	PG_END_TRY();

	out->code = a.code;
	out->success_count = a.success_count;
	out->ok = http_ok && a.code != NULL &&
		strcmp(a.code, ISALES_CODE_SUCCESS) == 0;

	text = isales_vendor_text(a.desc);
	if (!http_ok &&
		(a.code == NULL || strcmp(a.code, ISALES_CODE_SUCCESS) == 0))
		out->message = psprintf("the server answered HTTP %d", status);
	else if (text != NULL)
		out->message = text;
	else if (a.code != NULL && isales_code_text(a.code) != NULL)
		out->message = pstrdup(isales_code_text(a.code));
	else if (a.code != NULL)
		out->message = psprintf("result code %s", a.code);
	else
		out->message = psprintf("the answer (HTTP %d) carried no result code",
								status);

	if (!out->ok &&
		(transient ||
		 (a.code != NULL && strcmp(a.code, ISALES_CODE_DB_ERROR) == 0)))
		out->retry = CCP_RETRY_TRANSIENT;
}


/* ----------
 * Params
 * ----------
 */

/*
 * isales_check_campaign_args checks the vdnId and campaignId of an iSales
 * operation's params: vdn_id 1..9999, campaign_id not negative, neither
 * absent.
 */
static void
isales_check_campaign_args(bool vdn_null, int vdn_id,
						   bool campaign_null, int campaign_id)
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

/*
 * isales_read_params reads vdn_id and campaign_id (both operations), and
 * for delete_calldata the optional archiveHistory and filter (param_keys
 * has refused them for delete_caller_numbers), from a params object.  A
 * filter is validated in full here, before anything is sent.
 */
static void *
isales_read_params(const CcpOpDef *def, Jsonb *params)
{
	IsalesParams *out = palloc0(sizeof(IsalesParams));
	JsonbValue	v;
	int			vdn = 0;
	int			campaign = 0;
	bool		has_vdn = ccp_jsonb_int_member(params, "vdn_id", &vdn);
	bool		has_campaign = ccp_jsonb_int_member(params, "campaign_id", &campaign);

	isales_check_campaign_args(!has_vdn, vdn, !has_campaign, campaign);
	out->vdn_id = vdn;
	out->campaign_id = campaign;
	out->archive_history = -1;
	if (ccp_jsonb_int_member(params, "archiveHistory", &out->archive_history) &&
		out->archive_history != 0 && out->archive_history != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("archiveHistory must be 0 or 1")));
	if (ccp_jsonb_member(params, "filter", &v))
	{
		IsalesFilter f;

		if (v.type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("filter must not be NULL"),
					 errhint("Give at least one of sessionId, called, customField or recycleTime.")));
		out->filter = JsonbValueToJsonb(&v);
		isales_parse_filter(out->filter, &f);
	}
	return out;
}

/*
 * isales_params_text gives validated params as canonical JSON text: the
 * keys in the order jsonb stores them.
 */
static char *
isales_params_text(const CcpOpDef *def, const void *params)
{
	const IsalesParams *p = params;
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	if (p->filter != NULL)
		appendStringInfo(&s, "\"filter\": %s, ",
						 JsonbToCString(NULL, &p->filter->root,
										VARSIZE(p->filter)));
	appendStringInfo(&s, "\"vdn_id\": %d, \"campaign_id\": %d",
					 p->vdn_id, p->campaign_id);
	if (p->archive_history >= 0)
		appendStringInfo(&s, ", \"archiveHistory\": %d", p->archive_history);
	appendStringInfoChar(&s, '}');
	return s.data;
}

/*
 * isales_scope_text gives the params as the request log keeps them: as
 * params_text, but a filter's sessionId, called and customField, which
 * select people, are replaced by their keyed digests; recycleTime,
 * recycleType and archiveHistory are kept.
 */
static char *
isales_scope_text(const CcpOpDef *def, const void *params)
{
	const IsalesParams *p = params;
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"vdn_id\": %d, \"campaign_id\": %d",
					 p->vdn_id, p->campaign_id);
	if (p->archive_history >= 0)
		appendStringInfo(&s, ", \"archiveHistory\": %d", p->archive_history);
	if (p->filter != NULL)
	{
		IsalesFilter f;
		const char *sep = "";

		isales_parse_filter(p->filter, &f);
		appendStringInfoString(&s, ", \"filter\": {");
#define ISALES_SCOPE_MEMBER(name, value, digested) \
		if ((value) != NULL) \
		{ \
			appendStringInfo(&s, "%s\"%s\": ", sep, name); \
			escape_json(&s, (digested) ? ccp_digest_value(value) : (value)); \
			sep = ", "; \
		}
		ISALES_SCOPE_MEMBER("sessionId", f.session_id, true);
		ISALES_SCOPE_MEMBER("called", f.called, true);
		ISALES_SCOPE_MEMBER("customField", f.custom_field, true);
		ISALES_SCOPE_MEMBER("recycleTime", f.recycle_time, false);
#undef ISALES_SCOPE_MEMBER
		if (f.recycle_type >= 0)
		{
			appendStringInfo(&s, "%s\"recycleType\": %d", sep, f.recycle_type);
			sep = ", ";
		}
		if (f.archive_history >= 0)
			appendStringInfo(&s, "%s\"archiveHistory\": %d", sep, f.archive_history);
		appendStringInfoChar(&s, '}');
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/*
 * isales_itemless tells whether delete_calldata's params hold a filter,
 * which alone selects the call data to delete.
 */
static bool
isales_itemless(const CcpOpDef *def, const void *params)
{
	return ((const IsalesParams *) params)->filter != NULL;
}


/* ----------
 * The vendor
 * ----------
 */

static const CcpOpDef isales_ops[] = {
	{
		.name = "delete_caller_numbers",
		.items_arg = "access_codes",
		.max_batch = ISALES_CALLER_NUMBERS_MAX,
		.max_item_len = ISALES_ACCESS_CODE_MAX,
		.validate_item = isales_validate_access_code,
		.build = isales_build_caller_numbers,
		.parse = isales_parse,
		.param_keys = "vdn_id, campaign_id",
		.read_params = isales_read_params,
		.params_text = isales_params_text,
	},
	{
		.name = "delete_calldata",
		.max_batch = 1,
		.max_item_len = ISALES_CALLED_MAX,
		.validate_item = isales_validate_called,
		.build = isales_build_calldata,
		.parse = isales_parse,
		.param_keys = "vdn_id, campaign_id, archiveHistory, filter",
		.read_params = isales_read_params,
		.params_text = isales_params_text,
		.scope_text = isales_scope_text,
		.itemless = isales_itemless,
	},
};

const CcpVendor ccp_vendor_isales = {
	.name = "isales",
	.ncreds = 2,
	.cred_names = {"ak", "sk"},
	.account_cred = 0,
	.max_batch = ISALES_CALLER_NUMBERS_MAX,
	.default_rate_limit = NULL,
	.default_max_inflight = 0,
	.has_token_ttl = false,
	.build_token_request = NULL,
	.parse_token = NULL,
	.ops = isales_ops,
	.nops = lengthof(isales_ops),
};
