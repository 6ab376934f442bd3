# test/t/010_token_sharing.pl: the CEC token is shared by every backend.
#
# Covers, against the vendor simulator:
#   - a second session reuses the token the first one got (no new token);
#   - after the simulator expires every token, several sessions calling at
#     the same moment cause exactly one new token (single-flight refresh);
#   - a 401 on a business call refreshes the token once and the call
#     succeeds; a second 401 in a row is reported, not retried forever;
#   - a failed token request becomes a not-ok row, and is answered again
#     without a new request for ccpurge.token_failure_hold (read with SHOW
#     and waited out on the server's clock; an hour: the next call fails
#     without a token request until the server's token_ttl changes; 0: the
#     next call asks again at once);
#   - no secret reaches the server log, ccpurge.request_log or
#     pg_stat_activity.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main',
	conf => [ 'log_min_messages = debug1', 'log_error_verbosity = verbose' ]);
CcpTest::setup_servers($node, $sim, servers => ['cec']);

# cec_tokens returns how many CEC tokens the simulator has issued.
sub cec_tokens
{
	return $sim->state->{tokens_issued}{cec};
}

# delete_one erases one customer number in a new session and returns
# "backend pid|ok|http_status|message".
sub delete_one
{
	my ($number) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT pg_backend_pid() || '|' || ok || '|'
			|| coalesce(http_status::text, '') || '|' || message
		FROM ccpurge_delete_customers(ARRAY['$number'])});
}


# 1. One token, two backends.
my ($pid1, $ok1) = split /\|/, delete_one('share-1');
is($ok1, 'true', 'first session erases a customer');
is(cec_tokens(), 1, 'the first call asked for one token');

my ($pid2, $ok2) = split /\|/, delete_one('share-2');
isnt($pid2, $pid1, 'the second call runs in another backend');
is($ok2, 'true', 'second session erases a customer');
is(cec_tokens(), 1, 'the second backend reused the shared token');

# 2. Expired tokens: several sessions at once, one refresh.
$sim->fault(kind => 'expire_tokens');
my $auth_before = $sim->state->{rejections}{auth};
my $nsess = 5;
my @res = CcpTest::run_together($node, 4711,
	map {
		"SELECT count(*) FILTER (WHERE ok) || '/' || count(*) "
		  . "FROM ccpurge_delete_customers(ARRAY['burst-$_'])"
	} 1 .. $nsess);
for my $i (0 .. $#res)
{
	my ($out, $err, $success) = @{ $res[$i] };
	ok($success, "concurrent session $i finished without error")
	  or diag($err);
	like($out, qr/^1\/1\s*$/, "concurrent session $i erased its customer");
}
is(cec_tokens(), 2, "$nsess sessions after expiry caused exactly one new token");
cmp_ok($sim->state->{rejections}{auth} - $auth_before,
	'>=', 1, 'the simulator refused the expired token at least once');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM ccpurge.request_log WHERE operation = 'token' AND ok"
	),
	'2',
	'the request log holds exactly two successful token requests');
is($sim->state->{deleted}{cec_customers},
	2 + $nsess, 'every customer so far reached the simulator');

# 3. A 401 on the business call: one refresh, then success.
my $tok = cec_tokens();
my $req = $sim->state->{requests}{cec_customers};
$sim->fault(kind => 'status', status => 401, count => 1,
	path => 'cleancustpersonaldata');
my (undef, $ok3) = split /\|/, delete_one('after-401');
is($ok3, 'true', 'a call refused once with 401 succeeds');
is(cec_tokens(), $tok + 1, 'the 401 caused exactly one token refresh');
is($sim->state->{requests}{cec_customers},
	$req + 2, 'the refused request was sent again once');

# Two 401s in a row: one refresh, then the row reports the 401.
$tok = cec_tokens();
$req = $sim->state->{requests}{cec_customers};
$sim->fault(kind => 'status', status => 401, count => 2,
	path => 'cleancustpersonaldata');
my (undef, $ok4, $st4) = split /\|/, delete_one('twice-401');
is($ok4, 'false', 'a call refused twice with 401 is not ok');
is($st4, '401', 'its row carries HTTP status 401');
is(cec_tokens(), $tok + 1, 'a second 401 does not cause a second refresh');
is($sim->state->{requests}{cec_customers},
	$req + 2, 'the call gave up after one retry');

# 4. A failed token request becomes a not-ok row, then recovers.
$sim->fault(kind => 'expire_tokens');
$sim->fault(kind => 'garbage', count => 1, path => 'tokenByAkSk');
$req = $sim->state->{requests}{cec_customers};
my (undef, $ok5, undef, $msg5) = split /\|/, delete_one('token-garbage');
is($ok5, 'false', 'a call whose token request failed is not ok');
like($msg5, qr/token/i, 'its message says the token failed');
# the refused token, the failed refresh; the business call is not resent
is($sim->state->{requests}{cec_customers},
	$req + 1, 'nothing was resent without a token');
# A failed refresh is remembered for ccpurge.token_failure_hold from the
# moment it failed, which is before this clock reading: wait until the
# server's clock is past the hold, as the shared token cache measures it.
my $failed_by = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
my $hold = $node->safe_psql('postgres', 'SHOW ccpurge.token_failure_hold');
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT clock_timestamp() > '$failed_by'::timestamptz + interval '$hold'}),
	"the server's clock is past the hold ($hold)");
my (undef, $ok6) = split /\|/, delete_one('token-recovered');
is($ok6, 'true', 'the next call after the hold gets a token and succeeds');

# With a hold of an hour, a call right after a failed refresh gets the
# failure again without a token request; a changed token_ttl (part of
# what a token depends on) ends the hold.
CcpTest::set_setting($node, 'ccpurge.token_failure_hold', '1h', '1h');
$sim->fault(kind => 'expire_tokens');
$sim->fault(kind => 'garbage', count => 1, path => 'tokenByAkSk');
my (undef, $ok7, undef, $msg7) = split /\|/, delete_one('hold-1');
is($ok7, 'false', 'a long hold: the call whose token request failed is not ok');
my $token_req = $sim->state->{requests}{cec_token};
my (undef, $ok8, undef, $msg8) = split /\|/, delete_one('hold-2');
is($ok8, 'false', 'a long hold: the next call is not ok either');
is($msg8, $msg7, 'a long hold: with the same message');
is($sim->state->{requests}{cec_token},
	$token_req, 'a long hold: and without a token request');
$node->safe_psql('postgres', "ALTER SERVER cec OPTIONS (ADD token_ttl '3000')");
my (undef, $ok9) = split /\|/, delete_one('hold-3');
is($ok9, 'true', 'a long hold: a changed token_ttl ends it');
is($sim->state->{requests}{cec_token},
	$token_req + 1, 'a long hold: with one token request');

# With no hold, the call right after a failed refresh asks again.
CcpTest::set_setting($node, 'ccpurge.token_failure_hold', '0', '0');
$sim->fault(kind => 'expire_tokens');
$sim->fault(kind => 'garbage', count => 1, path => 'tokenByAkSk');
my (undef, $ok10) = split /\|/, delete_one('nohold-1');
is($ok10, 'false', 'no hold: the call whose token request failed is not ok');
$token_req = $sim->state->{requests}{cec_token};
my (undef, $ok11) = split /\|/, delete_one('nohold-2');
is($ok11, 'true', 'no hold: the next call gets a token at once and succeeds');
is($sim->state->{requests}{cec_token},
	$token_req + 1, 'no hold: with one token request');
CcpTest::set_setting($node, 'ccpurge.token_failure_hold', undef, '2s');

# 5. Secrets stay out of pg_stat_activity, the request log and the log.
$sim->fault(kind => 'delay', delay_ms => 1500, count => 1,
	path => 'cleancustpersonaldata');
my ($slow_out, $slow_err) = ('', '');
my $slow = IPC::Run::start(
	[
		'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c',
		"SELECT ok FROM ccpurge_delete_customers(ARRAY['slow-secret-check'])"
	],
	'>', \$slow_out, '2>', \$slow_err);
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) > 0 FROM pg_stat_activity
	WHERE query LIKE '%slow-secret-check%' AND state = 'active'
	  AND pid <> pg_backend_pid()}),
	'a call is in flight');
my $activity = $node->safe_psql('postgres',
	'SELECT string_agg(a::text, E\'\n\') FROM pg_stat_activity a');
$slow->finish;
is($slow_out, "t\n", 'the slow call succeeded');

my $reqlog = $node->safe_psql('postgres',
	'SELECT string_agg(l::text, E\'\n\') FROM ccpurge.request_log l');
cmp_ok(length $reqlog, '>', 0, 'the request log is not empty');
unlike($reqlog, qr/share-1|burst-1|after-401/,
	'the request log holds no customer number');

my $log = slurp_file($node->logfile);
for my $secret (@CcpTest::SECRETS)
{
	ok(index($log, $secret) < 0, "server log does not contain \"$secret\"");
	ok(index($reqlog, $secret) < 0, "request log does not contain \"$secret\"");
	ok(index($activity, $secret) < 0,
		"pg_stat_activity does not contain \"$secret\"");
}
unlike($log, qr/Bearer|AccessToken/i, 'no token reached the server log');
unlike($reqlog, qr/Bearer|AccessToken/i, 'no token reached the request log');

$node->stop;
$sim->stop;
done_testing();
