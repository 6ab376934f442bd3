/*-------------------------------------------------------------------------
 *
 * ccpurge.h
 *	  Private declarations shared by the ccpurge source files.
 *
 * First the types every part shares: a server and its connection
 * settings, an HTTP request and its answer, and the vendor interface.  Then
 * the declarations of each file, grouped by the file that defines them, in
 * the order of the files' floors as test/bin/structure draws them, the
 * ground floor first: a file uses only files of the sections above its
 * own.  The SQL API files (api.c, queue.c, console.c, explain.c) and
 * module.c, which only PostgreSQL calls, declare nothing here; neither do
 * the vendor files, whose CcpVendor vendor.c declares beside its table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CCPURGE_H
#define CCPURGE_H

#include "postgres.h"

/* PostgreSQL 15 is the version ccpurge is built and tested for. */
#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 160000
#error "ccpurge supports PostgreSQL 15 only"
#endif

#include "access/xlogdefs.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * Largest response body accepted from a vendor, unless the request asks
 * for more (the webhook's per-item results grow with its batch).
 */
#define CCP_MAX_RESPONSE_BYTES	(1024 * 1024)

/* Largest token kept in the shared cache, terminator included. */
#define CCP_TOKEN_MAX			4096

/* Longest vendor message and code kept in rows and the log, in bytes. */
#define CCP_MAX_MESSAGE_BYTES	1000
#define CCP_MAX_CODE_BYTES		60

/* What a redacted secret or token is shown as. */
#define CCP_REDACTED			"<redacted>"

/* Secrets shorter than this are not searched for in vendor text. */
#define CCP_REDACT_MIN_LEN		4

/* Most credentials a vendor's user mapping holds. */
#define CCP_MAX_CREDS			4

/* Most secrets one server and mapping can hold: credentials and proxy. */
#define CCP_MAX_SECRETS			(CCP_MAX_CREDS + 2)

/* Upper bound for rate_limit's N that the limiter tracks exactly. */
#define CCP_RATE_RING			256

/* ----------
 * Types every part shares
 * ----------
 */

/* Where a request came from, as recorded in the request log. */
typedef enum CcpOrigin
{
	CCP_ORIGIN_SYNC,
	CCP_ORIGIN_WORKER
} CcpOrigin;

struct CcpVendor;
struct CcpOpDef;

/*
 * Connection settings of one server: everything the HTTP layer needs and
 * nothing vendor specific.
 */
typedef struct CcpHttpOptions
{
	int			timeout_ms;		/* total transfer time */
	int			connect_timeout_ms;
	bool		verify_tls;		/* of the server and of an https proxy */
	char	   *ca_file;		/* NULL: system default bundle */
	char	   *proxy;			/* NULL: direct, whatever the environment */
	char	   *no_proxy;		/* hosts reached directly; NULL: none */
	char	   *proxy_user;		/* NULL: no proxy authentication */
	char	   *proxy_password; /* secret; set whenever proxy_user is */
} CcpHttpOptions;

/*
 * A server and the current user's mapping for it, resolved and validated.
 * Built by ccp_server_resolve(); lives in the caller's memory context.
 */
typedef struct CcpServer
{
	Oid			serverid;
	Oid			umid;			/* user mapping oid (PUBLIC or the role's) */
	Oid			userid;			/* role the mapping was looked up for */
	char	   *servername;
	const struct CcpVendor *vendor;
	char	   *url;			/* base URL, no trailing slash */
	CcpHttpOptions http;
	int			batch_size;		/* effective: min(option, vendor limit) */
	int			rate_count;		/* 0 = unlimited */
	int			rate_period_ms;
	int			max_inflight;	/* 0 = unlimited */
	int			token_ttl;		/* seconds, CEC X-Token-Expire */
	/* credentials from the user mapping, by position in vendor->cred_names */
	char	   *cred[CCP_MAX_CREDS];
} CcpServer;

/* An HTTP request, as vendors build it and http.c sends it. */
typedef struct CcpHttpRequest
{
	const char *method;			/* "POST", "DELETE" */
	char	   *url;			/* absolute */
	List	   *headers;		/* of char *, "Name: value" */
	char	   *body;			/* NULL: no body */
	size_t		body_len;
	size_t		max_response;	/* largest answer; 0: CCP_MAX_RESPONSE_BYTES */
} CcpHttpRequest;

typedef struct CcpHttpResult
{
	int			status;			/* HTTP status, 0 when none was received */
	bool		transport_error;	/* no usable HTTP answer */
	bool		timed_out;
	char	   *error;			/* palloc'd, set with transport_error */
	char	   *body;			/* palloc'd, NUL-terminated, maybe "" */
	size_t		body_len;
	double		elapsed_ms;
	int			resends;		/* times libcurl sent the request again */
} CcpHttpResult;

typedef struct CcpHttpCall CcpHttpCall;

/*
 * The vendor interface: vendor.c holds the table of vendors, and each
 * vendor_<name>.c defines one CcpVendor with its operations.
 */

/* How the pipeline should react to an outcome. */
typedef enum CcpRetry
{
	CCP_FINAL,					/* ok, or a permanent failure */
	CCP_RETRY_TRANSIENT,		/* timeout, connection, 5xx, 429 */
	CCP_RETRY_TOKEN,			/* token rejected or expired */
	CCP_RETRY_RATE				/* vendor says too many requests */
} CcpRetry;

typedef struct CcpOutcome
{
	bool		ok;
	int			http_status;	/* 0: none */
	char	   *code;			/* vendor code, NULL if none */
	char	   *message;		/* human readable, never NULL */
	int			success_count;	/* -1: not reported */
	CcpRetry	retry;

	/*
	 * Per-item outcomes, for vendors that answer per item: NULL when the
	 * request's outcome applies to every item, else one entry per item of
	 * the chunk, in its order (item_message entries may be NULL: then
	 * message applies).
	 */
	bool	   *item_ok;
	char	  **item_message;
} CcpOutcome;

/*
 * One vendor request's worth of work, as the pipeline hands it to an
 * operation's build and parse callbacks.
 */
typedef struct CcpChunk
{
	const void *params;			/* the operation's own, see read_params */
	char	  **items;			/* validated, distinct, within the limit */
	int			nitems;
	const char *token;			/* NULL for vendors without tokens */
	const char *batch_key;		/* lower-hex, the same for every automatic
								 * attempt of a batch */
} CcpChunk;

typedef struct CcpOpDef
{
	const char *name;			/* "delete_customers", as in ccpurge_enqueue */
	const char *items_arg;		/* its SQL function's items argument */
	int			max_batch;		/* vendor limit of items per request */
	int			max_item_len;	/* 0: no limit */

	/*
	 * Check one item; ereport(ERROR) with a user-facing message if it is
	 * not acceptable.  Called before anything is sent.
	 */
	void		(*validate_item) (const struct CcpOpDef *def, const char *item);

	/*
	 * Build the HTTP request for one chunk into req, which the caller has
	 * zeroed (members left alone keep their defaults).  Allocates in the
	 * current memory context.
	 */
	void		(*build) (const CcpServer *srv, const CcpChunk *chunk,
						  CcpHttpRequest *req);

	/*
	 * Read an HTTP answer to the chunk (never called for transport errors)
	 * into out.  out->http_status is already set; must set ok, code,
	 * message, retry, and may set the per-item outcomes.
	 */
	void		(*parse) (const CcpServer *srv, const CcpChunk *chunk,
						  const CcpHttpResult *res, CcpOutcome *out);

	/*
	 * The operation's params: an opaque struct of its own, read from the
	 * jsonb object that ccpurge_enqueue, the trigger, ccpurge_call and the
	 * operation's SQL function (from its other arguments) give.  param_keys
	 * lists the accepted keys ("" or NULL for none; others are refused
	 * before read_params runs); read_params validates the object (never
	 * NULL, maybe empty) and returns the struct (NULL: the operation takes
	 * no params); params_text prints validated params as canonical JSON, so
	 * that equal params give equal text (NULL callback: "{}").
	 */
	const char *param_keys;
	void	   *(*read_params) (const struct CcpOpDef *def, Jsonb *params);
	char	   *(*params_text) (const struct CcpOpDef *def, const void *params);

	/*
	 * Optional: the params as the request log's scope, JSON text in which
	 * every value that selects people (a calldata filter's sessionId,
	 * called, customField) is replaced by its keyed digest
	 * (ccp_digest_value); NULL callback: params_text, which must then hold
	 * no such value.
	 */
	char	   *(*scope_text) (const struct CcpOpDef *def, const void *params);

	/*
	 * Optional: tells whether params alone say what to erase, so that a
	 * request carries no items (a calldata filter); NULL: never.
	 */
	bool		(*itemless) (const struct CcpOpDef *def, const void *params);

	/*
	 * Optional: when params need more than one request per chunk of items
	 * (Ozonetel's campaign list), the params of each request, as a List of
	 * the operation's structs; NULL means one request with params as they
	 * are.
	 */
	List	   *(*split_params) (const struct CcpOpDef *def,
								 const void *params);
} CcpOpDef;

typedef struct CcpVendor
{
	const char *name;			/* "cec", "isales", "ozonetel", "webhook" */
	int			ncreds;			/* credentials its user mapping holds */
	const char *cred_names[CCP_MAX_CREDS];	/* their options, all required */
	int			max_batch;		/* largest limit of its operations */
	int			default_batch;	/* batch_size when not set; 0: max_batch */
	const char *default_rate_limit; /* NULL: unlimited */
	int			default_max_inflight;	/* 0: unlimited */
	bool		has_token_ttl;	/* accepts token_ttl */
	int			account_cred;	/* cred naming the account; -1: the URL */

	/* token vendors only; NULL otherwise; req is zeroed by the caller */
	void		(*build_token_request) (const CcpServer *srv, CcpHttpRequest *req);
	bool		(*parse_token) (const CcpServer *srv, const CcpHttpResult *res,
								char **token, int *ttl_s, char **error);

	/*
	 * Optional: check the mapping's credentials beyond "present and
	 * printable" when a server is resolved; ereport(ERROR) if unusable.
	 */
	void		(*check_mapping) (const CcpServer *srv);

	const CcpOpDef *ops;
	int			nops;
} CcpVendor;

/*
 * What an attempt's outcome makes of queued items: exchange.c decides,
 * queue_store.c records it.
 */
typedef enum CcpSettle
{
	CCP_SETTLE_DONE,
	CCP_SETTLE_RETRY,			/* queued again after a delay */
	CCP_SETTLE_FAILED,			/* refused for good, or ccpurge.max_attempts */
	CCP_SETTLE_EXPIRED			/* failed: transient past ccpurge.retry_for */
} CcpSettle;

/* ----------
 * settings.c: the GUCs
 * ----------
 */
extern bool ccp_allow_insecure_http;
extern bool ccp_serve_database;
extern char *ccp_database_name;
extern int	ccp_max_attempts;
extern int	ccp_retry_for_s;
extern int	ccp_retry_base_ms;
extern int	ccp_retry_max_ms;
extern int	ccp_batch_linger_ms;
extern int	ccp_retention_s;
extern int	ccp_max_servers;
extern int	ccp_max_databases;
extern int	ccp_worker_inflight;
extern int	ccp_rate_notice_ms;
extern int	ccp_token_fail_hold_ms;
extern bool ccp_dry_run;
extern void ccp_define_settings(void);

/* ----------
 * hmac.c: HMAC-SHA256 and SHA-256
 * ----------
 */
struct pg_cryptohash_ctx;

extern void ccp_hmac_sha256(const char *key, size_t keylen,
							const char *msg, size_t msglen, uint8 *digest);
extern void ccp_hmac_sha256_hex(const char *key, size_t keylen,
								const char *msg, size_t msglen, char *hex);
extern void ccp_hmac_sha256_many(const uint8 *key, size_t keylen,
								 char *const *msgs, int n, uint8 *out);
extern struct pg_cryptohash_ctx *ccp_sha256_begin(void);
extern void ccp_sha256_add(struct pg_cryptohash_ctx *ctx, const char *data,
						   size_t len);
extern char *ccp_sha256_end(struct pg_cryptohash_ctx *ctx);

/* ----------
 * input.c: items from arrays, de-duplication, text checks
 * ----------
 */
typedef enum CcpTextProblem
{
	CCP_TEXT_OK,
	CCP_TEXT_BLANK,
	CCP_TEXT_CONTROL
} CcpTextProblem;

extern char **ccp_text_array(ArrayType *arr, const char *argname, int *n);
extern char **ccp_items_from_array(ArrayType *arr, const CcpOpDef *def,
								   const char *argname, int *nitems);
extern char **ccp_items_for_params(ArrayType *arr, const CcpOpDef *def,
								   const void *params, const char *argname,
								   int *nitems);
extern void ccp_validate_nonempty_item(const CcpOpDef *def, const char *item);
extern int	ccp_items_distinct(char **items, int n);
extern int64 ccp_datums_distinct(Datum *items, int64 n);
extern CcpTextProblem ccp_text_problem(const char *s, int len);
extern void *ccp_params_read(const CcpOpDef *def, Jsonb *params);
extern char *ccp_params_text(const CcpOpDef *def, const void *params);
extern List *ccp_params_split(const CcpOpDef *def, const void *params);
extern List *ccp_params_requests(const CcpOpDef *def, const char *params_text);
extern Jsonb *ccp_jsonb_parse(const char *json);
extern bool ccp_params_itemless(const CcpOpDef *def, const void *params);
extern char *ccp_params_scope(const CcpOpDef *def, const void *params);
extern bool ccp_jsonb_member(Jsonb *obj, const char *key, JsonbValue *v);
extern bool ccp_jsonb_int_member(Jsonb *obj, const char *key, int *value);
extern char **ccp_jsonb_text_array_member(Jsonb *obj, const char *key,
										  int *n);

/* ----------
 * owner.c: statements on ccpurge's tables, prepared once, run with the
 * rights of their owner
 * ----------
 */

/* Saved identity while running SQL as the owner of ccpurge's tables. */
typedef struct CcpOwnerState
{
	Oid			save_userid;
	int			save_sec;
	int			guc_level;
} CcpOwnerState;

/* Most arguments a CcpStmt takes. */
#define CCP_STMT_MAX_ARGS		18

/*
 * One SQL statement on ccpurge's tables, declared static by the file that
 * runs it: its text and argument types, and its plan, prepared and kept on
 * first use (NULL until then).  generic asks for one plan for all
 * arguments, for a statement the worker runs for every batch whose plan
 * does not depend on them: PostgreSQL would otherwise plan it again at
 * every run (an array argument makes the generic plan look dearer), or
 * choose by a LIMIT that counts rows where the caller counts items.
 */
typedef struct CcpStmt
{
	const char *sql;
	int			nargs;
	Oid			types[CCP_STMT_MAX_ARGS];
	struct _SPI_plan *plan;
	bool		generic;
} CcpStmt;

extern void ccp_owner_begin(Oid owner, CcpOwnerState *state);
extern void ccp_owner_restore_user(const CcpOwnerState *state);
extern void ccp_owner_end(const CcpOwnerState *state);
extern bool ccp_ccpurge_table(const char *relname, Oid *relid, Oid *owner);
extern void ccp_owner_call(Oid owner, void (*fn) (void *arg), void *arg);
extern bool ccp_subxact_call(void (*fn) (void *arg), void *arg,
							 char **message);
extern struct PortalData *ccp_stmt_open(CcpStmt *stmt, Datum *values,
										const char *nulls);
extern void ccp_stmt_columns_alloc(const CcpStmt *stmt, int n, Datum **cols,
								   bool **colnulls);
extern void ccp_stmt_columns_args(const CcpStmt *stmt, int n, Datum **cols,
								  bool **colnulls, Datum *args);
extern uint64 ccp_stmt_exec(CcpStmt *stmt, Datum *values, const char *nulls,
							int expect);
extern uint64 ccp_stmt_exec_as(Oid owner, CcpStmt *stmt, Datum *values,
							   const char *nulls, int expect);

/* ----------
 * shmem.c: shared state of all backends and the worker
 * ----------
 */
extern void ccp_shmem_request(void);
extern void ccp_shmem_startup(void);
extern bool ccp_shmem_ready(void);
extern void ccp_shmem_strcpy(char *dst, const char *src, int size);

/* What survives restarts, relative to the data directory (see shmem.c). */
#define CCP_STATE_DIR		"pg_ccpurge/state"
extern bool ccp_state_write(const char *name, uint32 magic, const void *recs,
							uint32 count, size_t size, bool durable);
extern int	ccp_state_open(const char *name, uint32 magic, uint32 *count);

/*
 * Shared token slot, one per vendor account (ccp_server_account).
 * Protected by the token cache lock; cv wakes waiters of a refresh.
 */
typedef struct CcpTokenSlot
{
	uint64		account;		/* 0: free */
	uint32		cred_hash;		/* detects changed credentials */
	bool		refreshing;
	int			refresher_pid;
	uint64		generation;		/* bumped on every new token */
	TimestampTz expires_at;		/* refresh before this */
	TimestampTz issued_at;
	int			tokens_issued;	/* since startup, for tests */
	TimestampTz fail_until;		/* a failed refresh is reused until then */
	int			fail_status;	/* its HTTP status, 0: none */
	char		fail_message[256];
	char		token[CCP_TOKEN_MAX];
} CcpTokenSlot;

/* The settings one server (of a database) asked a limiter slot for. */
typedef struct CcpRateVoter
{
	Oid			dbid;			/* InvalidOid: unused */
	Oid			serverid;
	int			count;
	int64		period_us;
	int			max_inflight;
} CcpRateVoter;

#define CCP_RATE_VOTERS		8

/*
 * Shared rate limiter slot, one per vendor account (ccp_server_account),
 * under the strictest settings of the servers that use it (voters).
 * sent[] holds the completion time of the last rate_count requests; a
 * request still in flight has DT_NOEND there.  Protected by the limiter
 * lock.
 */
typedef struct CcpRateSlot
{
	uint64		account;		/* 0: free */
	CcpRateVoter voters[CCP_RATE_VOTERS];
	int			count;			/* N of N/period, <= CCP_RATE_RING */
	int64		period_us;		/* possibly scaled, see ratelimit.c */
	int			max_inflight;
	int			inflight;
	int			used;			/* entries of sent[] in use */
	int64		requests;		/* since startup */
	TimestampTz sent[CCP_RATE_RING];
	int			holder_pid[CCP_RATE_RING];
} CcpRateSlot;

/*
 * A request-log row handed to the worker because the transaction that
 * wrote it rolled back (see reqlog.c).  code and message hold as much as a
 * committed row: the clipped text, ccp_clip's "..." and the terminator.
 * Protected by log_lock.
 */
typedef struct CcpLogRecord
{
	Oid			dbid;
	TimestampTz at;
	char		server[NAMEDATALEN];
	char		vendor[NAMEDATALEN];
	char		operation[NAMEDATALEN];
	bool		worker;
	Oid			role;
	int64		request_id;
	int			item_count;
	bool		has_digest;
	char		digest[65];		/* hex HMAC of the items */
	int			key_id;			/* of its key */
	int64		log_id;			/* the intent row it finishes; 0: a new row */
	bool		reserved;		/* log_id is the new row's own, reserved for a
								 * synchronous request's intent (intent.c) */
	bool		ok_unknown;		/* ok is NULL */
	bool		has_request_ids;
	char		request_ids[256];	/* "{1,2}", left out when longer */
	bool		has_scope;
	char		scope[1024];	/* JSON text, left out when longer */
	bool		ok;
	int			http_status;
	bool		has_code;
	char		code[CCP_MAX_CODE_BYTES + 4];
	char		message[CCP_MAX_MESSAGE_BYTES + 4];
	double		duration_ms;
	/* receipts (receipt.c): in files, followed by their bytes */
	int			nreceipts;		/* items of the receipts below */
	int			receipt_key;	/* key_id of the item HMACs */
	bool		has_hmacs;		/* nreceipts * 32 bytes of item HMACs follow */
	bool		has_item_ok;	/* then nreceipts bytes of per-item outcomes */
} CcpLogRecord;

#define CCP_LOG_RING	256

/*
 * A database that needs a worker, and its worker (see launcher.c).
 * Protected by worker_lock, but inflight, which other workers read
 * without it.
 */
typedef struct CcpDbWorker
{
	Oid			dbid;			/* InvalidOid: free */
	uint32		generation;		/* bumped at every claim and free */
	bool		noroom;			/* no background worker slot to start one */
	int			pid;			/* of its worker, once connected */
	Latch	   *latch;
	TimestampTz hold_until;		/* DROP DATABASE: stay away until then */
	int			inflight;		/* batches its worker has in flight */
} CcpDbWorker;

typedef struct CcpShared
{
	LWLock	   *token_lock;
	LWLock	   *rate_lock;
	LWLock	   *worker_lock;
	LWLock	   *log_lock;
	ConditionVariable token_cv;
	ConditionVariable rate_cv;
	Latch	   *launcher_latch;
	TimestampTz started_at;		/* when shared memory was (re)made: intent
								 * files older than that have no owner */
	bool		tokens_read;	/* token file read, see auth.c */
	bool		windows_read;	/* window file read, see ratelimit.c */
	bool		windows_loaded; /* and it vouched for every window */
	int			ndbs;
	CcpDbWorker *dbs;			/* ndbs entries, under worker_lock */
	int			log_count;		/* records in log_ring */
	CcpLogRecord log_ring[CCP_LOG_RING];	/* rows of rolled-back calls */
	pg_atomic_uint64 digest_generation;	/* bumped when a digest key is added */
	int			nslots;
	CcpTokenSlot *tokens;		/* nslots entries */
	CcpRateSlot *rates;			/* nslots entries */
} CcpShared;

extern CcpShared *ccp_shared;
extern void ccp_wake_worker(void);

/* ----------
 * http.c: libcurl transport, knows nothing about vendors
 * ----------
 */
extern void ccp_http_check_userinfo(const char *url, bool proxy);
extern void ccp_http_check_url(const char *url);
extern void ccp_http_check_proxy(const char *proxy);
extern void ccp_http_check_route(const char *url, const char *proxy);
extern void ccp_http_perform(const CcpHttpOptions *opts,
							 const CcpHttpRequest *req, CcpHttpResult *res);
extern CcpHttpCall *ccp_http_start(const CcpHttpOptions *opts,
								   const CcpHttpRequest *req, void *arg);
extern CcpHttpCall *ccp_http_next_done(long timeout_ms);
extern void *ccp_http_call_arg(CcpHttpCall *call);
extern void ccp_http_finish(CcpHttpCall *call, CcpHttpResult *res);
extern void ccp_http_abort_all(void);
extern int	ccp_http_inflight(void);
extern char *ccp_http_host_port(const char *url);
extern char *ccp_http_escape(const char *s, int len);

/* ----------
 * guard.c: what every SQL entry point checks first
 * ----------
 */
extern void ccp_require_preload(void);
extern void ccp_require_writable(void);

/* ----------
 * progress.c: the progress of running synchronous calls
 * ----------
 */

/* What a running synchronous call waits for, as ccpurge_progress says. */
typedef enum CcpProgressWait
{
	CCP_WAIT_NONE,
	CCP_WAIT_RATE,				/* "rate limit" */
	CCP_WAIT_TOKEN,				/* "token" */
	CCP_WAIT_HTTP				/* "http" */
} CcpProgressWait;

extern void ccp_progress_register(void);
extern void ccp_progress_begin(const char *function, const char *server,
							   int64 items_total, int requests_total);
extern void ccp_progress_advance(int64 items);
extern void ccp_progress_wait(CcpProgressWait what);
extern void ccp_progress_end(void);
extern Datum ccpurge_progress(PG_FUNCTION_ARGS);

/* ----------
 * vtext.c: text from outside, cleaned, redacted and clipped
 * ----------
 */
extern char *ccp_vendor_text(const char *s);
extern int	ccp_server_secrets(const CcpServer *srv, const char **secrets);
extern char *ccp_redact(const CcpServer *srv, const char *text,
						const char *token);
extern char *ccp_clip(char *s, int maxbytes);

/* ----------
 * ratelimit.c: per-server limiter shared by every backend and the worker
 * ----------
 */
extern int	ccp_rate_acquire(const CcpServer *srv, bool wait);
extern void ccp_rate_release(const CcpServer *srv, int ticket);
extern void ccp_rate_penalize(const CcpServer *srv);
extern long ccp_rate_next_ms(const CcpServer *srv);
extern void ccp_rate_release_all(void);
extern bool ccp_rate_state(uint64 account, int *inflight, int *window_used,
						   TimestampTz *next_slot_at);

/* ----------
 * c2sign.c: Huawei's C2 request signature
 * ----------
 */
extern char *ccp_c2_authorization(const char *ak, const char *sk,
								  const char *ts, const char *method,
								  const char *path, const char *query,
								  List *headers, const char *body,
								  size_t body_len);
extern Datum ccpurge_c2_sign(PG_FUNCTION_ARGS);

/* ----------
 * queue_store.c: every query on ccpurge.queue
 * ----------
 */

/* The queue table, its request id sequence and their owner. */
typedef struct CcpQueueRel
{
	Oid			relid;
	Oid			seqid;
	Oid			owner;
	bool		batch_keys;		/* it has batch_key and batch_nitems */
} CcpQueueRel;

/*
 * Due queued rows a claim may make batches of: the fresh rows of one
 * (server, operation, params, role), which are coalesced and split at
 * will, or the rows of one kept batch, claimed all together or not at all.
 */
typedef struct CcpDueGroup
{
	char	   *server;
	char	   *operation;
	char	   *params;			/* canonical JSON text */
	Oid			role;
	char	   *batch_key;		/* a kept batch's; NULL for fresh rows */
	int			queued;			/* items due */
	int64		age_ms;			/* age of its oldest row */
	int64		first;			/* no due row of it has a lower chunk_id */
} CcpDueGroup;

/* What the rows claimed into one batch hold. */
typedef struct CcpBatchRows
{
	char	  **items;			/* distinct, in the order of their rows */
	int			nitems;
	int			attempts;		/* highest attempts of its rows so far */
	TimestampTz enqueued_at;	/* when its oldest row was queued */
	int64		request_id;		/* of the first row, for the log */
	int64	   *request_ids;	/* distinct, ascending */
	int			nrequest_ids;
	bool		verbatim;		/* items are exactly its rows' items, in the
								 * order of their rows: no duplicate left */
} CcpBatchRows;

/* A request some of whose rows failed for good, and their items. */
typedef struct CcpFailedRequest
{
	int64		request_id;
	int64		items;
} CcpFailedRequest;

extern bool ccp_store_lookup(CcpQueueRel *rel, bool missing_ok);
extern bool ccp_store_keeps_batch_keys(void);
extern void ccp_store_register_callbacks(void);
extern int64 ccp_store_request(const CcpQueueRel *rel, const char *server,
							   const char *operation, List *params_texts,
							   Oid role, Datum *items, int64 nitems,
							   int batch);
extern int64 ccp_store_request_roles(const CcpQueueRel *rel, int64 request_id,
									 List **roles, bool *own_xact);
extern int64 ccp_store_unfinished(const CcpQueueRel *rel, int64 request_id);
extern int64 ccp_store_retry(const CcpQueueRel *rel, int64 request_id);
extern int64 ccp_store_retry_failed(const CcpQueueRel *rel, const char *server,
									Oid userid);
extern int64 ccp_store_cancel(const CcpQueueRel *rel, int64 request_id,
							  const char *message);
extern int64 ccp_store_sending(const CcpQueueRel *rel, int64 request_id);
extern int64 ccp_store_requeue_interrupted(int64 *items);
extern bool ccp_store_purge(int retention_s, int64 *due_ms);
extern List *ccp_store_due_groups(int per_server, bool keys);
extern int	ccp_store_fail_group(const CcpDueGroup *group, int64 batch_id,
								 const char *message,
								 CcpFailedRequest **failed);
extern void ccp_store_hasten(const char *server);
extern int	ccp_store_expire_group(const CcpDueGroup *group, int64 batch_id,
								   int retry_for_s, CcpFailedRequest **failed);
extern void ccp_store_mark_sending(int64 batch_id, const char *batch_key,
								   int nitems, const int64 *ids, int nids,
								   bool keys);
extern int	ccp_store_claim_fresh(const CcpDueGroup *group, int64 batch_id,
								  const char *batch_key, int limit, bool keys,
								  int64 *next_first);
extern bool ccp_store_lock_kept(const char *batch_key, int64 **ids, int *nids,
								int *nitems, bool *whole);
extern void ccp_store_new_generation(const int64 *ids, int nids);
extern void ccp_store_batch_rows(int64 batch_id, MemoryContext cxt,
								 CcpBatchRows *rows);
extern bool ccp_store_next_due(int64 *due_ms);
extern void ccp_store_record(int64 batch_id, CcpSettle settle,
							 int http_status, const char *code,
							 const char *message, int64 delay_ms,
							 int64 receipt_log_id);
extern int	ccp_store_failed_requests(int64 batch_id, const int64 *request_ids,
									  int n, CcpFailedRequest **failed);
extern void ccp_store_fail_items(int64 batch_id, char **items,
								 char **messages, int n);
extern void ccp_store_forget_done(int64 batch_id, bool keys);

/* ----------
 * dropdb.c: DROP DATABASE of the worker's database
 * ----------
 */
extern void ccp_dropdb_register(void);

/* ----------
 * outcome.c: outcomes of vendor requests
 * ----------
 */
extern void ccp_outcome_transient(CcpOutcome *out, int http_status,
								  char *message);
extern void ccp_outcome_no_token(CcpOutcome *out, const char *error,
								 int http_status);
extern void ccp_outcome_clean(const CcpServer *srv, CcpOutcome *out,
							  const char *token);
extern bool ccp_outcome_all_ok(const CcpOutcome *out, int nitems);

/* ----------
 * wire.c: JSON bodies, headers and URLs of vendor requests and answers
 * ----------
 */
extern void *ccp_json_parse_body(const CcpHttpResult *res);
extern char *ccp_json_get_string(void *cjson_object, const char *key);
extern char *ccp_json_text(void *cjson_root);
extern void ccp_set_json_body(CcpHttpRequest *req, void *cjson_root);
extern void ccp_add_header(CcpHttpRequest *req, const char *name,
						   const char *value);
extern char *ccp_join_url(const CcpServer *srv, const char *path);

/* ----------
 * report.c: reports of requests that failed for good
 * ----------
 */

/*
 * Why queued rows failed for good, as the server log and ccpurge_failed
 * notifications say it: ccpurge's own words only, since any role can
 * LISTEN.  The vendor's code and message stay in the rows.
 */
typedef enum CcpFailure
{
	CCP_FAILED_REFUSED,			/* the vendor refused the request for good */
	CCP_FAILED_RETRIES_EXHAUSTED,	/* transient failures, no attempt left */
	CCP_FAILED_RETRY_EXPIRED,	/* transient failures past ccpurge.retry_for */
	CCP_FAILED_ITEMS_REFUSED,	/* the receiver refused some items */
	CCP_FAILED_SERVER_UNUSABLE, /* server or user mapping cannot be used */
	CCP_FAILED_UNKNOWN_OPERATION	/* the operation is not known */
} CcpFailure;

extern void ccp_report_failure(int64 batch_id, const char *server,
							   const char *operation, CcpFailure why,
							   int http_status,
							   const CcpFailedRequest *failed, int nfailed);

/* ----------
 * digest.c: keyed digests of items, the keys and their rotation
 * ----------
 */
extern void ccp_digest_refresh(void);
extern bool ccp_digest_items(char **items, int n, uint8 *digest, int *key_id);
extern char *ccp_digest_value(const char *value);
extern bool ccp_digest_each(char *const *items, int n, uint8 *out, int *key_id);
extern int	ccp_digest_under_every_key(const char *item, uint8 **hmacs,
									   int **key_ids);
extern char *ccp_digest_text(const uint8 *hmac, int key_id);
extern Datum ccpurge_forget_items(PG_FUNCTION_ARGS);
extern Datum ccpurge_items_digest(PG_FUNCTION_ARGS);
extern Datum ccpurge_rotate_digest_key(PG_FUNCTION_ARGS);

/* ----------
 * chain.c: the request log's hash chain, its verification and pruning
 * ----------
 */

/*
 * The columns a request log row's hash covers, in hash order: every column
 * of the log but the hashes themselves (see chain.c).
 */
#define CCP_CHAIN_COLUMNS \
	"log_id, logged_at, server, vendor, operation, origin, role," \
	" request_id, item_count, items_sha256, ok, http_status, code, message," \
	" duration_ms, items_hmac, key_id, scope, request_ids, chain_seq"
#define CCP_CHAIN_COLUMN_NAMES \
	"log_id", "logged_at", "server", "vendor", "operation", "origin", "role", \
	"request_id", "item_count", "items_sha256", "ok", "http_status", "code", \
	"message", "duration_ms", "items_hmac", "key_id", "scope", "request_ids", \
	"chain_seq"
#define CCP_CHAIN_NCOLUMNS	20

extern void ccp_chain_settings(void);
extern int	ccp_chain_seal(void);
extern Datum ccpurge_verify_log(PG_FUNCTION_ARGS);
extern Datum ccpurge_prune_log(PG_FUNCTION_ARGS);

/* ----------
 * receipt.c: receipts, one per item per request, and their look-ups
 * ----------
 */
extern bool ccp_receipt_writable(void);
extern void ccp_receipt_insert(Oid owner, int n, const int64 *log_ids,
							   const int *key_ids, uint8 *const *hmacs,
							   uint8 *const *item_ok, const int *nitems);
extern void ccp_receipt_set_outcomes(Oid owner, int64 log_id,
									 const uint8 *item_ok, int nitems);
extern Datum ccpurge_receipt_keys(PG_FUNCTION_ARGS);
extern Datum ccpurge_erasure_receipt(PG_FUNCTION_ARGS);
extern Datum ccpurge_erasure_certificate(PG_FUNCTION_ARGS);

/* ----------
 * reqlog.c: the request log, keyed digests only
 * ----------
 */
extern void ccp_reqlog_write(const CcpServer *srv, const char *operation,
							 char **items, int nitems,
							 const CcpOutcome *out, double elapsed_ms,
							 CcpOrigin origin, int64 request_id,
							 const int64 *request_ids, int nrequest_ids,
							 const char *scope, int64 intent_id);
extern int64 ccp_reqlog_intent(const CcpServer *srv, const char *operation,
							   char **items, int nitems, int64 request_id,
							   const int64 *request_ids, int nrequest_ids,
							   const char *scope, bool *receipts);
extern int64 ccp_reqlog_mark_unknown(void);
extern void ccp_reqlog_resent(const CcpServer *srv, const char *operation,
							  char **items, int nitems, CcpOrigin origin,
							  int64 request_id, const int64 *request_ids,
							  int nrequest_ids, const char *scope, int resends);
extern bool ccp_reqlog_pending(void);
extern void ccp_reqlog_flush(void);
extern void ccp_reqlog_flush_at_statement_end(void);
extern void ccp_reqlog_discard(void);
extern void ccp_reqlog_adopt_orphans(void);
extern void ccp_reqlog_orphan_pending(void);
extern void ccp_reqlog_register_callbacks(void);
extern void ccp_reqlog_sync_intents(const CcpServer *srv, const CcpOpDef *def,
									const CcpChunk *chunks, int n,
									int64 *ids);
extern void ccp_reqlog_sending(int64 intent_id);

/* ----------
 * intent.c: durable intents of synchronous requests, a file per backend
 * ----------
 */
#define CCP_SPILL_DIR		"pg_ccpurge"	/* in $PGDATA */
#define CCP_INTENT_PREFIX	"intent-"
/* Most intents of a synchronous call made durable in one sync. */
#define CCP_INTENT_WINDOW	64
extern int	ccp_intent_begin(bool sync);
extern void ccp_intent_end(bool written, bool sync);
extern void ccp_intent_settle(XLogRecPtr lsn);
extern bool ccp_intent_active(void);
extern bool ccp_intent_orphaned(const char *name, Oid dbid);

/* ----------
 * vendor.c: the vendor table
 * ----------
 */
extern const CcpVendor *ccp_vendor_by_name(const char *name);
extern uint64 ccp_server_account(const CcpServer *srv);
extern int	ccp_vendor_count(void);
extern const CcpVendor *ccp_vendor_at(int i);
extern const CcpOpDef *ccp_op_by_name(const char *name, const CcpVendor **vendor);
extern const CcpOpDef *ccp_op_lookup(const char *name, const CcpVendor **vendor);

/* ----------
 * auth.c: shared token cache with single-flight refresh
 * ----------
 */
extern bool ccp_token_get(const CcpServer *srv, const char *stale,
						  char **token, char **error, int *http_status,
						  CcpOrigin origin);
extern TimestampTz ccp_token_expiry(uint64 account);

/* ----------
 * option.c: the FDW validator and server/mapping resolution
 * ----------
 */
extern Datum ccpurge_fdw_validator(PG_FUNCTION_ARGS);
extern char *ccp_server_name(const char *servername,
							 const struct CcpVendor *vendor);
extern CcpServer *ccp_server_resolve(const char *servername,
									 const struct CcpVendor *vendor,
									 Oid userid);
extern bool ccp_parse_rate_limit(const char *value, int *count,
								 int *period_ms);
extern void ccp_check_url(const char *url, bool at_ddl);

/* ----------
 * breaker.c: each server's circuit breaker, and the retry backoff
 * ----------
 */
extern void ccp_breaker_register(void);
extern int64 ccp_backoff_ms(int n);
extern bool ccp_breaker_allow(const CcpServer *srv, long *wait_ms);
extern void ccp_breaker_sent(const CcpServer *srv);
extern bool ccp_breaker_record(const CcpServer *srv, const CcpOutcome *out,
							   TimestampTz claimed_at, bool no_room);

/* ----------
 * exchange.c: the one exchange, a step machine both paths drive
 * ----------
 */

/* What the driver of an exchange does next. */
typedef enum CcpStep
{
	CCP_STEP_SEND,				/* x->req is built, a ticket held: send it */
	CCP_STEP_AGAIN,				/* try again now: ccp_exchange_prepare */
	CCP_STEP_DONE				/* x->out is the outcome; nothing held */
} CcpStep;

typedef struct CcpExchange
{
	const CcpServer *srv;
	const CcpOpDef *def;
	CcpChunk	chunk;
	CcpOrigin	origin;
	int64		request_id;		/* for the log; 0: none */
	const int64 *request_ids;	/* every queue request carried; NULL: none */
	int			nrequest_ids;
	char	   *scope;			/* the request's params for the log */
	int64		intent_id;		/* the durable row of the next send; 0: none */
	bool		blocking;		/* may wait for the limiter */
	int			ticket;			/* rate-limit ticket held, -1: none */
	bool		token_retried;
	bool		rate_retried;
	bool		no_room;		/* the last prepare found no rate-limit room */
	const char *stale;			/* token the vendor refused, or NULL */
	CcpHttpRequest req;			/* built by ccp_exchange_prepare */
	CcpOutcome	out;			/* of the last attempt */
} CcpExchange;

extern void ccp_exchange_init(CcpExchange *x, const CcpServer *srv,
							  const CcpOpDef *def, const void *params,
							  char **items, int nitems, const char *batch_key,
							  CcpOrigin origin, int64 request_id,
							  bool blocking);
extern void ccp_exchange_build(CcpExchange *x, const char *token);
extern CcpStep ccp_exchange_prepare(CcpExchange *x);
extern CcpStep ccp_exchange_answer(CcpExchange *x, const CcpHttpResult *res);
extern void ccp_exchange_abandon(CcpExchange *x);
extern void ccp_exchange_unsent(CcpExchange *x);
extern void ccp_exchange(const CcpServer *srv, const CcpOpDef *def,
						 const void *params, char **items, int nitems,
						 CcpOrigin origin, int64 request_id,
						 int64 intent_id, CcpOutcome *out);
/*
 * One request of a synchronous call, as ccp_exchange_chunks hands it out:
 * its params, items (n of them, NULL when none), its number from 1,
 * whether it is its items' last request, and its intent (0: none).
 */
typedef void (*CcpChunkFn) (const void *params, char **items, int n,
							int request_no, bool last, int64 intent_id,
							void *arg);

extern int	ccp_exchange_requests(const CcpServer *srv, const CcpOpDef *def,
								  const void *params, int nitems);
extern void ccp_exchange_chunks(const CcpServer *srv, const CcpOpDef *def,
								const void *params, char **items, int nitems,
								bool intents, CcpChunkFn fn, void *arg);
extern CcpSettle ccp_exchange_settle(const CcpServer *srv,
									 const CcpOutcome *out, int attempts,
									 int64 queued_ms, int64 *delay_ms);
extern void ccp_classify_answer(const CcpServer *srv, const CcpOpDef *def,
								const CcpChunk *chunk,
								const CcpHttpResult *res, CcpOutcome *out);
extern char *ccp_random_key(void);

/* ----------
 * trigger.c: the erase-on-delete trigger and its commit-time buffer
 * ----------
 */
extern void ccp_trigger_register_callbacks(void);

/* ----------
 * worker.c: the background worker's loop and batches
 * ----------
 */
extern PGDLLEXPORT void ccpurge_worker_main(Datum arg);

/* Most batches one worker keeps in flight across all servers. */
#define CCP_WORKER_MAX_INFLIGHT		16

/* ----------
 * launcher.c: the launcher, a worker per database, the extension's lifecycle
 * ----------
 */
extern void ccp_launcher_register(void);
extern void ccp_launcher_register_hooks(void);
extern PGDLLEXPORT void ccpurge_launcher_main(Datum arg);
extern void ccp_launcher_wake(void);
extern bool ccp_launcher_serves(void);
extern void ccp_launcher_require(void);
extern int	ccp_launcher_hold(Oid dbid, TimestampTz until, int *index,
							  uint32 *generation);
extern void ccp_launcher_unhold(int index, uint32 generation, bool dropped);
extern Oid	ccp_launcher_attach(int index, uint32 generation, Latch *latch);
extern TimestampTz ccp_launcher_hold_until(int index);
extern void ccp_launcher_detach(int index, uint32 generation, bool release);
extern int	ccp_launcher_inflight_share(int index, int inflight);

#endif							/* CCPURGE_H */
