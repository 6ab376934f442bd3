--
-- 80_console: the DBA's console.  ccpurge_servers shows each server's
-- queue, limiter, token and log; ccpurge_explain shows the requests a call
-- would send; ccpurge.dry_run makes the synchronous functions send
-- nothing.  No secret, token or signature shows in any of them, and
-- neither explain nor a dry run sends or logs anything.
--
\getenv sim_port CCPURGE_SIM_PORT
\set sim_url 'http://127.0.0.1:' :sim_port
\! test/bin/simctl reset

-- a webhook server of its own, with a long secret
\set hook_url 'http://127.0.0.1:' :sim_port '/webhook/erase'
CREATE SERVER console_hook FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'webhook', url :'hook_url');
CREATE USER MAPPING FOR PUBLIC SERVER console_hook
  OPTIONS (signing_secret 'webhook-signing-secret-0123');

-- every secret the servers used here hold
CREATE TEMP TABLE secrets (s text);
INSERT INTO secrets VALUES ('cec-app-key'), ('cec-app-secret'),
  ('isales-ak'), ('isales-sk'), ('acme'), ('oz-api-key'),
  ('webhook-signing-secret-0123');

--
-- ccpurge_servers
--

-- the columns, in the design's order
SELECT * FROM ccpurge_servers WHERE false;

-- one row per server, with its vendor and rate limit (Ozonetel's set,
-- the others unlimited)
SELECT server, vendor, rate_limit, window_used
  FROM ccpurge_servers
 WHERE server IN ('cec', 'isales', 'ozonetel', 'console_hook')
 ORDER BY server;

-- a request through the rate-limited server fills one entry of its window
-- (100/second, so it is still within the last second or the next slot is
-- free), a cec call caches a token; a failed request becomes last_error
SELECT count(*) FROM ccpurge_delete_bulk_data(ARRAY['9000000001'], ARRAY['console']);
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['console-ok']);
\! test/bin/simctl fault '{"kind":"body","status":500,"path":"cleancustpersonaldata","body":"{\"retCode\":\"1\",\"retMsg\":\"denied for cec-app-secret\"}"}'
SELECT item, ok, message FROM ccpurge_delete_customers(ARRAY['console-bad']);
SELECT server, inflight, window_used >= 1 AS window_used,
	   next_slot_at IS NULL AS window_has_room,
	   token_expires_at > now() AS token_cached,
	   last_ok_at IS NOT NULL AS has_ok, requests_1h >= 1 AS requests
  FROM ccpurge_servers WHERE server IN ('cec', 'ozonetel') ORDER BY server;
SELECT server, last_error_at >= last_ok_at AS error_last, last_error,
	   errors_1h >= 1 AS errors
  FROM ccpurge_servers WHERE server = 'cec';
-- servers without tokens have no expiry
SELECT server, token_expires_at FROM ccpurge_servers
 WHERE server IN ('isales', 'console_hook') ORDER BY server;

-- queued and failed items are counted per server, oldest first
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['console-q1', 'console-q2'],
					   '{}', 'cec') > 0 AS queued;
SELECT server, queued, sending, failed, oldest_queued_at = now() AS oldest_is_now
  FROM ccpurge_servers WHERE server = 'cec';
ROLLBACK;

-- servers of one vendor account (vendor, URL, app_key) show one account,
-- whose state they share; another app_key is another account
BEGIN;
CREATE SERVER console_twin FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER console_twin
  OPTIONS (app_key 'cec-app-key', app_secret 'twin-secret');
SELECT a.account = b.account AS same_account,
	   a.account ~ '^cec:[0-9a-f]{8}$' AS shape
  FROM ccpurge_servers a, ccpurge_servers b
 WHERE a.server = 'cec' AND b.server = 'console_twin';
ALTER USER MAPPING FOR PUBLIC SERVER console_twin
  OPTIONS (SET app_key 'another-app-key');
SELECT a.account = b.account AS same_account
  FROM ccpurge_servers a, ccpurge_servers b
 WHERE a.server = 'cec' AND b.server = 'console_twin';
ROLLBACK;

-- no secret in any column of any row
SELECT count(*) AS leaks
  FROM ccpurge_servers v, secrets
 WHERE strpos(lower(v::text), lower(secrets.s)) > 0;

-- the hour's counts can use the request log's logged_at index
CREATE FUNCTION pg_temp.plan(q text) RETURNS SETOF text LANGUAGE plpgsql
AS $$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;
SET enable_seqscan = off;
SELECT count(*) > 0 AS uses_logged_at_index
  FROM pg_temp.plan('SELECT requests_1h FROM ccpurge_servers') AS line
 WHERE line ~ 'Index.*request_log_logged_at_idx'
   AND line !~ 'Backward';
RESET enable_seqscan;

-- privileges: revoked from PUBLIC; a role granted SELECT reads the views,
-- not the functions behind them
SELECT has_table_privilege('public', 'ccpurge_servers', 'SELECT') AS servers_public,
	   has_table_privilege('public', 'ccpurge_progress', 'SELECT') AS progress_public,
	   has_function_privilege('public', 'ccpurge_explain(text,text[],jsonb,text)', 'EXECUTE')
	   AS explain_public;
CREATE ROLE console_monitor;
GRANT SELECT ON ccpurge_servers, ccpurge_progress TO console_monitor;
SET ROLE console_monitor;
SELECT count(*) >= 4 AS sees_servers FROM ccpurge_servers;
SELECT count(*) AS calls FROM ccpurge_progress;
SELECT * FROM ccpurge.server_state(0);
SELECT * FROM ccpurge_explain('delete_customers', ARRAY['x']);
RESET ROLE;

--
-- ccpurge_explain
--
SELECT count(*) AS log_rows FROM ccpurge.request_log \gset before_
\! test/bin/simctl get requests.cec_token requests.cec_customers requests.isales_caller_numbers requests.isales_calldata requests.oz_token requests.oz_delete requests.webhook

-- CEC: the token and the app key are redacted
SELECT request_no, method, replace(url, :'sim_url', 'SIM') AS url, headers,
	   body, item_count
  FROM ccpurge_explain('delete_customers', ARRAY['c1', 'c2', 'c1']);

-- batch_size splits the items as a call would
ALTER SERVER cec OPTIONS (ADD batch_size '2');
SELECT request_no, body, item_count
  FROM ccpurge_explain('delete_customers', ARRAY['c1', 'c2', 'c3', 'c4', 'c5']);
ALTER SERVER cec OPTIONS (DROP batch_size);

-- iSales: the C2 signature is redacted, the signed headers are shown
SELECT request_no, method, replace(url, :'sim_url', 'SIM') AS url,
	   regexp_replace(replace(array_to_string(headers, E'\n'), :'sim_port', 'PORT'),
					  '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z', 'TIME') AS headers,
	   body, item_count
  FROM ccpurge_explain('delete_caller_numbers', ARRAY['5245241'],
					   '{"vdn_id": 1, "campaign_id": 2}');

-- Ozonetel: the apiKey, the username and the token are redacted; one
-- request per part of the campaign list
SELECT request_no, method, replace(url, :'sim_url', 'SIM') AS url, headers,
	   body, item_count
  FROM ccpurge_explain('delete_bulk_data', ARRAY['9000000001', '9000000002'],
					   '{"campaign_names": ["c1", "c2"]}');

-- a calldata filter is one request without items
SELECT request_no, method, replace(url, :'sim_url', 'SIM') AS url, body, item_count
  FROM ccpurge_explain('delete_calldata', NULL,
					   '{"vdn_id": 1, "campaign_id": 2, "filter": {"called": "13800001111"}}');

-- webhook: the signature is redacted, its timestamp shown
SELECT request_no, method, replace(url, :'sim_url', 'SIM') AS url,
	   regexp_replace(array_to_string(headers, E'\n'), '[0-9a-f]{32}|t=[0-9]+', 'X', 'g')
	   AS headers,
	   body, item_count
  FROM ccpurge_explain('erase', ARRAY['w1'], '{}', 'console_hook');

-- no secret anywhere in any output, whatever the vendor
SELECT count(*) AS leaks
  FROM (SELECT e::text AS t FROM ccpurge_explain('delete_customers', ARRAY['c1']) e
		UNION ALL
		SELECT e::text FROM ccpurge_explain('delete_caller_numbers', ARRAY['5245241'],
											'{"vdn_id": 1, "campaign_id": 2}') e
		UNION ALL
		SELECT e::text FROM ccpurge_explain('delete_bulk_data', ARRAY['9000000001'],
											'{"campaign_names": ["c1"]}') e
		UNION ALL
		SELECT e::text FROM ccpurge_explain('erase', ARRAY['w1'], '{}', 'console_hook') e) o,
	   secrets
 WHERE strpos(lower(o.t), lower(secrets.s)) > 0;

-- it validates as a call does, before building anything
SELECT * FROM ccpurge_explain('delete_everything', ARRAY['x']);
SELECT * FROM ccpurge_explain('delete_customers', ARRAY['']);
SELECT * FROM ccpurge_explain('delete_caller_numbers', ARRAY['5245241'], '{"vdn_id": 0, "campaign_id": 2}');
SELECT * FROM ccpurge_explain('delete_customers', ARRAY['x'], '{}', 'no_such_server');

-- nothing was sent (the simulator's counters are as before) or logged
\! test/bin/simctl get requests.cec_token requests.cec_customers requests.isales_caller_numbers requests.isales_calldata requests.oz_token requests.oz_delete requests.webhook
SELECT count(*) - :before_log_rows AS new_log_rows FROM ccpurge.request_log;

--
-- ccpurge.dry_run
--
SET ccpurge.dry_run = on;
SELECT * FROM ccpurge_delete_customers(ARRAY['dry-1', 'dry-2', 'dry-1']);
SELECT * FROM ccpurge_delete_calldata(1, 2, '{"called": "138"}');
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['9000000003'], ARRAY['c1', 'c2']);
SELECT * FROM ccpurge_call('erase', ARRAY['w1'], '{}', 'console_hook');
-- it still validates
SELECT * FROM ccpurge_delete_customers(ARRAY['dry-1', NULL]);
-- nothing was sent or logged
\! test/bin/simctl get requests.cec_token requests.cec_customers requests.isales_caller_numbers requests.isales_calldata requests.oz_token requests.oz_delete requests.webhook
SELECT count(*) - :before_log_rows AS new_log_rows FROM ccpurge.request_log;
RESET ccpurge.dry_run;

REVOKE SELECT ON ccpurge_servers, ccpurge_progress FROM console_monitor;
DROP ROLE console_monitor;
DROP SERVER console_hook CASCADE;
