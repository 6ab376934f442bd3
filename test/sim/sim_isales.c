/*-------------------------------------------------------------------------
 *
 * sim_isales.c
 *	  The Huawei CC-iSales vendor of the simulator: verification of "C2"
 *	  signed requests, deletion of a campaign's calling numbers and
 *	  deletion of outbound call data, plus the control calls that seed
 *	  campaigns (/_sim/isales/callers and /_sim/isales/calldata).
 *
 * Every failure but a failed signature is HTTP 200 with the vendor's code
 * in resultCode and returnCode; a failed signature is HTTP 401.  Deleted
 * calling numbers go to the set "isales_caller_numbers" as
 * "vdn/campaign/accessCode", deleted call data to "isales_calldata" as
 * "vdn/campaign/<sessionId or called>".
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sim.h"

/* Largest number of calling numbers in one request. */
#define IS_MAX_CALLERS	100

#define IS_OK			"0200000"
#define IS_PARAM		"0200001"
#define IS_NO_CAMPAIGN	"0200007"
#define IS_STATE		"0200028"
#define IS_TIME			"0200030"
#define IS_EMPTY		"02000001"
#define IS_BAD_CHARS	"02000002"
#define IS_TOO_LONG		"02000003"
#define IS_BAD_TYPE		"02000006"
#define IS_BAD_VALUE	"02000007"
#define IS_COMBINATION	"02000009"
#define IS_TOO_MANY		"02000011"

/* One seeded call-data record; NULL members were not given. */
typedef struct IsRecord
{
	char	   *session_id;
	char	   *called;
	char	   *custom_field;
	char	   *recycle_time;
} IsRecord;

/* What the control calls seeded for one campaign. */
typedef struct IsCampaign
{
	struct IsCampaign *next;
	int			vdn;
	int			campaign;
	struct SimSet *numbers;		/* NULL: calling numbers never seeded */
	IsRecord   *records;
	int			nrecords;
} IsCampaign;

/* A parsed call-data filter. */
typedef struct IsFilter
{
	const char *session_id;
	const char *called;
	const char *custom_field;
	const char *recycle_time;
	int			recycle_type;	/* 0: not given */
} IsFilter;

static const char *is_ak = "isales-ak";
static const char *is_sk = "isales-sk";

static int	is_max_skew_s;
static struct SimSet *is_missing_campaigns;
static struct SimSet *is_running_campaigns;

static IsCampaign *is_campaigns;
static struct SimSet *is_callers_set;
static struct SimSet *is_calldata_set;

/* is_result answers with the vendor's result shape; count < 0 omits it. */
static void
is_result(SimRequest *req, const char *code, const char *desc, long count)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "resultCode", code);
	cJSON_AddStringToObject(o, "resultDesc", desc);
	cJSON_AddStringToObject(o, "returnCode", code);
	cJSON_AddStringToObject(o, "returnDesc", desc);
	if (count >= 0)
		cJSON_AddNumberToObject(o, "successCount", count);
	sim_reply(req, 200, o, code, desc);
}

/* ------------------------------------------------------------- signing */

/*
 * is_encode percent-encodes len bytes of s as N() does: every byte but
 * A-Z a-z 0-9 - . _ ~ becomes %XX.  Returns a malloc'd string.
 */
static char *
is_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char	   *out = malloc(len * 3 + 1);
	char	   *p = out;

	if (out == NULL)
		abort();
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~')
			*p++ = (char) c;
		else
		{
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

/* is_unhex returns the value of hex digit c, or -1. */
static int
is_unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * is_decode percent-decodes len bytes of s into out (which holds
 * len + 1 bytes) and returns the decoded length.
 */
static size_t
is_decode(const char *s, size_t len, char *out)
{
	size_t		k = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len && is_unhex(s[i + 1]) >= 0 &&
			is_unhex(s[i + 2]) >= 0)
		{
			out[k++] = (char) (is_unhex(s[i + 1]) * 16 + is_unhex(s[i + 2]));
			i += 2;
		}
		else
			out[k++] = s[i];
	}
	out[k] = '\0';
	return k;
}

/* is_strcmp_p compares two char * for qsort. */
static int
is_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * is_canonical_query builds the canonical query line from a raw query:
 * each k=v decoded, N()-encoded, sorted and joined with "&".  Returns a
 * malloc'd string, or NULL when there is no query.
 */
static char *
is_canonical_query(const char *query)
{
	char	  **parts;
	int			n = 0;
	size_t		total = 1;
	char	   *out;
	const char *p = query;

	if (query == NULL || *query == '\0')
		return NULL;
	parts = calloc(strlen(query) + 1, sizeof(char *));
	if (parts == NULL)
		abort();
	while (*p)
	{
		const char *end = strchr(p, '&');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		if (len > 0)
		{
			const char *eq = memchr(p, '=', len);
			size_t		klen = eq ? (size_t) (eq - p) : len;
			size_t		vlen = eq ? len - klen - 1 : 0;
			char	   *k = malloc(klen + 1);
			char	   *v = malloc(vlen + 1);
			char	   *ek;
			char	   *ev;
			size_t		dk;
			size_t		dv;

			if (k == NULL || v == NULL)
				abort();
			dk = is_decode(p, klen, k);
			dv = is_decode(eq ? eq + 1 : "", vlen, v);
			ek = is_encode(k, dk);
			ev = is_encode(v, dv);
			parts[n] = malloc(strlen(ek) + strlen(ev) + 2);
			if (parts[n] == NULL)
				abort();
			sprintf(parts[n], "%s=%s", ek, ev);
			total += strlen(parts[n]) + 1;
			n++;
			free(k);
			free(v);
			free(ek);
			free(ev);
		}
		p = end ? end + 1 : p + len;
	}
	if (n == 0)
	{
		free(parts);
		return NULL;
	}
	qsort(parts, n, sizeof(char *), is_strcmp_p);
	out = malloc(total);
	if (out == NULL)
		abort();
	out[0] = '\0';
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			strcat(out, "&");
		strcat(out, parts[i]);
		free(parts[i]);
	}
	free(parts);
	return out;
}

/* is_hmac_hex writes lower-hex HMAC-SHA256(key, msg) to out[65]. */
static void
is_hmac_hex(const char *key, size_t keylen, const char *msg, size_t msglen,
			char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) msg, msglen,
		 mac, &maclen);
	for (unsigned int i = 0; i < maclen; i++)
	{
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[2 * maclen] = '\0';
}

/*
 * is_parse_ts parses yyyy-MM-ddTHH:mm:ssZ or yyyy-MM-ddTHH:mm:ss.SSSZ as
 * UTC into *out (epoch seconds).
 */
static bool
is_parse_ts(const char *ts, time_t *out)
{
	static const char shape20[] = "dddd-dd-ddTdd:dd:ddZ";
	static const char shape24[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t		len = strlen(ts);
	const char *shape = len == 20 ? shape20 : len == 24 ? shape24 : NULL;
	struct tm	tm;
	struct tm	back;
	time_t		t;

	if (shape == NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != shape[i])
			return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(ts) - 1900;
	tm.tm_mon = atoi(ts + 5) - 1;
	tm.tm_mday = atoi(ts + 8);
	tm.tm_hour = atoi(ts + 11);
	tm.tm_min = atoi(ts + 14);
	tm.tm_sec = atoi(ts + 17);
	t = timegm(&tm);
	if (t == (time_t) -1 || gmtime_r(&t, &back) == NULL ||
		back.tm_mday != atoi(ts + 8) || back.tm_mon != atoi(ts + 5) - 1 ||
		back.tm_hour != atoi(ts + 11) || back.tm_min != atoi(ts + 14) ||
		back.tm_sec != atoi(ts + 17))
		return false;
	*out = t;
	return true;
}

/*
 * is_check_sh says whether SH is a list of lower-case header names,
 * sorted, without repeats, joined with ";", naming host and content-type
 * (and content-length when there is a body).
 */
static const char *
is_check_sh(const char *sh, bool has_body)
{
	char	   *copy = strdup(sh);
	char	   *rest = copy;
	char	   *name;
	char	   *prev = NULL;
	bool		host = false;
	bool		ctype = false;
	bool		clen = false;
	const char *why = NULL;

	if (copy == NULL)
		abort();
	while (why == NULL && (name = strsep(&rest, ";")) != NULL)
	{
		if (*name == '\0')
			why = "empty header name in the signed header list";
		for (const char *c = name; why == NULL && *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
				why = "signed header names must be lower case";
		if (why == NULL && prev != NULL && strcmp(prev, name) >= 0)
			why = "signed header names must be sorted and unique";
		host |= strcmp(name, "host") == 0;
		ctype |= strcmp(name, "content-type") == 0;
		clen |= strcmp(name, "content-length") == 0;
		prev = name;
	}
	if (why == NULL && (!host || !ctype || (has_body && !clen)))
		why = "host, content-type and content-length must be signed";
	free(copy);
	return why;
}

/*
 * is_verify checks the C2 signature of req.  On failure it answers 401,
 * counts an auth rejection and returns false; the log gets the reason.
 */
static bool
is_verify(SimRequest *req)
{
	const char *auth = sim_request_header(req, "Authorization");
	const char *why = NULL;
	char	   *copy = NULL;
	char	   *part[5];
	int			nparts = 0;
	time_t		ts;
	int			skew;
	char	   *canon = NULL;

	if (auth == NULL || strncmp(auth, "auth-v2/", 8) != 0)
		why = "missing or malformed Authorization header";
	else
	{
		char	   *rest;
		char	   *tok;

		copy = strdup(auth);
		rest = copy;
		while ((tok = strsep(&rest, "/")) != NULL)
		{
			if (nparts == 5)
			{
				nparts++;
				break;
			}
			part[nparts++] = tok;
		}
		if (nparts != 5 || part[1][0] == '\0' || part[4][0] == '\0')
			why = "malformed Authorization header";
	}
	if (why == NULL && strcmp(part[1], is_ak) != 0)
		why = "unknown access key";
	if (why == NULL && !is_parse_ts(part[2], &ts))
		why = "malformed timestamp";
	if (why == NULL)
	{
		time_t		now = (time_t) (sim_wall_ms() / 1000);

		sim_lock();
		skew = is_max_skew_s;
		sim_unlock();
		if (ts > now + skew || ts < now - skew)
			why = "timestamp too far from the server's clock";
	}
	if (why == NULL)
		why = is_check_sh(part[3], req->body_len > 0);
	if (why == NULL)
	{
		const char *cl = sim_request_header(req, "Content-Length");
		char		want[32];

		snprintf(want, sizeof(want), "%zu", req->body_len);
		if (cl != NULL ? strcmp(cl, want) != 0 : req->body_len > 0)
			why = "Content-Length does not match the body";
	}
	if (why == NULL)
	{
		char	   *sh = strdup(part[3]);
		char	   *rest = sh;
		char	   *name;
		char	   *query = is_canonical_query(req->query);
		char	   *body = req->body_len > 0 ? is_encode(req->body, req->body_len) : NULL;
		size_t		cap = strlen(req->method) + strlen(req->path) + strlen(part[3]) +
			(query ? strlen(query) : 0) + (body ? strlen(body) : 0) + 16;
		size_t		len = 0;

		canon = malloc(cap);
		if (canon == NULL || sh == NULL)
			abort();
		len = snprintf(canon, cap, "%s\n%s\n", req->method, req->path);
		if (query)
			len += snprintf(canon + len, cap - len, "%s\n", query);
		len += snprintf(canon + len, cap - len, "%s\n", part[3]);
		while ((name = strsep(&rest, ";")) != NULL)
		{
			const char *value = sim_request_header(req, name);
			char	   *en;
			char	   *ev;
			size_t		need;

			if (value == NULL)
			{
				why = "a signed header is missing";
				break;
			}
			en = is_encode(name, strlen(name));
			ev = is_encode(value, strlen(value));
			need = len + strlen(en) + strlen(ev) + 3 + (body ? strlen(body) : 0) + 2;
			if (need > cap)
			{
				cap = need * 2;
				canon = realloc(canon, cap);
				if (canon == NULL)
					abort();
			}
			len += snprintf(canon + len, cap - len, "%s%s:%s",
							name == sh ? "" : "\n", en, ev);
			free(en);
			free(ev);
		}
		if (why == NULL)
		{
			char		signkey[65];
			char		sig[65];
			char	   *prefix = malloc(strlen(auth));

			if (prefix == NULL)
				abort();
			len += snprintf(canon + len, cap - len, "\n%s", body ? body : "");
			/* prefix is the Authorization value without "/<sig>" */
			snprintf(prefix, strlen(auth), "auth-v2/%s/%s/%s", part[1], part[2], part[3]);
			is_hmac_hex(is_sk, strlen(is_sk), prefix, strlen(prefix), signkey);
			is_hmac_hex(signkey, 64, canon, len, sig);
			if (strlen(part[4]) != 64 || CRYPTO_memcmp(sig, part[4], 64) != 0)
				why = "signature mismatch";
			free(prefix);
		}
		free(sh);
		free(query);
		free(body);
	}
	free(canon);
	free(copy);
	if (why)
	{
		cJSON	   *o = cJSON_CreateObject();

		sim_lock();
		sim_count_rejection(SIM_REJ_AUTH);
		sim_unlock();
		cJSON_AddStringToObject(o, "resultCode", "0200401");
		cJSON_AddStringToObject(o, "resultDesc", "signature verification failed");
		cJSON_AddStringToObject(o, "returnCode", "0200401");
		cJSON_AddStringToObject(o, "returnDesc", "signature verification failed");
		sim_reply(req, 401, o, "0200401", why);
		return false;
	}
	return true;
}

/*
 * is_check_common verifies the signature and Content-Type and parses the
 * vdnId and campaignId path segments.  On failure it answers and returns
 * false.
 */
static bool
is_check_common(SimRequest *req, int *vdn, int *campaign)
{
	const char *ctype;

	if (!is_verify(req))
		return false;
	ctype = sim_request_header(req, "Content-Type");
	if (ctype == NULL || strcasecmp(ctype, "application/json; charset=UTF-8") != 0)
	{
		is_result(req, IS_PARAM, "Content-Type must be application/json; charset=UTF-8", -1);
		return false;
	}
	if (!sim_parse_int(req->seg[0], 1, 9999, vdn))
	{
		is_result(req, IS_PARAM, "vdnId must be an integer from 1 to 9999", -1);
		return false;
	}
	if (!sim_parse_int(req->seg[1], 0, 999999999, campaign))
	{
		is_result(req, IS_PARAM, "campaignId must be an integer", -1);
		return false;
	}
	return true;
}

/* is_campaign_text writes a campaign id as the configuration sets hold it. */
static void
is_campaign_text(int campaign, char *buf, size_t len)
{
	snprintf(buf, len, "%d", campaign);
}

/* is_find returns the seeded campaign, creating it if create is true. */
static IsCampaign *
is_find(int vdn, int campaign, bool create)
{
	IsCampaign *c;

	for (c = is_campaigns; c; c = c->next)
		if (c->vdn == vdn && c->campaign == campaign)
			return c;
	if (!create)
		return NULL;
	c = calloc(1, sizeof(IsCampaign));
	if (c == NULL)
		abort();
	c->vdn = vdn;
	c->campaign = campaign;
	c->next = is_campaigns;
	is_campaigns = c;
	return c;
}

/* ---------------------------------------------------- calling numbers */

/*
 * is_callers handles DELETE /rest/isales/v1/openapi/campaigns/{vdnId}/
 * callerNo/{campaignId}.
 */
static SimStep
is_callers(SimRequest *req)
{
	int			vdn;
	int			campaign;
	char		ctext[16];
	cJSON	   *body;
	cJSON	   *list;
	cJSON	   *el;
	int			n;
	const char **codes;
	int			ncodes = 0;
	struct SimSet *seen;
	const char *fail_code = NULL;
	const char *fail_desc = NULL;
	IsCampaign *c;
	char		desc[64];

	if (!is_check_common(req, &vdn, &campaign))
		return SIM_DONE;
	is_campaign_text(campaign, ctext, sizeof(ctext));
	sim_lock();
	if (sim_set_contains(is_missing_campaigns, ctext))
		fail_code = IS_NO_CAMPAIGN;
	sim_unlock();
	if (fail_code)
	{
		is_result(req, IS_NO_CAMPAIGN, "campaign does not exist", -1);
		return SIM_DONE;
	}
	body = sim_parse_object(req);
	if (body == NULL && req->body_len > 0)
	{
		is_result(req, IS_PARAM, "the request body must be a JSON object", -1);
		return SIM_DONE;
	}
	list = body ? cJSON_GetObjectItemCaseSensitive(body, "callerNo") : NULL;
	if (list == NULL || cJSON_IsNull(list))
	{
		cJSON_Delete(body);
		is_result(req, IS_EMPTY, "callerNo is empty", -1);
		return SIM_DONE;
	}
	if (!cJSON_IsArray(list))
	{
		cJSON_Delete(body);
		is_result(req, IS_BAD_TYPE, "callerNo must be a list", -1);
		return SIM_DONE;
	}
	n = cJSON_GetArraySize(list);
	req->items = n;
	req->record_items = true;
	if (n == 0)
	{
		cJSON_Delete(body);
		is_result(req, IS_EMPTY, "callerNo is empty", -1);
		return SIM_DONE;
	}
	if (n > IS_MAX_CALLERS)
	{
		cJSON_Delete(body);
		sim_lock();
		sim_count_rejection(SIM_REJ_LIMIT);
		sim_unlock();
		is_result(req, IS_TOO_MANY, "callerNo holds more than 100 numbers", -1);
		return SIM_DONE;
	}
	codes = calloc(n, sizeof(char *));
	seen = sim_set_new();
	if (codes == NULL)
		abort();
	cJSON_ArrayForEach(el, list)
	{
		cJSON	   *ac = cJSON_IsObject(el) ?
			cJSON_GetObjectItemCaseSensitive(el, "accessCode") : NULL;

		if (!cJSON_IsObject(el) || (ac != NULL && !cJSON_IsString(ac) && !cJSON_IsNull(ac)))
		{
			fail_code = IS_BAD_TYPE;
			fail_desc = "accessCode must be a string";
			break;
		}
		if (ac == NULL || cJSON_IsNull(ac) || ac->valuestring[0] == '\0')
		{
			fail_code = IS_EMPTY;
			fail_desc = "accessCode is empty";
			break;
		}
		if (sim_set_add(seen, ac->valuestring))
			codes[ncodes++] = ac->valuestring;
	}
	sim_set_free(seen);

	if (fail_code == NULL)
	{
		sim_lock();
		c = is_find(vdn, campaign, false);
		if (c && c->numbers)
		{
			for (int i = 0; i < ncodes && fail_code == NULL; i++)
				if (!sim_set_contains(c->numbers, codes[i]))
				{
					fail_code = IS_PARAM;
					fail_desc = "calling number does not exist";
				}
			if (fail_code == NULL && ncodes >= sim_set_count(c->numbers))
			{
				fail_code = IS_PARAM;
				fail_desc = "at least one calling number must be kept";
			}
		}
		if (fail_code == NULL)
		{
			for (int i = 0; i < ncodes; i++)
			{
				char	   *key = malloc(strlen(codes[i]) + 32);

				if (key == NULL)
					abort();
				sprintf(key, "%d/%d/%s", vdn, campaign, codes[i]);
				sim_set_add(is_callers_set, key);
				free(key);
				if (c && c->numbers)
					sim_set_remove(c->numbers, codes[i]);
			}
		}
		sim_unlock();
	}
	if (fail_code)
		is_result(req, fail_code, fail_desc, -1);
	else
	{
		snprintf(desc, sizeof(desc), "delete callerNo success.num:%d", ncodes);
		is_result(req, IS_OK, desc, -1);
	}
	free(codes);
	cJSON_Delete(body);
	return SIM_DONE;
}

/* ------------------------------------------------------------ call data */

/* is_valid_recycle_time says whether s is a valid "yyyy-mm-dd hh:mm:ss". */
static bool
is_valid_recycle_time(const char *s)
{
	static const char shape[] = "dddd-dd-dd dd:dd:dd";
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y;
	int			m;
	int			d;

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return atoi(s + 11) <= 23 && atoi(s + 14) <= 59 && atoi(s + 17) <= 59;
}

/*
 * is_string_param reads an optional string member of the filter, checking
 * its type, emptiness and length; on failure sets *code and *desc.
 */
static bool
is_string_param(cJSON *v, long maxlen, const char **out, const char **code,
				const char **desc, const char *name)
{
	static char msg[96];

	if (v == NULL)
		return true;
	if (!cJSON_IsString(v))
	{
		*code = IS_BAD_TYPE;
		snprintf(msg, sizeof(msg), "%s must be a string", name);
	}
	else if (v->valuestring[0] == '\0')
	{
		*code = IS_EMPTY;
		snprintf(msg, sizeof(msg), "%s is empty", name);
	}
	else if (sim_utf8_length(v->valuestring) > maxlen)
	{
		*code = IS_TOO_LONG;
		snprintf(msg, sizeof(msg), "%s is longer than %ld characters", name, maxlen);
	}
	else
	{
		*out = v->valuestring;
		return true;
	}
	*desc = msg;
	return false;
}

/*
 * is_parse_filter validates a call-data delete body into f.  Returns NULL
 * on success, else the vendor code, with *desc set.
 */
static const char *
is_parse_filter(cJSON *body, IsFilter *f, const char **desc)
{
	static const char *const known[] = {
		"sessionId", "called", "customField", "recycleTime", "recycleType",
		"archiveHistory", NULL
	};
	const char *code = NULL;
	cJSON	   *item;
	cJSON	   *v;

	memset(f, 0, sizeof(*f));
	if (cJSON_GetArraySize(body) == 0)
	{
		*desc = "the filter is empty";
		return IS_EMPTY;
	}
	cJSON_ArrayForEach(item, body)
	{
		bool		ok = false;

		for (int i = 0; known[i]; i++)
			ok |= strcmp(item->string, known[i]) == 0;
		if (!ok)
		{
			*desc = "unknown parameter in the request body";
			return IS_PARAM;
		}
	}
	if (!is_string_param(cJSON_GetObjectItemCaseSensitive(body, "sessionId"), 32,
						 &f->session_id, &code, desc, "sessionId") ||
		!is_string_param(cJSON_GetObjectItemCaseSensitive(body, "called"), 24,
						 &f->called, &code, desc, "called") ||
		!is_string_param(cJSON_GetObjectItemCaseSensitive(body, "customField"), 200,
						 &f->custom_field, &code, desc, "customField"))
		return code;
	if (f->called && strspn(f->called, "0123456789*#") != strlen(f->called))
	{
		*desc = "called may hold only 0-9, * and #";
		return IS_BAD_CHARS;
	}
	v = cJSON_GetObjectItemCaseSensitive(body, "recycleTime");
	if (v != NULL)
	{
		if (!cJSON_IsString(v))
		{
			*desc = "recycleTime must be a string";
			return IS_BAD_TYPE;
		}
		if (!is_valid_recycle_time(v->valuestring))
		{
			*desc = "recycleTime must be yyyy-mm-dd hh:mm:ss";
			return IS_TIME;
		}
		f->recycle_time = v->valuestring;
	}
	v = cJSON_GetObjectItemCaseSensitive(body, "recycleType");
	if (v != NULL)
	{
		if (cJSON_IsString(v))
		{
			if (strlen(v->valuestring) != 1 || v->valuestring[0] < '1' ||
				v->valuestring[0] > '3')
			{
				*desc = "recycleType must be 1, 2 or 3";
				return IS_BAD_VALUE;
			}
			f->recycle_type = v->valuestring[0] - '0';
		}
		else if (cJSON_IsNumber(v))
		{
			if (v->valuedouble != 1 && v->valuedouble != 2 && v->valuedouble != 3)
			{
				*desc = "recycleType must be 1, 2 or 3";
				return IS_BAD_VALUE;
			}
			f->recycle_type = (int) v->valuedouble;
		}
		else
		{
			*desc = "recycleType must be a string";
			return IS_BAD_TYPE;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(body, "archiveHistory");
	if (v != NULL)
	{
		if (!cJSON_IsNumber(v))
		{
			*desc = "archiveHistory must be an integer";
			return IS_BAD_TYPE;
		}
		if (v->valuedouble != 0 && v->valuedouble != 1)
		{
			*desc = "archiveHistory must be 0 or 1";
			return IS_BAD_VALUE;
		}
	}
	if (f->recycle_type != 0 && f->recycle_time == NULL)
	{
		*desc = "recycleType needs recycleTime";
		return IS_COMBINATION;
	}
	if (!f->session_id && !f->called && !f->custom_field && !f->recycle_time)
	{
		*desc = "at least one of sessionId, called, customField and recycleTime is required";
		return IS_EMPTY;
	}
	return NULL;
}

/* is_record_matches says whether record r satisfies every term of f. */
static bool
is_record_matches(const IsRecord *r, const IsFilter *f)
{
	if (f->session_id && (!r->session_id || strcmp(f->session_id, r->session_id) != 0))
		return false;
	if (f->called && (!r->called || strcmp(f->called, r->called) != 0))
		return false;
	if (f->custom_field && (!r->custom_field || strcmp(f->custom_field, r->custom_field) != 0))
		return false;
	if (f->recycle_time)
	{
		if (!r->recycle_time || strlen(r->recycle_time) < 10)
			return false;
		switch (f->recycle_type)
		{
			case 1:
				return strncmp(r->recycle_time, f->recycle_time, 10) <= 0;
			case 2:
				return strncmp(r->recycle_time, f->recycle_time, 10) == 0;
			default:
				return strcmp(r->recycle_time, f->recycle_time) == 0;
		}
	}
	return true;
}

/* is_record_free releases the strings of r. */
static void
is_record_free(IsRecord *r)
{
	free(r->session_id);
	free(r->called);
	free(r->custom_field);
	free(r->recycle_time);
}

/*
 * is_calldata handles POST /rest/isales/v1/openapi/campaigns/{vdnId}/
 * calldata/{campaignId}/delete.
 */
static SimStep
is_calldata(SimRequest *req)
{
	int			vdn;
	int			campaign;
	char		ctext[16];
	cJSON	   *body;
	IsFilter	f;
	const char *code;
	const char *desc = "";
	IsCampaign *c;
	long		n = 0;

	if (!is_check_common(req, &vdn, &campaign))
		return SIM_DONE;
	body = sim_parse_object(req);
	if (body == NULL)
	{
		if (req->body_len == 0)
			is_result(req, IS_EMPTY, "the request body is empty", -1);
		else
			is_result(req, IS_PARAM, "the request body must be a JSON object", -1);
		return SIM_DONE;
	}
	req->items = 1;
	req->record_items = true;
	code = is_parse_filter(body, &f, &desc);
	if (code)
	{
		is_result(req, code, desc, -1);
		cJSON_Delete(body);
		return SIM_DONE;
	}
	is_campaign_text(campaign, ctext, sizeof(ctext));
	sim_lock();
	if (sim_set_contains(is_missing_campaigns, ctext))
	{
		code = IS_NO_CAMPAIGN;
		desc = "campaign does not exist";
	}
	else if (sim_set_contains(is_running_campaigns, ctext))
	{
		code = IS_STATE;
		desc = "the current state does not allow deleting numbers";
	}
	else if ((c = is_find(vdn, campaign, false)) != NULL)
	{
		int			k = 0;

		for (int i = 0; i < c->nrecords; i++)
		{
			IsRecord   *r = &c->records[i];

			if (is_record_matches(r, &f))
			{
				const char *id = r->session_id ? r->session_id :
					r->called ? r->called : r->custom_field ? r->custom_field : "";
				char	   *key = malloc(strlen(id) + 32);

				if (key == NULL)
					abort();
				sprintf(key, "%d/%d/%s", vdn, campaign, id);
				sim_set_add(is_calldata_set, key);
				free(key);
				is_record_free(r);
				n++;
			}
			else
				c->records[k++] = *r;
		}
		c->nrecords = k;
	}
	sim_unlock();
	cJSON_Delete(body);
	if (code)
		is_result(req, code, desc, -1);
	else
		is_result(req, IS_OK, "", n);
	return SIM_DONE;
}

/* ------------------------------------------------------ control, setup */

/* is_ctl_reply answers a control call. */
static void
is_ctl_reply(SimRequest *req, int status, const char *error)
{
	cJSON	   *o = cJSON_CreateObject();

	if (error)
		cJSON_AddStringToObject(o, "error", error);
	else
		cJSON_AddBoolToObject(o, "ok", 1);
	sim_reply(req, status, o, NULL, error);
}

/* is_dup_member copies string member name of o, or NULL if absent. */
static char *
is_dup_member(cJSON *o, const char *name)
{
	cJSON	   *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/*
 * is_control handles POST /_sim/isales/callers and /_sim/isales/calldata,
 * which replace a campaign's calling numbers or call-data records.
 */
static void
is_control(SimRequest *req, const char *rest)
{
	cJSON	   *body = sim_parse_object(req);
	cJSON	   *vdn = body ? cJSON_GetObjectItemCaseSensitive(body, "vdn") : NULL;
	cJSON	   *camp = body ? cJSON_GetObjectItemCaseSensitive(body, "campaign") : NULL;
	bool		callers = strcmp(rest, "callers") == 0;
	cJSON	   *list;
	cJSON	   *el;
	IsCampaign *c;

	if (!callers && strcmp(rest, "calldata") != 0)
	{
		cJSON_Delete(body);
		is_ctl_reply(req, 404, "no such control call");
		return;
	}
	list = body ? cJSON_GetObjectItemCaseSensitive(body, callers ? "numbers" : "records") : NULL;
	if (!cJSON_IsNumber(vdn) || !cJSON_IsNumber(camp) || !cJSON_IsArray(list))
	{
		cJSON_Delete(body);
		is_ctl_reply(req, 400, callers ?
					 "expected {\"vdn\": int, \"campaign\": int, \"numbers\": [strings]}" :
					 "expected {\"vdn\": int, \"campaign\": int, \"records\": [objects]}");
		return;
	}
	cJSON_ArrayForEach(el, list)
	{
		bool		bad = callers ? !cJSON_IsString(el) : !cJSON_IsObject(el);

		if (!bad && !callers)
		{
			cJSON	   *m;

			cJSON_ArrayForEach(m, el)
				bad |= !cJSON_IsString(m);
		}
		if (bad)
		{
			cJSON_Delete(body);
			is_ctl_reply(req, 400, callers ? "numbers must be strings" :
						 "record members must be strings");
			return;
		}
	}
	sim_lock();
	c = is_find((int) vdn->valuedouble, (int) camp->valuedouble, true);
	if (callers)
	{
		if (c->numbers == NULL)
			c->numbers = sim_set_new();
		sim_set_clear(c->numbers);
		cJSON_ArrayForEach(el, list)
			sim_set_add(c->numbers, el->valuestring);
	}
	else
	{
		int			n = cJSON_GetArraySize(list);
		int			k = 0;

		for (int i = 0; i < c->nrecords; i++)
			is_record_free(&c->records[i]);
		free(c->records);
		c->records = calloc(n ? n : 1, sizeof(IsRecord));
		if (c->records == NULL)
			abort();
		cJSON_ArrayForEach(el, list)
		{
			c->records[k].session_id = is_dup_member(el, "sessionId");
			c->records[k].called = is_dup_member(el, "called");
			c->records[k].custom_field = is_dup_member(el, "customField");
			c->records[k].recycle_time = is_dup_member(el, "recycleTime");
			k++;
		}
		c->nrecords = k;
	}
	sim_unlock();
	cJSON_Delete(body);
	is_ctl_reply(req, 200, NULL);
}

/* is_init finds the deleted sets once. */
static void
is_init(void)
{
	is_callers_set = sim_deleted_set("isales_caller_numbers");
	is_calldata_set = sim_deleted_set("isales_calldata");
}

/* is_reset forgets every seeded campaign. */
static void
is_reset(void)
{
	while (is_campaigns)
	{
		IsCampaign *next = is_campaigns->next;

		sim_set_free(is_campaigns->numbers);
		for (int i = 0; i < is_campaigns->nrecords; i++)
			is_record_free(&is_campaigns->records[i]);
		free(is_campaigns->records);
		free(is_campaigns);
		is_campaigns = next;
	}
}

/*
 * is_chaos_sample returns the text of a successful answer of route, for
 * chaos mode to mangle.
 */
static const char *
is_chaos_sample(const SimRoute *route)
{
	if (strcmp(route->endpoint, "isales_calldata") == 0)
		return "{\"resultCode\":\"0200000\",\"resultDesc\":\"\","
			"\"returnCode\":\"0200000\",\"returnDesc\":\"\",\"successCount\":1}";
	return "{\"resultCode\":\"0200000\",\"resultDesc\":\"delete callerNo success.num:1\","
		"\"returnCode\":\"0200000\",\"returnDesc\":\"delete callerNo success.num:1\"}";
}

static const SimRoute is_routes[] = {
	{"DELETE", "/rest/isales/v1/openapi/campaigns/*/callerNo/*",
	"isales_caller_numbers", is_callers, SIM_ROUTE_ITEMS},
	{"POST", "/rest/isales/v1/openapi/campaigns/*/calldata/*/delete",
	"isales_calldata", is_calldata, SIM_ROUTE_ITEMS},
};

static const char *const is_sets[] = {"isales_caller_numbers", "isales_calldata", NULL};

static const SimConfItem is_config[] = {
	{"isales_max_skew_s", SIM_CONF_INT, &is_max_skew_s, 0, 1000000000, 900, NULL},
	{"isales_missing_campaigns", SIM_CONF_SET, &is_missing_campaigns, 0, 0, 0, NULL},
	{"isales_running_campaigns", SIM_CONF_SET, &is_running_campaigns, 0, 0, 0, NULL},
};

static const SimCredOption is_creds[] = {
	{"isales-ak", &is_ak},
	{"isales-sk", &is_sk},
};

const SimVendor sim_vendor_isales = {
	.name = "isales",
	.routes = is_routes,
	.nroutes = sizeof(is_routes) / sizeof(is_routes[0]),
	.sets = is_sets,
	.config = is_config,
	.nconfig = sizeof(is_config) / sizeof(is_config[0]),
	.reports_inflight = false,
	.creds = is_creds,
	.ncreds = sizeof(is_creds) / sizeof(is_creds[0]),
	.init = is_init,
	.reset = is_reset,
	.tokens_issued = NULL,
	.expire_tokens = NULL,
	.control = is_control,
	.chaos_sample = is_chaos_sample,
};
