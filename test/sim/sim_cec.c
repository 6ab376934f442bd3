/*-------------------------------------------------------------------------
 *
 * sim_cec.c
 *	  The Huawei CEC vendor of the simulator: the tokenByAkSk token call
 *	  ("C1" auth), customer personal-data deletion and called-route deletion.
 *
 * Tokens live for the X-Token-Expire seconds they were asked for (at most
 * cec_max_token_ttl); the request log's message of a token issued says
 * "X-Token-Expire: N", or "no X-Token-Expire" when the header was absent.
 * Business calls need a live token as a Bearer and the app key in
 * X-APP-Key.  Customer numbers go to the deleted set "cec_customers", route
 * ids to "cec_routes".
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

/* Largest number of items in one business call. */
#define CEC_MAX_ITEMS	1000

/* An issued access token. */
typedef struct CecToken
{
	char		token[41];
	int64_t		expires_ms;		/* monotonic */
} CecToken;

static const char *cec_app_key = "cec-app-key";
static const char *cec_app_secret = "cec-app-secret";

static int	cec_max_token_ttl;
static struct SimSet *cec_missing_routes;

static CecToken *cec_tokens;
static int	cec_ntokens;
static int	cec_tokens_cap;
static long cec_issued;
static struct SimSet *cec_customers_set;
static struct SimSet *cec_routes_set;

/* cec_token_error answers the token call's error shape. */
static void
cec_token_error(SimRequest *req, int status, const char *code, const char *msg)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error_code", code);
	cJSON_AddStringToObject(o, "error_msg", msg);
	sim_reply(req, status, o, code, msg);
}

/* cec_ret answers {"retCode": code, "retMsg": msg}. */
static void
cec_ret(SimRequest *req, int status, const char *code, const char *msg)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "retCode", code);
	cJSON_AddStringToObject(o, "retMsg", msg);
	sim_reply(req, status, o, code, msg);
}

/* cec_route_error answers the deleteCalledRoute error shape. */
static void
cec_route_error(SimRequest *req, int status, const char *msg)
{
	cJSON	   *o = cJSON_CreateObject();
	char		code[16];

	snprintf(code, sizeof(code), "%d", status);
	cJSON_AddStringToObject(o, "returnCode", code);
	cJSON_AddStringToObject(o, "description", msg);
	sim_reply(req, status, o, code, msg);
}

/*
 * cec_token handles POST /apigovernance/api/oauth/tokenByAkSk.
 */
static SimStep
cec_token(SimRequest *req)
{
	const char *exp = sim_request_header(req, "X-Token-Expire");
	cJSON	   *body;
	cJSON	   *ak;
	cJSON	   *sk;
	cJSON	   *o;
	int			ttl = 3600;
	int			max_ttl;
	char		tok[41];
	char		buf[32];

	sim_lock();
	max_ttl = cec_max_token_ttl;
	sim_unlock();
	if (ttl > max_ttl)
		ttl = max_ttl;
	if (exp != NULL && !sim_parse_int(exp, 1, max_ttl, &ttl))
	{
		char		msg[96];

		snprintf(msg, sizeof(msg),
				 "X-Token-Expire must be an integer from 1 to %d", max_ttl);
		cec_token_error(req, 400, "APIGW.0101", msg);
		return SIM_DONE;
	}
	body = sim_parse_object(req);
	if (body == NULL)
	{
		cec_token_error(req, 400, "APIGW.0100", "the request body must be a JSON object");
		return SIM_DONE;
	}
	ak = cJSON_GetObjectItemCaseSensitive(body, "app_key");
	sk = cJSON_GetObjectItemCaseSensitive(body, "app_secret");
	if (!cJSON_IsString(ak) || !cJSON_IsString(sk) ||
		strcmp(ak->valuestring, cec_app_key) != 0 ||
		strcmp(sk->valuestring, cec_app_secret) != 0)
	{
		cJSON_Delete(body);
		sim_lock();
		sim_count_rejection(SIM_REJ_AUTH);
		sim_unlock();
		cec_token_error(req, 401, "APIGW.0301", "incorrect app_key or app_secret");
		return SIM_DONE;
	}
	cJSON_Delete(body);

	sim_random_hex(tok, 20);
	sim_lock();
	if (cec_ntokens == cec_tokens_cap)
	{
		int64_t		now = sim_mono_ms();
		int			k = 0;

		/* drop expired tokens before growing */
		for (int i = 0; i < cec_ntokens; i++)
			if (cec_tokens[i].expires_ms > now)
				cec_tokens[k++] = cec_tokens[i];
		cec_ntokens = k;
		if (cec_ntokens == cec_tokens_cap)
		{
			cec_tokens_cap = cec_tokens_cap ? cec_tokens_cap * 2 : 16;
			cec_tokens = realloc(cec_tokens, cec_tokens_cap * sizeof(CecToken));
			if (cec_tokens == NULL)
				abort();
		}
	}
	memcpy(cec_tokens[cec_ntokens].token, tok, sizeof(tok));
	cec_tokens[cec_ntokens].expires_ms = sim_mono_ms() + (int64_t) ttl * 1000;
	cec_ntokens++;
	cec_issued++;
	sim_unlock();

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "AccessToken", tok);
	cJSON_AddStringToObject(o, "ApplyType", "Bearer");
	snprintf(buf, sizeof(buf), "%lld", (long long) (sim_wall_ms() / 1000));
	cJSON_AddStringToObject(o, "CreateTime", buf);
	snprintf(buf, sizeof(buf), "%d", ttl);
	cJSON_AddStringToObject(o, "Expires", buf);
	cJSON_AddStringToObject(o, "RefreshToken", "");
	cJSON_AddStringToObject(o, "AppKey", cec_app_key);

	/* the log shows the lifetime asked for, so a test can check it */
	if (exp != NULL)
		snprintf(buf, sizeof(buf), "X-Token-Expire: %d", ttl);
	else
		snprintf(buf, sizeof(buf), "no X-Token-Expire");
	sim_reply(req, 200, o, "0", buf);
	return SIM_DONE;
}

/*
 * cec_check_auth checks the Bearer token, X-APP-Key and Content-Type of a
 * business call.  On failure it answers and returns false.
 */
static bool
cec_check_auth(SimRequest *req)
{
	const char *auth = sim_request_header(req, "Authorization");
	const char *appkey = sim_request_header(req, "X-APP-Key");
	const char *ctype = sim_request_header(req, "Content-Type");
	const char *why = NULL;

	if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0')
		why = "missing or malformed Authorization header";
	else if (appkey == NULL || strcmp(appkey, cec_app_key) != 0)
		why = "missing or unknown X-APP-Key";
	else
	{
		int64_t		now = sim_mono_ms();
		bool		found = false;
		bool		live = false;

		sim_lock();
		for (int i = cec_ntokens - 1; i >= 0; i--)
			if (strcmp(cec_tokens[i].token, auth + 7) == 0)
			{
				found = true;
				live = cec_tokens[i].expires_ms > now;
				break;
			}
		sim_unlock();
		if (!found)
			why = "invalid access token";
		else if (!live)
			why = "access token expired";
	}
	if (why)
	{
		sim_lock();
		sim_count_rejection(SIM_REJ_AUTH);
		sim_unlock();
		cec_ret(req, 401, "401", why);
		return false;
	}
	if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0)
	{
		cec_ret(req, 400, "400", "Content-Type must be application/json");
		return false;
	}
	return true;
}

/*
 * cec_customers handles POST .../clearUserInfo/cleancustpersonaldata.
 */
static SimStep
cec_customers(SimRequest *req)
{
	cJSON	   *body;
	cJSON	   *nos;
	cJSON	   *el;
	int			n;

	if (!cec_check_auth(req))
		return SIM_DONE;
	body = sim_parse_object(req);
	if (body == NULL)
	{
		cec_ret(req, 400, "400", "the request body must be a JSON object");
		return SIM_DONE;
	}
	nos = cJSON_GetObjectItemCaseSensitive(body, "customNos");
	if (!cJSON_IsArray(nos))
	{
		cJSON_Delete(body);
		cec_ret(req, 400, "400", "customNos must be an array of strings");
		return SIM_DONE;
	}
	n = cJSON_GetArraySize(nos);
	req->items = n;
	req->record_items = true;
	if (n == 0)
	{
		cJSON_Delete(body);
		cec_ret(req, 400, "400", "customNos must not be empty");
		return SIM_DONE;
	}
	if (n > CEC_MAX_ITEMS)
	{
		cJSON_Delete(body);
		sim_lock();
		sim_count_rejection(SIM_REJ_LIMIT);
		sim_unlock();
		cec_ret(req, 400, "400", "customNos holds more than 1000 numbers; at most 1000 are allowed");
		return SIM_DONE;
	}
	cJSON_ArrayForEach(el, nos)
	{
		if (!cJSON_IsString(el) || el->valuestring[0] == '\0')
		{
			cJSON_Delete(body);
			cec_ret(req, 400, "400", "every element of customNos must be a non-empty string");
			return SIM_DONE;
		}
	}
	sim_lock();
	cJSON_ArrayForEach(el, nos)
		sim_set_add(cec_customers_set, el->valuestring);
	sim_unlock();
	cJSON_Delete(body);
	cec_ret(req, 200, "0", "VerifyParams success");
	return SIM_DONE;
}

/* cec_join appends ",name" (or "name" first) to a growing buffer. */
static void
cec_join(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t		add = strlen(s) + 1;

	if (*len + add + 1 > *cap)
	{
		*cap = (*len + add + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			abort();
	}
	if (*len > 0)
		(*buf)[(*len)++] = ',';
	memcpy(*buf + *len, s, add - 1);
	*len += add - 1;
	(*buf)[*len] = '\0';
}

/*
 * cec_routes handles POST .../calledRoute/deleteCalledRoute.
 */
static SimStep
cec_routes(SimRequest *req)
{
	cJSON	   *body;
	cJSON	   *dnids;
	char	  **ids = NULL;
	bool	   *ok = NULL;
	int			n = 0;
	int			nok = 0;
	char	   *copy;
	char	   *rest;
	char	   *tok;
	struct SimSet *seen;
	char	   *lists[4] = {NULL, NULL, NULL, NULL};	/* id, name, ok, failed */
	size_t		lens[4] = {0, 0, 0, 0};
	size_t		caps[4] = {0, 0, 0, 0};
	cJSON	   *o;
	cJSON	   *data;
	const char *bad = NULL;

	if (!cec_check_auth(req))
		return SIM_DONE;
	body = sim_parse_object(req);
	dnids = body ? cJSON_GetObjectItemCaseSensitive(body, "dnids") : NULL;
	if (!cJSON_IsString(dnids) || dnids->valuestring[0] == '\0')
	{
		cJSON_Delete(body);
		cec_route_error(req, 400, "dnids must be a non-empty string of comma-separated ids");
		return SIM_DONE;
	}

	/* count ids first, so a huge list is refused before any work */
	n = 1;
	for (const char *p = dnids->valuestring; *p; p++)
		if (*p == ',')
			n++;
	req->items = n;
	req->record_items = true;
	if (n > CEC_MAX_ITEMS)
	{
		cJSON_Delete(body);
		sim_lock();
		sim_count_rejection(SIM_REJ_LIMIT);
		sim_unlock();
		cec_route_error(req, 400, "dnids holds more than 1000 ids; at most 1000 are allowed");
		return SIM_DONE;
	}
	ids = calloc(n, sizeof(char *));
	ok = calloc(n, sizeof(bool));
	copy = strdup(dnids->valuestring);
	cJSON_Delete(body);
	if (ids == NULL || ok == NULL || copy == NULL)
		abort();
	seen = sim_set_new();
	n = 0;
	rest = copy;
	while ((tok = strsep(&rest, ",")) != NULL)
	{
		if (!sim_is_digits(tok))
		{
			bad = "every id in dnids must be a non-empty string of digits";
			break;
		}
		if (sim_set_add(seen, tok))
			ids[n++] = tok;
	}
	sim_set_free(seen);
	if (bad)
	{
		cec_route_error(req, 400, bad);
		free(ids);
		free(ok);
		free(copy);
		return SIM_DONE;
	}

	sim_lock();
	for (int i = 0; i < n; i++)
	{
		ok[i] = !sim_set_contains(cec_routes_set, ids[i]) &&
			!sim_set_contains(cec_missing_routes, ids[i]);
		if (ok[i])
		{
			sim_set_add(cec_routes_set, ids[i]);
			nok++;
		}
	}
	sim_unlock();

	for (int i = 0; i < n; i++)
	{
		char		name[64];

		snprintf(name, sizeof(name), "route%s", ids[i]);
		cec_join(&lists[0], &lens[0], &caps[0], ids[i]);
		cec_join(&lists[1], &lens[1], &caps[1], name);
		cec_join(ok[i] ? &lists[2] : &lists[3], ok[i] ? &lens[2] : &lens[3],
				 ok[i] ? &caps[2] : &caps[3], name);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "returnCode", nok > 0 ? "0" : "1");
	cJSON_AddStringToObject(o, "description",
							nok > 0 ? "data delete success" : "data delete failed");
	data = cJSON_AddObjectToObject(o, "data");
	cJSON_AddStringToObject(data, "id", lists[0]);
	cJSON_AddStringToObject(data, "name", lists[1]);
	if (nok > 0 && nok < n)
	{
		size_t		len = lens[2] + lens[3] + 32;
		char	   *content = malloc(len);

		if (content == NULL)
			abort();
		snprintf(content, len, "Success:%s,Failed:%s", lists[2], lists[3]);
		cJSON_AddStringToObject(data, "content", content);
		free(content);
	}
	else
		cJSON_AddStringToObject(data, "content", lists[1]);
	sim_reply(req, 200, o, nok > 0 ? "0" : "1",
			  nok == n ? "data delete success" :
			  nok > 0 ? "data delete partly failed" : "data delete failed");
	for (int i = 0; i < 4; i++)
		free(lists[i]);
	free(ids);
	free(ok);
	free(copy);
	return SIM_DONE;
}

/* cec_init finds the deleted sets once. */
static void
cec_init(void)
{
	cec_customers_set = sim_deleted_set("cec_customers");
	cec_routes_set = sim_deleted_set("cec_routes");
}

/* cec_reset forgets every token. */
static void
cec_reset(void)
{
	cec_ntokens = 0;
	cec_issued = 0;
}

/* cec_tokens_issued returns the number of tokens handed out. */
static long
cec_tokens_issued(void)
{
	return cec_issued;
}

/* cec_expire_tokens makes every token issued so far expired. */
static void
cec_expire_tokens(void)
{
	int64_t		now = sim_mono_ms();

	for (int i = 0; i < cec_ntokens; i++)
		cec_tokens[i].expires_ms = now;
}

/*
 * cec_chaos_sample returns the text of a successful answer of route, for
 * chaos mode to mangle.  Its token is not a live one.
 */
static const char *
cec_chaos_sample(const SimRoute *route)
{
	if (strcmp(route->endpoint, "cec_token") == 0)
		return "{\"AccessToken\":\"c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05\","
			"\"ApplyType\":\"Bearer\",\"CreateTime\":\"1700000000\","
			"\"Expires\":\"3600\",\"RefreshToken\":\"\",\"AppKey\":\"cec-app-key\"}";
	if (strcmp(route->endpoint, "cec_routes") == 0)
		return "{\"returnCode\":\"0\",\"description\":\"data delete success\","
			"\"data\":{\"id\":\"1\",\"name\":\"route1\",\"content\":\"route1\"}}";
	return "{\"retCode\":\"0\",\"retMsg\":\"VerifyParams success\"}";
}

static const SimRoute cec_routes_table[] = {
	{"POST", "/apigovernance/api/oauth/tokenByAkSk", "cec_token", cec_token, 0},
	{"POST", "/apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata",
	"cec_customers", cec_customers, SIM_ROUTE_ITEMS},
	{"POST", "/apiaccess/rest/cc-management/v1/calledRoute/deleteCalledRoute",
	"cec_routes", cec_routes, SIM_ROUTE_ITEMS},
};

static const char *const cec_sets[] = {"cec_customers", "cec_routes", NULL};

static const SimConfItem cec_config[] = {
	{"cec_max_token_ttl", SIM_CONF_INT, &cec_max_token_ttl, 1, 86400, 3600, NULL},
	{"cec_missing_routes", SIM_CONF_SET, &cec_missing_routes, 0, 0, 0, NULL},
};

static const SimCredOption cec_creds[] = {
	{"cec-app-key", &cec_app_key},
	{"cec-app-secret", &cec_app_secret},
};

const SimVendor sim_vendor_cec = {
	.name = "cec",
	.routes = cec_routes_table,
	.nroutes = sizeof(cec_routes_table) / sizeof(cec_routes_table[0]),
	.sets = cec_sets,
	.config = cec_config,
	.nconfig = sizeof(cec_config) / sizeof(cec_config[0]),
	.reports_inflight = false,
	.creds = cec_creds,
	.ncreds = sizeof(cec_creds) / sizeof(cec_creds[0]),
	.init = cec_init,
	.reset = cec_reset,
	.tokens_issued = cec_tokens_issued,
	.expire_tokens = cec_expire_tokens,
	.control = NULL,
	.chaos_sample = cec_chaos_sample,
};
