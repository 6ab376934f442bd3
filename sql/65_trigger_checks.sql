--
-- 65_trigger_checks: CREATE TRIGGER checks a ccpurge_erase_on_delete
-- trigger at once, binds it to its server, and "on_invalid": "skip"
--
-- A mistake in a trigger's definition fails the CREATE TRIGGER, never the
-- first DELETE of the table.
--
CREATE TABLE t65_contact (id int PRIMARY KEY, phone text, "Phone" text);

-- The operation must be one ccpurge knows.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_everything', 'phone');

-- The column must exist; its name is matched exactly.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'PHONE');

-- Two to four arguments.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers');
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone', '{}', 'cec', 'more');

-- The params must be valid for the operation.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_caller_numbers', 'phone',
														'{"vdn_id": 1}');
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone', 'not json');
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone',
														'{"on_invalid": "ignore"}');

-- The server must exist and be of the operation's vendor.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone', '{}',
														'no_such_server');
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone', '{}',
														'ozonetel');

-- Only AFTER DELETE, and FOR EACH STATEMENT needs the old rows.
CREATE TRIGGER erase_contact BEFORE DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
CREATE TRIGGER erase_contact AFTER DELETE OR UPDATE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');

-- None of them was made.
SELECT count(*) FROM pg_trigger WHERE tgrelid = 't65_contact'::regclass;

-- Other triggers, and other DDL, are not looked at.
CREATE FUNCTION t65_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER noop BEFORE UPDATE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION t65_noop();
DROP TRIGGER noop ON t65_contact;

--
-- The server a trigger uses
--

-- A trigger that names its server is made as it is written.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone', '{}', 'cec');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'erase_contact';
DROP TRIGGER erase_contact ON t65_contact;

-- One that names none is bound to the one server of its vendor...
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'erase_contact';

-- ...so that a second server of that vendor changes nothing for it.
CREATE SERVER t65_cec_second FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:9');
CREATE USER MAPPING FOR PUBLIC SERVER t65_cec_second
  OPTIONS (app_key 'k', app_secret 's');
INSERT INTO t65_contact VALUES (1, 't65-row-1');
DELETE FROM t65_contact WHERE id = 1;
SELECT server, queued + sending + done + failed + canceled AS items
  FROM ccpurge_requests ORDER BY request_id DESC LIMIT 1;

-- A new trigger without a server must now name one.
CREATE TRIGGER erase_contact_too AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
DROP SERVER t65_cec_second CASCADE;
DROP TRIGGER erase_contact ON t65_contact;

-- The triggers a partitioned table's trigger makes on its partitions are
-- bound too.
CREATE TABLE t65_part (id int, phone text) PARTITION BY RANGE (id);
CREATE TABLE t65_part_1 PARTITION OF t65_part FOR VALUES FROM (0) TO (100);
CREATE TRIGGER erase_part AFTER DELETE ON t65_part
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
SELECT tgrelid::regclass, tgnargs FROM pg_trigger WHERE tgname = 'erase_part' ORDER BY 1;
DROP TABLE t65_part;

--
-- "on_invalid": "skip"
--

-- By default a value the vendor would refuse fails the DELETE.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION ccpurge_erase_on_delete('delete_bulk_data', 'phone',
										   '{"campaign_names": ["c65"]}');
INSERT INTO t65_contact VALUES (1, '919800000001'), (2, '+919800000002'),
  (3, '919800000003'), (4, '0919800000004'), (5, NULL);
DELETE FROM t65_contact;
DROP TRIGGER erase_contact ON t65_contact;

-- With "skip", such values are left out, and one warning per statement
-- gives their count, never the values.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION ccpurge_erase_on_delete('delete_bulk_data', 'phone',
										   '{"campaign_names": ["c65"], "on_invalid": "skip"}');
DELETE FROM t65_contact WHERE id <= 3;
SELECT operation, queued + sending + done + failed + canceled AS items
  FROM ccpurge_requests ORDER BY request_id DESC LIMIT 1;
DROP TRIGGER erase_contact ON t65_contact;

-- FOR EACH ROW too: one warning for the statement, not one per row.
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_bulk_data', 'phone',
														'{"campaign_names": ["c65"], "on_invalid": "skip"}');
INSERT INTO t65_contact VALUES (1, '919800000011'), (2, '+919800000012'),
  (3, '919800000013'), (6, 'x919800000016');
DELETE FROM t65_contact;
SELECT operation, queued + sending + done + failed + canceled AS items
  FROM ccpurge_requests ORDER BY request_id DESC LIMIT 1;

-- "error" is the default, said out loud.
DROP TRIGGER erase_contact ON t65_contact;
CREATE TRIGGER erase_contact AFTER DELETE ON t65_contact
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_bulk_data', 'phone',
														'{"campaign_names": ["c65"], "on_invalid": "error"}');
INSERT INTO t65_contact VALUES (2, '+919800000022');
DELETE FROM t65_contact;

DROP TABLE t65_contact;
DROP FUNCTION t65_noop();
