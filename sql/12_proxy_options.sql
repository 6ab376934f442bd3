--
-- 12_proxy_options: reaching a vendor through a proxy
--
-- A server may name a proxy, and hosts to reach without it; a user mapping
-- may hold the proxy's credentials.  The proxy settings of the server's
-- environment (http_proxy, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are never
-- used.  The servers made here are named prx_* and nothing is ever sent
-- through them.
--

--
-- proxy: an http, https or socks5h URL of a scheme, a host and a port
--
CREATE SERVER prx_http FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:1', proxy 'http://127.0.0.1:3128');
CREATE SERVER prx_https FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com',
           proxy 'https://proxy.example.com:8443');
CREATE SERVER prx_socks FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url 'https://api.example.com',
           proxy 'socks5h://[::1]:1080');

-- Without a port libcurl uses 1080 for http and socks5h, 443 for https.
-- A trailing slash is fine.
ALTER SERVER prx_https OPTIONS (SET proxy 'https://proxy.example.com/');

-- Other schemes are refused; socks5 would resolve names locally.
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'ftp://proxy.example.com:21');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'socks5://127.0.0.1:1080');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'proxy.example.com:3128');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy '');

-- A proxy URL has nothing after the port.
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'http://proxy.example.com:3128/cgi');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'http://proxy.example.com:3128/?a=1');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'http://proxy.example.com:3128#x');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', proxy 'http://prøxy.example.com:3128');

-- Credentials never go in the URL, where everyone can read them: they
-- belong in the user mapping.  The error does not repeat the password,
-- nor does the server log the statement.  User info is refused before
-- anything else about the proxy URL.
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com',
           proxy 'http://alice:hunter2@proxy.example.com:3128');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com',
           proxy 'socks5://svc:hunter2@proxy.example.com:1080');
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com',
           proxy 'http://alice@proxy.example.com:3128');
DO $$
DECLARE
	msg text;
	det text;
	hnt text;
BEGIN
	ALTER SERVER prx_https OPTIONS (SET proxy 'https://alice:hunter2@proxy.example.com');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
							hnt = PG_EXCEPTION_HINT;
	RAISE NOTICE 'password in the error: %',
		concat_ws(' ', msg, det, hnt) LIKE '%hunter2%';
END
$$;

--
-- Plain http stays on this machine.  Through a proxy a request first goes
-- to the proxy, and 127.0.0.1 in the URL then means the proxy's machine, so
-- a plain http url needs a proxy on a loopback address too, unless
-- ccpurge.allow_insecure_http is on.  https may go through any proxy.
--
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:1', proxy 'http://proxy.example.com:3128');
ALTER SERVER prx_http OPTIONS (SET proxy 'socks5h://proxy.example.com');
SET ccpurge.allow_insecure_http = on;
CREATE SERVER prx_insecure FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:1', proxy 'http://proxy.example.com:3128');
RESET ccpurge.allow_insecure_http;
-- The rule holds when the server is used, too: without the setting a call
-- fails before anything is sent.
CREATE USER MAPPING FOR PUBLIC SERVER prx_insecure
  OPTIONS (app_key 'k', app_secret 's');
SELECT * FROM ccpurge_delete_customers(ARRAY['13500001111'], 'prx_insecure');
DROP SERVER prx_insecure CASCADE;

--
-- no_proxy: hosts reached directly, as libcurl's no-proxy list takes them:
-- names, domains (".example.com" also covers its subdomains), IP addresses
-- and CIDR blocks, separated by commas; or "*" for every host.
--
ALTER SERVER prx_https
  OPTIONS (ADD no_proxy 'localhost, 127.0.0.1,.internal.example.com,10.0.0.0/8,::1');
ALTER SERVER prx_socks OPTIONS (ADD no_proxy '*');
ALTER SERVER prx_https OPTIONS (SET no_proxy '*.example.com');
ALTER SERVER prx_https OPTIONS (SET no_proxy 'api.example.com;evil');
ALTER SERVER prx_https OPTIONS (SET no_proxy '[::1]');
ALTER SERVER prx_https OPTIONS (SET no_proxy 'a.example.com b.example.com');
ALTER SERVER prx_https OPTIONS (SET no_proxy '10.0.0.0/');
ALTER SERVER prx_https OPTIONS (SET no_proxy '10.0.0.0/abc');
ALTER SERVER prx_https OPTIONS (SET no_proxy ' , ');
-- It only means something with a proxy.
CREATE SERVER prx_bad FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'https://api.example.com', no_proxy 'localhost');
ALTER SERVER prx_https OPTIONS (DROP proxy);

-- What is stored: the server's settings, readable by everyone.
SELECT srvname, option_name, option_value
  FROM pg_foreign_server, pg_options_to_table(srvoptions)
 WHERE srvname LIKE 'prx\_%' AND option_name LIKE '%proxy'
 ORDER BY 1, 2;

--
-- proxy_user and proxy_password: the proxy's credentials, in the user
-- mapping of any vendor, always together.  Values are never shown.
--
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_password 'hunter2');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice:x', proxy_password 'hunter2');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice', proxy_password '');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice', proxy_password E'hunter2\r\n');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice', proxy_pass 'hunter2');
CREATE USER MAPPING FOR PUBLIC SERVER prx_http
  OPTIONS (app_key 'k', app_secret 's', proxy_user 'alice', proxy_password 'hunter2');
ALTER USER MAPPING FOR PUBLIC SERVER prx_http OPTIONS (DROP proxy_password);
DO $$
DECLARE
	msg text;
	det text;
	hnt text;
BEGIN
	ALTER USER MAPPING FOR PUBLIC SERVER prx_http
	  OPTIONS (DROP proxy_user, SET proxy_password 'hunter3');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
							hnt = PG_EXCEPTION_HINT;
	RAISE NOTICE 'error: %', msg;
	RAISE NOTICE 'password in the error: %',
		concat_ws(' ', msg, det, hnt) LIKE '%hunter%';
END
$$;

-- Every vendor takes them.  On a server without a proxy they are accepted
-- and not used, so a mapping can be made before the proxy is configured.
CREATE USER MAPPING FOR PUBLIC SERVER prx_socks
  OPTIONS (ak 'ak-1', sk 'sk-1', proxy_user 'bob', proxy_password 'pw-1');
CREATE SERVER prx_direct FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'ozonetel', url 'https://api.example.com');
CREATE USER MAPPING FOR PUBLIC SERVER prx_direct
  OPTIONS (username 'acme', api_key 'key-1', proxy_user 'carol', proxy_password 'pw-2');

-- Only the owner of a mapping and superusers see its options.
CREATE ROLE regress_prx_user;
GRANT USAGE ON FOREIGN SERVER prx_http, prx_socks, prx_direct TO regress_prx_user;
SET ROLE regress_prx_user;
SELECT srvname, usename, umoptions
  FROM pg_user_mappings
 WHERE srvname LIKE 'prx\_%'
 ORDER BY 1;
RESET ROLE;

-- Clean up.
DROP SERVER prx_http, prx_https, prx_socks, prx_direct CASCADE;
DROP OWNED BY regress_prx_user;
DROP ROLE regress_prx_user;
