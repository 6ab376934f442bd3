/* src/update/1.0--1.1.sql: what 1.1 changes in a 1.0 installation */

\echo Use "ALTER EXTENSION ccpurge UPDATE TO '1.1'" to load this file. \quit

/*
 * 1.0 built ccpurge_status on an unqualified unnest(), which a function
 * planted in a schema of the search path could capture (a public.unnest
 * (text[]) is a better match than pg_catalog.unnest(anyarray)).  The view
 * is built again on pg_catalog's.
 */
CREATE OR REPLACE VIEW ccpurge_status WITH (security_barrier) AS
SELECT q.request_id, q.operation, q.server, i.item, q.state, q.attempts,
	   q.http_status, q.code, q.message, q.enqueued_at, q.finished_at,
	   q.params, q.next_attempt_at, q.role
  FROM ccpurge.queue AS q
	   CROSS JOIN LATERAL pg_catalog.unnest(q.items) AS i(item)
 WHERE pg_catalog.pg_has_role(current_user, q.role::oid, 'MEMBER');

/* ccpurge_items_digest and ccpurge_c2_sign read no state: parallel safe. */
ALTER FUNCTION ccpurge_items_digest(text[]) PARALLEL SAFE;
ALTER FUNCTION ccpurge_c2_sign(text, text, text, text, text, text, text[], text) PARALLEL SAFE;

/* The webhook vendor (design section 1). */
CREATE FUNCTION ccpurge_erase(
	items text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
REVOKE EXECUTE ON FUNCTION ccpurge_erase(text[], text) FROM PUBLIC;
