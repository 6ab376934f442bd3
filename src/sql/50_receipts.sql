/* src/sql/50_receipts.sql: receipts, one per item per request (design section 6) */

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
CREATE VIEW ccpurge_status WITH (security_barrier) AS
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

REVOKE ALL ON ccpurge_status FROM PUBLIC;
