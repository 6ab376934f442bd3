/* src/sql/40_queue.sql: the durable queue and its SQL API (design section 4) */

/*
 * One row per chunk of at most one vendor batch of items.  The worker claims
 * queued rows with FOR UPDATE SKIP LOCKED, coalescing rows of the same
 * (server, operation, params, role) into full batches.  A claim writes the
 * batch's key (the webhook's Idempotency-Key) and size to its rows; rows
 * queued again after a transient failure keep them, and are claimed again
 * together, as the same batch, until they are final.  Callers have no
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
	finished_at timestamptz,
	batch_key	text,				-- the key of the rows' attempt generation, set when claimed
	batch_nitems integer,			-- with batch_key: the items of the whole batch
	receipt_log_id bigint,			-- done as a whole: the log row whose receipts hold its items' digests
	receipt_offset integer			-- and where its items start among them
);
CREATE INDEX queue_dequeue_idx ON ccpurge.queue (server, operation, params, next_attempt_at)
	WHERE state OPERATOR(pg_catalog.=) 'queued';
CREATE INDEX queue_state_idx ON ccpurge.queue (state, finished_at);
CREATE INDEX queue_request_idx ON ccpurge.queue (request_id);
-- the worker finds the rows of a batch it sent
CREATE INDEX queue_batch_idx ON ccpurge.queue (batch_id) WHERE state OPERATOR(pg_catalog.=) 'sending';
-- the worker claims the rows of a batch queued again together
CREATE INDEX queue_batch_key_idx ON ccpurge.queue (batch_key)
	WHERE state OPERATOR(pg_catalog.=) 'queued' AND batch_key IS NOT NULL;
/*
 * the worker claims a group's fresh rows oldest first, reading only the
 * rows it takes (see ccp_store_claim_fresh)
 */
CREATE INDEX queue_claim_idx ON ccpurge.queue (server, operation, params, chunk_id)
	WHERE state OPERATOR(pg_catalog.=) 'queued' AND batch_key IS NULL;

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

/*
 * Pending work and failures survive a dump: failed rows still need action.
 * Done and canceled rows are history, not state.
 */
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue',
	'WHERE state IN (''queued'', ''sending'', ''failed'')');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue_chunk_id_seq', '');

/* ccpurge_status is in 50_receipts.sql: done items show their receipts. */

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

CREATE FUNCTION ccpurge_retry_failed(server text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

/*
 * CREATE TRIGGER checks a trigger executing ccpurge_erase_on_delete at
 * once, as its first DELETE would, and binds one that names no server to
 * the one server of its vendor.  The event trigger fires for CREATE
 * TRIGGER only.
 */
CREATE FUNCTION ccpurge_check_trigger()
RETURNS event_trigger
AS 'MODULE_PATHNAME'
LANGUAGE C;

CREATE EVENT TRIGGER ccpurge_check_trigger ON ddl_command_end
	WHEN TAG IN ('CREATE TRIGGER')
	EXECUTE FUNCTION ccpurge_check_trigger();

REVOKE EXECUTE ON FUNCTION
	ccpurge_enqueue(text, text[], jsonb, text),
	ccpurge_erase_on_delete(),
	ccpurge_wait(bigint, interval),
	ccpurge_retry(bigint),
	ccpurge_cancel(bigint),
	ccpurge_retry_failed(text),
	ccpurge_check_trigger()
FROM PUBLIC;
