--
-- 22_log_chain: the request log is a hash chain
--
-- The worker chains every finished row: its row_hash is the SHA-256 of the
-- row before's hash and of all its own columns.  ccpurge_verify_log()
-- recomputes the chain, so a row changed, removed or added by hand is
-- found; ccpurge_prune_log() removes old rows and the chain still verifies.
--

-- wait until the worker has chained the rows of the files before
DO $$
BEGIN
	FOR i IN 1..400 LOOP
		PERFORM FROM ccpurge.request_log WHERE chain_seq IS NULL;
		EXIT WHEN NOT FOUND;
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT ok, rows_checked = (SELECT count(*) FROM ccpurge.request_log) AS all_rows,
	   first_bad_log_id, detail
  FROM ccpurge_verify_log();
-- every row is chained to the one before it, in chain order
SELECT count(*) FILTER (WHERE l.prev_hash = p.row_hash) = count(*) - 1 AS linked,
	   min(l.chain_seq) = 1 AS starts_at_1,
	   max(l.chain_seq) = count(*) AS no_gaps
  FROM ccpurge.request_log AS l
  LEFT JOIN ccpurge.request_log AS p ON p.chain_seq = l.chain_seq - 1;

-- a row changed by hand, anywhere, breaks the chain at that row
SELECT log_id AS mid, message AS mid_message FROM ccpurge.request_log
 WHERE chain_seq = (SELECT max(chain_seq) / 2 FROM ccpurge.request_log) \gset
UPDATE ccpurge.request_log SET message = 'nothing to see' WHERE log_id = :mid;
SELECT ok, first_bad_log_id = :mid AS found_it, detail ~ 'changed' AS changed
  FROM ccpurge_verify_log();
UPDATE ccpurge.request_log SET message = :'mid_message' WHERE log_id = :mid;
SELECT ok FROM ccpurge_verify_log();
-- so does its status
UPDATE ccpurge.request_log SET ok = NOT ok WHERE log_id = :mid;
SELECT ok, first_bad_log_id = :mid AS found_it FROM ccpurge_verify_log();
UPDATE ccpurge.request_log SET ok = NOT ok WHERE log_id = :mid;

-- a row removed from the middle, or from the end
CREATE TEMP TABLE saved AS SELECT * FROM ccpurge.request_log WHERE log_id = :mid;
DELETE FROM ccpurge.request_log WHERE log_id = :mid;
SELECT ok, first_bad_log_id > :mid AS found_after, detail ~ 'missing' AS missing
  FROM ccpurge_verify_log();
INSERT INTO ccpurge.request_log SELECT * FROM saved;
SELECT ok FROM ccpurge_verify_log();
DELETE FROM saved;
INSERT INTO saved SELECT * FROM ccpurge.request_log
 WHERE chain_seq = (SELECT max(chain_seq) FROM ccpurge.request_log);
DELETE FROM ccpurge.request_log WHERE log_id = (SELECT log_id FROM saved);
SELECT ok, first_bad_log_id, detail ~ 'at its end' AS at_end FROM ccpurge_verify_log();
INSERT INTO ccpurge.request_log SELECT * FROM saved;

-- a row added by hand in a place of the chain (the rows after it moved up
-- to make room)
SELECT max(chain_seq) / 2 AS m FROM ccpurge.request_log \gset
UPDATE ccpurge.request_log SET chain_seq = chain_seq + 1000000 WHERE chain_seq > :m;
UPDATE ccpurge.request_log SET chain_seq = chain_seq - 1000000 + 1 WHERE chain_seq > 1000000;
INSERT INTO ccpurge.request_log (server, vendor, operation, origin, role,
	item_count, ok, duration_ms, prev_hash, row_hash, chain_seq)
SELECT 'cec', 'cec', 'delete_customers', 'sync', 'forger', 1, true, 1,
	   row_hash, pg_catalog.sha256('forged'::bytea), :m + 1
  FROM ccpurge.request_log WHERE chain_seq = :m
RETURNING log_id AS forged \gset
SELECT ok, first_bad_log_id = :forged AS found_it FROM ccpurge_verify_log();
DELETE FROM ccpurge.request_log WHERE log_id = :forged;
UPDATE ccpurge.request_log SET chain_seq = chain_seq + 1000000 WHERE chain_seq > :m + 1;
UPDATE ccpurge.request_log SET chain_seq = chain_seq - 1000000 - 1 WHERE chain_seq > 1000000;
SELECT ok FROM ccpurge_verify_log();

-- pruning removes the oldest rows and keeps the chain verifiable
SELECT count(*) AS before FROM ccpurge.request_log \gset
SELECT ccpurge_prune_log((SELECT logged_at FROM ccpurge.request_log
						   WHERE chain_seq = 3)) AS pruned;
SELECT :before - count(*) AS removed, min(chain_seq) AS first_left
  FROM ccpurge.request_log;
SELECT pruned_seq FROM ccpurge.log_chain;
SELECT ok, detail FROM ccpurge_verify_log();
-- new rows chain after the rest
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['chain-1']);
DO $$
BEGIN
	FOR i IN 1..400 LOOP
		PERFORM FROM ccpurge.request_log WHERE chain_seq IS NULL;
		EXIT WHEN NOT FOUND;
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT ok, detail FROM ccpurge_verify_log();

-- nobody but the owner verifies or prunes
CREATE ROLE ccp_chain_outsider;
SET ROLE ccp_chain_outsider;
SELECT * FROM ccpurge_verify_log();
SELECT ccpurge_prune_log(now());
RESET ROLE;
DROP ROLE ccp_chain_outsider;
