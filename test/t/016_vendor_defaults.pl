# test/t/016_vendor_defaults.pl: what a server gets when options are left out.
#
# Covers:
#   - an Ozonetel server created without rate_limit and max_inflight keeps
#     to the vendor's documented limits, 2 requests a minute and 1 in
#     flight: with a simulated account that would take far more, two calls
#     go through at once, and a third waits, raises the NOTICE "waiting for
#     the rate limit of server" naming 2 requests per 60000 ms and 1 in
#     flight, and ends with statement_timeout; the vendor saw exactly two
#     DeleteBulkData requests;
#   - CEC's token_ttl reaches the vendor as X-Token-Expire: 3600 when left
#     out, and the set value after ALTER SERVER (which also makes the next
#     call ask for a new token).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

# The simulated Ozonetel account allows 100 deletes a second, so any
# waiting comes from ccpurge's own limits.
my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => 100, oz_window_ms => 1000 });
my $node = CcpTest::new_node('main');
CcpTest::setup_servers($node, $sim, servers => [ 'cec', 'ozonetel' ]);

is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_foreign_server, unnest(srvoptions) o
		WHERE srvname = 'ozonetel'
		  AND (o LIKE 'rate_limit=%' OR o LIKE 'max_inflight=%')}),
	'0',
	'the Ozonetel server has no rate_limit or max_inflight option');

# bulk_sql returns a query that deletes phone numbers from one campaign
# and answers "rows/ok rows/requests".
sub bulk_sql
{
	my (@phones) = @_;
	my $array = 'ARRAY[' . join(',', map { "'$_'" } @phones) . ']';
	return qq{SELECT count(*) || '/' || count(*) FILTER (WHERE ok) || '/'
		|| count(DISTINCT request_no)
		FROM ccpurge_delete_bulk_data($array, ARRAY['QA_Outbound'])};
}

# 1. Two calls go through at once.
my $t0 = time;
is($node->safe_psql('postgres', bulk_sql('9100000001', '9100000002')),
	'2/2/1', 'the first call succeeds');
is($node->safe_psql('postgres', bulk_sql('9100000003')),
	'1/1/1', 'the second call succeeds');
my $elapsed = time - $t0;
cmp_ok($elapsed, '<', 20, 'neither waited for the rate limit')
  or diag("took $elapsed s");
is($sim->state->{requests}{oz_delete}, 2, 'the simulator saw two deletes');

# 2. The third waits for the default 2/minute, with a notice, and times out.
my ($ret, $out, $err) = $node->psql(
	'postgres',
	"SET ccpurge.rate_limit_notice = '100ms';\n"
	  . "SET statement_timeout = '2s';\n"
	  . bulk_sql('9100000004'));
isnt($ret, 0, 'the third call fails');
like($err, qr/NOTICE:  waiting for the rate limit of server "ozonetel"/,
	'it raises the rate-limit notice');
like(
	$err,
	qr/DETAIL:  The server allows 2 requests per 60000 ms and at most 1 in flight\./,
	'the notice names the vendor defaults 2 per 60000 ms and 1 in flight');
like($err, qr/canceling statement due to statement timeout/,
	'it ends with the statement timeout');
note($err);

my $state = $sim->state;
is($state->{requests}{oz_delete}, 2,
	'the simulator saw exactly two DeleteBulkData requests');
is($state->{rejections}{rate} + $state->{rejections}{inflight},
	0, 'and refused none');
is_deeply($sim->deleted('ozonetel'),
	[ map { "$_|QA_Outbound" } qw(9100000001 9100000002 9100000003) ],
	'only the numbers of the first two calls were deleted');

# 3. CEC's token lifetime.

# token_messages returns the request log messages of the token calls.
sub token_messages
{
	return [ map { $_->{message} }
		  grep { $_->{endpoint} eq 'cec_token' } @{ $sim->request_log } ];
}

like($node->safe_psql('postgres',
		"SELECT ok FROM ccpurge_delete_customers(ARRAY['880101'])"),
	qr/^t$/, 'a CEC call succeeds');
is_deeply(token_messages(), ['X-Token-Expire: 3600'],
	'without token_ttl the token is asked for 3600 seconds');

$node->safe_psql('postgres', "ALTER SERVER cec OPTIONS (ADD token_ttl '120')");
like($node->safe_psql('postgres',
		"SELECT ok FROM ccpurge_delete_customers(ARRAY['880102'])"),
	qr/^t$/, 'a CEC call succeeds after token_ttl was set');
is_deeply(
	token_messages(),
	[ 'X-Token-Expire: 3600', 'X-Token-Expire: 120' ],
	'the new token_ttl asks for a new token with X-Token-Expire: 120');
is($sim->state->{tokens_issued}{cec}, 2, 'the simulator issued two tokens');

$node->stop;
$sim->stop;
done_testing();
