/*-------------------------------------------------------------------------
 *
 * sim.h
 *	  Declarations shared by the files of the vendor simulator.
 *
 * The simulator is a standalone HTTP server that plays the contact-center
 * vendors ccpurge talks to.  The declarations are grouped by the file that
 * defines them: the HTTP glue and request dispatch (ccpurge-sim.c), the
 * shared state (sim_state.c), the control interface (sim_control.c),
 * chaos mode (sim_chaos.c) and the vendors (sim_cec.c, sim_isales.c,
 * sim_ozonetel.c, sim_webhook.c).
 *
 * A vendor is one file that defines a SimVendor, plus one entry in the
 * vendor table at the top of ccpurge-sim.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

/* Largest request body accepted; anything bigger gets HTTP 413. */
#define SIM_MAX_BODY		(2 * 1024 * 1024)

/* The same for routes flagged SIM_ROUTE_LARGE_BODY. */
#define SIM_MAX_LARGE_BODY	(32 * 1024 * 1024)

/* Longest Idempotency-Key the request log keeps, in bytes. */
#define SIM_IDEM_KEY_MAX	128

/* Size of the body sent by the "oversize" fault. */
#define SIM_OVERSIZE_BODY	(2 * 1024 * 1024)

/* Number of vendor requests kept in the request log. */
#define SIM_LOG_MAX			10000

/* Number of request sizes kept per endpoint in items_per_request. */
#define SIM_ITEMS_MAX		1000

/* Path segments a route pattern may capture with "*". */
#define SIM_MAX_SEGS		4

struct SimRequest;
struct SimSet;

/* What a vendor handler tells the dispatcher. */
typedef enum SimStep
{
	SIM_DONE,					/* req->reply is filled in */
	SIM_WAIT					/* call again at req->wake_at_ms */
} SimStep;

/*
 * A vendor request handler.  It is called with the whole body read; it
 * fills in the reply with sim_reply() and returns SIM_DONE, or sets
 * req->wake_at_ms, bumps req->stage and returns SIM_WAIT to be called again
 * later without blocking other connections.
 */
typedef SimStep (*SimHandler) (struct SimRequest *req);

/* Route flags. */
#define SIM_ROUTE_ITEMS		0x01	/* keeps items_per_request */
#define SIM_ROUTE_INFLIGHT	0x02	/* counts in the vendor's max_inflight */
#define SIM_ROUTE_OWN_DELAY 0x04	/* the handler spends delay faults itself */
#define SIM_ROUTE_IDEMPOTENCY 0x08	/* the log keeps its Idempotency-Key */
#define SIM_ROUTE_LARGE_BODY 0x10	/* takes bodies up to SIM_MAX_LARGE_BODY */

/*
 * One vendor endpoint.  The pattern is a path in which "*" stands for one
 * non-empty path segment; the segments it matched are in req->seg[].  A
 * pattern ending in "**" takes any rest of the path, even an empty one.
 */
typedef struct SimRoute
{
	const char *method;
	const char *pattern;
	const char *endpoint;		/* counter and log name, e.g. "cec_token" */
	SimHandler	handler;
	int			flags;
} SimRoute;

/* Kinds of runtime configuration a vendor may declare. */
typedef enum SimConfType
{
	SIM_CONF_INT,				/* int, in [min, max] */
	SIM_CONF_SET,				/* JSON array of ints or strings, kept as a
								 * SimSet of decimal/plain strings */
	SIM_CONF_STRING,			/* short string, at most 31 bytes */
	SIM_CONF_DOUBLE,			/* double, in [min, max]; default def_int */
	SIM_CONF_ENUM				/* one of the '|'-separated words of def_str,
								 * kept in a char[32]; the first is the
								 * default */
} SimConfType;

/*
 * One configuration key.  value points at an int, a SimSet *, a char[32]
 * or a double, by type; def_int / def_str are the reset values.
 */
typedef struct SimConfItem
{
	const char *name;
	SimConfType type;
	void	   *value;
	int			min;
	int			max;
	int			def_int;
	const char *def_str;
} SimConfItem;

/* A command-line flag that overrides one of a vendor's credentials. */
typedef struct SimCredOption
{
	const char *flag;			/* without the leading "--" */
	const char **value;
} SimCredOption;

/*
 * A vendor.  Every callback but the handlers runs with the state lock held.
 */
typedef struct SimVendor
{
	const char *name;			/* also the /_sim/<name>/ control prefix */
	const SimRoute *routes;
	int			nroutes;
	const char *const *sets;	/* names of its deleted sets, NULL-ended */
	const SimConfItem *config;
	int			nconfig;
	bool		reports_inflight;	/* listed under max_inflight */
	const SimCredOption *creds;
	int			ncreds;
	/* once at start, before any thread runs */
	void		(*init) (void);
	/* forget tokens, seeds and counters (config is reset by the caller) */
	void		(*reset) (void);
	/* number of tokens issued, or NULL if the vendor has none */
	long		(*tokens_issued) (void);
	/* make every token issued so far expired */
	void		(*expire_tokens) (void);

	/*
	 * POST /_sim/<name>/<rest>: fill in the reply; NULL if the vendor has no
	 * control calls.  Runs without the lock held.
	 */
	void		(*control) (struct SimRequest *req, const char *rest);

	/*
	 * The JSON text of a successful answer of route, which chaos mode
	 * mangles; NULL (callback or result) for {"status":"ok"}.  No lock.
	 */
	const char *(*chaos_sample) (const SimRoute *route);

	/*
	 * An empty 2xx body is this vendor's success answer (the webhook's
	 * "every item erased"), so chaos never sends one as a broken answer.
	 */
	bool		empty_is_success;

	/*
	 * Add the vendor's own object at the end of /_sim/state; NULL if it has
	 * none.
	 */
	void		(*state) (cJSON *root);
} SimVendor;

/* Kinds of rejection counted in /_sim/state. */
typedef enum SimRejection
{
	SIM_REJ_AUTH,
	SIM_REJ_RATE,
	SIM_REJ_INFLIGHT,
	SIM_REJ_LIMIT,
	SIM_REJ_COUNT
} SimRejection;

/*
 * One HTTP request, from the first byte of its headers to its answer.
 * Owned by the dispatcher in ccpurge-sim.c; handlers read it and fill in
 * the reply.
 */
typedef struct SimRequest
{
	struct MHD_Connection *conn;
	const char *method;
	char	   *raw_uri;		/* request target as sent */
	char	   *path;			/* raw path, no query, not decoded */
	char	   *query;			/* raw query without "?", or NULL */
	char	   *body;			/* NUL-terminated, body_len bytes */
	size_t		body_len;
	size_t		body_cap;
	size_t		body_max;		/* bigger bodies get HTTP 413 */
	bool		too_big;
	bool		started;
	bool		dispatched;
	bool		waiting;		/* suspended until wake_at_ms */
	int			glue_stage;
	int64_t		arrival_wall_ms;
	int64_t		arrival_mono_ms;

	const SimRoute *route;		/* NULL for control and unknown paths */
	const SimVendor *vendor;
	int			route_index;	/* index into the global endpoint list */
	char	   *seg[SIM_MAX_SEGS];
	int			nseg;

	/* fault picked for this request */
	int			fault_kind;
	int			fault_status;
	int			delay_ms;		/* delay still to spend */
	char	   *fault_body;		/* "body" fault: the exact answer, malloc'd */
	size_t		fault_body_len;
	char	   *fault_ctype;	/* "body" fault: its Content-Type, malloc'd */
	char	   *fault_retry_after;	/* the fault's Retry-After, malloc'd */

	/* chaos picked for this request (only when no fault was) */
	int			chaos_kind;		/* SIM_CHAOS_*, 0 for none */
	uint64_t	chaos_rand;		/* seeds the answer's own choices */

	/* handler progress */
	int			stage;			/* 0 on the first call */
	int64_t		wake_at_ms;		/* monotonic */
	void	   *vstate;			/* the vendor's scratch, freed with free() */
	long		vnum;			/* the vendor's scratch number */

	/* what the log records */
	bool		has_idem_key;	/* SIM_ROUTE_IDEMPOTENCY and the header */
	char		idem_key[SIM_IDEM_KEY_MAX + 1];
	int			items;			/* -1 when the body named no items */
	bool		record_items;	/* also add items to items_per_request */
	char		code[48];
	char		message[128];

	/* the answer */
	int			status;			/* 0: close the connection, no answer */
	char	   *reply;			/* malloc'd body */
	size_t		reply_len;
	const char *content_type;	/* NULL or "": no Content-Type header */
	char	   *retry_after;	/* malloc'd Retry-After value, or NULL */
	const char *location;		/* static Location value, or NULL */
} SimRequest;

/*
 * A fault to queue (POST /_sim/fault).  The strings are copied; body is
 * body_len bytes, content_type NULL for application/json, and retry_after
 * NULL for no Retry-After header.
 */
typedef struct SimFaultSpec
{
	int			kind;
	int			count;
	int			status;
	int			delay_ms;
	const char *path;			/* NULL: any vendor request */
	const char *body;
	size_t		body_len;
	const char *content_type;
	const char *retry_after;
} SimFaultSpec;

/* ccpurge-sim.c */
extern const SimVendor *const sim_vendors[];
extern const int sim_nvendors;
extern const char *sim_request_header(SimRequest *req, const char *name);
extern void sim_reply(SimRequest *req, int status, cJSON *body,
					  const char *code, const char *message);
extern void sim_reply_raw(SimRequest *req, int status, const char *ctype,
						  char *body, size_t len);
extern void sim_fault_add(const SimFaultSpec *spec);
extern void sim_fault_clear(void);
extern int	sim_fault_kind_from_name(const char *name);

#define SIM_FAULT_NONE		0
#define SIM_FAULT_STATUS	1
#define SIM_FAULT_DELAY		2
#define SIM_FAULT_RESET		3
#define SIM_FAULT_GARBAGE	4
#define SIM_FAULT_OVERSIZE	5
#define SIM_FAULT_EXPIRE	6
#define SIM_FAULT_BODY		7

/* sim_state.c: everything here but the clock needs the state lock held */
extern void sim_lock(void);
extern void sim_unlock(void);
extern int64_t sim_wall_ms(void);
extern int64_t sim_mono_ms(void);
extern void sim_random_hex(char *out, int nbytes);
extern void sim_state_init(void);
extern void sim_state_reset(void);

extern uint64_t sim_hash(const char *s);
extern struct SimSet *sim_set_new(void);
extern void sim_set_free(struct SimSet *set);
extern void sim_set_clear(struct SimSet *set);
extern bool sim_set_add(struct SimSet *set, const char *key);
extern bool sim_set_remove(struct SimSet *set, const char *key);
extern bool sim_set_contains(struct SimSet *set, const char *key);
extern long sim_set_count(struct SimSet *set);
extern cJSON *sim_set_to_json(struct SimSet *set);

extern struct SimSet *sim_deleted_set(const char *name);
extern void sim_count_rejection(SimRejection kind);
extern void sim_count_request(int route_index);
extern void sim_record_items(int route_index, int items);
extern void sim_inflight_enter(SimRequest *req);
extern void sim_inflight_leave(SimRequest *req);
extern void sim_log_add(SimRequest *req, int64_t duration_ms);
extern cJSON *sim_state_json(void);
extern cJSON *sim_log_json(int n);
extern int	sim_route_count(void);
extern const SimRoute *sim_route_at(int index, const SimVendor **vendor);
extern const char *sim_config_apply(cJSON *obj);

/*
 * sim_chaos.c: chaos mode.  The kinds, in the order /_sim/state lists
 * them; everything but the picking and the answer needs the state lock.
 */
#define SIM_CHAOS_NONE			0
#define SIM_CHAOS_INVALID_JSON	1
#define SIM_CHAOS_TRUNCATED		2
#define SIM_CHAOS_WRONG_TYPES	3
#define SIM_CHAOS_DEEP_NESTING	4
#define SIM_CHAOS_LONG_TEXT		5
#define SIM_CHAOS_BAD_UTF8		6
#define SIM_CHAOS_TRAILING_JUNK 7
#define SIM_CHAOS_RESET			8
#define SIM_CHAOS_SLOW			9
#define SIM_CHAOS_REDIRECT		10
#define SIM_CHAOS_STORM_401		11
#define SIM_CHAOS_STORM_429		12
#define SIM_CHAOS_HUGE_BODY		13
#define SIM_CHAOS_KINDS			13

extern const SimConfItem sim_chaos_config[];
extern const int sim_chaos_nconfig;
extern void sim_chaos_restart(void);
extern void sim_chaos_reset(void);
extern void sim_chaos_pick(SimRequest *req);
extern void sim_chaos_answer(SimRequest *req);
extern const char *sim_chaos_kind_name(int kind);
extern void sim_chaos_state(cJSON *root);

/* sim_control.c */
extern void sim_control(SimRequest *req);

/* shared helpers for vendors (sim_state.c) */
extern cJSON *sim_parse_object(SimRequest *req);
extern bool sim_is_digits(const char *s);
extern bool sim_parse_int(const char *s, int min, int max, int *out);
extern long sim_utf8_length(const char *s);

/* the vendors */
extern const SimVendor sim_vendor_cec;
extern const SimVendor sim_vendor_isales;
extern const SimVendor sim_vendor_ozonetel;
extern const SimVendor sim_vendor_webhook;

#endif							/* SIM_H */
