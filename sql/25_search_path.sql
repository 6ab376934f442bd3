--
-- 25_search_path: SQL that ccpurge runs with the rights of its tables'
-- owner resolves names in pg_catalog only, so that functions or operators
-- a caller put in front of pg_catalog never run with the owner's rights.
-- Each trap below raises an error if it is ever called.
--
CREATE SCHEMA trap;
CREATE FUNCTION trap.unnest(timestamptz[]) RETURNS SETOF timestamptz
  LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap.unnest ran'; END $$;
CREATE FUNCTION trap.int8eq(bigint, bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap.= ran'; END $$;
CREATE OPERATOR trap.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = trap.int8eq);
CREATE FUNCTION trap.now() RETURNS timestamptz
  LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trap.now ran'; END $$;

SET search_path = trap, public, pg_catalog;
-- the request log insert
SELECT item, ok FROM ccpurge_delete_customers(ARRAY['sp-1']);
-- the queue: enqueue, cancel, retry, wait
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['sp-2']) AS rid \gset
SELECT ccpurge_cancel(:rid);
-- canceled: its item is a digest now, which retry leaves alone
SELECT ccpurge_retry(:rid);
SELECT ccpurge_cancel(:rid);
COMMIT;
SELECT ccpurge_wait(:rid, '1 second');
-- the trigger's write at commit
CREATE TABLE public.sp_customer (id int, phone text);
INSERT INTO sp_customer VALUES (1, 'sp-3');
CREATE TRIGGER sp_erase AFTER DELETE ON sp_customer
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
DELETE FROM sp_customer;
RESET search_path;

SELECT count(*) FROM ccpurge_status
 WHERE item IN ('sp-2', 'sp-3') OR (request_id = :rid AND item LIKE 'hmac:%');
DROP TABLE public.sp_customer;
DROP SCHEMA trap CASCADE;
