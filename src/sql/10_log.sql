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
	items_sha256 text,			-- 1.0 and 1.1 rows only: an unkeyed digest
	ok			boolean,			-- NULL: no answer yet, or outcome unknown
	http_status integer,
	code		text,
	message		text,
	duration_ms double precision NOT NULL,
	items_hmac	bytea,				-- keyed digest of the items (digest_key)
	key_id		integer,			-- the key of items_hmac
	scope		jsonb,				-- the request's other parameters, selecting values as HMACs
	request_ids bigint[],			-- every queue request the request carried
	prev_hash	bytea,				-- the chain: the row before's row_hash
	row_hash	bytea,				-- SHA-256 of prev_hash and every column
	chain_seq	bigint UNIQUE		-- position in the chain; NULL: not chained yet
);
CREATE INDEX ON ccpurge.request_log (logged_at);
CREATE INDEX ON ccpurge.request_log (items_sha256);
CREATE INDEX ON ccpurge.request_log (items_hmac);
CREATE INDEX ON ccpurge.request_log (log_id) WHERE row_hash IS NULL;
REVOKE ALL ON ccpurge.request_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE ccpurge.request_log_log_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_log', '');
SELECT pg_catalog.pg_extension_config_dump('ccpurge.request_log_log_id_seq', '');

/*
 * The state of the request log's hash chain (chain.c): its head, and the
 * last row ccpurge_prune_log removed, which the chain now starts after.
 * One row, made by the first seal; pg_dump keeps it with the log.
 */
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
 * The secret keys of the digests ccpurge stores: the newest is current,
 * older ones stay for look-ups.  Readable by the extension's owner only;
 * pg_dump keeps them, so that digests stay verifiable after a restore (a
 * key's id is derived from the key, so the key the restore's CREATE
 * EXTENSION makes never clashes with a restored one).
 */
CREATE TABLE ccpurge.digest_key (
	key_id		integer PRIMARY KEY,
	key			bytea NOT NULL CHECK (pg_catalog.octet_length(key) OPERATOR(pg_catalog.=) 32),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
REVOKE ALL ON ccpurge.digest_key FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('ccpurge.digest_key', '');

/*
 * ccpurge_items_digest gives the keyed digest the request log stores for a
 * list of items, under the current key, so that compliance staff can
 * prove that a given set was sent.
 */
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

/* the first key */
SELECT @extschema@.ccpurge_rotate_digest_key();
