--
-- ccpurge_c2_sign: known answers of the CC-iSales "C2" request signer
--
-- Every expected value below was computed without ccpurge, with the openssl
-- command line for HMAC-SHA256 and a perl one-liner for the percent-encoding
-- N() of the scheme, in bash with these definitions:
--
--   export LC_ALL=C.UTF-8
--   N() { perl -e 'local $/; my $s = <STDIN>; $s =~ s/([^A-Za-z0-9._~-])/sprintf("%%%02X", ord($1))/ge; print $s'; }
--   hmac() { openssl dgst -sha256 -hmac "$1" | awk '{print $NF}'; }
--   AK=AK7Q2XKDJ4MLN0ZP
--   SK=bx2sM9Q4rT7wLpZ3aN8cV1eK6yHf0JdU
--   TS=2024-09-24T08:30:00Z
--
-- Each vector then runs the commands in its comment; the last one prints
-- the expected Authorization value.  A test prints "matches openssl" when
-- the signer agrees, and the signer's own answer when it does not.
--
\set ak 'AK7Q2XKDJ4MLN0ZP'
\set sk 'bx2sM9Q4rT7wLpZ3aN8cV1eK6yHf0JdU'
\set ts '2024-09-24T08:30:00Z'

-- 1. DELETE with a JSON body, headers given in no particular order.
--
--   BODY='{"callerNo":[{"accessCode":"5245241"},{"accessCode":"5245242"}]}'
--   LEN=$(printf '%s' "$BODY" | wc -c)                      # 64
--   SH='content-length;content-type;host'
--   PREFIX="auth-v2/$AK/$TS/$SH"
--   KEY=$(printf '%s' "$PREFIX" | hmac "$SK")
--   { printf 'DELETE\n/rest/isales/v1/openapi/campaigns/1/callerNo/1001\n%s\n' "$SH"
--     printf 'content-length:%s\n' "$(printf '%s' "$LEN" | N)"
--     printf 'content-type:%s\n' "$(printf '%s' 'application/json; charset=UTF-8' | N)"
--     printf 'host:%s\n' "$(printf '%s' '10.1.2.3:28443' | N)"
--     printf '%s' "$BODY" | N; } > canon1.txt
--   echo "$PREFIX/$(hmac "$KEY" < canon1.txt)"
SELECT CASE WHEN sig = 'auth-v2/AK7Q2XKDJ4MLN0ZP/2024-09-24T08:30:00Z/content-length;content-type;host/cdc5945b588829493f4b878eb3e8184e161efb1a5351bbd3380811a3c6e7353c'
	THEN 'matches openssl' ELSE sig END AS result
FROM ccpurge_c2_sign(:'ak', :'sk', :'ts', 'DELETE',
	'/rest/isales/v1/openapi/campaigns/1/callerNo/1001', NULL,
	ARRAY['Host: 10.1.2.3:28443',
		  'Content-Type: application/json; charset=UTF-8',
		  'Content-Length: 64'],
	'{"callerNo":[{"accessCode":"5245241"},{"accessCode":"5245242"}]}') AS sig;

-- 2. A query string given unsorted, with a space in a value and a key
-- without a value.
--
--   BODY='{"sessionId":"1"}'
--   LEN=$(printf '%s' "$BODY" | wc -c)                      # 17
--   SH='content-length;content-type;host'
--   PREFIX="auth-v2/$AK/$TS/$SH"
--   KEY=$(printf '%s' "$PREFIX" | hmac "$SK")
--   { printf 'POST\n/rest/isales/v1/openapi/campaigns/1/calldata/1001/delete\n'
--     Q='pageSize=10&campaignName=spring sale&offset=0&flag'
--     { printf '%s' "$Q" | tr '&' '\n'; echo; } | while IFS= read -r P; do
--         K=${P%%=*}; case $P in *=*) V=${P#*=};; *) V=;; esac
--         printf '%s=%s\n' "$(printf '%s' "$K" | N)" "$(printf '%s' "$V" | N)"
--       done | LC_ALL=C sort | paste -sd'&'
--     printf '%s\n' "$SH"
--     printf 'content-length:%s\n' "$(printf '%s' "$LEN" | N)"
--     printf 'content-type:%s\n' "$(printf '%s' 'application/json; charset=UTF-8' | N)"
--     printf 'host:%s\n' "$(printf '%s' '10.1.2.3:28443' | N)"
--     printf '%s' "$BODY" | N; } > canon2.txt
--   echo "$PREFIX/$(hmac "$KEY" < canon2.txt)"
SELECT CASE WHEN sig = 'auth-v2/AK7Q2XKDJ4MLN0ZP/2024-09-24T08:30:00Z/content-length;content-type;host/bcd5765ee39dfc2cc137c7a91ee8110831627028ce1e9a5379026d67dc2427fe'
	THEN 'matches openssl' ELSE sig END AS result
FROM ccpurge_c2_sign(:'ak', :'sk', :'ts', 'POST',
	'/rest/isales/v1/openapi/campaigns/1/calldata/1001/delete',
	'pageSize=10&campaignName=spring sale&offset=0&flag',
	ARRAY['Host: 10.1.2.3:28443',
		  'Content-Type: application/json; charset=UTF-8',
		  'Content-Length: 17'],
	'{"sessionId":"1"}') AS sig;

-- 3. A body with Chinese text: N() encodes its UTF-8 bytes, and
-- Content-Length counts bytes, not characters.
--
--   BODY='{"customField":"春季活动","archiveHistory":1}'
--   LEN=$(printf '%s' "$BODY" | wc -c)                      # 49
--   SH='content-length;content-type;host'
--   PREFIX="auth-v2/$AK/$TS/$SH"
--   KEY=$(printf '%s' "$PREFIX" | hmac "$SK")
--   { printf 'POST\n/rest/isales/v1/openapi/campaigns/1/calldata/1001/delete\n%s\n' "$SH"
--     printf 'content-length:%s\n' "$(printf '%s' "$LEN" | N)"
--     printf 'content-type:%s\n' "$(printf '%s' 'application/json; charset=UTF-8' | N)"
--     printf 'host:%s\n' "$(printf '%s' '10.1.2.3:28443' | N)"
--     printf '%s' "$BODY" | N; } > canon3.txt
--   echo "$PREFIX/$(hmac "$KEY" < canon3.txt)"
SELECT CASE WHEN sig = 'auth-v2/AK7Q2XKDJ4MLN0ZP/2024-09-24T08:30:00Z/content-length;content-type;host/e360c7c57d70b64da6ce1799411c9b68d586b830c8be0f849d58794b2291496b'
	THEN 'matches openssl' ELSE sig END AS result
FROM ccpurge_c2_sign(:'ak', :'sk', :'ts', 'POST',
	'/rest/isales/v1/openapi/campaigns/1/calldata/1001/delete', NULL,
	ARRAY['Content-Length: 49',
		  'Host: 10.1.2.3:28443',
		  'Content-Type: application/json; charset=UTF-8'],
	'{"customField":"春季活动","archiveHistory":1}') AS sig;

-- 4. No body.  Header names are signed in lower case and values without
-- the whitespace around them.
--
--   SH='host;x-request-id'
--   PREFIX="auth-v2/$AK/$TS/$SH"
--   KEY=$(printf '%s' "$PREFIX" | hmac "$SK")
--   { printf 'GET\n/rest/isales/v1/openapi/campaigns/1/callerNo/1001\n%s\n' "$SH"
--     printf 'host:%s\n' "$(printf '%s' 'isales.example.com:443' | N)"
--     printf 'x-request-id:%s\n' "$(printf '%s' 'req 42/a' | N)"; } > canon4.txt
--   echo "$PREFIX/$(hmac "$KEY" < canon4.txt)"
SELECT CASE WHEN sig = 'auth-v2/AK7Q2XKDJ4MLN0ZP/2024-09-24T08:30:00Z/host;x-request-id/221720ba2b1b56633c0ff0385f1d52643088ecb05755557080c50f6c70c12c42'
	THEN 'matches openssl' ELSE sig END AS result
FROM ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET',
	'/rest/isales/v1/openapi/campaigns/1/callerNo/1001', NULL,
	ARRAY['X-Request-Id:   req 42/a  ',
		  'HOST: isales.example.com:443'],
	NULL) AS sig;

-- An empty body or query string is the same as none.
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', '', ARRAY['Host: h:1'], '')
	 = ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', NULL, ARRAY['Host: h:1'], NULL)
	AS empty_is_none;

-- Every byte of the body is signed.
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'POST', '/p', NULL, ARRAY['Host: h:1'], '{"called":"1"}')
	<> ccpurge_c2_sign(:'ak', :'sk', :'ts', 'POST', '/p', NULL, ARRAY['Host: h:1'], '{"called":"2"}')
	AS body_is_signed;

-- A missing key, timestamp, method or path gives NULL, as in a strict function.
SELECT ccpurge_c2_sign(NULL, :'sk', :'ts', 'GET', '/p', NULL, NULL, NULL) IS NULL
	AS null_ak_gives_null;

-- Headers that cannot be signed are refused; the secret is never shown.
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', NULL, ARRAY['Host = h'], NULL);
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', NULL, ARRAY['Host: h:1', 'host: h:2'], NULL);
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', NULL, ARRAY['Host: h:1', NULL], NULL);
SELECT ccpurge_c2_sign(:'ak', :'sk', :'ts', 'GET', '/p', NULL, ARRAY['X Y: 1'], NULL);

--
-- Calldata filters are checked before anything is signed or sent, so these
-- need no server.  A filter that would select all call data is refused.
--
SELECT * FROM ccpurge_delete_calldata(1, 1001, '[{"called": "1"}]');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"archiveHistory": 1}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"phone": "13800000000"}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"sessionId": 42}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"sessionId": ""}');
SELECT * FROM ccpurge_delete_calldata(1, 1001,
	jsonb_build_object('sessionId', repeat('x', 33)));
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"called": "138-0000-0000"}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"recycleTime": "2024-12-04"}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"recycleTime": "2023-02-29 10:00:00"}');
SELECT * FROM ccpurge_delete_calldata(1, 1001,
	'{"recycleTime": "2024-12-04 17:57:00", "recycleType": 4}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"called": "1", "recycleType": 1}');
SELECT * FROM ccpurge_delete_calldata(1, 1001, '{"called": "1", "archiveHistory": 2}');
