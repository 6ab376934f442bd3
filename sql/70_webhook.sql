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

-- the queue: a transient failure is retried with the same Idempotency-Key,
-- and the items the receiver refuses end failed, each with its reason
\! test/bin/simctl fault '{"kind":"status","status":503,"path":"/webhook/","count":1}'
SELECT ccpurge_enqueue('erase', ARRAY['wq-1', 'wh-locked', 'wq-2'], '{}', 'hook') AS req \gset
SELECT ccpurge_wait(:req, '30 seconds');
SELECT item, state, attempts, http_status, message
  FROM ccpurge_status WHERE request_id = :req ORDER BY item;
-- two attempts of the batch, one key (the sync calls above sent one each)
\! test/bin/simctl keys webhook
\! test/bin/simctl get requests.webhook webhook.idempotent_repeats
\! test/bin/simctl config '{"webhook_results":"none","webhook_fail_items":[],"webhook_omit_items":[]}'

SELECT operation, origin, item_count, ok, http_status
  FROM ccpurge.request_log WHERE server = 'hook' ORDER BY log_id;

DROP SERVER hook CASCADE;
