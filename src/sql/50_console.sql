/* src/sql/50_console.sql: the DBA's console (design section 7) */

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
