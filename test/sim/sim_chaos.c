/*-------------------------------------------------------------------------
 *
 * sim_chaos.c
 *	  Chaos mode: a hostile vendor.  While chaos_rate is above zero, each
 *	  vendor request that no queued fault claimed fails, with that
 *	  probability, in one of several ways: broken, truncated, mistyped,
 *	  deeply nested, over-long or badly encoded JSON, a success answer
 *	  followed by junk, a connection reset, a slow answer, a redirect, a
 *	  storm of 401s or 429s, or a body over 1 MiB.
 *
 * The choices come from a pseudo-random generator owned here and seeded
 * with chaos_seed, so a seed and an order of requests always give the same
 * failures.  The generator, the storm in progress and the counters are
 * guarded by the state lock; sim_chaos_pick draws everything a request
 * needs under it (one number seeds the answer's own choices), and
 * sim_chaos_answer builds the answer without the lock.
 *
 * Answers are built from the route's real success answer, which its vendor
 * supplies (SimVendor.chaos_sample), so a client sees its own vendor's
 * field names in the wrong shape.  Only the slow kind is handled; every
 * other kind leaves the vendor's state alone (nothing is deleted and no
 * token is issued).
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Nesting depth of the deep_nesting answers. */
#define CHAOS_DEPTH			100000

/* Length of each string in a long_text answer. */
#define CHAOS_LONG_TEXT		(200 * 1000)

/* Length of the padding of a huge_body answer: 1.5 MiB. */
#define CHAOS_HUGE_PAD		(3 * 512 * 1024)

/* Storms last this many requests, the first included. */
#define CHAOS_STORM_MIN		2
#define CHAOS_STORM_MAX		10

/* Where a redirect points: a path the simulator answers 404 and logs. */
#define CHAOS_LOCATION		"/chaos/redirected"

/* A growing byte buffer for building answers. */
typedef struct ChaosBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} ChaosBuf;

static const char *const chaos_names[SIM_CHAOS_KINDS + 1] = {
	NULL, "invalid_json", "truncated_json", "wrong_types", "deep_nesting",
	"long_text", "bad_utf8", "trailing_junk", "reset", "slow", "redirect",
	"storm_401", "storm_429", "huge_body"
};

static const char *const chaos_messages[SIM_CHAOS_KINDS + 1] = {
	NULL, "chaos: invalid JSON", "chaos: truncated JSON",
	"chaos: JSON with wrong types", "chaos: deeply nested JSON",
	"chaos: over-long strings", "chaos: invalid UTF-8",
	"chaos: a success answer followed by junk", "chaos: connection reset",
	"chaos: slow answer", "chaos: redirect", "chaos: 401 storm",
	"chaos: 429 storm", "chaos: body over 1 MiB"
};

/* configuration */
static double chaos_rate;
static int	chaos_seed;
static int	chaos_max_delay_ms;

/* the generator, the storm in progress and the counters */
static uint64_t chaos_state;
static int	chaos_storm_kind;
static int	chaos_storm_left;
static long chaos_counts[SIM_CHAOS_KINDS + 1];

const SimConfItem sim_chaos_config[] = {
	{"chaos_rate", SIM_CONF_DOUBLE, &chaos_rate, 0, 1, 0, NULL},
	{"chaos_seed", SIM_CONF_INT, &chaos_seed, INT_MIN, INT_MAX, 1, NULL},
	{"chaos_max_delay_ms", SIM_CONF_INT, &chaos_max_delay_ms, 0, 600000, 2000, NULL},
};
const int	sim_chaos_nconfig = sizeof(sim_chaos_config) / sizeof(sim_chaos_config[0]);

/* ------------------------------------------------------------ generator */

/*
 * chaos_next advances the SplitMix64 generator whose state is *state and
 * returns its next 64-bit number.
 */
static uint64_t
chaos_next(uint64_t *state)
{
	uint64_t	z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* chaos_below returns a number in [0, n) from the generator *state. */
static uint64_t
chaos_below(uint64_t *state, uint64_t n)
{
	return n ? chaos_next(state) % n : 0;
}

/* chaos_unit returns a number in [0, 1) from the generator *state. */
static double
chaos_unit(uint64_t *state)
{
	return (double) (chaos_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * sim_chaos_restart starts the generator again from chaos_seed and ends any
 * storm.  Runs after every configuration call that sets a chaos key.
 */
void
sim_chaos_restart(void)
{
	chaos_state = (uint64_t) (int64_t) chaos_seed;
	chaos_storm_kind = SIM_CHAOS_NONE;
	chaos_storm_left = 0;
}

/*
 * sim_chaos_reset zeroes the counters and restarts the generator; the
 * configuration itself is put back by the caller first.
 */
void
sim_chaos_reset(void)
{
	memset(chaos_counts, 0, sizeof(chaos_counts));
	sim_chaos_restart();
}

/* sim_chaos_kind_name returns the name of a SIM_CHAOS_* kind. */
const char *
sim_chaos_kind_name(int kind)
{
	return kind > 0 && kind <= SIM_CHAOS_KINDS ? chaos_names[kind] : "none";
}

/*
 * sim_chaos_pick decides whether req, a vendor request that no fault
 * claimed, fails, and how; a storm in progress claims it without a draw.
 * Sets req->chaos_kind and req->chaos_rand, and req->delay_ms for a slow
 * answer.
 */
void
sim_chaos_pick(SimRequest *req)
{
	int			kind;

	if (chaos_rate <= 0)
		return;
	if (chaos_storm_left > 0)
	{
		kind = chaos_storm_kind;
		chaos_storm_left--;
	}
	else
	{
		if (chaos_unit(&chaos_state) >= chaos_rate)
			return;
		kind = 1 + (int) chaos_below(&chaos_state, SIM_CHAOS_KINDS);
		if (kind == SIM_CHAOS_STORM_401 || kind == SIM_CHAOS_STORM_429)
		{
			chaos_storm_kind = kind;
			chaos_storm_left = CHAOS_STORM_MIN - 1 +
				(int) chaos_below(&chaos_state, CHAOS_STORM_MAX - CHAOS_STORM_MIN + 1);
		}
		else if (kind == SIM_CHAOS_SLOW)
			req->delay_ms = (int) chaos_below(&chaos_state,
											  (uint64_t) chaos_max_delay_ms + 1);
	}
	req->chaos_kind = kind;
	req->chaos_rand = chaos_next(&chaos_state);
	chaos_counts[kind]++;
}

/* sim_chaos_state adds the "chaos" counters to the /_sim/state object. */
void
sim_chaos_state(cJSON *root)
{
	cJSON	   *o = cJSON_AddObjectToObject(root, "chaos");

	for (int k = 1; k <= SIM_CHAOS_KINDS; k++)
		cJSON_AddNumberToObject(o, chaos_names[k], chaos_counts[k]);
}

/* ---------------------------------------------------------------- buffer */

/* cb_reserve makes room for n more bytes and a NUL in b. */
static void
cb_reserve(ChaosBuf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->len + n + 1 > b->cap)
		b->cap *= 2;
	b->data = realloc(b->data, b->cap);
	if (b->data == NULL)
		abort();
}

/* cb_put appends n bytes of s to b. */
static void
cb_put(ChaosBuf *b, const char *s, size_t n)
{
	cb_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* cb_puts appends the string s to b. */
static void
cb_puts(ChaosBuf *b, const char *s)
{
	cb_put(b, s, strlen(s));
}

/* cb_fill appends n copies of the byte c to b. */
static void
cb_fill(ChaosBuf *b, char c, size_t n)
{
	cb_reserve(b, n);
	memset(b->data + b->len, c, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/*
 * cb_string appends s as a JSON string, escaping quotes, backslashes and
 * control characters and copying every other byte as it is.
 */
static void
cb_string(ChaosBuf *b, const char *s)
{
	cb_puts(b, "\"");
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;
		char		esc[8];

		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			cb_put(b, esc, 2);
		}
		else if (c < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			cb_puts(b, esc);
		}
		else
			cb_put(b, s, 1);
	}
	cb_puts(b, "\"");
}

/* cb_json appends the compact JSON text of v to b. */
static void
cb_json(ChaosBuf *b, const cJSON *v)
{
	char	   *text = cJSON_PrintUnformatted(v);

	if (text == NULL)
		abort();
	cb_puts(b, text);
	free(text);
}

/* -------------------------------------------------------------- answers */

/*
 * chaos_long_text appends a JSON string of CHAOS_LONG_TEXT bytes: plain
 * ASCII, or valid two-byte UTF-8, as rnd decides.
 */
static void
chaos_long_text(ChaosBuf *b, uint64_t *rnd)
{
	cb_puts(b, "\"");
	if (chaos_below(rnd, 2) == 0)
		cb_fill(b, 'x', CHAOS_LONG_TEXT);
	else
	{
		cb_reserve(b, CHAOS_LONG_TEXT);
		for (size_t i = 0; i < CHAOS_LONG_TEXT / 2; i++)
			cb_put(b, "\xc3\xa9", 2);	/* e with an acute accent */
	}
	cb_puts(b, "\"");
}

/*
 * chaos_bad_utf8 appends a JSON string that mixes valid multibyte text
 * with invalid UTF-8: stray bytes, bad continuations, overlong forms,
 * surrogates, code points past U+10FFFF and characters cut in half.  At
 * least one piece is invalid.
 */
static void
chaos_bad_utf8(ChaosBuf *b, uint64_t *rnd)
{
	static const char *const good[] = {
		"r\xc3\xa9sum\xc3\xa9 ", "\xe4\xb8\xad\xe6\x96\x87 ",
		"\xf0\x9f\x98\x80 ", "\xce\xa9 ", "plain "
	};
	static const char *const bad[] = {
		"\xff", "\xfe\xfe", "\xc3\x28", "\xc0\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\x80", "\xe4\xb8", "\xf0\x9f\x98", "\xc3"
	};
	int			n = 3 + (int) chaos_below(rnd, 6);
	int			must = (int) chaos_below(rnd, n);

	cb_puts(b, "\"");
	for (int i = 0; i < n; i++)
	{
		if (i == must || chaos_below(rnd, 2) == 0)
			cb_puts(b, bad[chaos_below(rnd, sizeof(bad) / sizeof(bad[0]))]);
		else
			cb_puts(b, good[chaos_below(rnd, sizeof(good) / sizeof(good[0]))]);
	}
	/* half the time, end with a character cut in half */
	if (chaos_below(rnd, 2) == 0)
		cb_puts(b, "\xe6\x96");
	cb_puts(b, "\"");
}

/*
 * chaos_wrong_value appends a value of a type other than orig's: an
 * object, an array, a boolean, a huge number, null or a string.  A number
 * may get a huge number, which is still hostile.
 */
static void
chaos_wrong_value(ChaosBuf *b, const cJSON *orig, uint64_t *rnd)
{
	static const char *const huge[] = {
		"1e999", "-1e999", "123456789012345678901234567890",
		"18446744073709551616", "9007199254740993", "-0.0000000000000000001e-400"
	};

	for (;;)
	{
		switch (chaos_below(rnd, 7))
		{
			case 0:
				if (cJSON_IsObject(orig))
					continue;
				cb_puts(b, "{\"value\":");
				cb_json(b, orig);
				cb_puts(b, "}");
				return;
			case 1:
				if (cJSON_IsArray(orig))
					continue;
				cb_puts(b, "[");
				cb_json(b, orig);
				cb_puts(b, "]");
				return;
			case 2:
				if (cJSON_IsBool(orig))
					continue;
				cb_puts(b, chaos_below(rnd, 2) ? "true" : "false");
				return;
			case 3:
			case 4:
				cb_puts(b, huge[chaos_below(rnd, sizeof(huge) / sizeof(huge[0]))]);
				return;
			case 5:
				if (cJSON_IsNull(orig))
					continue;
				cb_puts(b, "null");
				return;
			default:
				if (cJSON_IsString(orig))
					continue;
				cb_puts(b, "\"0\"");
				return;
		}
	}
}

/*
 * chaos_rewrite appends v with every string replaced as kind says
 * (long_text or bad_utf8), walking objects and arrays.
 */
static void
chaos_rewrite(ChaosBuf *b, const cJSON *v, int kind, uint64_t *rnd)
{
	const cJSON *el;
	bool		first = true;

	if (cJSON_IsString(v))
	{
		if (kind == SIM_CHAOS_LONG_TEXT)
			chaos_long_text(b, rnd);
		else
			chaos_bad_utf8(b, rnd);
		return;
	}
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
	{
		cb_json(b, v);
		return;
	}
	cb_puts(b, cJSON_IsObject(v) ? "{" : "[");
	cJSON_ArrayForEach(el, v)
	{
		if (!first)
			cb_puts(b, ",");
		first = false;
		if (cJSON_IsObject(v))
		{
			cb_string(b, el->string);
			cb_puts(b, ":");
		}
		chaos_rewrite(b, el, kind, rnd);
	}
	cb_puts(b, cJSON_IsObject(v) ? "}" : "]");
}

/*
 * chaos_invalid appends a text that is not JSON, most of them close to the
 * sample: single quotes, a trailing comma, '=' for ':', NaN, an HTML page
 * or nothing at all (white space alone when empty_ok is false: an empty
 * body is then the vendor's success answer).
 */
static void
chaos_invalid(ChaosBuf *b, const char *sample, const cJSON *parsed,
			  bool empty_ok, uint64_t *rnd)
{
	size_t		len = strlen(sample);
	const char *colon = strchr(sample, ':');

	switch (chaos_below(rnd, 6))
	{
		case 0:
			for (const char *p = sample; *p; p++)
				cb_put(b, *p == '"' ? "'" : p, 1);
			break;
		case 1:
			cb_put(b, sample, len - 1);
			cb_puts(b, ",}");
			break;
		case 2:
			if (colon == NULL)
				cb_puts(b, "{\"status\"=\"ok\"}");
			else
			{
				cb_put(b, sample, colon - sample);
				cb_puts(b, "=");
				cb_puts(b, colon + 1);
			}
			break;
		case 3:
			cb_puts(b, "{");
			cb_string(b, parsed && parsed->child ? parsed->child->string : "status");
			cb_puts(b, ":NaN}");
			break;
		case 4:
			cb_puts(b, "<html><head><title>500 Internal Server Error</title></head>"
					"<body><h1>500 Internal Server Error</h1><hr>nginx</body></html>");
			break;
		default:
			if (!empty_ok)
				cb_puts(b, "\r\n");
			break;				/* an empty body */
	}
}

/*
 * chaos_deep appends JSON nested CHAOS_DEPTH levels deep: arrays, objects,
 * or arrays that are never closed.
 */
static void
chaos_deep(ChaosBuf *b, const cJSON *parsed, uint64_t *rnd)
{
	switch (chaos_below(rnd, 3))
	{
		case 0:
			cb_puts(b, "{");
			cb_string(b, parsed && parsed->child ? parsed->child->string : "status");
			cb_puts(b, ":");
			cb_fill(b, '[', CHAOS_DEPTH);
			cb_fill(b, ']', CHAOS_DEPTH);
			cb_puts(b, "}");
			break;
		case 1:
			cb_reserve(b, (size_t) CHAOS_DEPTH * 6 + 2);
			for (int i = 0; i < CHAOS_DEPTH; i++)
				cb_put(b, "{\"a\":", 5);
			cb_puts(b, "1");
			cb_fill(b, '}', CHAOS_DEPTH);
			break;
		default:
			cb_fill(b, '[', CHAOS_DEPTH);
			break;
	}
}

/*
 * chaos_junk appends the sample followed by junk: an HTML error page, a
 * stray brace or comma, a second document, words, or NUL bytes.
 */
static void
chaos_junk(ChaosBuf *b, const char *sample, uint64_t *rnd)
{
	cb_puts(b, sample);
	switch (chaos_below(rnd, 6))
	{
		case 0:
			cb_puts(b, " <html>502 Bad Gateway</html>");
			break;
		case 1:
			cb_puts(b, "}");
			break;
		case 2:
			cb_puts(b, ",");
			break;
		case 3:
			cb_puts(b, "\n");
			cb_puts(b, sample);
			break;
		case 4:
			cb_puts(b, " garbage");
			break;
		default:
			cb_put(b, "\0\0junk", 6);
			break;
	}
}

/*
 * chaos_huge appends the sample with a "padding" string member of
 * CHAOS_HUGE_PAD bytes in front, so the whole stays valid JSON.
 */
static void
chaos_huge(ChaosBuf *b, const char *sample)
{
	cb_puts(b, "{\"padding\":\"");
	cb_fill(b, 'x', CHAOS_HUGE_PAD);
	cb_puts(b, "\"");
	if (strcmp(sample, "{}") != 0)
		cb_puts(b, ",");
	cb_puts(b, sample + 1);
}

/*
 * sim_chaos_answer fills in the answer of req for its chaos kind (any but
 * slow, which the caller handles normally).  No lock: every choice comes
 * from req->chaos_rand.
 */
void
sim_chaos_answer(SimRequest *req)
{
	uint64_t	rnd = req->chaos_rand;
	const char *sample = NULL;
	cJSON	   *parsed;
	ChaosBuf	b = {NULL, 0, 0};
	int			kind = req->chaos_kind;
	int			status = 200;
	const char *ctype = "application/json";

	if (req->vendor && req->vendor->chaos_sample)
		sample = req->vendor->chaos_sample(req->route);
	if (sample == NULL)
		sample = "{\"status\":\"ok\"}";
	parsed = cJSON_Parse(sample);
	if (!cJSON_IsObject(parsed))
		abort();				/* a vendor's sample must be an object */

	cb_reserve(&b, 0);
	switch (kind)
	{
		case SIM_CHAOS_INVALID_JSON:
			chaos_invalid(&b, sample, parsed,
						  !(req->vendor && req->vendor->empty_is_success), &rnd);
			break;
		case SIM_CHAOS_TRUNCATED:
			cb_put(&b, sample, 1 + chaos_below(&rnd, strlen(sample) - 1));
			break;
		case SIM_CHAOS_WRONG_TYPES:
			{
				const cJSON *el;
				bool		first = true;

				cb_puts(&b, "{");
				cJSON_ArrayForEach(el, parsed)
				{
					if (!first)
						cb_puts(&b, ",");
					first = false;
					cb_string(&b, el->string);
					cb_puts(&b, ":");
					chaos_wrong_value(&b, el, &rnd);
				}
				cb_puts(&b, "}");
				break;
			}
		case SIM_CHAOS_DEEP_NESTING:
			chaos_deep(&b, parsed, &rnd);
			break;
		case SIM_CHAOS_LONG_TEXT:
		case SIM_CHAOS_BAD_UTF8:
			chaos_rewrite(&b, parsed, kind, &rnd);
			break;
		case SIM_CHAOS_TRAILING_JUNK:
			chaos_junk(&b, sample, &rnd);
			break;
		case SIM_CHAOS_RESET:
			status = 0;
			break;
		case SIM_CHAOS_REDIRECT:
			{
				static const int codes[] = {301, 302, 303, 307, 308};

				status = codes[chaos_below(&rnd, 5)];
				ctype = "text/html";
				cb_puts(&b, "<html><body>Moved to <a href=\"" CHAOS_LOCATION
						"\">" CHAOS_LOCATION "</a></body></html>");
				req->location = CHAOS_LOCATION;
				break;
			}
		case SIM_CHAOS_STORM_401:
			status = 401;
			cb_puts(&b, "{\"error\":\"unauthorized\"}");
			break;
		case SIM_CHAOS_STORM_429:
			status = 429;
			cb_puts(&b, "{\"error\":\"too many requests\"}");
			req->retry_after = strdup("1");
			if (req->retry_after == NULL)
				abort();
			break;
		case SIM_CHAOS_HUGE_BODY:
			chaos_huge(&b, sample);
			break;
		default:
			abort();
	}
	cJSON_Delete(parsed);
	sim_reply_raw(req, status, ctype, b.data, b.len);
	snprintf(req->code, sizeof(req->code), "chaos:%s", sim_chaos_kind_name(kind));
	snprintf(req->message, sizeof(req->message), "%s", chaos_messages[kind]);
}
