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
 * A request its params alone select (a calldata filter) is a queue row
 * without items; ccpurge_status shows it with item NULL.
 */
CREATE OR REPLACE VIEW ccpurge_status WITH (security_barrier) AS
SELECT q.request_id, q.operation, q.server, i.item, q.state, q.attempts,
	   q.http_status, q.code, q.message, q.enqueued_at, q.finished_at,
	   q.params, q.next_attempt_at, q.role
  FROM ccpurge.queue AS q
	   LEFT JOIN LATERAL pg_catalog.unnest(q.items) AS i(item) ON true
 WHERE pg_catalog.pg_has_role(current_user, q.role::oid, 'MEMBER');

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

/*
 * ccpurge_retry_failed retries every failed item the caller may act on.
 * CREATE TRIGGER checks a trigger executing ccpurge_erase_on_delete at
 * once, and binds one that names no server to the one server of its
 * vendor (triggers made before 1.2 are left as they are).
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
