--
-- 10_options: configuring ccpurge with servers and user mappings
--
-- One server per vendor account holds the non-secret settings; a user
-- mapping holds the account's credentials.  The validator checks both when
-- they are created or altered.  The servers made here are named opt_* and
-- point at http://127.0.0.1:1, which is never contacted.
--

-- The wrapper itself takes no options.
ALTER FOREIGN DATA WRAPPER ccpurge OPTIONS (ADD debug 'on');

-- A server needs a vendor and the base URL of the vendor's API.
CREATE SERVER opt_cec FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:1');

--
-- Option names
--

-- Unknown names are refused; the hint lists the valid ones.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:1', host 'api.example.com');
ALTER SERVER opt_cec OPTIONS (ADD bogus 'x');

-- vendor and url are required, at CREATE and after ALTER.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge;
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (url 'http://127.0.0.1:1');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec');
ALTER SERVER opt_cec OPTIONS (DROP url);

--
-- vendor
--

-- Vendor names are lower case: cec, isales, ozonetel.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'genesys', url 'http://127.0.0.1:1');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'CEC', url 'http://127.0.0.1:1');

--
-- url
--

-- Only http and https.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'ftp://127.0.0.1/');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url '');

-- Credentials belong in the user mapping, never in the URL.  The error
-- does not repeat the password, and the server log leaves out the
-- statement, which holds it (as for any error about an option).  User
-- info is refused before anything else about the URL.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://u:hunter2@api.example.com');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'ftp://u:hunter2@api.example.com/?tenant=1');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://u:hunter2@api example.com');
DO $$
DECLARE
	msg text;
	det text;
	hnt text;
BEGIN
	CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
	  OPTIONS (vendor 'cec', url 'https://u:hunter2@api.example.com');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
							hnt = PG_EXCEPTION_HINT;
	RAISE NOTICE 'password in the error: %',
		concat_ws(' ', msg, det, hnt) LIKE '%hunter2%';
END
$$;

-- Plain http only to loopback addresses, unless the superuser setting
-- ccpurge.allow_insecure_http is on.
CREATE SERVER opt_insecure FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://api.example.com');
SET ccpurge.allow_insecure_http = on;
CREATE SERVER opt_insecure FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://api.example.com');
RESET ccpurge.allow_insecure_http;
DROP SERVER opt_insecure;
CREATE SERVER opt_secure FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com/');
DROP SERVER opt_secure;

-- The URL is a base to which ccpurge appends the API paths: no query
-- string, no fragment.
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com/?tenant=1');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com/#top');

--
-- timeout_ms (1..3600000) and connect_timeout_ms (1..600000)
--
ALTER SERVER opt_cec OPTIONS (ADD timeout_ms 'abc');
ALTER SERVER opt_cec OPTIONS (ADD timeout_ms '0');
ALTER SERVER opt_cec OPTIONS (ADD timeout_ms '3600001');
ALTER SERVER opt_cec OPTIONS (ADD timeout_ms '2.5');
ALTER SERVER opt_cec OPTIONS (ADD connect_timeout_ms 'soon');
ALTER SERVER opt_cec OPTIONS (ADD connect_timeout_ms '0');
ALTER SERVER opt_cec OPTIONS (ADD connect_timeout_ms '600001');
ALTER SERVER opt_cec OPTIONS (ADD timeout_ms '15000', ADD connect_timeout_ms '2000');

--
-- batch_size: at most what the vendor accepts per request
--
ALTER SERVER opt_cec OPTIONS (ADD batch_size '1001');
ALTER SERVER opt_cec OPTIONS (ADD batch_size '0');
ALTER SERVER opt_cec OPTIONS (ADD batch_size '1000');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url 'http://127.0.0.1:1', batch_size '101');
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'ozonetel', url 'http://127.0.0.1:1', batch_size '101');
CREATE SERVER opt_isales FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url 'http://127.0.0.1:1', batch_size '100');

--
-- rate_limit: N/second, N/minute or N/hour, N from 1 to 1000000
--
ALTER SERVER opt_cec OPTIONS (ADD rate_limit '5');
ALTER SERVER opt_cec OPTIONS (ADD rate_limit '5/day');
ALTER SERVER opt_cec OPTIONS (ADD rate_limit 'x/second');
ALTER SERVER opt_cec OPTIONS (ADD rate_limit '0/second');
ALTER SERVER opt_cec OPTIONS (ADD rate_limit '1000001/hour');
-- Blanks around the parts and plural units are fine.
ALTER SERVER opt_cec OPTIONS (ADD rate_limit ' 20 / seconds ');
ALTER SERVER opt_cec OPTIONS (SET rate_limit '20/second');

--
-- max_inflight (1..1000)
--
ALTER SERVER opt_cec OPTIONS (ADD max_inflight '0');
ALTER SERVER opt_cec OPTIONS (ADD max_inflight '1001');
ALTER SERVER opt_cec OPTIONS (ADD max_inflight '4');

--
-- token_ttl: the lifetime CEC is asked to give its tokens (60..3600 s)
--
CREATE SERVER opt_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url 'http://127.0.0.1:1', token_ttl '600');
ALTER SERVER opt_cec OPTIONS (ADD token_ttl '59');
ALTER SERVER opt_cec OPTIONS (ADD token_ttl '3601');
ALTER SERVER opt_cec OPTIONS (ADD token_ttl '1800');

--
-- TLS: verify_tls and ca_file
--
ALTER SERVER opt_cec OPTIONS (ADD verify_tls 'maybe');
ALTER SERVER opt_cec OPTIONS (ADD ca_file 'certs/ca.pem');
ALTER SERVER opt_cec OPTIONS (ADD ca_file '');
ALTER SERVER opt_cec OPTIONS (ADD verify_tls 'on',
                              ADD ca_file '/etc/ssl/certs/ca-certificates.crt');

-- Changing the vendor checks the other options again: 1000 items per
-- request are too many for iSales.
ALTER SERVER opt_cec OPTIONS (SET vendor 'isales');

--
-- User mappings hold the credentials: cec app_key and app_secret, isales
-- ak and sk, ozonetel username and api_key.  Which of them a server needs
-- is checked when it is used.  Values are never shown in errors.
--
CREATE USER MAPPING FOR PUBLIC SERVER opt_cec
  OPTIONS (app_key 'key-1', password 'hunter2');
CREATE USER MAPPING FOR PUBLIC SERVER opt_cec
  OPTIONS (app_key 'key-1', app_secret '');
CREATE USER MAPPING FOR PUBLIC SERVER opt_cec
  OPTIONS (app_key 'key-1', app_secret E'hunter2\r\nX-Injected: 1');
CREATE USER MAPPING FOR PUBLIC SERVER opt_cec
  OPTIONS (app_key 'key-1', app_secret 'hunter2');
ALTER USER MAPPING FOR PUBLIC SERVER opt_cec OPTIONS (ADD bogus 'x');
ALTER USER MAPPING FOR PUBLIC SERVER opt_cec OPTIONS (SET app_key '');

-- What is stored: the server's settings, readable by everyone.
SELECT option_name, option_value
  FROM pg_foreign_server,
       pg_options_to_table(srvoptions)
 WHERE srvname = 'opt_cec';

--
-- Choosing a server.  Every function takes a trailing server argument;
-- NULL means the only server of the function's vendor.  None of these
-- calls gets as far as sending anything.
--

-- 00_setup made server "cec", so with opt_cec there are two CEC servers.
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111']);

-- Without any server of the vendor:
BEGIN;
SET LOCAL client_min_messages = warning;
DROP SERVER isales CASCADE;
DROP SERVER opt_isales CASCADE;
RESET client_min_messages;
SELECT * FROM ccpurge_delete_caller_numbers(1, 1, ARRAY['5245241']);
ROLLBACK;

-- A named server must exist, belong to ccpurge and be of the right vendor.
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111'], 'opt_nosuch');
CREATE FOREIGN DATA WRAPPER opt_other_fdw;
CREATE SERVER opt_other FOREIGN DATA WRAPPER opt_other_fdw;
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111'], 'opt_other');
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111'], 'opt_isales');

-- Besides EXECUTE on the function, the role needs USAGE on the server...
CREATE ROLE regress_opt_user;
GRANT EXECUTE ON FUNCTION
	ccpurge_delete_customers(text[], text),
	ccpurge_delete_caller_numbers(int, int, text[], text)
TO regress_opt_user;
SET ROLE regress_opt_user;
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111'], 'opt_cec');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER opt_cec, opt_isales TO regress_opt_user;

-- ...but does not see the credentials of the PUBLIC mapping: only the
-- server's owner and superusers do.
SET ROLE regress_opt_user;
SELECT srvname, usename, umoptions
  FROM pg_user_mappings
 WHERE srvname = 'opt_cec';

-- The role needs a user mapping, its own or PUBLIC's...
SELECT * FROM ccpurge_delete_caller_numbers(1, 1, ARRAY['5245241'], 'opt_isales');
RESET ROLE;

-- ...holding every credential of the vendor.
CREATE USER MAPPING FOR PUBLIC SERVER opt_isales OPTIONS (ak 'ak-1');
SET ROLE regress_opt_user;
SELECT * FROM ccpurge_delete_caller_numbers(1, 1, ARRAY['5245241'], 'opt_isales');
RESET ROLE;

-- Clean up.
DROP SERVER opt_other;
DROP FOREIGN DATA WRAPPER opt_other_fdw;
DROP SERVER opt_cec CASCADE;
DROP SERVER opt_isales CASCADE;
DROP OWNED BY regress_opt_user;
DROP ROLE regress_opt_user;
