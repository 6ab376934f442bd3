--
-- 20_customers: erasing customers' personal data at Huawei CEC
--
-- ccpurge_delete_customers sends the distinct numbers in chunks of at most
-- 1000 (or the server's batch_size) to cleancustpersonaldata and answers
-- one row per number: (item, request_no, ok, http_status, code, message).
--
-- a first erasure; duplicates go out once
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111', 'wen11', 'kehu@example.com', 'wen11']);

-- the simulator saw one token request and one deletion of three numbers
\! test/bin/simctl deleted cec_customers
\! test/bin/simctl get requests.cec_token requests.cec_customers tokens_issued.cec

-- the token is cached: a second call asks for no new token
SELECT count(*) FILTER (WHERE ok) AS ok, count(*) AS rows
  FROM ccpurge_delete_customers(ARRAY['13500002222']);
\! test/bin/simctl get requests.cec_token requests.cec_customers

-- 2500 numbers go out in chunks of 1000, 1000 and 500
SELECT request_no, count(*), bool_and(ok)
  FROM ccpurge_delete_customers(ARRAY(SELECT 'c' || g FROM generate_series(1, 2500) g))
 GROUP BY 1 ORDER BY 1;

-- a server's smaller batch_size wins
ALTER SERVER cec OPTIONS (ADD batch_size '2');
SELECT item, request_no, ok FROM ccpurge_delete_customers(ARRAY['a1', 'a2', 'a3', 'a4', 'a5']);
ALTER SERVER cec OPTIONS (DROP batch_size);

-- the server can be named; an unknown one is an error
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['n1'], 'cec');
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['n1'], 'nosuch');
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['n1'], 'isales');

--
-- Input is validated before anything is sent
--
\! test/bin/simctl reset
SELECT * FROM ccpurge_delete_customers(NULL);
SELECT * FROM ccpurge_delete_customers('{}');
SELECT * FROM ccpurge_delete_customers(ARRAY['x', NULL]);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', '']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', '   ']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', E'a\tb']);
-- blank is not only ASCII: no-break and ideographic spaces, zero-width
-- characters and other white space or invisible format characters name
-- nobody either; C1 control characters (U+0080 to U+009F) are refused
-- anywhere
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&'\00A0']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&'\3000\3000']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&'\200B\FEFF\2060']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&' \00AD\2028\202F\180E ']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&'\0085']);
SELECT * FROM ccpurge_delete_customers(ARRAY['x', U&'13500\009B2J']);
SELECT * FROM ccpurge_delete_customers(ARRAY[repeat('9', 257)]);
SELECT * FROM ccpurge_delete_customers(ARRAY[['a', 'b'], ['c', 'd']]);
-- nothing reached the simulator
\! test/bin/simctl get requests

-- two CEC servers: the function asks which one
CREATE SERVER cec2 FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'http://127.0.0.1:1');
SELECT * FROM ccpurge_delete_customers(ARRAY['x']);
DROP SERVER cec2;

--
-- Remote failures are rows, never errors, and the other chunks still go out
--
ALTER SERVER cec OPTIONS (ADD batch_size '2');
\! test/bin/simctl fault '{"count":1,"kind":"status","status":503,"path":"cleancust"}'
SELECT item, request_no, ok, http_status, message FROM ccpurge_delete_customers(ARRAY['f1', 'f2', 'f3', 'f4']);
\! test/bin/simctl fault '{"count":1,"kind":"garbage","path":"cleancust"}'
SELECT item, request_no, ok, http_status, message FROM ccpurge_delete_customers(ARRAY['g1', 'g2', 'g3']);
\! test/bin/simctl fault '{"count":1,"kind":"oversize","path":"cleancust"}'
SELECT item, request_no, ok, http_status IS NULL OR http_status = 200 AS status_ok, message FROM ccpurge_delete_customers(ARRAY['o1', 'o2', 'o3']);
-- (libcurl silently resends a request once when a reused connection turns
-- out dead, so the reset is injected twice; the first send, which the
-- vendor got, has a log row of its own whose outcome is unknown)
\! test/bin/simctl fault '{"count":2,"kind":"reset","path":"cleancust"}'
SELECT item, request_no, ok, http_status, message LIKE 'request failed:%' AS transport FROM ccpurge_delete_customers(ARRAY['r1', 'r2', 'r3']);
SELECT item_count, ok, code, message
  FROM ccpurge.request_log WHERE code = 'outcome_unknown';
ALTER SERVER cec OPTIONS (DROP batch_size);

-- an expired token is refreshed once and the call succeeds
\! test/bin/simctl fault '{"kind":"expire_tokens"}'
SELECT item, ok, http_status, code FROM ccpurge_delete_customers(ARRAY['t1']);

-- a wrong secret: the token request fails and every row says so
ALTER USER MAPPING FOR PUBLIC SERVER cec OPTIONS (SET app_secret 'wrong');
SELECT item, ok, http_status, message FROM ccpurge_delete_customers(ARRAY['w1', 'w2']);
ALTER USER MAPPING FOR PUBLIC SERVER cec OPTIONS (SET app_secret 'cec-app-secret');
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['w1']);

-- a timeout is a row too
ALTER SERVER cec OPTIONS (ADD timeout_ms '300');
\! test/bin/simctl fault '{"count":1,"kind":"delay","delay_ms":1500,"path":"cleancust"}'
SELECT item, ok, http_status, message LIKE 'request timed out:%' AS timed_out FROM ccpurge_delete_customers(ARRAY['d1']);
ALTER SERVER cec OPTIONS (DROP timeout_ms);

-- a redirect is not followed
-- (the simulator answers 302 like any injected status)
\! test/bin/simctl fault '{"count":1,"kind":"status","status":302,"path":"cleancust"}'
SELECT item, ok, http_status FROM ccpurge_delete_customers(ARRAY['x302']);

--
-- The request log proves what was sent, without the items themselves
--
SELECT server, vendor, operation, origin, item_count, ok, http_status, code
  FROM ccpurge.request_log
 WHERE items_hmac = ccpurge_items_digest(ARRAY['wen11', 'kehu@example.com', '13500001111']);
SELECT count(*) AS rows_with_items_in_clear
  FROM ccpurge.request_log
 WHERE message LIKE '%13500001111%' OR pg_catalog.encode(items_hmac, 'escape') LIKE '%13500001111%';
SELECT operation, count(*) FROM ccpurge.request_log GROUP BY 1 ORDER BY 1;

-- nobody but the owner can read it, or call the functions
CREATE ROLE regress_ccp_user;
SET ROLE regress_ccp_user;
SELECT count(*) FROM ccpurge.request_log;
SELECT * FROM ccpurge_delete_customers(ARRAY['x']);
RESET ROLE;

-- the GRANT recipe from the README
GRANT USAGE ON FOREIGN SERVER cec TO regress_ccp_user;
GRANT EXECUTE ON FUNCTION ccpurge_delete_customers(text[], text) TO regress_ccp_user;
SET ROLE regress_ccp_user;
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['granted1']);
-- the mapping's secrets stay hidden from a non-owner
SELECT umoptions FROM pg_user_mappings WHERE srvname = 'cec';
RESET ROLE;
SELECT role, item_count, ok FROM ccpurge.request_log WHERE role = 'regress_ccp_user';
REVOKE ALL ON FUNCTION ccpurge_delete_customers(text[], text) FROM regress_ccp_user;
REVOKE USAGE ON FOREIGN SERVER cec FROM regress_ccp_user;
DROP ROLE regress_ccp_user;

--
-- The log outlives a rollback: the requests went out all the same.  The
-- rows of a rolled-back transaction or savepoint are handed to the worker,
-- which writes them in a transaction of its own.
--
BEGIN;
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['rolled-back-1']);
ROLLBACK;
BEGIN;
SAVEPOINT before_call;
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['rolled-back-2']);
ROLLBACK TO before_call;
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['kept-3']);
COMMIT;
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		PERFORM FROM ccpurge.request_log
		 WHERE items_hmac IN (ccpurge_items_digest('{rolled-back-1}'),
								ccpurge_items_digest('{rolled-back-2}'))
		HAVING count(*) = 2;
		EXIT WHEN FOUND;
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT d.item, l.origin, l.item_count, l.ok, l.http_status
  FROM unnest(ARRAY['rolled-back-1', 'rolled-back-2', 'kept-3']) AS d(item)
  LEFT JOIN ccpurge.request_log AS l ON l.items_hmac = ccpurge_items_digest(ARRAY[d.item])
 ORDER BY 1;
