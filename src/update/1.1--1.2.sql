/* src/update/1.1--1.2.sql: what 1.2 changes in a 1.1 installation */

\echo Use "ALTER EXTENSION ccpurge UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.1 dumped only queued and sending rows, so a dump and restore lost the
 * failed ones, which are exactly those that still need action.
 */
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue',
	'WHERE state IN (''queued'', ''sending'', ''failed'')');

/*
 * Every synchronous function is bound to one generic C entry point, which
 * reads the operation from the function's name and the params from its
 * other arguments (see src/sql/20_sync.sql); ccpurge_call takes any
 * operation by name.
 */
CREATE OR REPLACE FUNCTION ccpurge_delete_customers(
	customer_numbers text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE OR REPLACE FUNCTION ccpurge_delete_called_routes(
	dnids text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE OR REPLACE FUNCTION ccpurge_delete_caller_numbers(
	vdn_id int, campaign_id int, access_codes text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE OR REPLACE FUNCTION ccpurge_delete_calldata(
	vdn_id int, campaign_id int, filter jsonb, server text DEFAULT NULL,
	OUT request_no int, OUT ok boolean, OUT http_status int,
	OUT code text, OUT message text, OUT success_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE OR REPLACE FUNCTION ccpurge_delete_bulk_data(
	phone_numbers text[], campaign_names text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE OR REPLACE FUNCTION ccpurge_erase(
	items text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_call(
	operation text, items text[], params jsonb DEFAULT '{}',
	server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text,
	OUT success_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
REVOKE EXECUTE ON FUNCTION ccpurge_call(text, text[], jsonb, text) FROM PUBLIC;


/*
 * The key of a queued batch's attempt generation (the webhook's
 * Idempotency-Key) and its number of items, kept while the batch is
 * retried automatically.  Rows queued by 1.1 have none: their next claim
 * gives them one.
 */
ALTER TABLE ccpurge.queue ADD COLUMN batch_key text, ADD COLUMN batch_nitems integer;
CREATE INDEX queue_batch_key_idx ON ccpurge.queue (batch_key)
	WHERE state OPERATOR(pg_catalog.=) 'queued' AND batch_key IS NOT NULL;
/*
 * the worker claims a group's fresh rows oldest first, reading only the
 * rows it takes (see ccp_store_claim_fresh)
 */
CREATE INDEX queue_claim_idx ON ccpurge.queue (server, operation, params, chunk_id)
	WHERE state OPERATOR(pg_catalog.=) 'queued' AND batch_key IS NULL;

/*
 * A row the worker erased as a whole points at its items' receipts
 * instead of keeping digests of its own (ccpurge_status, below).
 */
ALTER TABLE ccpurge.queue ADD COLUMN receipt_log_id bigint,
	ADD COLUMN receipt_offset integer;

/*
 * Keyed digests (design section 6): a plain SHA-256 of one phone number is
 * reversed by trying every number, so every digest ccpurge stores from
 * now on is an HMAC-SHA256 under a secret key of ccpurge.digest_key.
 * Rows of 1.0 and 1.1 keep their unkeyed items_sha256 (and have no
 * items_hmac); new rows have items_hmac and key_id instead.
 */
CREATE TABLE ccpurge.digest_key (
	key_id		integer PRIMARY KEY,
	key			bytea NOT NULL CHECK (pg_catalog.octet_length(key) OPERATOR(pg_catalog.=) 32),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
REVOKE ALL ON ccpurge.digest_key FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.digest_key', '');

ALTER TABLE ccpurge.request_log ADD COLUMN items_hmac bytea, ADD COLUMN key_id integer;
CREATE INDEX ON ccpurge.request_log (items_hmac);

/* 1.1's returned the unkeyed digest as text, and PUBLIC could call it */
DROP FUNCTION ccpurge_items_digest(text[]);
CREATE FUNCTION ccpurge_items_digest(items text[])
RETURNS bytea
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT STABLE;
REVOKE EXECUTE ON FUNCTION ccpurge_items_digest(text[]) FROM PUBLIC;

CREATE FUNCTION ccpurge_rotate_digest_key()
RETURNS integer
AS 'MODULE_PATHNAME'
LANGUAGE C VOLATILE;
REVOKE EXECUTE ON FUNCTION ccpurge_rotate_digest_key() FROM PUBLIC;

SELECT @extschema@.ccpurge_rotate_digest_key();

/*
 * The request log's scope, the queue requests a request carried, and its
 * hash chain (chain.c); the worker chains the existing rows too, 1.0 and
 * 1.1's first.
 */
ALTER TABLE ccpurge.request_log
	ADD COLUMN scope jsonb,
	ADD COLUMN request_ids bigint[],
	ADD COLUMN prev_hash bytea,
	ADD COLUMN row_hash bytea,
	ADD COLUMN chain_seq bigint UNIQUE;
CREATE INDEX ON ccpurge.request_log (log_id) WHERE row_hash IS NULL;

CREATE TABLE ccpurge.log_chain (
	id			integer PRIMARY KEY DEFAULT 1 CHECK (id OPERATOR(pg_catalog.=) 1),
	head_seq	bigint NOT NULL DEFAULT 0,
	head_hash	bytea,
	pruned_seq	bigint NOT NULL DEFAULT 0,
	pruned_hash bytea
);
REVOKE ALL ON ccpurge.log_chain FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.log_chain', '');

CREATE FUNCTION ccpurge_verify_log(
	OUT ok boolean, OUT rows_checked bigint, OUT first_bad_log_id bigint,
	OUT detail text)
RETURNS record
AS 'MODULE_PATHNAME'
LANGUAGE C VOLATILE;

CREATE FUNCTION ccpurge_prune_log(older_than timestamptz)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

REVOKE EXECUTE ON FUNCTION ccpurge_verify_log(), ccpurge_prune_log(timestamptz)
FROM PUBLIC;

/*
 * ccpurge_requests shows one row per queue request, to members of the role
 * that queued it (superusers see every request): its items by state and
 * the last vendor code and message, so that a DBA needs no item-by-item
 * scan of ccpurge_status.
 */
CREATE VIEW ccpurge_requests WITH (security_barrier) AS
SELECT q.request_id,
	   pg_catalog.min(q.operation) AS operation,
	   pg_catalog.min(q.server) AS server,
	   (pg_catalog.array_agg(q.role))[1] AS role,
	   pg_catalog.min(q.enqueued_at) AS enqueued_at,
	   CASE WHEN pg_catalog.bool_and(q.state OPERATOR(pg_catalog.<>) ALL (ARRAY['queued', 'sending']))
			THEN pg_catalog.max(q.finished_at) END AS finished_at,
	   COALESCE(pg_catalog.sum(q.nitems) FILTER (WHERE q.state OPERATOR(pg_catalog.=) 'queued'), 0)::bigint AS queued,
	   COALESCE(pg_catalog.sum(q.nitems) FILTER (WHERE q.state OPERATOR(pg_catalog.=) 'sending'), 0)::bigint AS sending,
	   COALESCE(pg_catalog.sum(q.nitems) FILTER (WHERE q.state OPERATOR(pg_catalog.=) 'done'), 0)::bigint AS done,
	   COALESCE(pg_catalog.sum(q.nitems) FILTER (WHERE q.state OPERATOR(pg_catalog.=) 'failed'), 0)::bigint AS failed,
	   COALESCE(pg_catalog.sum(q.nitems) FILTER (WHERE q.state OPERATOR(pg_catalog.=) 'canceled'), 0)::bigint AS canceled,
	   (pg_catalog.array_agg(q.code ORDER BY q.finished_at DESC NULLS LAST, q.chunk_id DESC)
		FILTER (WHERE q.code IS NOT NULL))[1] AS last_code,
	   (pg_catalog.array_agg(q.message ORDER BY q.finished_at DESC NULLS LAST, q.chunk_id DESC)
		FILTER (WHERE q.message IS NOT NULL))[1] AS last_message
  FROM ccpurge.queue AS q
 WHERE pg_catalog.pg_has_role(current_user, q.role::oid, 'MEMBER')
 GROUP BY q.request_id;

REVOKE ALL ON ccpurge_requests FROM PUBLIC;

/*
 * The worker writes a request's row before the request leaves and adds
 * the outcome when the answer comes; a row whose answer never came says
 * "outcome unknown" with ok NULL.
 */
ALTER TABLE ccpurge.request_log ALTER COLUMN ok DROP NOT NULL;

/* 1.2: the DBA's console (as src/sql/50_console.sql) */

/*
 * The shared-memory state behind the views below.  They live in schema
 * ccpurge, which PUBLIC may not use, and keep EXECUTE for PUBLIC: a view
 * calls its functions with the rights of the role that reads it, so a role
 * granted SELECT on a view can call them only through it.  Neither shows a
 * secret, a token or an item.
 */
CREATE FUNCTION ccpurge.server_state(server oid,
	OUT vendor text, OUT rate_limit text, OUT inflight int,
	OUT window_used int, OUT next_slot_at timestamptz,
	OUT token_expires_at timestamptz, OUT account text)
RETURNS record
AS 'MODULE_PATHNAME', 'ccpurge_server_state'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION ccpurge.progress(
	OUT pid int, OUT function text, OUT server text, OUT items_total bigint,
	OUT items_done bigint, OUT requests_total int, OUT requests_done int,
	OUT waiting_for text, OUT started_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_progress'
LANGUAGE C VOLATILE;

/*
 * ccpurge_servers: one row per ccpurge server of this database, its queue,
 * its limiter and token, and its last hour in the request log.  The hour's
 * counts read the request log through its logged_at index; last_ok_at and
 * last_error_at walk it backwards from the newest row.
 */
CREATE VIEW ccpurge_servers AS
SELECT s.srvname::text AS server,
	   st.vendor,
	   COALESCE(q.queued, 0)::bigint AS queued,
	   COALESCE(q.sending, 0)::bigint AS sending,
	   COALESCE(q.failed, 0)::bigint AS failed,
	   q.oldest_queued_at,
	   st.inflight,
	   st.rate_limit,
	   st.window_used,
	   st.next_slot_at,
	   st.token_expires_at,
	   lok.logged_at AS last_ok_at,
	   lerr.logged_at AS last_error_at,
	   lerr.message AS last_error,
	   COALESCE(h.requests, 0)::bigint AS requests_1h,
	   COALESCE(h.errors, 0)::bigint AS errors_1h,
	   st.account
  FROM pg_catalog.pg_foreign_server AS s
	   JOIN pg_catalog.pg_foreign_data_wrapper AS w
		 ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
		AND w.fdwname OPERATOR(pg_catalog.=) 'ccpurge'
	   CROSS JOIN LATERAL ccpurge.server_state(s.oid) AS st
	   LEFT JOIN (SELECT qq.server,
						 pg_catalog.sum(qq.nitems) FILTER (WHERE qq.state OPERATOR(pg_catalog.=) 'queued') AS queued,
						 pg_catalog.sum(qq.nitems) FILTER (WHERE qq.state OPERATOR(pg_catalog.=) 'sending') AS sending,
						 pg_catalog.sum(qq.nitems) FILTER (WHERE qq.state OPERATOR(pg_catalog.=) 'failed') AS failed,
						 pg_catalog.min(qq.enqueued_at) FILTER (WHERE qq.state OPERATOR(pg_catalog.=) 'queued') AS oldest_queued_at
					FROM ccpurge.queue AS qq
				   WHERE qq.state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'sending', 'failed'])
				   GROUP BY qq.server) AS q
		 ON q.server OPERATOR(pg_catalog.=) s.srvname::text
	   LEFT JOIN (SELECT l.server, pg_catalog.count(*) AS requests,
						 pg_catalog.count(*) FILTER (WHERE NOT l.ok) AS errors
					FROM ccpurge.request_log AS l
				   WHERE l.logged_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::interval)
				   GROUP BY l.server) AS h
		 ON h.server OPERATOR(pg_catalog.=) s.srvname::text
	   LEFT JOIN LATERAL (SELECT l.logged_at
							FROM ccpurge.request_log AS l
						   WHERE l.server OPERATOR(pg_catalog.=) s.srvname::text AND l.ok
						   ORDER BY l.logged_at DESC LIMIT 1) AS lok ON true
	   LEFT JOIN LATERAL (SELECT l.logged_at, l.message
							FROM ccpurge.request_log AS l
						   WHERE l.server OPERATOR(pg_catalog.=) s.srvname::text AND NOT l.ok
						   ORDER BY l.logged_at DESC LIMIT 1) AS lerr ON true;

REVOKE ALL ON ccpurge_servers FROM PUBLIC;

/* ccpurge_progress: one row per synchronous call running in this database. */
CREATE VIEW ccpurge_progress AS
SELECT p.pid, p.function, p.server, p.items_total, p.items_done,
	   p.requests_total, p.requests_done, p.waiting_for, p.started_at
  FROM ccpurge.progress() AS p;

REVOKE ALL ON ccpurge_progress FROM PUBLIC;

/*
 * ccpurge_explain: the requests a synchronous call would send, secrets,
 * tokens and signatures shown as <redacted>; it sends and logs nothing.
 */
CREATE FUNCTION ccpurge_explain(
	operation text, items text[], params jsonb DEFAULT '{}',
	server text DEFAULT NULL,
	OUT request_no int, OUT method text, OUT url text, OUT headers text[],
	OUT body text, OUT item_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_explain'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

REVOKE EXECUTE ON FUNCTION ccpurge_explain(text, text[], jsonb, text) FROM PUBLIC;
/*
 * Receipts (design section 6): one per item per HTTP request, written with
 * its log row; see src/sql/50_receipts.sql.
 */

/*
 * ccpurge.receipt_keys gives the look-up keys of a request's packed item
 * HMACs (the first 8 bytes of each, as a bigint), for the GIN index below.
 */
CREATE FUNCTION ccpurge.receipt_keys(item_hmacs bytea)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'ccpurge_receipt_keys'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

/*
 * The receipts of one request, packed: the HMAC of each item it carried,
 * 32 bytes each in the request's order, under key_id, and, when the
 * vendor answered per item, one byte per item (1 erased, 0 refused).
 * Written with the request's log row; ccpurge.erasure shows one row per
 * item.  A row per item would cost about 150 bytes an item with its index
 * and most of the worker's time; packed, a receipt costs about 95.
 */
CREATE TABLE ccpurge.erasure_packed (
	log_id		bigint PRIMARY KEY,
	key_id		integer NOT NULL,
	item_hmacs	bytea NOT NULL,
	item_ok		bytea				-- NULL: every item has the request's outcome
) WITH (fillfactor = 90, autovacuum_vacuum_insert_threshold = 100,
	  autovacuum_vacuum_insert_scale_factor = 0);
-- random bytes do not compress: do not try
ALTER TABLE ccpurge.erasure_packed ALTER COLUMN item_hmacs SET STORAGE EXTERNAL;
/*
 * New keys go to the GIN index's pending list, which costs the worker
 * about a tenth of inserting them into the index; autovacuum merges the
 * list (every 100 requests written, see above), so the worker never does
 * it in the middle of a drain.  A look-up also reads what is not merged
 * yet.
 */
CREATE INDEX erasure_packed_items_idx ON ccpurge.erasure_packed
	USING gin (ccpurge.receipt_keys(item_hmacs))
	WITH (fastupdate = on, gin_pending_list_limit = 2097151);
REVOKE ALL ON ccpurge.erasure_packed FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.erasure_packed', '');

/*
 * ccpurge.erasure: one row per item per HTTP request.  ok is the item's
 * own outcome where the vendor answered per item, else the request's (NULL
 * while it is not known); code is the request's, or item_refused for an
 * item the vendor refused by itself.
 */
CREATE VIEW ccpurge.erasure AS
SELECT p.log_id,
	   pg_catalog.substring(p.item_hmacs, i.n OPERATOR(pg_catalog.*) 32 OPERATOR(pg_catalog.+) 1, 32) AS item_hmac,
	   p.key_id,
	   CASE WHEN p.item_ok IS NULL THEN l.ok
			ELSE pg_catalog.get_byte(p.item_ok, i.n) OPERATOR(pg_catalog.=) 1 END AS ok,
	   CASE WHEN p.item_ok IS NULL OR pg_catalog.get_byte(p.item_ok, i.n) OPERATOR(pg_catalog.=) 1
			THEN l.code ELSE 'item_refused' END AS code
  FROM ccpurge.erasure_packed AS p
	   JOIN ccpurge.request_log AS l ON l.log_id OPERATOR(pg_catalog.=) p.log_id
	   CROSS JOIN LATERAL pg_catalog.generate_series(0,
			pg_catalog.octet_length(p.item_hmacs) OPERATOR(pg_catalog./) 32 OPERATOR(pg_catalog.-) 1) AS i(n);
REVOKE ALL ON ccpurge.erasure FROM PUBLIC;

CREATE FUNCTION ccpurge_erasure_receipt(item text,
	OUT logged_at timestamptz, OUT server text, OUT vendor text,
	OUT operation text, OUT scope jsonb, OUT origin text,
	OUT request_id bigint, OUT ok boolean, OUT http_status int,
	OUT code text, OUT message text, OUT log_id bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT STABLE;

CREATE FUNCTION ccpurge_erasure_certificate(item text)
RETURNS jsonb
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT STABLE;

/* the queue's done and canceled items: digests instead of clear text */
CREATE FUNCTION ccpurge.forget_items(items text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'ccpurge_forget_items'
LANGUAGE C STRICT STABLE;

REVOKE EXECUTE ON FUNCTION
	ccpurge.receipt_keys(bytea),
	ccpurge_erasure_receipt(text),
	ccpurge_erasure_certificate(text),
	ccpurge.forget_items(text[])
FROM PUBLIC;

/*
 * No clear text after erasure: the items of done and canceled rows give
 * way to their digests, as from now on when a row becomes done or
 * canceled.
 */
UPDATE ccpurge.queue SET items = ccpurge.forget_items(items)
 WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['done', 'canceled']);

/*
 * ccpurge.receipt_items gives n digests packed in item_hmacs from position
 * first, as the queue keeps a done item ("hmac:<key_id>:<hex>"): a queue
 * row the worker erased as a whole keeps no item of its own, only where
 * its items' receipts are, and ccpurge_status shows them from there.
 */
CREATE FUNCTION ccpurge.receipt_items(item_hmacs bytea, key_id integer,
	first integer, n integer)
RETURNS text[]
AS 'MODULE_PATHNAME', 'ccpurge_receipt_items'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

/*
 * ccpurge_status shows one row per queued item (one with item NULL for a
 * request its params alone select, such as a calldata filter), to members
 * of the role that queued it (superusers see every row).  security_barrier
 * keeps a caller's own conditions from seeing other roles' rows first.  A
 * done or canceled item shows its digest: kept in the row, or, for a row
 * the worker erased as a whole, read from the receipts the row points at
 * (NULL once the request log has been pruned past them).
 */
CREATE OR REPLACE VIEW ccpurge_status WITH (security_barrier) AS
SELECT q.request_id, q.operation, q.server, i.item, q.state, q.attempts,
	   q.http_status, q.code, q.message, q.enqueued_at, q.finished_at,
	   q.params, q.next_attempt_at, q.role
  FROM ccpurge.queue AS q
	   LEFT JOIN ccpurge.erasure_packed AS p
			  ON p.log_id OPERATOR(pg_catalog.=) q.receipt_log_id
	   LEFT JOIN LATERAL pg_catalog.unnest(
			CASE WHEN q.receipt_log_id IS NULL THEN q.items
				 ELSE ccpurge.receipt_items(p.item_hmacs, p.key_id,
											q.receipt_offset, q.nitems) END)
			AS i(item) ON true
 WHERE pg_catalog.pg_has_role(current_user, q.role::oid, 'MEMBER');
/*
 * ccpurge_retry_failed retries every failed item the caller may act on.
 * CREATE TRIGGER checks a trigger executing ccpurge_erase_on_delete at
 * once, and binds one that names no server to the one server of its
 * vendor; the triggers made before 1.2 are checked and bound below.
 */
CREATE FUNCTION ccpurge_retry_failed(server text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_check_trigger()
RETURNS event_trigger
AS 'MODULE_PATHNAME'
LANGUAGE C;

CREATE EVENT TRIGGER ccpurge_check_trigger ON ddl_command_end
	WHEN TAG IN ('CREATE TRIGGER')
	EXECUTE FUNCTION ccpurge_check_trigger();

REVOKE EXECUTE ON FUNCTION
	ccpurge_retry_failed(text),
	ccpurge_check_trigger()
FROM PUBLIC;

/*
 * Triggers made before 1.2 that name no server are checked and bound now,
 * as CREATE TRIGGER binds new ones, so that adding a server later breaks
 * none of them; one that cannot be bound (no server of its vendor, or
 * several, or arguments its first DELETE would refuse) keeps its
 * arguments, with a WARNING that names it.  The function is needed once.
 */
CREATE FUNCTION ccpurge.bind_triggers()
RETURNS integer
AS 'MODULE_PATHNAME', 'ccpurge_bind_triggers'
LANGUAGE C;
SELECT ccpurge.bind_triggers();
DROP FUNCTION ccpurge.bind_triggers();
