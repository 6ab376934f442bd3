--
-- 70_webhook: the signed webhook vendor reaches any other erasure endpoint
--
-- The simulator's /webhook/erase checks the X-Ccpurge-Signature HMAC and
-- its 5-minute window, requires an Idempotency-Key, and can answer per item.
--
\getenv sim_port CCPURGE_SIM_PORT
\set hook_url 'http://127.0.0.1:' :sim_port '/webhook/erase'
\! test/bin/simctl reset

CREATE SERVER hook FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'webhook', url :'hook_url');
-- the signing secret must be long enough to sign with
CREATE USER MAPPING FOR PUBLIC SERVER hook OPTIONS (signing_secret 'short');
SELECT * FROM ccpurge_erase(ARRAY['x']);
ALTER USER MAPPING FOR PUBLIC SERVER hook
  OPTIONS (SET signing_secret 'webhook-signing-secret-0123');

-- a good call: every item erased, duplicates sent once
SELECT * FROM ccpurge_erase(ARRAY['wh-1', 'wh-2', 'wh-1', 'person@example.com']);
\! test/bin/simctl deleted webhook
\! test/bin/simctl get requests.webhook webhook.distinct_keys

-- items are checked before anything is sent
SELECT * FROM ccpurge_erase(ARRAY['ok', '']);
SELECT * FROM ccpurge_erase(ARRAY[E'bad\x01']);
SELECT * FROM ccpurge_erase(ARRAY[repeat('x', 1025)]);
SELECT * FROM ccpurge_erase(ARRAY[NULL]::text[]);
\! test/bin/simctl get requests.webhook

-- a wrong secret: the receiver refuses the signature, permanently
ALTER USER MAPPING FOR PUBLIC SERVER hook
  OPTIONS (SET signing_secret 'not-the-right-secret-at-all');
SELECT * FROM ccpurge_erase(ARRAY['wh-3']);
ALTER USER MAPPING FOR PUBLIC SERVER hook
  OPTIONS (SET signing_secret 'webhook-signing-secret-0123');

-- per-item results: each item has its own outcome; one the receiver
-- refuses and one it does not mention are not erased
\! test/bin/simctl config '{"webhook_results":"per_item","webhook_fail_items":["wh-locked"],"webhook_omit_items":["wh-lost"]}'
SELECT item, request_no, ok, http_status, message
  FROM ccpurge_erase(ARRAY['wh-4', 'wh-locked', 'wh-lost', 'wh-5'])
 ORDER BY item;

-- a 2xx answer erases only when it is empty or exactly one "results"
-- object: the same per-item answer with a proxy's footer glued to it, a
-- garbage body, an HTML page, JSON of another shape and white space alone
-- are failures that say so, whatever the receiver did
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","body":"{\"results\":[{\"item\":\"junk-1\",\"ok\":false,\"message\":\"legal hold\"}]}"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-1']);
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","body":"{\"results\":[{\"item\":\"junk-1\",\"ok\":false,\"message\":\"legal hold\"}]}<html>proxy footer</html>"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-1']);
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","body":"\u00ff\u00fe }{ garbage"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-2']);
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","content_type":"text/html","body":"<html><body>Access granted</body></html>"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-3']);
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","body":"{\"status\":\"ok\"}"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-4']);
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"/webhook/","body":"\n"}'
SELECT item, ok, http_status, message FROM ccpurge_erase(ARRAY['junk-5']);
-- the simulator erased none of them: a fault answers before the handler
\! test/bin/simctl deleted webhook

-- the queue: a transient failure is retried with the same Idempotency-Key,
-- and the items the receiver refuses end failed, each with its reason
\! test/bin/simctl fault '{"kind":"status","status":503,"path":"/webhook/","count":1}'
SELECT ccpurge_enqueue('erase', ARRAY['wq-1', 'wh-locked', 'wq-2'], '{}', 'hook') AS req \gset
SELECT ccpurge_wait(:req, '30 seconds');
-- done items keep only their digests
SELECT regexp_replace(item, '^hmac:[0-9]+:[0-9a-f]{64}$', 'hmac:(its digest)') AS item, state, attempts, http_status, message
  FROM ccpurge_status WHERE request_id = :req ORDER BY item;
-- two attempts of the batch, one key (the sync calls above sent one each)
\! test/bin/simctl keys webhook
\! test/bin/simctl get requests.webhook webhook.idempotent_repeats
\! test/bin/simctl config '{"webhook_results":"none","webhook_fail_items":[],"webhook_omit_items":[]}'

-- the answer limit grows with the batch: per-item results for the largest
-- batch a server may send (10000 items of 1024 bytes, about 10 MB of
-- answer) are read, synchronously and from the queue (1000 items of about
-- 1 kB, over 1 MiB of answer)
\! test/bin/simctl config '{"webhook_results":"per_item"}'
ALTER SERVER hook OPTIONS (ADD batch_size '10000');
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS erased,
	   pg_catalog.min(message) AS message
  FROM ccpurge_erase(ARRAY(SELECT pg_catalog.lpad(g::text, 1024, 'm')
							 FROM generate_series(1, 10000) AS g));
ALTER SERVER hook OPTIONS (SET batch_size '1000');
SELECT ccpurge_enqueue('erase',
	ARRAY(SELECT pg_catalog.lpad(g::text, 1000, 'k') FROM generate_series(1, 1000) AS g),
	'{}', 'hook') AS req \gset
SELECT ccpurge_wait(:req, '60 seconds');
SELECT state, count(*) FROM ccpurge_status WHERE request_id = :req GROUP BY state;
\! test/bin/simctl config '{"webhook_results":"none"}'

-- a log row is ok only when every item it carried was erased
SELECT operation, origin, item_count, ok, http_status, message
  FROM ccpurge.request_log WHERE server = 'hook' ORDER BY log_id;

DROP SERVER hook CASCADE;
