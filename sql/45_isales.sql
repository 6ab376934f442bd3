--
-- 45_isales: Huawei CC-iSales, calling numbers and outbound call data
--
-- Every iSales request is signed with the C2 scheme (see 30_c2_sign); the
-- simulator checks the signature, the vendor's field rules and its result
-- codes.  ok means resultCode 0200000.
--
\! test/bin/simctl reset

-- calling numbers go out in chunks of at most 100
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['5245241', '5245242', '5245241']);
\! test/bin/simctl deleted isales_caller_numbers
SELECT request_no, count(*), bool_and(ok)
  FROM ccpurge_delete_caller_numbers(1, 43, ARRAY(SELECT (6000000 + g)::text FROM generate_series(1, 250) g))
 GROUP BY 1 ORDER BY 1;
\! test/bin/simctl get items_per_request.isales_caller_numbers

-- a campaign must keep at least one calling number
\! test/bin/simctl post /_sim/isales/callers '{"vdn":1,"campaign":44,"numbers":["100","200"]}'
SELECT item, ok, code, message FROM ccpurge_delete_caller_numbers(1, 44, ARRAY['100', '200']);
SELECT item, ok, code FROM ccpurge_delete_caller_numbers(1, 44, ARRAY['100']);

-- a campaign the vendor does not know
\! test/bin/simctl config '{"isales_missing_campaigns":[77]}'
SELECT item, ok, http_status, code, message FROM ccpurge_delete_caller_numbers(1, 77, ARRAY['1']);

-- validation before anything is sent
SELECT * FROM ccpurge_delete_caller_numbers(0, 42, ARRAY['1']);
SELECT * FROM ccpurge_delete_caller_numbers(10000, 42, ARRAY['1']);
SELECT * FROM ccpurge_delete_caller_numbers(NULL, 42, ARRAY['1']);
SELECT * FROM ccpurge_delete_caller_numbers(1, NULL, ARRAY['1']);
SELECT * FROM ccpurge_delete_caller_numbers(1, -1, ARRAY['1']);
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['12-34']);
-- access codes are digits only, at most 24 of them (the callerNo table)
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['5245*41']);
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['5245#41']);
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY[repeat('1', 25)]);
SELECT * FROM ccpurge_delete_caller_numbers(1, 42, '{}');

--
-- call data: one request per filter, the row carries successCount
--
\! test/bin/simctl post /_sim/isales/calldata '{"vdn":1,"campaign":42,"records":[{"sessionId":"s1","called":"88001","recycleTime":"2026-10-30 10:00:00"},{"sessionId":"s2","called":"88002","recycleTime":"2026-10-31 12:00:00"},{"sessionId":"s3","called":"88003","recycleTime":"2026-11-02 09:00:00"}]}'
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"called":"88001"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"recycleTime":"2026-10-31 23:59:59","recycleType":1,"archiveHistory":1}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"sessionId":"nobody"}');

-- a running campaign refuses deletion (0200028)
\! test/bin/simctl config '{"isales_running_campaigns":[50]}'
SELECT ok, code, message FROM ccpurge_delete_calldata(1, 50, '{"called":"1"}');

-- every documented limit is checked before anything is sent
\! test/bin/simctl get requests.isales_calldata
SELECT * FROM ccpurge_delete_calldata(1, 42, '{}');
SELECT * FROM ccpurge_delete_calldata(1, 42, NULL);
SELECT * FROM ccpurge_delete_calldata(1, 42, '[1]');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"archiveHistory":1}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"phone":"1"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, json_build_object('sessionId', repeat('s', 33))::jsonb);
SELECT * FROM ccpurge_delete_calldata(1, 42, json_build_object('called', repeat('1', 25))::jsonb);
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"called":"12a"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, json_build_object('customField', repeat('x', 201))::jsonb);
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"recycleTime":"2026-10-31"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"recycleTime":"2026-02-30 10:00:00"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"called":"1","recycleType":1}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"recycleTime":"2026-10-31 23:59:59","recycleType":4}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"called":"1","archiveHistory":2}');
SELECT * FROM ccpurge_delete_calldata(0, 42, '{"called":"1"}');
-- a blank selecting key could mean "everything" to the vendor
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"sessionId":" "}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"   "}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"\u0001\u001b[2J"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"sessionId":"s1\n"}');
-- blank is not only ASCII: white space and invisible format characters of
-- all of Unicode; and C1 control characters are refused anywhere
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"\u00a0"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"\u3000\u3000"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"sessionId":"\u200b"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"\u0085"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"\ufeff\u2060\u00ad \u2028\u1680"}');
SELECT * FROM ccpurge_delete_calldata(1, 42, '{"customField":"vip\u009b2J"}');
\! test/bin/simctl get requests.isales_calldata
-- such characters inside a value are fine
SELECT ok, code FROM ccpurge_delete_calldata(1, 42, '{"customField":"\u00a0VIP\u3000\u5ba2\u6237"}');
\! test/bin/simctl get requests.isales_calldata

-- a wrong SK: the vendor refuses the signature with 401, for this call only
ALTER USER MAPPING FOR PUBLIC SERVER isales OPTIONS (SET sk 'wrong');
SELECT item, ok, http_status FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['999']);
ALTER USER MAPPING FOR PUBLIC SERVER isales OPTIONS (SET sk 'isales-sk');
SELECT item, ok, http_status FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['999']);

-- ccpurge_call runs any operation by name: params as jsonb, every result
-- column; a calldata filter selects by itself and takes no items
SELECT * FROM ccpurge_call('delete_calldata', NULL,
	'{"vdn_id": 1, "campaign_id": 42, "filter": {"called": "88002"}}');
SELECT * FROM ccpurge_call('delete_calldata', ARRAY['88003'],
	'{"vdn_id": 1, "campaign_id": 42, "archiveHistory": 1}');
SELECT * FROM ccpurge_call('delete_calldata', ARRAY['88003'],
	'{"vdn_id": 1, "campaign_id": 42, "filter": {"called": "88002"}}');
SELECT * FROM ccpurge_call('delete_caller_numbers', ARRAY['5245241', '5245242'],
	'{"vdn_id": 1, "campaign_id": 42}', 'isales');
SELECT * FROM ccpurge_call('delete_caller_numbers', ARRAY['5245241'], '{"vdn_id": 1}');
SELECT * FROM ccpurge_call('no_such_operation', ARRAY['1']);

-- the request log keeps a calldata filter as its scope, the values that
-- select people (sessionId, called, customField) as keyed digests
SELECT count(*) FROM ccpurge_delete_calldata(1, 42, '{"called":"88009","recycleTime":"2026-10-31 23:59:59"}');
SELECT scope->'vdn_id' AS vdn_id, scope->'campaign_id' AS campaign_id,
	   scope->'filter'->>'recycleTime' AS recycle_time,
	   scope->'filter'->>'called' ~ '^hmac:[0-9]+:[0-9a-f]{64}$' AS called_digested,
	   strpos(scope::text, '88009') = 0 AS no_clear_text
  FROM ccpurge.request_log
 WHERE operation = 'delete_calldata' ORDER BY log_id DESC LIMIT 1;
