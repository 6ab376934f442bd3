/*-------------------------------------------------------------------------
 *
 * sim_webhook.c
 *	  The generic webhook vendor of the simulator: any erasure endpoint that
 *	  takes ccpurge's signed JSON batches, POST /webhook/erase (or any other
 *	  path under /webhook/).
 *
 * A request must carry
 *	  X-Ccpurge-Signature: t=<unix seconds>,v1=<lower-hex HMAC-SHA256>
 * where the HMAC's key is the signing secret (--webhook-secret) and its
 * message "<t>." followed by the raw body, with t at most
 * webhook_max_skew_s seconds off the clock; otherwise it gets HTTP 401.
 * It must also carry an Idempotency-Key of 1 to 128 hex digits and
 * Content-Type application/json (optionally "; charset=UTF-8"), and its
 * body must be valid UTF-8 JSON {"operation":"erase","items":[...]} with 1
 * to webhook_max_items items, each a non-empty string of at most 1024
 * bytes without control characters; otherwise HTTP 400 (413 for too many
 * items).
 *
 * Erased items go to the deleted set "webhook".  The answer is HTTP 200
 * with an empty body, or with webhook_results "per_item" one result per item,
 * where webhook_fail_items fail ("item is locked") and webhook_omit_items
 * are left out; neither is erased.
 *
 * Every Idempotency-Key answered 2xx is remembered with the SHA-256 of its
 * body.  The same key with the same body gets the same answer again and
 * erases nothing; with another body it gets HTTP 422.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include "sim.h"

/* Longest item, in bytes. */
#define WH_MAX_ITEM_BYTES	1024

/* Longest Idempotency-Key, in hex digits. */
#define WH_MAX_KEY			128

/* Most digits a signature's timestamp may have. */
#define WH_MAX_T_DIGITS		15

/* Outcomes of an item in per_item mode. */
#define WH_ERASED			0
#define WH_FAILED			1
#define WH_OMITTED			2

/*
 * A remembered Idempotency-Key.  answer is NULL while the first request
 * with the key is still building it.
 */
typedef struct WhIdem
{
	struct WhIdem *next;
	uint64_t	hash;
	unsigned char body_sha[SHA256_DIGEST_LENGTH];
	int			nitems;			/* the body's item count, for the log */
	char	   *answer;			/* malloc'd JSON text */
	char		key[];
} WhIdem;

static const char *wh_secret = "webhook-signing-secret-0123";

static int	wh_max_skew_s;
static int	wh_max_items;
static char wh_results[32];
static struct SimSet *wh_fail_items;
static struct SimSet *wh_omit_items;

static EVP_MAC *wh_mac;
static struct SimSet *wh_set;

/* the remembered keys: a chained hash table that grows as it fills */
static WhIdem **wh_idem;
static size_t wh_idem_nbuckets;
static long wh_idem_count;		/* entries, pending ones too */
static long wh_distinct_keys;	/* entries with an answer */
static long wh_repeats;
static long wh_generation;		/* bumped by every reset */

/* ------------------------------------------------------------- replies */

/* wh_error answers {"error": message} with the given status. */
static void
wh_error(SimRequest *req, int status, const char *message)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", message);
	sim_reply(req, status, o, NULL, message);
}

/* ---------------------------------------------------------- signature */

/* wh_is_lower_hex says whether the len bytes at s are lower-case hex. */
static bool
wh_is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * wh_parse_signature parses "t=<digits>,v1=<64 lower-hex>" into the
 * timestamp and the hex MAC (a pointer into sig).  Returns false if sig
 * has any other shape.
 */
static bool
wh_parse_signature(const char *sig, int64_t *t, size_t *tlen, const char **v1)
{
	const char *p;
	size_t		n;

	if (sig == NULL || strncmp(sig, "t=", 2) != 0)
		return false;
	p = sig + 2;
	n = strspn(p, "0123456789");
	if (n == 0 || n > WH_MAX_T_DIGITS || strncmp(p + n, ",v1=", 4) != 0)
		return false;
	*t = 0;
	for (size_t i = 0; i < n; i++)
		*t = *t * 10 + (p[i] - '0');
	*tlen = n;
	p += n + 4;
	if (strlen(p) != 2 * SHA256_DIGEST_LENGTH ||
		!wh_is_lower_hex(p, 2 * SHA256_DIGEST_LENGTH))
		return false;
	*v1 = p;
	return true;
}

/*
 * wh_hmac_hex writes the lower-hex HMAC-SHA256, keyed with the signing
 * secret, of the tlen bytes at t, a ".", and the raw body of req to out[65].
 * Returns false if OpenSSL fails.
 */
static bool
wh_hmac_hex(SimRequest *req, const char *t, size_t tlen, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char		digest[] = "SHA256";
	OSSL_PARAM	params[2];
	EVP_MAC_CTX *ctx;
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t		maclen = 0;
	bool		ok;

	if (wh_mac == NULL || (ctx = EVP_MAC_CTX_new(wh_mac)) == NULL)
		return false;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = EVP_MAC_init(ctx, (const unsigned char *) wh_secret, strlen(wh_secret),
					  params) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) t, tlen) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) ".", 1) == 1 &&
		(req->body_len == 0 ||
		 EVP_MAC_update(ctx, (const unsigned char *) req->body, req->body_len) == 1) &&
		EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) == 1 &&
		maclen == SHA256_DIGEST_LENGTH;
	EVP_MAC_CTX_free(ctx);
	if (!ok)
		return false;
	for (size_t i = 0; i < maclen; i++)
	{
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[2 * maclen] = '\0';
	return true;
}

/*
 * wh_check_signature checks X-Ccpurge-Signature.  On failure it counts an
 * auth rejection, answers 401 and returns false.
 */
static bool
wh_check_signature(SimRequest *req)
{
	const char *sig = sim_request_header(req, "X-Ccpurge-Signature");
	const char *v1 = NULL;
	const char *why = NULL;
	char		want[2 * EVP_MAX_MD_SIZE + 1];
	int64_t		t = 0;
	int64_t		now;
	size_t		tlen = 0;
	int			skew;

	if (!wh_parse_signature(sig, &t, &tlen, &v1) ||
		!wh_hmac_hex(req, sig + 2, tlen, want) ||
		CRYPTO_memcmp(want, v1, 2 * SHA256_DIGEST_LENGTH) != 0)
		why = "bad signature";
	else
	{
		sim_lock();
		skew = wh_max_skew_s;
		sim_unlock();
		now = sim_wall_ms() / 1000;
		if (t > now + skew || t < now - skew)
			why = "timestamp out of range";
	}
	if (why == NULL)
		return true;
	sim_lock();
	sim_count_rejection(SIM_REJ_AUTH);
	sim_unlock();
	wh_error(req, 401, why);
	return false;
}

/* ------------------------------------------------------------ headers */

/* wh_key_ok says whether key is 1 to WH_MAX_KEY hex digits, either case. */
static bool
wh_key_ok(const char *key)
{
	size_t		len = key ? strlen(key) : 0;

	if (len == 0 || len > WH_MAX_KEY)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((key[i] >= '0' && key[i] <= '9') ||
			  (key[i] >= 'a' && key[i] <= 'f') ||
			  (key[i] >= 'A' && key[i] <= 'F')))
			return false;
	return true;
}

/*
 * wh_ctype_ok says whether ctype is application/json, alone or with
 * "; charset=UTF-8" (any case, spaces around ";" and "=" allowed, the
 * charset optionally quoted).
 */
static bool
wh_ctype_ok(const char *ctype)
{
	const char *p;

	if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0)
		return false;
	p = ctype + 16;
	p += strspn(p, " \t");
	if (*p == '\0')
		return true;
	if (*p++ != ';')
		return false;
	p += strspn(p, " \t");
	if (strncasecmp(p, "charset", 7) != 0)
		return false;
	p += 7;
	p += strspn(p, " \t");
	if (*p++ != '=')
		return false;
	p += strspn(p, " \t");
	if (strncasecmp(p, "\"utf-8\"", 7) == 0)
		p += 7;
	else if (strncasecmp(p, "utf-8", 5) == 0)
		p += 5;
	else
		return false;
	p += strspn(p, " \t");
	return *p == '\0';
}

/* --------------------------------------------------------------- body */

/*
 * wh_utf8_valid says whether the len bytes at s are valid UTF-8: no stray
 * or missing continuation bytes, overlong forms, surrogates or code points
 * past U+10FFFF.
 */
static bool
wh_utf8_valid(const unsigned char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		int			n;
		uint32_t	cp;
		uint32_t	min;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
		{
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		}
		else if ((c & 0xf0) == 0xe0)
		{
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		}
		else if ((c & 0xf8) == 0xf0)
		{
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		}
		else
			return false;
		if (len - i - 1 < (size_t) n)
			return false;
		for (int k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * wh_has_nul_escape says whether the JSON text s (len bytes) holds the
 * escape \u0000, which cJSON would silently end a string at.
 */
static bool
wh_has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
	{
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 6 <= len && strncmp(s + i + 2, "0000", 4) == 0)
			return true;
		i++;					/* skip the escaped character */
	}
	return false;
}

/*
 * wh_item_problem returns why the string item is not acceptable, or NULL:
 * it must be non-empty, at most WH_MAX_ITEM_BYTES bytes, and hold no
 * control character (C0, DEL or C1; the body is valid UTF-8 by now).
 */
static const char *
wh_item_problem(const char *item)
{
	size_t		len = strlen(item);

	if (len == 0)
		return "is empty";
	if (len > WH_MAX_ITEM_BYTES)
		return "is longer than 1024 bytes";
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) item[i];

		if (c < 0x20 || c == 0x7f ||
			(c == 0xc2 && i + 1 < len && (unsigned char) item[i + 1] >= 0x80 &&
			 (unsigned char) item[i + 1] <= 0x9f))
			return "holds a control character";
	}
	return NULL;
}

/*
 * wh_parse_body validates req's body and returns its "items" array's
 * parent (to be freed with cJSON_Delete) with *items set; else answers
 * 400 or 413 and returns NULL.
 */
static cJSON *
wh_parse_body(SimRequest *req, cJSON **items)
{
	cJSON	   *body;
	cJSON	   *op = NULL;
	cJSON	   *el;
	int			n;
	int			max_items;
	char		msg[128];

	*items = NULL;
	if (!wh_utf8_valid((const unsigned char *) req->body, req->body_len))
	{
		wh_error(req, 400, "the body must be valid UTF-8");
		return NULL;
	}
	if (wh_has_nul_escape(req->body, req->body_len))
	{
		wh_error(req, 400, "the body must not hold \\u0000");
		return NULL;
	}
	body = sim_parse_object(req);
	if (body == NULL)
	{
		wh_error(req, 400, "the body must be a JSON object");
		return NULL;
	}
	cJSON_ArrayForEach(el, body)
	{
		cJSON	  **slot = strcmp(el->string, "operation") == 0 ? &op :
			strcmp(el->string, "items") == 0 ? items : NULL;

		if (slot == NULL || *slot != NULL)
		{
			snprintf(msg, sizeof(msg), "%s member \"%.60s\"",
					 slot ? "duplicate" : "unknown", el->string);
			cJSON_Delete(body);
			wh_error(req, 400, msg);
			return NULL;
		}
		*slot = el;
	}
	if (!cJSON_IsString(op) || strcmp(op->valuestring, "erase") != 0)
	{
		cJSON_Delete(body);
		wh_error(req, 400, "operation must be \"erase\"");
		return NULL;
	}
	if (!cJSON_IsArray(*items))
	{
		cJSON_Delete(body);
		wh_error(req, 400, "items must be an array of strings");
		return NULL;
	}
	n = cJSON_GetArraySize(*items);
	req->items = n;
	req->record_items = true;
	sim_lock();
	max_items = wh_max_items;
	if (n > max_items)
		sim_count_rejection(SIM_REJ_LIMIT);
	sim_unlock();
	if (n == 0)
	{
		cJSON_Delete(body);
		wh_error(req, 400, "items must not be empty");
		return NULL;
	}
	if (n > max_items)
	{
		snprintf(msg, sizeof(msg), "items holds %d items; at most %d are allowed",
				 n, max_items);
		cJSON_Delete(body);
		wh_error(req, 413, msg);
		return NULL;
	}
	n = 0;
	cJSON_ArrayForEach(el, *items)
	{
		const char *why = cJSON_IsString(el) ? wh_item_problem(el->valuestring) :
			"is not a string";

		if (why)
		{
			snprintf(msg, sizeof(msg), "items[%d] %s", n, why);
			cJSON_Delete(body);
			wh_error(req, 400, msg);
			return NULL;
		}
		n++;
	}
	return body;
}

/* -------------------------------------------------------- idempotency */

/* wh_idem_find returns the entry of key, or NULL.  Lock held. */
static WhIdem *
wh_idem_find(const char *key)
{
	uint64_t	h = sim_hash(key);

	for (WhIdem *e = wh_idem[h & (wh_idem_nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* wh_idem_grow doubles the bucket array and rehashes.  Lock held. */
static void
wh_idem_grow(void)
{
	size_t		nb = wh_idem_nbuckets * 2;
	WhIdem	  **b = calloc(nb, sizeof(WhIdem *));

	if (b == NULL)
		abort();
	for (size_t i = 0; i < wh_idem_nbuckets; i++)
	{
		WhIdem	   *e = wh_idem[i];

		while (e)
		{
			WhIdem	   *next = e->next;

			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
			e = next;
		}
	}
	free(wh_idem);
	wh_idem = b;
	wh_idem_nbuckets = nb;
}

/*
 * wh_idem_add remembers key, with the body's digest and no answer yet, and
 * returns the entry.  Lock held.
 */
static WhIdem *
wh_idem_add(const char *key, const unsigned char *sha)
{
	size_t		len = strlen(key);
	WhIdem	   *e = calloc(1, sizeof(WhIdem) + len + 1);

	if (e == NULL)
		abort();
	if ((size_t) wh_idem_count >= wh_idem_nbuckets * 2)
		wh_idem_grow();
	e->hash = sim_hash(key);
	memcpy(e->body_sha, sha, SHA256_DIGEST_LENGTH);
	memcpy(e->key, key, len + 1);
	e->next = wh_idem[e->hash & (wh_idem_nbuckets - 1)];
	wh_idem[e->hash & (wh_idem_nbuckets - 1)] = e;
	wh_idem_count++;
	return e;
}

/* wh_idem_clear forgets every key.  Lock held. */
static void
wh_idem_clear(void)
{
	for (size_t i = 0; i < wh_idem_nbuckets; i++)
	{
		WhIdem	   *e = wh_idem[i];

		while (e)
		{
			WhIdem	   *next = e->next;

			free(e->answer);
			free(e);
			e = next;
		}
		wh_idem[i] = NULL;
	}
	wh_idem_count = 0;
	wh_distinct_keys = 0;
}

/* ------------------------------------------------------------ handler */

/*
 * wh_answer builds the text of a successful answer: an empty body, or in
 * per_item mode {"results": [...]} with one result per item not omitted.
 * The text is malloc'd.  No lock.
 */
static char *
wh_answer(cJSON *items, const char *outcome, bool per_item)
{
	cJSON	   *o = cJSON_CreateObject();
	cJSON	   *results;
	cJSON	   *el;
	char	   *text;
	int			i = 0;

	if (!per_item)
	{
		/* the contract's "every item erased": a 2xx with an empty body */
		cJSON_Delete(o);
		text = strdup("");
		if (text == NULL)
			abort();
		return text;
	}
	else
	{
		results = cJSON_AddArrayToObject(o, "results");
		cJSON_ArrayForEach(el, items)
		{
			cJSON	   *r;

			if (outcome[i] != WH_OMITTED)
			{
				r = cJSON_CreateObject();
				cJSON_AddStringToObject(r, "item", el->valuestring);
				cJSON_AddBoolToObject(r, "ok", outcome[i] == WH_ERASED);
				cJSON_AddStringToObject(r, "message",
										outcome[i] == WH_ERASED ? "erased" : "item is locked");
				cJSON_AddItemToArray(results, r);
			}
			i++;
		}
	}
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (text == NULL)
		abort();
	return text;
}

/*
 * wh_repeat answers req from memory if its Idempotency-Key is known: the
 * first answer again for the same body, 422 for another, 409 while the
 * first request is still building its answer.  Returns false, answering
 * nothing, if the key is new.  Takes the lock itself.
 */
static bool
wh_repeat(SimRequest *req, const char *key, const unsigned char *sha)
{
	WhIdem	   *e;
	bool		same;
	char	   *text = NULL;

	sim_lock();
	e = wh_idem_find(key);
	if (e == NULL)
	{
		sim_unlock();
		return false;
	}
	same = memcmp(e->body_sha, sha, SHA256_DIGEST_LENGTH) == 0;
	if (same && e->answer)
	{
		text = strdup(e->answer);
		if (text == NULL)
			abort();
		wh_repeats++;
		req->items = e->nitems;
		req->record_items = true;
	}
	sim_unlock();
	if (!same)
		wh_error(req, 422, "Idempotency-Key was used with a different body");
	else if (text == NULL)
		wh_error(req, 409, "a request with this Idempotency-Key is in progress");
	else
	{
		sim_reply_raw(req, 200, "application/json", text, strlen(text));
		snprintf(req->code, sizeof(req->code), "idempotent_repeat");
		snprintf(req->message, sizeof(req->message),
				 "same Idempotency-Key and body: the first answer again");
	}
	return true;
}

/*
 * wh_erase handles POST /webhook/<anything>: it checks the signature and
 * headers, answers a known Idempotency-Key from memory, else checks the
 * body, erases the items and remembers the key with its answer.
 */
static SimStep
wh_erase(SimRequest *req)
{
	const char *key = sim_request_header(req, "Idempotency-Key");
	unsigned char sha[SHA256_DIGEST_LENGTH];
	cJSON	   *body;
	cJSON	   *items;
	cJSON	   *el;
	WhIdem	   *e;
	char	   *outcome;
	char	   *text;
	bool		per_item;
	long		generation;
	int			n;
	int			i;
	int			nok = 0;
	int			nfail = 0;

	if (!wh_check_signature(req))
		return SIM_DONE;
	if (!wh_key_ok(key))
	{
		wh_error(req, 400, "Idempotency-Key must be 1 to 128 hex digits");
		return SIM_DONE;
	}
	if (!wh_ctype_ok(sim_request_header(req, "Content-Type")))
	{
		wh_error(req, 400, "Content-Type must be application/json");
		return SIM_DONE;
	}
	SHA256((const unsigned char *) (req->body ? req->body : ""), req->body_len, sha);
	if (wh_repeat(req, key, sha))
		return SIM_DONE;
	body = wh_parse_body(req, &items);
	if (body == NULL)
		return SIM_DONE;
	n = cJSON_GetArraySize(items);
	outcome = calloc(n, 1);
	if (outcome == NULL)
		abort();

	sim_lock();
	if (wh_idem_find(key) != NULL)
	{
		/* another request with the key got in while this one parsed */
		sim_unlock();
		cJSON_Delete(body);
		free(outcome);
		wh_repeat(req, key, sha);
		return SIM_DONE;
	}
	e = wh_idem_add(key, sha);
	e->nitems = n;
	generation = wh_generation;
	per_item = strcmp(wh_results, "per_item") == 0;
	i = 0;
	cJSON_ArrayForEach(el, items)
	{
		if (per_item && sim_set_contains(wh_omit_items, el->valuestring))
			outcome[i] = WH_OMITTED;
		else if (per_item && sim_set_contains(wh_fail_items, el->valuestring))
			outcome[i] = WH_FAILED;
		else
		{
			outcome[i] = WH_ERASED;
			sim_set_add(wh_set, el->valuestring);
		}
		nok += outcome[i] == WH_ERASED;
		nfail += outcome[i] == WH_FAILED;
		i++;
	}
	sim_unlock();

	text = wh_answer(items, outcome, per_item);

	/* a reset in the meantime freed the entry; the key is forgotten then */
	sim_lock();
	if (wh_generation == generation)
	{
		e->answer = strdup(text);
		if (e->answer == NULL)
			abort();
		wh_distinct_keys++;
	}
	sim_unlock();

	cJSON_Delete(body);
	free(outcome);
	sim_reply_raw(req, 200, "application/json", text, strlen(text));
	if (per_item)
		snprintf(req->message, sizeof(req->message),
				 "%d erased, %d failed, %d omitted", nok, nfail, n - nok - nfail);
	else
		snprintf(req->message, sizeof(req->message), "%d erased", nok);
	return SIM_DONE;
}

/* ------------------------------------------------------------- vendor */

/* wh_init finds the deleted set, fetches HMAC and sets up the key table. */
static void
wh_init(void)
{
	wh_set = sim_deleted_set("webhook");
	wh_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	wh_idem_nbuckets = 64;
	wh_idem = calloc(wh_idem_nbuckets, sizeof(WhIdem *));
	if (wh_idem == NULL)
		abort();
}

/* wh_reset forgets every Idempotency-Key and the repeat counter. */
static void
wh_reset(void)
{
	wh_idem_clear();
	wh_repeats = 0;
	wh_generation++;
}

/* wh_state adds the "webhook" object at the end of /_sim/state. */
static void
wh_state(cJSON *root)
{
	cJSON	   *o = cJSON_AddObjectToObject(root, "webhook");

	cJSON_AddNumberToObject(o, "idempotent_repeats", wh_repeats);
	cJSON_AddNumberToObject(o, "distinct_keys", wh_distinct_keys);
}

/* wh_chaos_sample returns the text of a successful answer, for chaos mode. */
static const char *
wh_chaos_sample(const SimRoute *route)
{
	(void) route;
	/* the shape of a per-item answer, which chaos then corrupts */
	return "{\"results\":[]}";
}

static const SimRoute wh_routes[] = {
	{"POST", "/webhook/**", "webhook", wh_erase,
	SIM_ROUTE_ITEMS | SIM_ROUTE_IDEMPOTENCY | SIM_ROUTE_LARGE_BODY},
};

static const char *const wh_sets[] = {"webhook", NULL};

static const SimConfItem wh_config[] = {
	{"webhook_max_skew_s", SIM_CONF_INT, &wh_max_skew_s, 0, 31536000, 300, NULL},
	{"webhook_max_items", SIM_CONF_INT, &wh_max_items, 1, 1000000, 10000, NULL},
	{"webhook_results", SIM_CONF_ENUM, wh_results, 0, 0, 0, "none|per_item"},
	{"webhook_fail_items", SIM_CONF_SET, &wh_fail_items, 0, 0, 0, NULL},
	{"webhook_omit_items", SIM_CONF_SET, &wh_omit_items, 0, 0, 0, NULL},
};

static const SimCredOption wh_creds[] = {
	{"webhook-secret", &wh_secret},
};

const SimVendor sim_vendor_webhook = {
	.name = "webhook",
	.routes = wh_routes,
	.nroutes = sizeof(wh_routes) / sizeof(wh_routes[0]),
	.sets = wh_sets,
	.config = wh_config,
	.nconfig = sizeof(wh_config) / sizeof(wh_config[0]),
	.reports_inflight = false,
	.creds = wh_creds,
	.ncreds = sizeof(wh_creds) / sizeof(wh_creds[0]),
	.init = wh_init,
	.reset = wh_reset,
	.tokens_issued = NULL,
	.expire_tokens = NULL,
	.control = NULL,
	.empty_is_success = true,
	.chaos_sample = wh_chaos_sample,
	.state = wh_state,
};
