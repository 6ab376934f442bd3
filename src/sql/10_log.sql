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
