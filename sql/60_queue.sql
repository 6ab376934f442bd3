--
-- 60_queue: queueing erasures for the background worker
--
-- ccpurge_enqueue and the ccpurge_erase_on_delete trigger queue items in
-- the caller's transaction; the worker sends them after commit.  The worker
-- may be draining this database while the test runs, so states are shown
-- only inside the enqueuing transaction, before the worker can see the
-- rows, or for rows it leaves alone (canceled, or not due for a day).
-- After a commit only items are counted, whatever their state.
--

-- ccpurge_status shows one row per item.
SELECT * FROM ccpurge_status WHERE false;

-- Request ids come from a sequence; it is moved on here so that the
-- messages below that name a request read the same in every run.
SELECT setval('ccpurge.request_id_seq', 6000);

--
-- ccpurge_enqueue validates like the synchronous functions, before
-- anything is queued
--

-- The operation must be one ccpurge knows; the hint lists them.
SELECT ccpurge_enqueue('delete_everything', ARRAY['13500001111']);
SELECT ccpurge_enqueue(NULL, ARRAY['13500001111']);

-- Items: not NULL, not empty, no NULL or blank element.
SELECT ccpurge_enqueue('delete_customers', NULL);
SELECT ccpurge_enqueue('delete_customers', '{}');
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111', NULL]);
SELECT ccpurge_enqueue('delete_customers', ARRAY['   ']);

-- Params: a JSON object with exactly the keys the operation takes.
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111'], NULL);
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111'], '[1]');
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111'], '{"vdn_id": 1}');
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['5245241'], '{}');
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['5245241'], '{"vdn_id": 1}');
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['5245241'],
					   '{"vdn_id": 10000, "campaign_id": 42}');
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['5245241'],
					   '{"vdn_id": "1", "campaign_id": 42}');
SELECT ccpurge_enqueue('delete_calldata', ARRAY['13800138000'],
					   '{"vdn_id": 1, "campaign_id": 42, "archiveHistory": 2}');
SELECT ccpurge_enqueue('delete_calldata', ARRAY['13800138000'],
					   '{"vdn_id": 1, "campaign_id": 42, "called": "1"}');
SELECT ccpurge_enqueue('delete_bulk_data', ARRAY['8187867008'], '{}');
SELECT ccpurge_enqueue('delete_bulk_data', ARRAY['8187867008'],
					   '{"campaign_names": []}');
SELECT ccpurge_enqueue('delete_bulk_data', ARRAY['8187867008'],
					   '{"campaign_names": ["QA_Outbound", 7]}');

-- Each item as the vendor accepts it: for delete_calldata an item is a
-- called number (at most 24 of 0-9, * and #).
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['524-5241'],
					   '{"vdn_id": 1, "campaign_id": 42}');
SELECT ccpurge_enqueue('delete_calldata', ARRAY['1380013800x'],
					   '{"vdn_id": 1, "campaign_id": 42}');
SELECT ccpurge_enqueue('delete_calldata', ARRAY['1234567890123456789012345'],
					   '{"vdn_id": 1, "campaign_id": 42}');

-- The server: it must exist and be of the operation's vendor.
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111'], '{}', 'nosuch');
SELECT ccpurge_enqueue('delete_customers', ARRAY['13500001111'], '{}', 'isales');

--
-- A request as its transaction sees it
--
BEGIN;
SELECT ccpurge_enqueue('delete_customers',
					   ARRAY['q60-a', 'q60-b', 'q60-a', 'q60-c']) AS req_cust \gset
-- duplicates are queued once; the request belongs to the enqueuing role
SELECT operation, server, item, state, attempts, http_status, code, message,
	   params, role = current_user::regrole AS my_role,
	   finished_at IS NULL AS unfinished
  FROM ccpurge_status WHERE request_id = :req_cust ORDER BY item;
SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY['5245241', '5245242'],
					   '{"campaign_id": 42, "vdn_id": 1}', 'isales') AS req_caller \gset
SELECT ccpurge_enqueue('delete_calldata', ARRAY['13800138000', '13800138001'],
					   '{"vdn_id": 1, "campaign_id": 42, "archiveHistory": 1}') AS req_calldata \gset
SELECT ccpurge_enqueue('delete_bulk_data', ARRAY['8187867008'],
					   '{"campaign_names": ["QA_Outbound", "QA_Inbound", "QA_Outbound"]}') AS req_bulk \gset
-- params are stored normalised; a row holds at most one vendor batch, and
-- iSales deletes call data one called number at a time
SELECT operation, params, items, nitems
  FROM ccpurge.queue
 WHERE request_id IN (:req_cust, :req_caller, :req_calldata, :req_bulk)
 ORDER BY chunk_id;
-- every request has its own id
SELECT count(DISTINCT request_id) FROM ccpurge.queue
 WHERE request_id IN (:req_cust, :req_caller, :req_calldata, :req_bulk);
-- 250 access codes in rows of the vendor's 100
SELECT ccpurge_enqueue('delete_caller_numbers',
					   ARRAY(SELECT (5000000 + g)::text FROM generate_series(1, 250) g),
					   '{"vdn_id": 1, "campaign_id": 42}') AS req_many \gset
SELECT nitems, items[1] AS first_item FROM ccpurge.queue
 WHERE request_id = :req_many ORDER BY chunk_id;
-- or in rows of the server's smaller batch_size
ALTER SERVER cec OPTIONS (ADD batch_size '2');
SELECT ccpurge_enqueue('delete_customers',
					   ARRAY['q60-1', 'q60-2', 'q60-3', 'q60-4', 'q60-5']) AS req_small \gset
SELECT items FROM ccpurge.queue WHERE request_id = :req_small ORDER BY chunk_id;
ROLLBACK;

-- A rolled-back transaction queues nothing.
SELECT count(*) FROM ccpurge.queue
 WHERE request_id IN (:req_cust, :req_caller, :req_calldata, :req_bulk,
					  :req_many, :req_small);

--
-- ccpurge_cancel and ccpurge_retry
--
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-x', 'q60-y', 'q60-z']) AS req \gset
-- cancel returns the number of items it canceled
SELECT ccpurge_cancel(:req);
SELECT ccpurge_cancel(:req);
SELECT state, message = 'canceled by ' || current_user AS canceled_by_me,
	   finished_at IS NOT NULL AS finished, count(*)
  FROM ccpurge_status WHERE request_id = :req GROUP BY 1, 2, 3;
-- retry queues failed items again, as new; canceled items kept only their
-- digests, so retry leaves them
SELECT ccpurge_retry(:req);
SELECT ccpurge_retry(:req);
SELECT state, attempts, regexp_replace(item, '^hmac:[0-9]+:[0-9a-f]{64}$', 'hmac:(its digest)') AS item, count(*)
  FROM ccpurge_status WHERE request_id = :req GROUP BY 1, 2, 3;
-- items the worker is sending are not canceled (the worker's part is
-- played by hand here)
UPDATE ccpurge.queue SET state = 'sending', batch_id = 1 WHERE request_id = :req;
SELECT ccpurge_cancel(:req);
UPDATE ccpurge.queue
   SET state = 'failed', attempts = 3, http_status = 400, code = '1',
	   message = 'rejected', finished_at = now()
 WHERE request_id = :req;
SELECT ccpurge_retry(:req);
SELECT state, attempts, batch_id, http_status, code, message, finished_at, nitems
  FROM ccpurge.queue WHERE request_id = :req;
SELECT ccpurge_cancel(:req);
-- a failed item is canceled too: it would otherwise stay for ever, as
-- retention keeps failed rows
UPDATE ccpurge.queue SET state = 'failed', message = 'rejected', finished_at = now()
 WHERE request_id = :req;
SELECT ccpurge_cancel(:req);
SELECT state, count(*) FROM ccpurge.queue WHERE request_id = :req GROUP BY 1;
COMMIT;

-- Unknown requests are errors.
SELECT ccpurge_cancel(-1);
SELECT ccpurge_retry(-1);

--
-- ccpurge_wait
--

-- A request whose items are all finished: true at once.
SELECT ccpurge_wait(:req);

-- Every filter ccpurge_delete_calldata takes can be queued: the request
-- has no items, its params select the call data (here by recycleTime),
-- and ccpurge_status shows it with item NULL.
SELECT ccpurge_enqueue('delete_calldata', NULL,
	'{"vdn_id": 1, "campaign_id": 42,
	  "filter": {"recycleTime": "2026-10-31 23:59:59", "recycleType": 1}}') AS req_filter \gset
SELECT ccpurge_wait(:req_filter, '30 seconds');
SELECT item, state, http_status, code, params->'filter' AS filter
  FROM ccpurge_status WHERE request_id = :req_filter;
-- the request log keeps the request's scope and the queue requests it
-- carried
SELECT scope->'filter' AS filter, request_ids = ARRAY[:req_filter]::bigint[] AS ids
  FROM ccpurge.request_log
 WHERE operation = 'delete_calldata' AND request_ids @> ARRAY[:req_filter]::bigint[];
-- two requests queued together go out in one batch, whose log row names both
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['co-1']) AS req_a \gset
SELECT ccpurge_enqueue('delete_customers', ARRAY['co-2', 'co-1']) AS req_b \gset
COMMIT;
SELECT ccpurge_wait(:req_a, '30 seconds') AND ccpurge_wait(:req_b, '30 seconds') AS done;
SELECT DISTINCT item_count, request_ids = ARRAY[:req_a, :req_b]::bigint[] AS both_requests
  FROM ccpurge.request_log WHERE request_ids && ARRAY[:req_a, :req_b]::bigint[];
-- a filter is validated as the synchronous function does, and takes no items
SELECT ccpurge_enqueue('delete_calldata', NULL,
	'{"vdn_id": 1, "campaign_id": 42, "filter": {"recycleType": 1}}');
SELECT ccpurge_enqueue('delete_calldata', ARRAY['13800138000'],
	'{"vdn_id": 1, "campaign_id": 42, "filter": {"called": "1"}}');

-- A request not finished in time: false.  It is held back from the
-- worker for a day, then canceled.
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-later']) AS req_later \gset
UPDATE ccpurge.queue SET next_attempt_at = now() + interval '1 day'
 WHERE request_id = :req_later;
COMMIT;
SELECT ccpurge_wait(:req_later, '200 milliseconds');
SELECT ccpurge_cancel(:req_later);
SELECT ccpurge_wait(:req_later, '200 milliseconds');

-- Waiting needs a request that exists, a snapshot that moves, and a
-- request the worker can see.
SELECT ccpurge_wait(-1);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ccpurge_wait(:req);
ROLLBACK;
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-mine']) AS req_mine \gset
SELECT ccpurge_wait(:req_mine);
ROLLBACK;

--
-- ccpurge_erase_on_delete: FOR EACH ROW
--
CREATE TABLE q60_customer (
	id		integer PRIMARY KEY,
	phone	text,
	"Phone" varchar(20),
	code	char(12)
);
INSERT INTO q60_customer
SELECT g, 'q60-row-' || g, 'q60-stmt-' || (g % 15), 'q60-code-' || g
  FROM generate_series(1, 40) g;
UPDATE q60_customer SET phone = NULL, "Phone" = NULL WHERE id IN (3, 23);

CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');

-- Items reach the queue when the transaction commits; a NULL has nothing
-- to erase.
BEGIN;
DELETE FROM q60_customer WHERE id <= 3;
SELECT count(*) FROM ccpurge.queue WHERE 'q60-row-1' = ANY (items);
COMMIT;
SELECT item FROM ccpurge_status WHERE item LIKE 'q60-row-%' ORDER BY item;

-- A rolled-back DELETE queues nothing...
BEGIN;
DELETE FROM q60_customer WHERE id = 4;
ROLLBACK;
-- ...nor does a rolled-back savepoint or a block that caught an error.
BEGIN;
DELETE FROM q60_customer WHERE id = 4;
SAVEPOINT a;
DELETE FROM q60_customer WHERE id = 5;
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
DELETE FROM q60_customer WHERE id = 6;
SAVEPOINT c;
DELETE FROM q60_customer WHERE id = 7;
RELEASE SAVEPOINT c;
RELEASE SAVEPOINT b;
DO $$
BEGIN
	DELETE FROM q60_customer WHERE id = 8;
	RAISE EXCEPTION 'changed my mind';
EXCEPTION WHEN raise_exception THEN
	NULL;
END
$$;
COMMIT;
SELECT item FROM ccpurge_status WHERE item LIKE 'q60-row-%' ORDER BY item;
SELECT id FROM q60_customer WHERE id <= 8 ORDER BY id;

-- One request per transaction and trigger, whatever the number of
-- statements.
SELECT count(DISTINCT request_id) FROM ccpurge_status
 WHERE item IN ('q60-row-4', 'q60-row-6', 'q60-row-7');

-- The column is matched exactly, as a quoted identifier.  The trigger's
-- arguments are checked when it is created (65_trigger_checks has the
-- rest).
DROP TRIGGER erase_at_vendor ON q60_customer;
CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'PHONE');

-- A value the vendor would refuse fails the DELETE.
CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_caller_numbers', 'phone',
														'{"vdn_id": 1, "campaign_id": 42}');
DELETE FROM q60_customer WHERE id = 9;
DROP TRIGGER erase_at_vendor ON q60_customer;

-- Only AFTER DELETE makes sense.
CREATE TRIGGER erase_at_vendor BEFORE DELETE ON q60_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
CREATE TRIGGER erase_at_vendor AFTER UPDATE ON q60_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
SELECT count(*) FROM q60_customer WHERE id = 9;

--
-- ccpurge_erase_on_delete: FOR EACH STATEMENT, for bulk deletes
--

-- A statement-level trigger reads the deleted rows from a transition
-- table; it cannot be made without one.
CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'Phone');

-- Several triggers of one key make one request; others make their own.
-- char(n) values lose their padding, as in a cast to text; other types
-- go through their output function.
CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'Phone');
CREATE TRIGGER erase_codes_at_vendor AFTER DELETE ON q60_customer
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'code',
															  '{}', 'cec');
CREATE TRIGGER erase_ids_at_vendor AFTER DELETE ON q60_customer
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_caller_numbers', 'id',
															  '{"vdn_id": 7, "campaign_id": 8}');
-- 31 rows: "Phone" holds 15 distinct values, one row has NULL
DELETE FROM q60_customer WHERE id >= 10;
SELECT operation, params, count(*) AS items, count(DISTINCT request_id) AS requests
  FROM ccpurge_status
 WHERE item LIKE 'q60-stmt-%' OR item LIKE 'q60-code-%'
	OR (operation = 'delete_caller_numbers' AND params @> '{"vdn_id": 7}')
 GROUP BY 1, 2 ORDER BY 1, 3;
SELECT length(item) FROM ccpurge_status WHERE item = 'q60-code-10';
SELECT item FROM ccpurge_status
 WHERE operation = 'delete_caller_numbers' AND params @> '{"vdn_id": 7}'
 ORDER BY item::int LIMIT 3;

-- Rolled back, a bulk DELETE queues nothing either.
INSERT INTO q60_customer VALUES (100, NULL, 'q60-bulk-1', NULL), (101, NULL, 'q60-bulk-2', NULL);
BEGIN;
DELETE FROM q60_customer WHERE id >= 100;
ROLLBACK;
SELECT count(*) FROM ccpurge_status WHERE item LIKE 'q60-bulk-%';

-- A bad value fails the whole statement.
DROP TRIGGER erase_codes_at_vendor ON q60_customer;
DROP TRIGGER erase_ids_at_vendor ON q60_customer;
DROP TRIGGER erase_at_vendor ON q60_customer;
CREATE TRIGGER erase_at_vendor AFTER DELETE ON q60_customer
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_caller_numbers', 'Phone',
															  '{"vdn_id": 7, "campaign_id": 8}');
DELETE FROM q60_customer WHERE id >= 100;
SELECT count(*) FROM q60_customer WHERE id >= 100;

-- ccpurge_erase_on_delete is a trigger function only.
SELECT ccpurge_erase_on_delete();

--
-- Roles: a request belongs to the role that queued it
--
CREATE ROLE regress_q60_alice;
CREATE ROLE regress_q60_bob;

-- Nobody may queue by default.
SET ROLE regress_q60_alice;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-alice']);
SELECT count(*) FROM ccpurge_status;
RESET ROLE;

GRANT USAGE ON FOREIGN SERVER cec TO regress_q60_alice, regress_q60_bob;
GRANT EXECUTE ON FUNCTION
	ccpurge_enqueue(text, text[], jsonb, text),
	ccpurge_wait(bigint, interval),
	ccpurge_retry(bigint),
	ccpurge_cancel(bigint)
TO regress_q60_alice, regress_q60_bob;
GRANT SELECT ON ccpurge_status TO regress_q60_alice, regress_q60_bob;

BEGIN;
SET LOCAL ROLE regress_q60_alice;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-alice']) AS req_alice \gset
RESET ROLE;
UPDATE ccpurge.queue SET next_attempt_at = now() + interval '1 day'
 WHERE request_id = :req_alice;
COMMIT;

-- Others see nothing of it and may not touch it...
SET ROLE regress_q60_bob;
SELECT count(*) FROM ccpurge_status;
SELECT ccpurge_cancel(:req_alice);
SELECT ccpurge_retry(:req_alice);
SELECT ccpurge_wait(:req_alice, '0');
-- and a request that does not exist looks exactly the same to bob
SELECT ccpurge_cancel(:req_alice + 1000000);
SELECT count(*) FROM ccpurge.queue;
RESET ROLE;

-- ...unless they are members of its role.
GRANT regress_q60_alice TO regress_q60_bob;
SET ROLE regress_q60_bob;
SELECT item, role FROM ccpurge_status;
SELECT ccpurge_cancel(:req_alice);
SELECT regexp_replace(item, '^hmac:[0-9]+:[0-9a-f]{64}$', 'hmac:(its digest)') AS item, state, message FROM ccpurge_status;
RESET ROLE;

-- A batch queued again after a transient failure keeps its key and size
-- (the worker's part is played by hand: k-1 and k-2 were one batch, k-3
-- another that failed).  A retry starts a new attempt generation: the
-- items lose their key.  A cancel leaves the rest of a batch as it is (the
-- worker sees it is no longer whole).
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-k-1']) AS req_k1 \gset
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-k-2']) AS req_k2 \gset
SELECT ccpurge_enqueue('delete_customers', ARRAY['q60-k-3']) AS req_k3 \gset
UPDATE ccpurge.queue
   SET batch_key = 'key-of-1-and-2', batch_nitems = 2, attempts = 1,
	   next_attempt_at = now() + interval '1 hour'
 WHERE request_id IN (:req_k1, :req_k2);
UPDATE ccpurge.queue
   SET batch_key = 'key-of-3', batch_nitems = 1, attempts = 1,
	   state = 'failed', finished_at = now()
 WHERE request_id = :req_k3;
SELECT ccpurge_cancel(:req_k1);
SELECT ccpurge_retry(:req_k3);
SELECT regexp_replace(items[1], '^hmac:[0-9]+:[0-9a-f]{64}$', 'hmac:(its digest)') AS item, state, attempts, batch_key, batch_nitems
  FROM ccpurge.queue
 WHERE request_id IN (:req_k1, :req_k2, :req_k3) ORDER BY request_id;
-- a canceled row is not queued again: its items are digests now
SELECT ccpurge_retry(:req_k1);
ROLLBACK;

-- Clean up.
DROP TABLE q60_customer;
REVOKE ALL ON ccpurge_status FROM regress_q60_alice, regress_q60_bob;
REVOKE ALL ON FUNCTION
	ccpurge_enqueue(text, text[], jsonb, text),
	ccpurge_wait(bigint, interval),
	ccpurge_retry(bigint),
	ccpurge_cancel(bigint)
FROM regress_q60_alice, regress_q60_bob;
REVOKE USAGE ON FOREIGN SERVER cec FROM regress_q60_alice, regress_q60_bob;
DELETE FROM ccpurge.queue WHERE request_id = :req_alice;
DROP ROLE regress_q60_bob;
DROP ROLE regress_q60_alice;

--
-- ccpurge_requests: one row per request, the items by state
--
SELECT ccpurge_enqueue('delete_customers', ARRAY['rq-1', 'rq-2', 'rq-3']) AS req_r \gset
SELECT ccpurge_wait(:req_r, '30 seconds');
SELECT operation, server, role = current_user::regrole AS my_role,
	   queued, sending, done, failed, canceled, last_code, last_message,
	   finished_at >= enqueued_at AS finished
  FROM ccpurge_requests WHERE request_id = :req_r;
-- a request whose items failed, the worker's part played by hand, next to one still queued
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['rq-4', 'rq-5']) AS req_f \gset
UPDATE ccpurge.queue SET state = 'failed', code = '1', message = 'refused',
	   finished_at = now() WHERE request_id = :req_f;
SELECT ccpurge_enqueue('delete_customers', ARRAY['rq-6']) AS req_q \gset
SELECT request_id = :req_f AS failed_one, queued, done, failed, last_code, last_message,
	   finished_at IS NOT NULL AS finished
  FROM ccpurge_requests WHERE request_id IN (:req_f, :req_q) ORDER BY request_id;
ROLLBACK;
