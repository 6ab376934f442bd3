/*
 * src/sql/90_comments.sql: a COMMENT ON for every object, in one place.
 *
 * It ends the install script and the 1.1--1.2 update alike, so both paths
 * give every object the same comment.  Each comment is quoted word for word
 * under the object's heading in doc/ccpurge.md; TAP test 090_reference
 * checks that every function, view and table has a comment and that the
 * reference quotes it.  An object added later gets its comment here.
 */

/* the extension itself: the control file's comment reaches fresh installs only */
COMMENT ON EXTENSION ccpurge IS
  'erase personal data from contact-center platforms (Huawei CEC, CC-iSales, Ozonetel, signed webhooks) from SQL';

/* the foreign-data wrapper (src/sql/00_fdw.sql) */
COMMENT ON FOREIGN DATA WRAPPER ccpurge IS
  'contact-center vendor accounts: one server per account, secrets in user mappings';
COMMENT ON FUNCTION ccpurge_fdw_validator(text[], oid) IS
  'checks the options of ccpurge servers and user mappings at CREATE and ALTER time';

/* the request log (src/sql/10_log.sql) */
COMMENT ON TABLE ccpurge.request_log IS
  'every HTTP request ccpurge made: a keyed digest of the items, never the items';
COMMENT ON FUNCTION ccpurge_items_digest(text[]) IS
  'keyed digest (HMAC-SHA256 under the current key) of a set of items, as the request log stores it';
COMMENT ON FUNCTION ccpurge_rotate_digest_key() IS
  'adds a new current digest key and keeps the old ones for look-ups; returns its key_id';
COMMENT ON FUNCTION ccpurge_verify_log() IS
  'recomputes the request log''s hash chain and says whether a row was changed, removed or added';
COMMENT ON FUNCTION ccpurge_prune_log(timestamptz) IS
  'removes the oldest chained request log rows logged before a time; the chain still verifies';
COMMENT ON TABLE ccpurge.log_chain IS
  'the head of the request log''s hash chain and where pruning left its start';
COMMENT ON TABLE ccpurge.digest_key IS
  'the secret keys of the digests ccpurge stores; the newest is current';

/* receipts (src/sql/50_receipts.sql) */
COMMENT ON TABLE ccpurge.erasure_packed IS
  'the receipts of each request: its items'' HMACs, packed, and their own outcomes';
COMMENT ON VIEW ccpurge.erasure IS
  'one receipt per item per HTTP request: the item''s HMAC, the request''s log id and the item''s outcome';
COMMENT ON FUNCTION ccpurge.receipt_keys(bytea) IS
  'the look-up key (first 8 bytes as a bigint) of each HMAC packed in a receipts row';
COMMENT ON FUNCTION ccpurge.forget_items(text[]) IS
  'items with each clear text replaced by its keyed digest, for done and canceled queue rows';
COMMENT ON FUNCTION ccpurge.receipt_items(bytea, integer, integer, integer) IS
  'the digests of a done queue row''s items, from the receipts it points at, for ccpurge_status';
COMMENT ON FUNCTION ccpurge_erasure_receipt(text) IS
  'every request that carried an item, under every digest key, oldest first';
COMMENT ON FUNCTION ccpurge_erasure_certificate(text) IS
  'a document an auditor can check without ccpurge: an item''s receipts, their row hashes and the chain head';

/* the synchronous functions (src/sql/20_sync.sql) */
COMMENT ON FUNCTION ccpurge_delete_customers(text[], text) IS
  'erases customers'' personal data at Huawei CEC; one row per item per request';
COMMENT ON FUNCTION ccpurge_delete_called_routes(text[], text) IS
  'deletes called-route bindings at Huawei CEC; one row per id per request';
COMMENT ON FUNCTION ccpurge_delete_caller_numbers(int, int, text[], text) IS
  'deletes calling numbers of a CC-iSales campaign; one row per access code per request';
COMMENT ON FUNCTION ccpurge_delete_calldata(int, int, jsonb, text) IS
  'deletes outbound call data of a CC-iSales campaign selected by a filter';
COMMENT ON FUNCTION ccpurge_delete_bulk_data(text[], text[], text) IS
  'erases phone numbers from Ozonetel campaigns; one row per number per request';
COMMENT ON FUNCTION ccpurge_erase(text[], text) IS
  'erases items at a webhook endpoint; one row per item per request';
COMMENT ON FUNCTION ccpurge_call(text, text[], jsonb, text) IS
  'runs any operation synchronously by name, as ccpurge_enqueue names it; one row per item per request';
COMMENT ON FUNCTION ccpurge_c2_sign(text, text, text, text, text, text, text[], text) IS
  'computes the Authorization value of a CC-iSales request under the C2 signing scheme';

/* the queue (src/sql/40_queue.sql) */
COMMENT ON TABLE ccpurge.queue IS
  'erasure requests waiting for, or done by, the ccpurge background worker';
COMMENT ON VIEW ccpurge_requests IS
  'one row per queue request: its items by state and the last vendor code and message, for the role that queued it';
COMMENT ON VIEW ccpurge_status IS
  'one row per queued item, visible to members of the role that queued it';
COMMENT ON FUNCTION ccpurge_enqueue(text, text[], jsonb, text) IS
  'queues items for erasure in the current transaction; returns the request id';
COMMENT ON FUNCTION ccpurge_erase_on_delete() IS
  'AFTER DELETE trigger queueing a column of the deleted rows for erasure';
COMMENT ON FUNCTION ccpurge_wait(bigint, interval) IS
  'waits until every item of a queued request is finished; returns false on timeout';
COMMENT ON FUNCTION ccpurge_retry(bigint) IS
  'queues the failed items of a request again; returns their number';
COMMENT ON FUNCTION ccpurge_cancel(bigint) IS
  'cancels the queued and failed items of a request; returns their number';

/* the DBA's console (src/sql/50_console.sql) */
COMMENT ON VIEW ccpurge_servers IS
  'one row per ccpurge server: its queue, requests in flight, rate window, token expiry, last success and error, and its last hour';
COMMENT ON VIEW ccpurge_progress IS
  'one row per synchronous call running in this database: its items and requests done and what it waits for';
COMMENT ON FUNCTION ccpurge_explain(text, text[], jsonb, text) IS
  'the requests a synchronous call would send, secrets, tokens and signatures redacted; sends and logs nothing';
COMMENT ON FUNCTION ccpurge.server_state(oid) IS
  'what the rate limiter and token cache know of a server now, for ccpurge_servers';
COMMENT ON FUNCTION ccpurge.progress() IS
  'the synchronous calls running in this database, for ccpurge_progress';
COMMENT ON FUNCTION ccpurge_retry_failed(text) IS
  'queues again every failed item the current user may act on, of one server or all; returns their number';
COMMENT ON FUNCTION ccpurge_check_trigger() IS
  'event trigger function checking CREATE TRIGGER of ccpurge_erase_on_delete and binding it to a server';
COMMENT ON EVENT TRIGGER ccpurge_check_trigger IS
  'checks a ccpurge_erase_on_delete trigger when it is created';
