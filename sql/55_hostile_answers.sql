--
-- 55_hostile_answers: what a vendor sends back is cleaned before anyone
-- sees it.  Credentials and tokens it echoes are redacted, in any case and
-- percent-encoded; an answer with junk after its JSON is not an answer;
-- long or multibyte text is cut at a character boundary.
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

DROP SERVER cec_echo CASCADE;
\! test/bin/simctl reset
