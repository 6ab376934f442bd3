--
-- 50_ozonetel: Ozonetel DeleteBulkData
--
-- Phone numbers go out as JSON numbers, 100 numbers by 100 campaigns per
-- request; a long campaign list multiplies the requests (one row per phone
-- number per request).  The 00_setup server allows 100 requests a second
-- so that this test runs quickly; the vendor default is 2 a minute.
--
\! test/bin/simctl reset
\! test/bin/simctl config '{"oz_rate_limit":1000,"oz_window_ms":1000}'

SELECT * FROM ccpurge_delete_bulk_data(ARRAY['8187867008', '8187867001', '8187867008'],
                                       ARRAY['QA_Outbound_Progressive', 'QA_Outbound_Predictive']);
\! test/bin/simctl deleted ozonetel
\! test/bin/simctl get tokens_issued.ozonetel requests.oz_delete

-- 150 numbers by 150 campaigns: 2 x 2 requests
SELECT request_no, count(*), bool_and(ok)
  FROM ccpurge_delete_bulk_data(ARRAY(SELECT (9000000000 + g)::text FROM generate_series(1, 150) g),
                                ARRAY(SELECT 'camp' || g FROM generate_series(1, 150) g))
 GROUP BY 1 ORDER BY 1;
\! test/bin/simctl get deleted.ozonetel

-- the vendor's "Max limit exceeded" is waited out and retried once
\! test/bin/simctl reset
\! test/bin/simctl config '{"oz_rate_limit":1,"oz_window_ms":1000}'
SELECT item, request_no, ok, message FROM ccpurge_delete_bulk_data(ARRAY['8000000001'], ARRAY['c1'])
UNION ALL
SELECT item, request_no, ok, message FROM ccpurge_delete_bulk_data(ARRAY['8000000002'], ARRAY['c1']);
\! test/bin/simctl get rejections.rate deleted.ozonetel

-- an expired token is replaced once, and only once
\! test/bin/simctl fault '{"kind":"expire_tokens"}'
SELECT item, ok FROM ccpurge_delete_bulk_data(ARRAY['8000000003'], ARRAY['c1']);
\! test/bin/simctl get tokens_issued.ozonetel

-- validation before anything is sent
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['081234'], ARRAY['c']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['+918187867008'], ARRAY['c']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1234567890123456'], ARRAY['c']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY[''], ARRAY['c']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], ARRAY['   ']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], ARRAY[U&'\3000\200B']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], ARRAY[U&'QA\0085']);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], ARRAY[NULL::text]);
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], '{}');
SELECT * FROM ccpurge_delete_bulk_data('{}', ARRAY['c']);
