/*
 * src/sql/20_sync.sql: synchronous erasure functions (design section 3)
 *
 * ccpurge_call takes any operation by name.  Each operation's own function
 * is bound to the same generic C entry point, ccpurge_call_named: the
 * operation is the function's name without "ccpurge_", the argument named
 * like the operation's items (in its vendor's table entry) holds the
 * items, "server" the server, and every other argument is a param of the
 * same name; the result columns are chosen by name.  Each is a C function
 * rather than a SQL one so that EXECUTE on it is all a role needs.
 */

CREATE FUNCTION ccpurge_delete_customers(
	customer_numbers text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_called_routes(
	dnids text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_caller_numbers(
	vdn_id int, campaign_id int, access_codes text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_calldata(
	vdn_id int, campaign_id int, filter jsonb, server text DEFAULT NULL,
	OUT request_no int, OUT ok boolean, OUT http_status int,
	OUT code text, OUT message text, OUT success_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_delete_bulk_data(
	phone_numbers text[], campaign_names text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_erase(
	items text[], server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call_named'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION ccpurge_call(
	operation text, items text[], params jsonb DEFAULT '{}',
	server text DEFAULT NULL,
	OUT item text, OUT request_no int, OUT ok boolean,
	OUT http_status int, OUT code text, OUT message text,
	OUT success_count int)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ccpurge_call'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

/*
 * ccpurge_c2_sign exposes the iSales C2 signer for known-answer tests and
 * for debugging a vendor's 401; it never reads stored secrets.
 */
CREATE FUNCTION ccpurge_c2_sign(
	ak text, sk text, ts text, method text, path text, query text,
	headers text[], body text)
RETURNS text
AS 'MODULE_PATHNAME'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

REVOKE EXECUTE ON FUNCTION
	ccpurge_delete_customers(text[], text),
	ccpurge_delete_called_routes(text[], text),
	ccpurge_delete_caller_numbers(int, int, text[], text),
	ccpurge_delete_calldata(int, int, jsonb, text),
	ccpurge_delete_bulk_data(text[], text[], text),
	ccpurge_erase(text[], text),
	ccpurge_call(text, text[], jsonb, text),
	ccpurge_c2_sign(text, text, text, text, text, text, text[], text)
FROM PUBLIC;
