#!/bin/bash
#
# selftest.sh - self-test of the vendor simulator, ccpurge-sim.
#
# Starts the simulator on a free loopback port, talks to each vendor with
# curl (iSales and webhook requests signed here with openssl, some with a
# wrong secret), checks the answers, the limits, the control interface,
# body faults and chaos mode, starts a second simulator for
# --webhook-secret, then stops each simulator by its PID.  Exits non-zero
# on any failure.
#
# Usage: test/sim/selftest.sh [path/to/ccpurge-sim]

set -u

here=$(cd "$(dirname "$0")" && pwd)
sim=${1:-$here/ccpurge-sim}
if [ ! -x "$sim" ]; then
	make -s -C "$here" >/dev/null || { echo "selftest: cannot build ccpurge-sim" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ccpurge-sim-selftest.XXXXXX")
simpid=
passed=0
failed=0

cleanup() {
	if [ -n "$simpid" ] && kill -0 "$simpid" 2>/dev/null; then
		kill "$simpid" 2>/dev/null
		wait "$simpid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# ok NAME: count a passed check.  bad NAME DETAIL: count a failed one.
ok() { passed=$((passed + 1)); echo "ok - $1"; }
bad() { failed=$((failed + 1)); echo "not ok - $1"; echo "#   $2"; }

# expect NAME WANT_STATUS WANT_SUBSTRING: check the last answer.
expect() {
	local name=$1 status=$2 want=$3
	if [ "$code" = "$status" ] && [[ "$body" == *"$want"* ]]; then
		ok "$name"
	else
		bad "$name" "got HTTP $code: ${body:0:300}"
	fi
}

# expect_exact NAME STATUS BODY: like expect, but the body must be BODY
# exactly (an empty BODY asks for an empty answer).
expect_exact() {
	local name=$1 status=$2 want=$3
	if [ "$code" = "$status" ] && [ "$body" = "$want" ]; then
		ok "$name"
	else
		bad "$name" "got HTTP $code: ${body:0:300}"
	fi
}

# req METHOD PATH [curl args...]: send a request; sets code and body.
req() {
	local method=$1 path=$2
	shift 2
	body=$(curl -s -o - -w '\n%{http_code}' -X "$method" "$base$path" "$@")
	code=${body##*$'\n'}
	body=${body%$'\n'*}
}

# state_has SUBSTRING: does /_sim/state contain it?
state_has() {
	local s
	s=$(curl -s "$base/_sim/state")
	[[ "$s" == *"$1"* ]]
}

# ---------------------------------------------------------------- start
"$sim" --port 0 --port-file "$work/port" 2>"$work/sim.log" &
simpid=$!
for _ in $(seq 1 100); do
	[ -s "$work/port" ] && break
	sleep 0.05
done
if [ ! -s "$work/port" ]; then
	echo "selftest: the simulator did not start" >&2
	cat "$work/sim.log" >&2
	exit 1
fi
port=$(cat "$work/port")
base="http://127.0.0.1:$port"
json=(-H 'Content-Type: application/json')

# ------------------------------------------------------------------ CEC
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" -H 'X-Token-Expire: 600' \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect "cec token" 200 '"Expires":"600"'
tok=$(sed -n 's/.*"AccessToken":"\([0-9a-f]*\)".*/\1/p' <<<"$body")

req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" -H 'X-Token-Expire: 3601' \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect "cec token ttl over the maximum" 400 '"error_code"'

req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"wrong"}'
expect "cec token wrong secret" 401 '"error_msg"'

cec=(-H "Authorization: Bearer $tok" -H 'X-APP-Key: cec-app-key' "${json[@]}")
req POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d '{"customNos":["135****1111","wen11"]}'
expect "cec delete customers" 200 '"retCode":"0"'

req POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata \
	-H 'Authorization: Bearer 0000' -H 'X-APP-Key: cec-app-key' "${json[@]}" \
	-d '{"customNos":["x"]}'
expect "cec unknown token" 401 '"retCode":"401"'

big=$(seq -f '"%g"' 1 1001 | paste -sd, -)
req POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d "{\"customNos\":[$big]}"
expect "cec more than 1000 customers" 400 '1000'

curl -s -X POST "$base/_sim/config" -d '{"cec_missing_routes":[3]}' >/dev/null
req POST /apiaccess/rest/cc-management/v1/calledRoute/deleteCalledRoute "${cec[@]}" \
	-d '{"dnids":"1,3"}'
expect "cec delete routes, partly" 200 '"content":"Success:route1,Failed:route3"'

req GET /_sim/deleted/cec_customers
expect "cec deleted set" 200 '["135****1111","wen11"]'

# --------------------------------------------------------------- iSales

# N STRING: percent-encode as the C2 scheme does.
N() {
	local LC_ALL=C s=$1 out= c h i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
			[A-Za-z0-9._~-]) out+=$c ;;
			*) printf -v h '%%%02X' "'$c"; out+=$h ;;
		esac
	done
	printf '%s' "$out"
}

# hmac KEY: lower-hex HMAC-SHA256 of standard input.
hmac() { openssl dgst -sha256 -hmac "$1" | sed 's/^.*= //'; }

# isales METHOD PATH BODY SK: send a C2-signed iSales request.
isales() {
	local method=$1 path=$2 data=$3 sk=$4
	local ts sh ctype host len prefix canon signkey sig
	ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	sh='content-length;content-type;host'
	ctype='application/json; charset=UTF-8'
	host="127.0.0.1:$port"
	len=$(printf '%s' "$data" | wc -c)
	prefix="auth-v2/isales-ak/$ts/$sh"
	canon="$method"$'\n'"$path"$'\n'"$sh"$'\n'"content-length:$len"$'\n'
	canon+="content-type:$(N "$ctype")"$'\n'"host:$(N "$host")"$'\n'"$(N "$data")"
	signkey=$(printf '%s' "$prefix" | hmac "$sk")
	sig=$(printf '%s' "$canon" | hmac "$signkey")
	req "$method" "$path" -H "Content-Type: $ctype" -H "Authorization: $prefix/$sig" \
		--data-binary "$data"
}

isales DELETE /rest/isales/v1/openapi/campaigns/1/callerNo/42 \
	'{"callerNo":[{"accessCode":"5245241"}]}' isales-sk
expect "isales signed delete caller numbers" 200 '"resultCode":"0200000","resultDesc":"delete callerNo success.num:1"'

isales DELETE /rest/isales/v1/openapi/campaigns/1/callerNo/42 \
	'{"callerNo":[{"accessCode":"5245241"}]}' wrong-sk
expect "isales wrong secret key" 401 '"resultCode":"0200401"'

curl -s -X POST "$base/_sim/isales/callers" \
	-d '{"vdn":1,"campaign":43,"numbers":["100","200"]}' >/dev/null
isales DELETE /rest/isales/v1/openapi/campaigns/1/callerNo/43 \
	'{"callerNo":[{"accessCode":"100"},{"accessCode":"200"}]}' isales-sk
expect "isales keeps one calling number" 200 'at least one calling number must be kept'

isales DELETE /rest/isales/v1/openapi/campaigns/10000/callerNo/43 \
	'{"callerNo":[{"accessCode":"100"}]}' isales-sk
expect "isales vdnId out of range" 200 '"resultCode":"0200001"'

curl -s -X POST "$base/_sim/isales/calldata" -d '{"vdn":1,"campaign":44,"records":[
	{"sessionId":"s1","called":"111","recycleTime":"2020-12-03 10:00:00"},
	{"sessionId":"s2","called":"222","recycleTime":"2020-12-04 17:57:00"},
	{"sessionId":"s3","called":"333","recycleTime":"2020-12-05 09:00:00"}]}' >/dev/null
isales POST /rest/isales/v1/openapi/campaigns/1/calldata/44/delete \
	'{"recycleTime":"2020-12-04 17:57:00","recycleType":"1"}' isales-sk
expect "isales delete call data" 200 '"successCount":2'

isales POST /rest/isales/v1/openapi/campaigns/1/calldata/44/delete '{}' isales-sk
expect "isales empty filter refused" 200 '"resultCode":"02000001"'

req GET /_sim/deleted/isales_calldata
expect "isales deleted call data" 200 '["1/44/s1","1/44/s2"]'

# ------------------------------------------------------------ Ozonetel
req POST /ca_apis/CAToken/generateToken "${json[@]}" -H 'apiKey: oz-api-key' \
	-d '{"userName":"acme"}'
expect "ozonetel token" 200 '"token":"'
oztok=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$body")

oz=(-H "Authorization: Bearer $oztok" -H 'apiKey: oz-api-key' "${json[@]}")
ozbody='{"userName":"acme","phoneNumber":[8187867008,8187867001],"campaignName":["c1"]}'
req DELETE /ca_apis/DeleteBulkData "${oz[@]}" -d "$ozbody"
expect "ozonetel delete 1" 200 '"status":"true"'
req DELETE /ca_apis/DeleteBulkData "${oz[@]}" \
	-d '{"userName":"acme","phoneNumber":["8187867008"],"campaignName":["c1"]}'
expect "ozonetel phone numbers as strings refused" 200 'PhoneNumbers should not be null are empty'
req DELETE /ca_apis/DeleteBulkData "${oz[@]}" -d "$ozbody"
expect "ozonetel delete 2" 200 '"status":"true"'
req DELETE /ca_apis/DeleteBulkData "${oz[@]}" -d "$ozbody"
expect "ozonetel third delete in a minute" 200 'Max limit exceeded'
if state_has '"rate":1,'; then ok "rate rejection counted"; else bad "rate rejection counted" "$(curl -s "$base/_sim/state")"; fi

req DELETE /ca_apis/DeleteBulkData -H 'apiKey: oz-api-key' "${json[@]}" -d "$ozbody"
expect "ozonetel missing token" 401 'Token Should Not be Null or Empty.'

curl -s -X POST "$base/_sim/fault" -d '{"kind":"expire_tokens"}' >/dev/null
req DELETE /ca_apis/DeleteBulkData "${oz[@]}" -d "$ozbody"
expect "ozonetel expired token" 401 'Token Expired'

# ------------------------------------------------------ faults, control
curl -s -X POST "$base/_sim/fault" \
	-d '{"kind":"status","status":503,"count":1,"path":"tokenByAkSk"}' >/dev/null
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect "status fault" 503 'injected fault'
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect "fault used up" 200 '"AccessToken"'

# jstr TEXT: TEXT as a JSON string (it holds no control characters).
jstr() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

# raw METHOD PATH [curl args...]: send a request, keeping the exact body in
# $work/body and the headers in $work/head; sets code.
raw() {
	local method=$1 path=$2
	shift 2
	code=$(curl -s -o "$work/body" -D "$work/head" -w '%{http_code}' -X "$method" "$base$path" "$@")
}

# expect_raw NAME WANT_STATUS WANT_BODY_FILE [HEADER_LINE...]: check the
# last raw answer byte for byte, and that each header line is there.
expect_raw() {
	local name=$1 status=$2 want=$3 h
	shift 3
	if [ "$code" != "$status" ] || ! cmp -s "$want" "$work/body"; then
		bad "$name" "got HTTP $code: $(head -c 300 "$work/body")"
		return
	fi
	for h in "$@"; do
		if ! tr -d '\r' <"$work/head" | grep -qixF -- "$h"; then
			bad "$name" "no header \"$h\" in: $(tr -d '\r' <"$work/head" | tr '\n' '|')"
			return
		fi
	done
	ok "$name"
}

# fault JSON: queue a fault, checking the control call succeeds.
fault() {
	local r
	r=$(curl -s -X POST "$base/_sim/fault" --data-binary "$1")
	[ "$r" = '{"ok":true}' ] || echo "selftest: fault $1 refused: $r" >&2
}

# a fresh CEC token: expire_tokens above ended the first one
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
tok=$(sed -n 's/.*"AccessToken":"\([0-9a-f]*\)".*/\1/p' <<<"$body")
cec=(-H "Authorization: Bearer $tok" -H 'X-APP-Key: cec-app-key' "${json[@]}")

e200=$(printf 'é%.0s' $(seq 1 200))
e40=$(printf 'é%.0s' $(seq 1 40))
printf '{"error_code":"APIGW.0301","error_msg":"%s"}' "$e200" >"$work/want"
fault "{\"kind\":\"body\",\"status\":401,\"path\":\"tokenByAkSk\",\"body\":$(jstr "$(cat "$work/want")")}"
before=$(curl -s "$base/_sim/state" | sed -n 's/.*"tokens_issued":{"cec":\([0-9]*\).*/\1/p')
raw POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect_raw "body fault on a token endpoint, multibyte text" 401 "$work/want" \
	'Content-Type: application/json'
if state_has "\"tokens_issued\":{\"cec\":$before,"; then ok "body fault issues no token"; else bad "body fault issues no token" "$(curl -s "$base/_sim/state")"; fi

printf '{"retCode":"%s","retMsg":"x"}' "$e40" >"$work/want"
fault "{\"kind\":\"body\",\"status\":200,\"path\":\"cleancustpersonaldata\",\"body\":$(jstr "$(cat "$work/want")")}"
raw POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d '{"customNos":["body-fault-1"]}'
expect_raw "body fault on a business endpoint" 200 "$work/want"
req GET /_sim/deleted/cec_customers
if [[ "$body" != *body-fault-1* ]]; then ok "body fault deletes nothing"; else bad "body fault deletes nothing" "$body"; fi

printf '%s' '{"retCode":"0","retMsg":"fine"} <html>502 Bad Gateway</html>' >"$work/want"
fault "{\"kind\":\"body\",\"status\":200,\"count\":2,\"content_type\":\"text/html; charset=utf-8\",\"retry_after\":\"Wed, 21 Oct 2015 07:28:00 GMT\",\"body\":$(jstr "$(cat "$work/want")")}"
raw POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d '{"customNos":["body-fault-2"]}'
expect_raw "body fault: junk after a success, content type, Retry-After" 200 "$work/want" \
	'Content-Type: text/html; charset=utf-8' 'Retry-After: Wed, 21 Oct 2015 07:28:00 GMT'
raw POST /ca_apis/CAToken/generateToken "${json[@]}" -H 'apiKey: oz-api-key' -d '{"userName":"acme"}'
expect_raw "body fault count 2 hits a second endpoint" 200 "$work/want"
req GET '/_sim/log?n=2'
expect "body fault logged as fault:body" 200 '"code":"fault:body","message":"injected body"'

fault '{"kind":"status","status":429,"retry_after":30,"path":"cleancustpersonaldata"}'
raw POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d '{"customNos":["x"]}'
printf '%s' '{"error":"injected fault","status":429}' >"$work/want"
expect_raw "status fault with retry_after" 429 "$work/want" 'Retry-After: 30'
raw POST /apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata "${cec[@]}" \
	-d '{"customNos":["x"]}'
if [ "$code" = 200 ] && ! grep -qi '^retry-after' "$work/head"; then ok "no Retry-After without a fault"; else bad "no Retry-After without a fault" "HTTP $code $(cat "$work/head")"; fi

req POST /_sim/fault -d '{"kind":"body","status":200}'
expect "body fault needs a body" 400 'kind body needs body'
req POST /_sim/fault -d '{"kind":"delay","retry_after":"1"}'
expect "retry_after only with status or body" 400 'retry_after'
req POST /_sim/fault -d '{"kind":"body","body":"x","content_type":"a\nb"}'
expect "content_type must be a header value" 400 'content_type'

curl -s -X POST "$base/_sim/fault" -d '{"kind":"reset"}' >/dev/null
curl -s -o /dev/null -X POST "$base/apigovernance/api/oauth/tokenByAkSk" -d '{}'
rc=$?
if [ "$rc" -ne 0 ]; then ok "reset fault closes the connection"; else bad "reset fault closes the connection" "curl exit $rc"; fi

req POST /_sim/config -d '{"no_such_key":1}'
expect "unknown config key" 400 'no_such_key'

req POST /_sim/reset
expect "reset" 200 '"ok":true'
if state_has '"tokens_issued":{"cec":0,"ozonetel":0}'; then ok "reset clears state"; else bad "reset clears state" "$(curl -s "$base/_sim/state")"; fi

# ---------------------------------------------------------------- chaos
curl -s -X POST "$base/_sim/reset" >/dev/null
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
tok=$(sed -n 's/.*"AccessToken":"\([0-9a-f]*\)".*/\1/p' <<<"$body")
cec=(-H "Authorization: Bearer $tok" -H 'X-APP-Key: cec-app-key' "${json[@]}")
custpath=/apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata

req POST /_sim/config -d '{"chaos_rate":1.5}'
expect "chaos_rate above 1 refused" 400 'chaos_rate'

# lastcode: the code of the last logged vendor request
lastcode() { curl -s "$base/_sim/log?n=1" | sed -n 's/.*"code":"\([^"]*\)".*/\1/p'; }

# One request per seed at chaos_rate 1, all from one curl: the answer must
# fit the kind the log names, and only slow answers may delete.  No
# connection is reused, or curl would send a request again after a reset.
cecok='{"retCode":"0","retMsg":"VerifyParams success"}'
args=()
for seed in $(seq 1 40); do
	args+=(-s -o /dev/null -H 'Connection: close' -X POST "$base/_sim/config"
		-d "{\"chaos_rate\":1,\"chaos_seed\":$seed,\"chaos_max_delay_ms\":50}" --next)
	args+=(-s -o "$work/chaos$seed.body" -D "$work/chaos$seed.head"
		-w "$seed %{http_code} %{size_download}\n" -H 'Connection: close' -X POST "$base$custpath" "${cec[@]}"
		-d "{\"customNos\":[\"chaos-$seed\"]}")
	[ "$seed" -lt 40 ] && args+=(--next)
done
curl "${args[@]}" >"$work/chaos.out"
curl -s "$base/_sim/log?n=40" | grep -o '"code":"[^"]*"' | sed 's/"code":"chaos://; s/"$//' >"$work/chaos.kinds"
seen=" " chaos_bad= slow_items= storm_seed=
while read -r seed code size <&3 && read -r kind <&4; do
	head=
	[ -f "$work/chaos$seed.head" ] && head=$(tr -d '\r' <"$work/chaos$seed.head")
	bodyf=$work/chaos$seed.body
	case "$kind" in
		reset) [ "$code" = 000 ] ;;
		slow) [ "$code" = 200 ] && [ "$(<"$bodyf")" = "$cecok" ] && slow_items+=" chaos-$seed" ;;
		redirect) [[ "$code" == 30? ]] && [[ "$head" == *$'\nLocation: /chaos/redirected\n'* ]] ;;
		storm_401) [ "$code" = 401 ] && storm_seed=${storm_seed:-$seed} ;;
		storm_429) [ "$code" = 429 ] && [[ "$head" == *$'\nRetry-After: 1\n'* ]] ;;
		huge_body) [ "$code" = 200 ] && [ "$size" -gt 1048576 ] && [ "$size" -lt 2097152 ] &&
			[ "$(head -c 12 "$bodyf")" = '{"padding":"' ] ;;
		deep_nesting) [ "$code" = 200 ] && [ "$size" -ge 100000 ] ;;
		long_text) [ "$code" = 200 ] && [ "$size" -ge 200000 ] ;;
		trailing_junk) [ "$code" = 200 ] && [ "$size" -gt ${#cecok} ] &&
			[ "$(head -c ${#cecok} "$bodyf")" = "$cecok" ] ;;
		invalid_json | truncated_json | wrong_types | bad_utf8) [ "$code" = 200 ] &&
			[ "$(tr -d '\0' <"$bodyf")" != "$cecok" ] ;;
		*) false ;;
	esac || chaos_bad+=" seed $seed: kind '$kind' HTTP $code, $size bytes;"
	seen+="$kind "
done 3<"$work/chaos.out" 4<"$work/chaos.kinds"
if [ -z "$chaos_bad" ]; then ok "chaos answers fit their kinds"; else bad "chaos answers fit their kinds" "$chaos_bad"; fi
missing=
for kind in invalid_json truncated_json wrong_types deep_nesting long_text bad_utf8 trailing_junk \
	reset slow redirect storm_401 storm_429 huge_body; do
	[[ "$seen" == *" $kind "* ]] || missing+=" $kind"
done
if [ -z "$missing" ]; then ok "seeds 1 to 40 give every chaos kind"; else bad "seeds 1 to 40 give every chaos kind" "missing:$missing; seen:$seen"; fi
want=$(printf '"%s"\n' $slow_items | sort | paste -sd, -)
req GET /_sim/deleted/cec_customers
expect "only slow chaos answers delete" 200 "[$want]"
if state_has '"chaos":{"invalid_json":' && state_has '"storm_429":' &&
	[ $(($(curl -s "$base/_sim/state" | sed 's/.*"chaos":{\([^}]*\)}.*/\1/' | tr ',' '\n' | sed 's/.*://' | paste -sd+ -))) = 40 ]; then
	ok "chaos counters in state add up"
else
	bad "chaos counters in state add up" "$(curl -s "$base/_sim/state")"
fi

curl -s -X POST "$base/_sim/config" -d "{\"chaos_rate\":1,\"chaos_seed\":$storm_seed}" >/dev/null
curl -s -o /dev/null -X POST "$base$custpath" "${cec[@]}" -d '{"customNos":["storm"]}'
req POST "$custpath" "${cec[@]}" -d '{"customNos":["storm"]}'
if [ "$code" = 401 ] && [ "$(lastcode)" = chaos:storm_401 ]; then ok "a 401 storm lasts more than one request"; else bad "a 401 storm lasts more than one request" "HTTP $code $(lastcode)"; fi

fault '{"kind":"status","status":418}'
req POST "$custpath" "${cec[@]}" -d '{"customNos":["x"]}'
if [ "$code" = 418 ] && [ "$(lastcode)" = fault:status ]; then ok "a queued fault wins over chaos"; else bad "a queued fault wins over chaos" "HTTP $code $(lastcode)"; fi

# the same seed and request order give the same answers
chaos_run() {
	local i
	local urls=()
	for i in $(seq 1 30); do urls+=("$base$custpath"); done
	curl -s -X POST "$base/_sim/config" -d '{"chaos_rate":0.5,"chaos_seed":4242,"chaos_max_delay_ms":0}' >/dev/null
	curl -s -o /dev/null -X POST "${cec[@]}" -d '{"customNos":["d"]}' "${urls[@]}" >/dev/null
	curl -s "$base/_sim/log?n=30" | grep -o '"code":"[^"]*"' | paste -sd' ' -
}
run1=$(chaos_run)
run2=$(chaos_run)
if [ "$run1" = "$run2" ] && [[ "$run1" == *'"code":"0"'* ]] && [[ "$run1" == *'"code":"chaos:'* ]]; then
	ok "chaos is deterministic for a seed"
else
	bad "chaos is deterministic for a seed" "$run1 // $run2"
fi

curl -s -X POST "$base/_sim/reset" >/dev/null
if state_has '"chaos":{"invalid_json":0,"truncated_json":0,"wrong_types":0,"deep_nesting":0,"long_text":0,"bad_utf8":0,"trailing_junk":0,"reset":0,"slow":0,"redirect":0,"storm_401":0,"storm_429":0,"huge_body":0}'; then
	ok "reset clears chaos counters"
else
	bad "reset clears chaos counters" "$(curl -s "$base/_sim/state")"
fi
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
expect "reset turns chaos off" 200 '"AccessToken"'

# -------------------------------------------------------------- webhook
whsecret=webhook-signing-secret-0123

# whsend FILE KEY [T [PATH [SECRET [curl args...]]]]: POST the bytes of FILE
# to the webhook, signed; KEY "-" sends no Idempotency-Key.  Sets code, body.
whsend() {
	local file=$1 key=$2 t=${3:-$(date +%s)} path=${4:-/webhook/erase} secret=${5:-$whsecret} sig
	shift 5 2>/dev/null || shift $#
	sig=$({ printf '%s.' "$t"; cat "$file"; } | hmac "$secret")
	local args=(-H "X-Ccpurge-Signature: t=$t,v1=$sig")
	[ "$key" = - ] || args+=(-H "Idempotency-Key: $key")
	if [ $# -eq 0 ]; then set -- -H 'Content-Type: application/json'; fi
	req POST "$path" "${args[@]}" "$@" --data-binary "@$file"
}

# wh BODY KEY [T [PATH [SECRET [curl args...]]]]: the same with a body text.
wh() {
	printf '%s' "$1" >"$work/wh.json"
	shift
	whsend "$work/wh.json" "$@"
}

curl -s -X POST "$base/_sim/reset" >/dev/null
wh '{"operation":"erase","items":["alice@example.com","bob"]}' 0a1b2c
expect_exact "webhook erase (all erased: an empty body)" 200 ''
wh '{"operation":"erase","items":["alice@example.com","bob"]}' 0a1b2c
expect_exact "webhook idempotent repeat" 200 ''
if [ "$(lastcode)" = idempotent_repeat ]; then ok "webhook repeat logged"; else bad "webhook repeat logged" "$(lastcode)"; fi
wh '{"operation":"erase","items":["alice@example.com","carol"]}' 0a1b2c
expect "webhook key reused with another body" 422 'different body'
req GET /_sim/deleted/webhook
expect "webhook deleted set" 200 '["alice@example.com","bob"]'
if state_has '"webhook":{"idempotent_repeats":1,"distinct_keys":1}}'; then ok "webhook state at the end"; else bad "webhook state at the end" "$(curl -s "$base/_sim/state")"; fi
if state_has '"oz_delete":0,"webhook":3}' && state_has '"ozonetel":0,"webhook":2}' &&
	state_has '"oz_delete":[],"webhook":[2,2]}'; then
	ok "webhook counters at the end of their objects"
else
	bad "webhook counters at the end of their objects" "$(curl -s "$base/_sim/state")"
fi

wh '{"operation":"erase","items":["x"]}' 1111 '' /webhook/erase wrong-secret-0123456789
expect "webhook wrong secret" 401 '{"error":"bad signature"}'
if state_has '"rejections":{"auth":1,'; then ok "webhook 401 counted as auth rejection"; else bad "webhook 401 counted as auth rejection" "$(curl -s "$base/_sim/state")"; fi
printf '%s' '{"operation":"erase","items":["x"]}' >"$work/wh.json"
sig=$({ printf '%s.' "$(date +%s)"; cat "$work/wh.json"; } | hmac "$whsecret")
req POST /webhook/erase -H "X-Ccpurge-Signature: t=$(date +%s),v1=${sig^^}" -H 'Idempotency-Key: 1111' \
	"${json[@]}" --data-binary "@$work/wh.json"
expect "webhook signature in upper-case hex" 401 'bad signature'
req POST /webhook/erase -H "X-Ccpurge-Signature: v1=$sig,t=$(date +%s)" -H 'Idempotency-Key: 1111' \
	"${json[@]}" --data-binary "@$work/wh.json"
expect "webhook signature fields swapped" 401 'bad signature'
wh '{"operation":"erase","items":["x"]}' 1111 $(($(date +%s) - 330))
expect "webhook timestamp 330 s old" 401 'timestamp out of range'
wh '{"operation":"erase","items":["x"]}' 1111 $(($(date +%s) + 330))
expect "webhook timestamp 330 s ahead" 401 'timestamp out of range'
curl -s -X POST "$base/_sim/config" -d '{"webhook_max_skew_s":400}' >/dev/null
wh '{"operation":"erase","items":["x"]}' 1111 $(($(date +%s) - 330))
expect_exact "webhook_max_skew_s widens the window" 200 ''

wh '{"operation":"erase","items":["y"]}' -
expect "webhook without Idempotency-Key" 400 'Idempotency-Key'
wh '{"operation":"erase","items":["y"]}' 12xy
expect "webhook Idempotency-Key not hex" 400 'Idempotency-Key'
wh '{"operation":"erase","items":["y"]}' "$(printf 'a%.0s' $(seq 1 129))"
expect "webhook Idempotency-Key of 129 digits" 400 'Idempotency-Key'
wh '{"operation":"erase","items":["y"]}' 2222 '' /webhook/erase "$whsecret" -H 'Content-Type: text/plain'
expect "webhook wrong Content-Type" 400 'Content-Type'
wh '{"operation":"erase","items":["y"]}' 2222 '' /webhook/any/path/below "$whsecret" \
	-H 'Content-Type: application/json; charset=UTF-8'
expect_exact "webhook charset and another path" 200 ''
printf '{"operation":"erase","items":["\xc3\x28"]}' >"$work/wh.json"
whsend "$work/wh.json" 3333
expect "webhook invalid UTF-8" 400 'UTF-8'
wh '{"operation":"delete","items":["y"]}' 3333
expect "webhook operation not erase" 400 'operation'
wh '{"operation":"erase","items":[]}' 3333
expect "webhook no items" 400 'items must not be empty'
wh '{"operation":"erase","items":["ok",""]}' 3333
expect "webhook empty item" 400 'items[1] is empty'
wh '{"operation":"erase","items":["tab\there"]}' 3333
expect "webhook control character" 400 'control character'
wh '{"operation":"erase","items":[42]}' 3333
expect "webhook item not a string" 400 'not a string'
wh '{"operation":"erase","items":["y"],"extra":1}' 3333
expect "webhook unknown member" 400 'unknown member'
long=$(printf 'l%.0s' $(seq 1 1024))
wh "{\"operation\":\"erase\",\"items\":[\"${long}x\"]}" 3333
expect "webhook item of 1025 bytes" 400 'longer than 1024 bytes'
wh "{\"operation\":\"erase\",\"items\":[\"$long\"]}" 3333
expect_exact "webhook item of 1024 bytes" 200 ''
curl -s -X POST "$base/_sim/config" -d '{"webhook_max_items":2}' >/dev/null
wh '{"operation":"erase","items":["1","2","3"]}' 4444
expect "webhook more than webhook_max_items" 413 'at most 2'
if state_has '"limit":1}'; then ok "webhook limit rejection counted"; else bad "webhook limit rejection counted" "$(curl -s "$base/_sim/state")"; fi

curl -s -X POST "$base/_sim/config" \
	-d '{"webhook_max_items":10,"webhook_results":"per_item","webhook_fail_items":["locked"],"webhook_omit_items":["ghost"]}' >/dev/null
wh '{"operation":"erase","items":["p1","locked","ghost"]}' 5555
expect "webhook per-item results" 200 \
	'{"results":[{"item":"p1","ok":true,"message":"erased"},{"item":"locked","ok":false,"message":"item is locked"}]}'
req GET /_sim/deleted/webhook
if [[ "$body" == *'"p1"'* && "$body" != *locked* && "$body" != *ghost* ]]; then ok "webhook failed and omitted items not erased"; else bad "webhook failed and omitted items not erased" "$body"; fi
req POST /_sim/config -d '{"webhook_results":"all"}'
expect "webhook_results takes none or per_item only" 400 'webhook_results'

# 10000 items of 1024 bytes: a body over 10 MB, within the contract
{
	printf '{"operation":"erase","items":['
	for i in $(seq 1 10000); do printf '%s"%05d%s"' "${sep:-}" "$i" "${long:5}"; sep=,; done
	printf ']}'
} >"$work/big.json"
curl -s -X POST "$base/_sim/config" -d '{"webhook_results":"none","webhook_max_items":10000}' >/dev/null
whsend "$work/big.json" 6666
expect_exact "webhook 10000 items of 1024 bytes" 200 ''

# the log keeps the Idempotency-Key, so a test can see retries reuse it
fault '{"kind":"status","status":503,"path":"/webhook/"}'
wh '{"operation":"erase","items":["retry-me"]}' 7777
wh '{"operation":"erase","items":["retry-me"]}' 7777
expect_exact "webhook retry after a fault is handled" 200 ''
req GET '/_sim/log?n=2'
expect "log keeps the Idempotency-Key of each attempt" 200 \
	'"code":"fault:status","message":"injected fault","idempotency_key":"7777"},{"endpoint":"webhook","status":200,"items":1,'
req POST /apigovernance/api/oauth/tokenByAkSk "${json[@]}" \
	-d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}'
req GET '/_sim/log?n=1'
expect "log idempotency_key null for other vendors" 200 '"idempotency_key":null}]'

curl -s -X POST "$base/_sim/config" -d '{"chaos_rate":1,"chaos_seed":1}' >/dev/null
wh '{"operation":"erase","items":["chaos-item"]}' 8888
code1=$code
kind=$(lastcode)
curl -s -X POST "$base/_sim/config" -d '{"chaos_rate":0}' >/dev/null
req GET /_sim/deleted/webhook
if [[ "$kind" == chaos:* && "$kind" != chaos:slow && "$body" != *chaos-item* ]]; then
	ok "chaos applies to the webhook"
else
	bad "chaos applies to the webhook" "HTTP $code1 $kind"
fi
wh '{"operation":"erase","items":["chaos-item"]}' 8888
expect_exact "webhook key not remembered after chaos" 200 ''

curl -s -X POST "$base/_sim/reset" >/dev/null
if state_has '"webhook":{"idempotent_repeats":0,"distinct_keys":0}}'; then ok "reset forgets webhook keys"; else bad "reset forgets webhook keys" "$(curl -s "$base/_sim/state")"; fi

# --webhook-secret, on a second simulator
"$sim" --port 0 --port-file "$work/port2" --webhook-secret other-secret-0123456789 2>>"$work/sim.log" &
sim2=$!
for _ in $(seq 1 100); do
	[ -s "$work/port2" ] && break
	sleep 0.05
done
savebase=$base
base="http://127.0.0.1:$(cat "$work/port2")"
wh '{"operation":"erase","items":["s"]}' 9999 '' /webhook/erase other-secret-0123456789
code2=$code
wh '{"operation":"erase","items":["s"]}' 9999
base=$savebase
kill "$sim2"
wait "$sim2"
if [ "$code2" = 200 ] && [ "$code" = 401 ]; then ok "--webhook-secret sets the signing secret"; else bad "--webhook-secret sets the signing secret" "HTTP $code2 and $code"; fi

# ----------------------------------------------------------------- stop
kill "$simpid"
wait "$simpid"
rc=$?
simpid=
if [ "$rc" -eq 0 ]; then ok "stops with exit 0 on SIGTERM"; else bad "stops with exit 0 on SIGTERM" "exit $rc"; fi

echo "selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
