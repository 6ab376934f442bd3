--
-- 40_called_routes: dropping called-route bindings at Huawei CEC
--
-- ccpurge_delete_called_routes sends dnids as one comma-separated string,
-- at most 1000 per request.  The vendor answers per request, not per id, so
-- every row carries its request's outcome; a partial success shows the
-- vendor's "Success:...,Failed:..." content in the message.
--
\! test/bin/simctl reset

SELECT * FROM ccpurge_delete_called_routes(ARRAY['1', '2', '2']);
\! test/bin/simctl deleted cec_routes

-- route 3 exists, 1 was deleted above, 404 is unknown to the vendor
\! test/bin/simctl config '{"cec_missing_routes":["404"]}'
SELECT * FROM ccpurge_delete_called_routes(ARRAY['3', '1', '404']);

-- nothing exists any more: the vendor reports a failure
SELECT item, ok, code, message FROM ccpurge_delete_called_routes(ARRAY['1', '404']);

-- 1500 ids: two requests
SELECT request_no, count(*), bool_and(ok)
  FROM ccpurge_delete_called_routes(ARRAY(SELECT (1000 + g)::text FROM generate_series(1, 1500) g))
 GROUP BY 1 ORDER BY 1;
\! test/bin/simctl get items_per_request.cec_routes

-- ids are digits; anything else is refused before a request is sent
SELECT * FROM ccpurge_delete_called_routes(ARRAY['1,2']);
SELECT * FROM ccpurge_delete_called_routes(ARRAY['12a']);
SELECT * FROM ccpurge_delete_called_routes(ARRAY['']);
SELECT * FROM ccpurge_delete_called_routes(ARRAY[NULL::text]);
SELECT * FROM ccpurge_delete_called_routes(ARRAY[repeat('1', 33)]);
SELECT * FROM ccpurge_delete_called_routes(NULL);
