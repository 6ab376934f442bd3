/*-------------------------------------------------------------------------
 *
 * sim_ozonetel.c
 *	  The Ozonetel CCaaS vendor of the simulator: token generation (at most
 *	  oz_max_tokens_per_hour an hour, each new token invalidating the last)
 *	  and DeleteBulkData, with its sliding-window rate limit and its "one
 *	  request at a time" rule.
 *
 * An accepted DeleteBulkData request holds the account's processing slot
 * for oz_processing_ms plus any delay fault; a request that arrives in the
 * meantime is refused.  Every deleted "phone|campaign" pair goes to the
 * set "ozonetel".
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Largest number of phone numbers, or of campaign names, per request. */
#define OZ_MAX_ITEMS	100

/* Timestamps of recent events, oldest first, for a sliding window. */
typedef struct OzWindow
{
	int64_t    *t;
	int			start;
	int			count;
	int			cap;
} OzWindow;

/* The simulated account. */
typedef struct OzAccount
{
	char		token[512];		/* the only valid token; "" if none */
	int64_t		token_expires_ms;	/* monotonic */
	OzWindow	tokens;			/* when tokens were issued */
	OzWindow	accepted;		/* when deletes were accepted */
	int			inflight;		/* accepted deletes being processed */
} OzAccount;

/* What an accepted delete carries from its first stage to its second. */
typedef struct OzWork
{
	int			nphones;
	int			ncampaigns;
	char		data[];			/* phones, then campaigns, NUL-separated */
} OzWork;

static const char *oz_user = "acme";
static const char *oz_api_key = "oz-api-key";

static int	oz_rate_limit;
static int	oz_window_ms;
static int	oz_token_ttl_s;
static int	oz_max_tokens_per_hour;
static int	oz_processing_ms;
static char oz_success_spelling[32];

static OzAccount oz_account;
static long oz_issued;
static struct SimSet *oz_set;

/* oz_window_prune drops the events of w older than now - span_ms. */
static void
oz_window_prune(OzWindow *w, int64_t now, int64_t span_ms)
{
	while (w->count > 0 && w->t[w->start] <= now - span_ms)
	{
		w->start = (w->start + 1) % w->cap;
		w->count--;
	}
}

/* oz_window_push records an event at now. */
static void
oz_window_push(OzWindow *w, int64_t now)
{
	if (w->count == w->cap)
	{
		int			cap = w->cap ? w->cap * 2 : 16;
		int64_t    *t = malloc(cap * sizeof(int64_t));

		if (t == NULL)
			abort();
		for (int i = 0; i < w->count; i++)
			t[i] = w->t[(w->start + i) % w->cap];
		free(w->t);
		w->t = t;
		w->start = 0;
		w->cap = cap;
	}
	w->t[(w->start + w->count++) % w->cap] = now;
}

/* oz_status answers {"status": status, "message": message[, "data": null]}. */
static void
oz_status(SimRequest *req, int http, const char *status, const char *message,
		  bool with_data)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "message", message);
	if (with_data)
		cJSON_AddNullToObject(o, "data");
	sim_reply(req, http, o, status, message);
}

/* oz_b64url appends the unpadded base64url encoding of s to out. */
static void
oz_b64url(const char *s, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		len = strlen(s);
	char	   *p = out + strlen(out);

	for (size_t i = 0; i < len; i += 3)
	{
		unsigned int v = (unsigned char) s[i] << 16;

		if (i + 1 < len)
			v |= (unsigned char) s[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char) s[i + 2];
		*p++ = tab[(v >> 18) & 63];
		*p++ = tab[(v >> 12) & 63];
		if (i + 1 < len)
			*p++ = tab[(v >> 6) & 63];
		if (i + 2 < len)
			*p++ = tab[v & 63];
	}
	*p = '\0';
}

/*
 * oz_token handles POST /ca_apis/CAToken/generateToken.
 */
static SimStep
oz_token(SimRequest *req)
{
	const char *key = sim_request_header(req, "apiKey");
	cJSON	   *body = sim_parse_object(req);
	cJSON	   *user = body ? cJSON_GetObjectItemCaseSensitive(body, "userName") : NULL;
	bool		ok;
	char		payload[256];
	char		jti[33];
	char		sig[65];
	char		token[512];
	int64_t		now = sim_mono_ms();
	int64_t		wall_s = sim_wall_ms() / 1000;
	cJSON	   *o;

	ok = key != NULL && strcmp(key, oz_api_key) == 0 && cJSON_IsString(user) &&
		strcmp(user->valuestring, oz_user) == 0;
	cJSON_Delete(body);
	if (!ok)
	{
		sim_lock();
		sim_count_rejection(SIM_REJ_AUTH);
		sim_unlock();
		oz_status(req, 401, "false", "Invalid User Details", true);
		return SIM_DONE;
	}

	sim_lock();
	oz_window_prune(&oz_account.tokens, now, 3600 * 1000);
	if (oz_account.tokens.count >= oz_max_tokens_per_hour)
	{
		sim_count_rejection(SIM_REJ_RATE);
		sim_unlock();
		oz_status(req, 429, "false", "Token generation limit exceeded", true);
		return SIM_DONE;
	}
	sim_random_hex(jti, 16);
	sim_random_hex(sig, 32);
	snprintf(payload, sizeof(payload),
			 "{\"sub\":\"%.64s\",\"exp\":%lld,\"iat\":%lld,\"jti\":\"%s\"}",
			 oz_user, (long long) (wall_s + oz_token_ttl_s), (long long) wall_s, jti);
	snprintf(token, sizeof(token), "eyJhbGciOiJIUzUxMiJ9.");
	oz_b64url(payload, token);
	strcat(token, ".");
	strcat(token, sig);
	oz_window_push(&oz_account.tokens, now);
	memcpy(oz_account.token, token, sizeof(token));
	oz_account.token_expires_ms = now + (int64_t) oz_token_ttl_s * 1000;
	oz_issued++;
	sim_unlock();

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "token", token);
	cJSON_AddStringToObject(o, "message", "");
	sim_reply(req, 200, o, "true", NULL);
	return SIM_DONE;
}

/*
 * oz_check_auth checks the Bearer token and apiKey of a delete.  On failure
 * it answers 401, counts an auth rejection and returns false.
 */
static bool
oz_check_auth(SimRequest *req)
{
	const char *auth = sim_request_header(req, "Authorization");
	const char *key = sim_request_header(req, "apiKey");
	const char *why = NULL;

	if (auth == NULL || auth[0] == '\0' ||
		(strncmp(auth, "Bearer", 6) == 0 && auth[6 + strspn(auth + 6, " ")] == '\0'))
		why = "Token Should Not be Null or Empty.";
	else if (strncmp(auth, "Bearer ", 7) != 0)
		why = "Invalid Token";
	else
	{
		sim_lock();
		if (oz_account.token[0] == '\0' || strcmp(auth + 7, oz_account.token) != 0)
			why = "Invalid Token";
		else if (oz_account.token_expires_ms <= sim_mono_ms())
			why = "Token Expired";
		sim_unlock();
	}
	if (why == NULL && (key == NULL || strcmp(key, oz_api_key) != 0))
		why = "Invalid Token";
	if (why)
	{
		sim_lock();
		sim_count_rejection(SIM_REJ_AUTH);
		sim_unlock();
		oz_status(req, 401, "false", why, true);
		return false;
	}
	return true;
}

/*
 * oz_parse_delete validates a DeleteBulkData body.  On success it returns
 * the work to do (malloc'd) and NULL message; else NULL and the answer's
 * status and message, *limit telling whether a count limit was hit.
 */
static OzWork *
oz_parse_delete(SimRequest *req, cJSON *body, const char **status,
				const char **message, bool *limit)
{
	cJSON	   *user = body ? cJSON_GetObjectItemCaseSensitive(body, "userName") : NULL;
	cJSON	   *phones = body ? cJSON_GetObjectItemCaseSensitive(body, "phoneNumber") : NULL;
	cJSON	   *camps = body ? cJSON_GetObjectItemCaseSensitive(body, "campaignName") : NULL;
	cJSON	   *el;
	int			np;
	int			nc;
	size_t		size = 0;
	OzWork	   *work;
	char	   *p;

	*limit = false;
	*status = "false";
	if (!cJSON_IsString(user) || user->valuestring[0] == '\0')
	{
		*message = "Username Should Not be Null or Empty.";
		return NULL;
	}
	if (strcmp(user->valuestring, oz_user) != 0)
	{
		*message = "Invalid User Details";
		return NULL;
	}
	*status = "Error";
	np = cJSON_IsArray(phones) ? cJSON_GetArraySize(phones) : 0;
	req->items = np;
	if (np == 0)
	{
		*message = "PhoneNumbers should not be null are empty";
		return NULL;
	}
	cJSON_ArrayForEach(el, phones)
	{
		if (!cJSON_IsNumber(el) || el->valuedouble < 0 || el->valuedouble > 1e15 ||
			el->valuedouble != (double) (long long) el->valuedouble)
		{
			*message = "PhoneNumbers should not be null are empty";
			return NULL;
		}
		size += 17;
	}
	nc = cJSON_IsArray(camps) ? cJSON_GetArraySize(camps) : 0;
	if (nc == 0)
	{
		*message = "Campaign should not be null are empty";
		return NULL;
	}
	cJSON_ArrayForEach(el, camps)
	{
		if (!cJSON_IsString(el) || el->valuestring[0] == '\0')
		{
			*message = "Passed campaign are invalid";
			return NULL;
		}
		size += strlen(el->valuestring) + 1;
	}
	if (np > OZ_MAX_ITEMS || nc > OZ_MAX_ITEMS)
	{
		*limit = true;
		*message = "A maximum of 100 phone numbers or 100 campaign names will be accepted";
		return NULL;
	}
	work = malloc(sizeof(OzWork) + size);
	if (work == NULL)
		abort();
	work->nphones = np;
	work->ncampaigns = nc;
	p = work->data;
	cJSON_ArrayForEach(el, phones)
		p += sprintf(p, "%lld", (long long) el->valuedouble) + 1;
	cJSON_ArrayForEach(el, camps)
		p += sprintf(p, "%s", el->valuestring) + 1;
	*message = NULL;
	return work;
}

/*
 * oz_delete_finish records the pairs of an accepted delete, frees its
 * processing slot and answers success.
 */
static void
oz_delete_finish(SimRequest *req)
{
	OzWork	   *work = req->vstate;
	char		status[32];
	const char *camps = work->data;
	cJSON	   *o;

	for (int i = 0; i < work->nphones; i++)
		camps += strlen(camps) + 1;
	sim_lock();
	{
		const char *ph = work->data;

		for (int i = 0; i < work->nphones; i++)
		{
			const char *c = camps;

			for (int j = 0; j < work->ncampaigns; j++)
			{
				char	   *pair = malloc(strlen(ph) + strlen(c) + 2);

				if (pair == NULL)
					abort();
				sprintf(pair, "%s|%s", ph, c);
				sim_set_add(oz_set, pair);
				free(pair);
				c += strlen(c) + 1;
			}
			ph += strlen(ph) + 1;
		}
	}
	oz_account.inflight--;
	memcpy(status, oz_success_spelling, sizeof(status));
	sim_unlock();
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "message", "Data deleted successfully");
	sim_reply(req, 200, o, status, "Data deleted successfully");
}

/*
 * oz_delete handles DELETE /ca_apis/DeleteBulkData.  Stage 0 checks and
 * admits the request; stage 1, after the processing time, deletes.
 */
static SimStep
oz_delete(SimRequest *req)
{
	cJSON	   *body;
	OzWork	   *work;
	const char *status;
	const char *message;
	bool		limit;
	int			wait_ms;
	int64_t		now;

	if (req->stage == 1)
	{
		oz_delete_finish(req);
		return SIM_DONE;
	}
	if (!oz_check_auth(req))
		return SIM_DONE;
	body = sim_parse_object(req);
	work = oz_parse_delete(req, body, &status, &message, &limit);
	cJSON_Delete(body);
	if (work == NULL)
	{
		req->record_items = req->items > 0;
		if (limit)
		{
			sim_lock();
			sim_count_rejection(SIM_REJ_LIMIT);
			sim_unlock();
		}
		oz_status(req, 200, status, message, strcmp(status, "false") == 0);
		return SIM_DONE;
	}

	now = sim_mono_ms();
	sim_lock();
	oz_window_prune(&oz_account.accepted, now, oz_window_ms);
	if (oz_account.inflight > 0)
	{
		sim_count_rejection(SIM_REJ_INFLIGHT);
		message = "Previous request is still being processed";
	}
	else if (oz_account.accepted.count >= oz_rate_limit)
	{
		sim_count_rejection(SIM_REJ_RATE);
		message = "Max limit exceeded";
	}
	else
	{
		oz_window_push(&oz_account.accepted, now);
		oz_account.inflight++;
	}
	wait_ms = oz_processing_ms + req->delay_ms;
	sim_unlock();
	if (message)
	{
		free(work);
		oz_status(req, 200, "Error", message, false);
		return SIM_DONE;
	}
	req->record_items = true;
	req->vstate = work;
	req->stage = 1;
	req->delay_ms = 0;
	if (wait_ms > 0)
	{
		req->wake_at_ms = now + wait_ms;
		return SIM_WAIT;
	}
	oz_delete_finish(req);
	return SIM_DONE;
}

/* oz_init finds the deleted set once. */
static void
oz_init(void)
{
	oz_set = sim_deleted_set("ozonetel");
}

/*
 * oz_reset forgets tokens and windows.  The processing slot is left alone:
 * a request being processed still releases it when it ends.
 */
static void
oz_reset(void)
{
	oz_account.token[0] = '\0';
	oz_account.token_expires_ms = 0;
	oz_account.tokens.count = 0;
	oz_account.accepted.count = 0;
	oz_issued = 0;
}

/* oz_tokens_issued returns the number of tokens handed out. */
static long
oz_tokens_issued(void)
{
	return oz_issued;
}

/* oz_expire_tokens makes the current token expired. */
static void
oz_expire_tokens(void)
{
	if (oz_account.token[0] != '\0')
		oz_account.token_expires_ms = sim_mono_ms();
}

/*
 * oz_chaos_sample returns the text of a successful answer of route, for
 * chaos mode to mangle.  Its token is not a live one.
 */
static const char *
oz_chaos_sample(const SimRoute *route)
{
	if (strcmp(route->endpoint, "oz_token") == 0)
		return "{\"token\":\"eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJjaGFvcyJ9.c4a05\","
			"\"message\":\"\"}";
	return "{\"status\":\"true\",\"message\":\"Data deleted successfully\"}";
}

static const SimRoute oz_routes[] = {
	{"POST", "/ca_apis/CAToken/generateToken", "oz_token", oz_token, 0},
	{"DELETE", "/ca_apis/DeleteBulkData", "oz_delete", oz_delete,
	SIM_ROUTE_ITEMS | SIM_ROUTE_INFLIGHT | SIM_ROUTE_OWN_DELAY},
};

static const char *const oz_sets[] = {"ozonetel", NULL};

static const SimConfItem oz_config[] = {
	{"oz_rate_limit", SIM_CONF_INT, &oz_rate_limit, 1, 10000000, 2, NULL},
	{"oz_window_ms", SIM_CONF_INT, &oz_window_ms, 1, 86400000, 60000, NULL},
	{"oz_token_ttl_s", SIM_CONF_INT, &oz_token_ttl_s, 1, 86400 * 365, 3600, NULL},
	{"oz_max_tokens_per_hour", SIM_CONF_INT, &oz_max_tokens_per_hour, 0, 10000000, 10, NULL},
	{"oz_processing_ms", SIM_CONF_INT, &oz_processing_ms, 0, 600000, 0, NULL},
	{"oz_success_spelling", SIM_CONF_STRING, oz_success_spelling, 0, 0, 0, "true"},
};

static const SimCredOption oz_creds[] = {
	{"oz-user", &oz_user},
	{"oz-api-key", &oz_api_key},
};

const SimVendor sim_vendor_ozonetel = {
	.name = "ozonetel",
	.routes = oz_routes,
	.nroutes = sizeof(oz_routes) / sizeof(oz_routes[0]),
	.sets = oz_sets,
	.config = oz_config,
	.nconfig = sizeof(oz_config) / sizeof(oz_config[0]),
	.reports_inflight = true,
	.creds = oz_creds,
	.ncreds = sizeof(oz_creds) / sizeof(oz_creds[0]),
	.init = oz_init,
	.reset = oz_reset,
	.tokens_issued = oz_tokens_issued,
	.expire_tokens = oz_expire_tokens,
	.control = NULL,
	.chaos_sample = oz_chaos_sample,
};
