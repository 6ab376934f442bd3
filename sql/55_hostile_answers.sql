--
-- 55_hostile_answers: what a vendor sends back is cleaned before anyone
-- sees it.  Credentials and tokens it echoes are redacted, in any case,
-- percent-encoded, JSON-escaped, and the proxy credentials also as Basic
-- authentication sends them; an answer with junk after its JSON is not an
-- answer; long or multibyte text is cut at a character boundary.
--
\getenv sim_port CCPURGE_SIM_PORT
\set sim_url 'http://127.0.0.1:' :sim_port
\! test/bin/simctl reset

-- a CEC server whose secret has characters that percent-encoding changes
CREATE SERVER cec_echo FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER cec_echo
  OPTIONS (app_key 'Echo-App-Key', app_secret 'S3cr+t/Echo=Key');

-- the token endpoint echoes the secret as sent, upper-cased, lower-cased
-- and percent-encoded, and the app key too
\! test/bin/simctl fault '{"kind":"body","status":401,"path":"tokenByAkSk","body":"{\"error_msg\":\"app_secret S3cr+t/Echo=Key is not valid (S3CR+T/ECHO=KEY, s3cr+t/echo=key, S3cr%2Bt%2FEcho%3DKey, s3cr%2bt%2fecho%3dkey) for Echo-App-Key\"}"}'
SELECT item, ok, http_status, message
  FROM ccpurge_delete_customers(ARRAY['echo-1'], 'cec_echo');
-- the request log keeps the redacted text only
SELECT operation, ok, http_status, message
  FROM ccpurge.request_log WHERE server = 'cec_echo' ORDER BY log_id;
SELECT count(*) AS leaks FROM ccpurge.request_log
 WHERE message ILIKE '%s3cr+t%' OR message ILIKE '%s3cr%2bt%' OR message ILIKE '%echo-app-key%';

-- a business answer echoing the secret of the mapping
ALTER USER MAPPING FOR PUBLIC SERVER cec_echo
  OPTIONS (SET app_key 'cec-app-key', SET app_secret 'cec-app-secret');
\! test/bin/simctl fault '{"kind":"body","status":500,"path":"cleancustpersonaldata","body":"{\"retCode\":\"1\",\"retMsg\":\"bad credentials: CEC-APP-SECRET\"}"}'
SELECT item, ok, http_status, code, message
  FROM ccpurge_delete_customers(ARRAY['echo-2'], 'cec_echo');

-- success followed by junk is not the vendor's answer
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"cleancustpersonaldata","body":"{\"retCode\":\"0\",\"retMsg\":\"fine\"} <html>502 Bad Gateway</html>"}'
SELECT item, ok, http_status, code, message
  FROM ccpurge_delete_customers(ARRAY['junk-1'], 'cec_echo');
-- white space after the JSON is fine
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"cleancustpersonaldata","body":"{\"retCode\":\"0\",\"retMsg\":\"fine\"}  \n"}'
SELECT item, ok, http_status, code, message
  FROM ccpurge_delete_customers(ARRAY['junk-2'], 'cec_echo');

-- a long multibyte code and message are cut at character boundaries
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"cleancustpersonaldata","body":"{\"retCode\":\"ééééééééééééééééééééééééééééééééééééééé\",\"retMsg\":\"ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé\"}"}'
SELECT ok, octet_length(code) AS code_bytes, length(code) AS code_chars,
	   octet_length(message) AS message_bytes, right(message, 4) AS message_end
  FROM ccpurge_delete_customers(ARRAY['long-1'], 'cec_echo');

--
-- Every secret is found in the text as the vendor sent it, and each stretch
-- of text that is part of some secret is masked once, whatever the order
-- of the secrets: a secret that contains another is never half shown.
--
CREATE SERVER isales_echo FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER isales_echo
  OPTIONS (ak 'acme', sk 'acme-sk-0123456789');
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"callerNo","body":"{\"resultCode\":\"0200001\",\"resultDesc\":\"sk acme-sk-0123456789 does not sign for ak acme (ACME-SK-0123456789acme-sk-0123456789)\"}"}'
SELECT item, ok, code, message
  FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['1001'], 'isales_echo');
-- the other way round: the ak contains the sk
ALTER USER MAPPING FOR PUBLIC SERVER isales_echo
  OPTIONS (SET ak 'acme-ak-0123456789', SET sk 'acme');
\! test/bin/simctl fault '{"kind":"body","status":200,"path":"callerNo","body":"{\"resultCode\":\"0200001\",\"resultDesc\":\"ak acme-ak-0123456789 is unknown (sk acme)\"}"}'
SELECT item, ok, code, message
  FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['1002'], 'isales_echo');
DROP SERVER isales_echo CASCADE;

-- Proxy credentials are secrets too, and a proxy (or a vendor behind it)
-- may echo the Proxy-Authorization header: base64 of user:password.  The
-- server names a proxy on this machine but reaches the simulator directly.
CREATE SERVER cec_proxied FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url', proxy 'http://127.0.0.1:1',
           no_proxy '127.0.0.1');
CREATE USER MAPPING FOR PUBLIC SERVER cec_proxied
  OPTIONS (app_key 'cec-app-key', app_secret 'cec-app-secret',
           proxy_user 'alice1', proxy_password 'alice1-proxy-pw-12');
\! test/bin/simctl fault '{"kind":"body","status":500,"path":"cleancustpersonaldata","body":"{\"retCode\":\"1\",\"retMsg\":\"proxy user alice1 sent alice1-proxy-pw-12 as Basic YWxpY2UxOmFsaWNlMS1wcm94eS1wdy0xMg== (Proxy-Authorization%3A%20Basic%20YWxpY2UxOmFsaWNlMS1wcm94eS1wdy0xMg%3D%3D)\"}"}'
SELECT item, ok, code, message
  FROM ccpurge_delete_customers(ARRAY['proxied-1'], 'cec_proxied');
DROP SERVER cec_proxied CASCADE;

-- A vendor quoting the request's JSON shows a secret JSON-escaped: with
-- \" and \\, and with \/ for "/" as some encoders write it.
CREATE SERVER cec_json FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER cec_json
  OPTIONS (app_key 'json-app-key', app_secret 'Quo"te\Back/slash-1');
SELECT json_build_object('kind', 'body', 'status', 401, 'path', 'tokenByAkSk',
         'body', json_build_object('error_msg',
           'cannot read {"app_secret":' || to_json(s) || '} nor {"app_secret":'
           || replace(to_json(s)::text, '/', '\/') || '}')::text)
  FROM (VALUES ('Quo"te\Back/slash-1')) AS v(s)
\g (format=unaligned tuples_only) |test/bin/simctl fault -
SELECT item, ok, http_status, message
  FROM ccpurge_delete_customers(ARRAY['json-1'], 'cec_json');
-- nothing of these secrets is left in the request log
SELECT count(*) AS leaks FROM ccpurge.request_log
 WHERE message ~ '(slash-1|0123456789|pw-12|YWxpY2Ux)';
DROP SERVER cec_json CASCADE;

DROP SERVER cec_echo CASCADE;
\! test/bin/simctl reset
