--
-- 21_digest_keys: the request log stores keyed digests of the items
--
-- A plain SHA-256 of one phone number is reversed by trying every number,
-- so ccpurge digests items with HMAC-SHA256 under a secret key of
-- ccpurge.digest_key, made by CREATE EXTENSION, readable by the owner only.
--
\! test/bin/simctl reset

-- one key of 32 bytes, made at CREATE EXTENSION
SELECT count(*) AS keys, bool_and(pg_catalog.octet_length(key) = 32) AS all_32_bytes
  FROM ccpurge.digest_key;

-- the digest of a set does not depend on the order of its items, and it
-- is not the unkeyed SHA-256 that 1.1 stored
SELECT ccpurge_items_digest(ARRAY['13500001111', 'kehu@example.com'])
	 = ccpurge_items_digest(ARRAY['kehu@example.com', '13500001111']) AS order_free,
	   ccpurge_items_digest(ARRAY['13500001111'])
	 = pg_catalog.sha256(pg_catalog.convert_to(E'13500001111\n', 'UTF8')) AS unkeyed,
	   pg_catalog.octet_length(ccpurge_items_digest(ARRAY['13500001111'])) AS bytes;

-- a request is logged with the digest and the key it was made under
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['dk-1', 'dk-2']);
SELECT l.item_count, l.items_sha256 IS NULL AS no_unkeyed_digest,
	   l.items_hmac = ccpurge_items_digest(ARRAY['dk-2', 'dk-1']) AS matches,
	   l.key_id = (SELECT key_id FROM ccpurge.digest_key) AS current_key
  FROM ccpurge.request_log AS l
 WHERE l.operation = 'delete_customers' AND l.item_count = 2
 ORDER BY l.log_id DESC LIMIT 1;

-- rotation adds a current key and keeps the old one; new digests use the
-- new key, old rows keep the digest and key they were written with
SELECT key_id AS old_key FROM ccpurge.digest_key \gset
SELECT ccpurge_items_digest(ARRAY['dk-1', 'dk-2']) AS old_digest \gset
SELECT ccpurge_rotate_digest_key() <> :old_key AS new_key;
SELECT count(*) AS keys FROM ccpurge.digest_key;
SELECT ccpurge_items_digest(ARRAY['dk-1', 'dk-2']) <> :'old_digest' AS digest_changed;
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['dk-1', 'dk-2']);
-- (a call may make two requests, when the token needs a refresh)
SELECT DISTINCT l.key_id = :old_key AS old_key, l.items_hmac = :'old_digest' AS old_digest
  FROM ccpurge.request_log AS l
 WHERE l.items_hmac IN (:'old_digest', ccpurge_items_digest(ARRAY['dk-1', 'dk-2']))
 ORDER BY 1 DESC;

-- nobody but the owner reads a key, a log row, or computes a digest
CREATE ROLE ccp_digest_outsider;
SET ROLE ccp_digest_outsider;
SELECT key FROM ccpurge.digest_key;
SELECT count(*) FROM ccpurge.request_log;
SELECT ccpurge_items_digest(ARRAY['13500001111']);
SELECT ccpurge_rotate_digest_key();
RESET ROLE;
DROP ROLE ccp_digest_outsider;
