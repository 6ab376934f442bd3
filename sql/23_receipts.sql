--
-- 23_receipts: the auditor's question for one person, answered without
-- keeping the person's number
--
-- Every HTTP request leaves, besides its log row, one receipt per item it
-- carried: the item's keyed digest (HMAC-SHA256 under ccpurge.digest_key),
-- never the item.  ccpurge_erasure_receipt(item) finds every request that
-- carried an item, under every key; ccpurge_erasure_certificate(item) is
-- the same as a document an auditor can check without ccpurge.
--
\getenv sim_port CCPURGE_SIM_PORT
\set hook_url 'http://127.0.0.1:' :sim_port '/webhook/erase'
\! test/bin/simctl reset

-- a synchronous call: one receipt per item, written with its log row
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['+86 135 0000 1111', '+86 135 0000 2222'])
 ORDER BY item;
SELECT max(log_id) AS call_log_id FROM ccpurge.request_log
 WHERE operation = 'delete_customers' \gset
SELECT server, vendor, operation, origin, request_id, ok, http_status, code,
	   log_id = :call_log_id AS that_call
  FROM ccpurge_erasure_receipt('+86 135 0000 1111');
-- ccpurge.erasure shows a row per item: the item's HMAC, never the item
SELECT count(*) AS receipts,
	   bool_and('hmac:' || key_id || ':' || pg_catalog.encode(item_hmac, 'hex')
				IN (SELECT pg_catalog.unnest(ccpurge.forget_items(
					ARRAY['+86 135 0000 1111', '+86 135 0000 2222'])))) AS digests_of_the_items,
	   bool_and(ok) AS ok
  FROM ccpurge.erasure WHERE log_id = :call_log_id;
-- a number no request carried has no receipt
SELECT count(*) FROM ccpurge_erasure_receipt('+86 135 0000 3333');

-- the webhook answers per item: each receipt has the item's own outcome
CREATE SERVER rcpt_hook FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'webhook', url :'hook_url');
CREATE USER MAPPING FOR PUBLIC SERVER rcpt_hook
  OPTIONS (signing_secret 'webhook-signing-secret-0123');
\! test/bin/simctl config '{"webhook_results":"per_item","webhook_fail_items":["rcpt-locked"]}'
SELECT item, ok FROM ccpurge_erase(ARRAY['rcpt-1', 'rcpt-locked', 'rcpt-2'], 'rcpt_hook')
 ORDER BY item;
SELECT i.item, r.ok, r.code
  FROM pg_catalog.unnest(ARRAY['rcpt-1', 'rcpt-locked', 'rcpt-2']) AS i(item),
	   LATERAL ccpurge_erasure_receipt(i.item) AS r
 ORDER BY i.item;
\! test/bin/simctl reset

-- after a key rotation, the receipts under the old key are still found,
-- and new ones are under the new key
SELECT ccpurge_rotate_digest_key() IS NOT NULL AS rotated;
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['+86 135 0000 1111']);
SELECT count(*) AS requests, count(DISTINCT log_id) AS log_rows
  FROM ccpurge_erasure_receipt('+86 135 0000 1111');

-- the certificate: the item's digest under each key, each receipt with
-- every column its log row's hash covers, and the chain's head
SELECT c->>'format' AS format,
	   jsonb_array_length(c->'item_digests') AS digests,
	   jsonb_array_length(c->'receipts') AS receipts,
	   (SELECT count(DISTINCT r->>'key_id') FROM jsonb_array_elements(c->'receipts') r) AS keys,
	   c->'receipts'->0->'row'->0->>0 AS first_column,
	   c->'receipts'->0->'row'->2 AS server,
	   c->'receipts'->0->>'item_ok' AS item_ok,
	   jsonb_array_length(c->'receipts'->0->'row') AS columns,
	   c ? 'chain_head' AS has_head
  FROM ccpurge_erasure_certificate('+86 135 0000 1111') AS c;

-- a role that is not the owner reads no receipt and no key, even when it
-- may call the functions
CREATE ROLE regress_rcpt_app;
GRANT EXECUTE ON FUNCTION ccpurge_erasure_receipt(text),
	ccpurge_erasure_certificate(text) TO regress_rcpt_app;
SET ROLE regress_rcpt_app;
SELECT * FROM ccpurge_erasure_receipt('+86 135 0000 1111');
SELECT ccpurge_erasure_certificate('+86 135 0000 1111');
SELECT * FROM ccpurge.erasure;
SELECT * FROM ccpurge.digest_key;
RESET ROLE;
REVOKE ALL ON FUNCTION ccpurge_erasure_receipt(text),
	ccpurge_erasure_certificate(text) FROM regress_rcpt_app;
DROP ROLE regress_rcpt_app;

DROP USER MAPPING FOR PUBLIC SERVER rcpt_hook;
DROP SERVER rcpt_hook;

-- ccpurge.receipt_items: the digests of a done row's items from its
-- receipts, as the queue keeps them; NULL past the receipts or without them
SELECT ccpurge.receipt_items(pg_catalog.decode(repeat('ab', 32) || repeat('cd', 32), 'hex'), 7, 1, 2);
SELECT ccpurge.receipt_items(NULL, NULL, 0, 2), ccpurge.receipt_items(NULL, NULL, 0, 0);
