/* src/sql/00_fdw.sql: the foreign-data wrapper that holds ccpurge's configuration */

\echo Use "CREATE EXTENSION ccpurge" to load this file. \quit

CREATE FUNCTION ccpurge_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER ccpurge
  VALIDATOR ccpurge_fdw_validator;

/* Internal tables live in their own schema; functions go to @extschema@. */
CREATE SCHEMA ccpurge;
REVOKE ALL ON SCHEMA ccpurge FROM PUBLIC;
/* src/sql/10_log.sql: the request log, one row per HTTP request */

CREATE TABLE ccpurge.request_log (
	log_id		bigserial PRIMARY KEY,
	logged_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	server		text NOT NULL,
	vendor		text NOT NULL,
	operation	text NOT NULL,
	origin		text NOT NULL CHECK (origin OPERATOR(pg_catalog.=) ANY (ARRAY['sync', 'worker'])),
	role		text NOT NULL,
	request_id	bigint,
	item_count	integer NOT NULL,
	items_sha256 text,
	ok			boolean NOT NULL,
	http_status integer,
	code		text,
	message		text,
	duration_ms double precision NOT NULL
);
CREATE INDEX ON ccpurge.request_log (logged_at);
CREATE INDEX ON ccpurge.request_log (items_sha256);
REVOKE ALL ON ccpurge.request_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE ccpurge.request_log_log_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_log', '');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_log_log_id_seq', '');

/*
 * ccpurge_items_digest gives the digest the request log stores for a list of
 * items, so that compliance staff can prove that a given set was sent.
 */
CREATE FUNCTION ccpurge_items_digest(items text[])
RETURNS text
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
/* src/sql/20_sync.sql: synchronous erasure functions (design section 3) */

CREATE FUNCTION ccpurge_delete_customers(
	customer_numbers text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_called_routes(
	dnids text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_caller_numbers(
	vdn_id int, campaign_id int, access_codes text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_calldata(
	vdn_id int, campaign_id int, filter jsonb, server text DEFAULT NULL,
	OUT request_no int, OUT ok boolean, OUT http_status int,
	OUT code text, OUT message text, OUT success_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_bulk_data(
	phone_numbers text[], campaign_names text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_erase(
	items text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

/*
 * ccpurge_c2_sign exposes the iSales C2 signer for known-answer tests and
 * for debugging a vendor's 401; it never reads stored secrets.
 */
CREATE FUNCTION ccpurge_c2_sign(
	ak text, sk text, ts text, method text, path text, query text,
	headers text[], body text)
RETURNS text
AS 'MODULE_PATHNAME'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

REVOKE EXECUTE ON FUNCTION
	ccpurge_delete_customers(text[], text),
	ccpurge_delete_called_routes(text[], text),
	ccpurge_delete_caller_numbers(int, int, text[], text),
	ccpurge_delete_calldata(int, int, jsonb, text),
	ccpurge_delete_bulk_data(text[], text[], text),
	ccpurge_erase(text[], text),
	ccpurge_c2_sign(text, text, text, text, text, text, text[], text)
FROM PUBLIC;
/* src/sql/40_queue.sql: the durable queue and its SQL API (design section 4) */

/*
 * One row per chunk of at most one vendor batch of items.  The worker claims
 * queued rows with FOR UPDATE SKIP LOCKED, coalescing rows of the same
 * (server, operation, params, role) into full batches.  Callers have no
 * privilege on the table: the functions below write it as its owner, and
 * ccpurge_status shows each role its own rows.
 */
CREATE SEQUENCE ccpurge.request_id_seq;

CREATE TABLE ccpurge.queue (
	chunk_id	bigserial PRIMARY KEY,
	request_id	bigint NOT NULL,
	server		text NOT NULL,		-- foreign server name: names survive dump/restore, oids do not
	operation	text NOT NULL,		-- 'delete_customers', ...
	params		jsonb NOT NULL DEFAULT '{}',	-- normalised, as validated
	role		regrole NOT NULL,	-- the enqueuing role; the worker uses its user mapping
	items		text[] NOT NULL,	-- at most the server's batch size
	nitems		integer NOT NULL,
	state		text NOT NULL DEFAULT 'queued'
				CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'sending', 'done', 'failed', 'canceled'])),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	batch_id	bigint,				-- set by the worker when it claims the row
	http_status integer,
	code		text,
	message		text,
	enqueued_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	finished_at timestamptz
);
CREATE INDEX queue_dequeue_idx ON ccpurge.queue (server, operation, params, next_attempt_at)
	WHERE state OPERATOR(pg_catalog.=) 'queued';
CREATE INDEX queue_state_idx ON ccpurge.queue (state, finished_at);
CREATE INDEX queue_request_idx ON ccpurge.queue (request_id);
-- the worker finds the rows of a batch it sent
CREATE INDEX queue_batch_idx ON ccpurge.queue (batch_id) WHERE state OPERATOR(pg_catalog.=) 'sending';

/*
 * A full row's items (about 16 kB for 1000 phone numbers) are always
 * toasted.  pglz compression would be most of the cost of queueing a bulk
 * DELETE's rows at commit; lz4 costs little, and without lz4 support the
 * items are stored uncompressed.
 */
DO $$
BEGIN
	ALTER TABLE ccpurge.queue ALTER COLUMN items SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	ALTER TABLE ccpurge.queue ALTER COLUMN items SET STORAGE EXTERNAL;
END
$$;

REVOKE ALL ON ccpurge.queue FROM PUBLIC;
REVOKE ALL ON SEQUENCE ccpurge.request_id_seq FROM PUBLIC;
REVOKE ALL ON SEQUENCE ccpurge.queue_chunk_id_seq FROM PUBLIC;

/* Pending work survives a dump; finished rows are history, not state. */
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue',
	'WHERE state IN (''queued'', ''sending'')');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue_chunk_id_seq', '');

/*
 * ccpurge_status shows one row per queued item, to members of the role that
 * queued it (superusers see every row).  security_barrier keeps a caller's
 * own conditions from seeing other roles' rows first.
 */
CREATE VIEW ccpurge_status WITH (security_barrier) AS
SELECT q.request_id, q.operation, q.server, i.item, q.state, q.attempts,
	   q.http_status, q.code, q.message, q.enqueued_at, q.finished_at,
	   q.params, q.next_attempt_at, q.role
  FROM ccpurge.queue AS q
	   CROSS JOIN LATERAL pg_catalog.unnest(q.items) AS i(item)
 WHERE pg_catalog.pg_has_role(current_user, q.role::oid, 'MEMBER');

REVOKE ALL ON ccpurge_status FROM PUBLIC;

CREATE FUNCTION ccpurge_enqueue(
	operation text, items text[], params jsonb DEFAULT '{}',
	server text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

/*
 * TG_ARGV = (operation, column [, params json [, server]]).  Use it AFTER
 * DELETE, FOR EACH ROW or FOR EACH STATEMENT with REFERENCING OLD TABLE.
 */
CREATE FUNCTION ccpurge_erase_on_delete()
RETURNS trigger
AS 'MODULE_PATHNAME'
LANGUAGE C;

CREATE FUNCTION ccpurge_wait(request_id bigint,
							 timeout interval DEFAULT '5 minutes')
RETURNS boolean
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION ccpurge_retry(request_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION ccpurge_cancel(request_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT VOLATILE;

REVOKE EXECUTE ON FUNCTION
	ccpurge_enqueue(text, text[], jsonb, text),
	ccpurge_erase_on_delete(),
	ccpurge_wait(bigint, interval),
	ccpurge_retry(bigint),
	ccpurge_cancel(bigint)
FROM PUBLIC;
/*
 * src/sql/90_comments.sql: a COMMENT ON for every object, in one place.
 *
 * It ends the install script and the 1.0--1.1 update alike, so both paths
 * give every object the same comment.  Each comment is quoted word for word
 * under the object's heading in doc/ccpurge.md; TAP test 090_reference
 * checks that every function, view and table has a comment and that the
 * reference quotes it.  An object added later gets its comment here.
 */

/* the foreign-data wrapper (src/sql/00_fdw.sql) */
COMMENT ON FOREIGN DATA WRAPPER ccpurge IS
  'contact-center vendor accounts: one server per account, secrets in user mappings';
COMMENT ON FUNCTION ccpurge_fdw_validator(text[], oid) IS
  'checks the options of ccpurge servers and user mappings at CREATE and ALTER time';

/* the request log (src/sql/10_log.sql) */
COMMENT ON TABLE ccpurge.request_log IS
  'every HTTP request ccpurge made: a SHA-256 digest of the items, never the items';
COMMENT ON FUNCTION ccpurge_items_digest(text[]) IS
  'SHA-256 digest of a set of items, as the request log stores it';

/* the synchronous functions (src/sql/20_sync.sql) */
COMMENT ON FUNCTION ccpurge_delete_customers(text[], text) IS
  'erases customers'' personal data at Huawei CEC; one row per item per request';
COMMENT ON FUNCTION ccpurge_delete_called_routes(text[], text) IS
  'deletes called-route bindings at Huawei CEC; one row per id per request';
COMMENT ON FUNCTION ccpurge_delete_caller_numbers(int, int, text[], text) IS
  'deletes calling numbers of a CC-iSales campaign; one row per access code per request';
COMMENT ON FUNCTION ccpurge_delete_calldata(int, int, jsonb, text) IS
  'deletes outbound call data of a CC-iSales campaign selected by a filter';
COMMENT ON FUNCTION ccpurge_delete_bulk_data(text[], text[], text) IS
  'erases phone numbers from Ozonetel campaigns; one row per number per request';
COMMENT ON FUNCTION ccpurge_erase(text[], text) IS
  'erases items at a webhook endpoint; one row per item per request';
COMMENT ON FUNCTION ccpurge_c2_sign(text, text, text, text, text, text, text[], text) IS
  'computes the Authorization value of a CC-iSales request under the C2 signing scheme';

/* the queue (src/sql/40_queue.sql) */
COMMENT ON TABLE ccpurge.queue IS
  'erasure requests waiting for, or done by, the ccpurge background worker';
COMMENT ON VIEW ccpurge_status IS
  'one row per queued item, visible to members of the role that queued it';
COMMENT ON FUNCTION ccpurge_enqueue(text, text[], jsonb, text) IS
  'queues items for erasure in the current transaction; returns the request id';
COMMENT ON FUNCTION ccpurge_erase_on_delete() IS
  'AFTER DELETE trigger queueing a column of the deleted rows for erasure';
COMMENT ON FUNCTION ccpurge_wait(bigint, interval) IS
  'waits until every item of a queued request is finished; returns false on timeout';
COMMENT ON FUNCTION ccpurge_retry(bigint) IS
  'queues the failed and canceled items of a request again; returns their number';
COMMENT ON FUNCTION ccpurge_cancel(bigint) IS
  'cancels the queued and failed items of a request; returns their number';
