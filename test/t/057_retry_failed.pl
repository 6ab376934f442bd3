# test/t/057_retry_failed.pl: ccpurge_retry_failed retries every failed
# item the caller may act on.
#
# alice and bob queue items that the vendor refuses for good (HTTP 400);
# a canceled request and a done one are there too.  After the cause is
# gone:
#   - alice's ccpurge_retry_failed() requeues her failed items only, and
#     returns their number; bob's stay failed;
#   - a server with nothing failed gives 0; a misspelt one is an error;
#   - bob's ccpurge_retry_failed('cec') requeues his;
#   - canceled items stay canceled; everything retried ends done.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main', conf => ["ccpurge.batch_linger = 0"]);
CcpTest::setup_servers($node, $sim, servers => [ 'cec', 'isales' ]);
$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	GRANT USAGE ON FOREIGN SERVER cec TO alice, bob;
	GRANT EXECUTE ON FUNCTION ccpurge_enqueue(text, text[], jsonb, text),
		ccpurge_retry_failed(text), ccpurge_cancel(bigint) TO alice, bob;
	GRANT SELECT ON ccpurge_status TO alice, bob;});
my @alice = (extra_params => [ '-U', 'alice' ]);
my @bob = (extra_params => [ '-U', 'bob' ]);

# every CEC erasure is refused for good until the fault is cleared
$sim->fault(
	kind => 'status',
	status => 400,
	count => 1000000,
	path => 'cleancustpersonaldata');
my $a1 = $node->safe_psql('postgres', CcpTest::enqueue_sql('alice-a-', 3), @alice);
my $a2 = $node->safe_psql('postgres', CcpTest::enqueue_sql('alice-b-', 2), @alice);
my $b1 = $node->safe_psql('postgres', CcpTest::enqueue_sql('bob-', 4), @bob);
CcpTest::wait_request($node, $_, 'refused') for ($a1, $a2, $b1);
# a canceled request of alice's
my $a3 = $node->safe_psql('postgres', CcpTest::enqueue_sql('alice-c-', 2), @alice);
CcpTest::wait_request($node, $a3, 'refused');
is($node->safe_psql('postgres', "SELECT ccpurge_cancel($a3)", @alice),
	'2', 'alice cancels her third request');
$sim->post('/_sim/fault/clear');

is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(state || ':' || n, ',' ORDER BY state) FROM
	(SELECT state, count(*) AS n FROM ccpurge_status GROUP BY state) s}),
	'canceled:2,failed:9',
	'before: 9 failed items, 2 canceled');

is($node->safe_psql('postgres', 'SELECT ccpurge_retry_failed()', @alice),
	'5', "alice's ccpurge_retry_failed() requeues her 5 failed items");
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM ccpurge_status
		WHERE request_id = $b1 AND state = 'failed'"),
	'4', "bob's failed items are left alone");
CcpTest::wait_request($node, $_, 'alice retried') for ($a1, $a2);
is(CcpTest::done_counts($node, "request_id IN ($a1, $a2)"),
	'5|5', "alice's retried items are done");
is( $node->safe_psql(
		'postgres', "SELECT string_agg(DISTINCT state, ',')
		FROM ccpurge_status WHERE request_id = $a3"),
	'canceled', 'canceled items stay canceled');

is($node->safe_psql('postgres', q{SELECT ccpurge_retry_failed('isales')}, @bob),
	'0', 'a server without failed items gives 0');
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT ccpurge_retry_failed('no_such_server')}, @bob);
like($err, qr/server "no_such_server" does not exist/,
	'a misspelt server is an error, not 0');
is($node->safe_psql('postgres', q{SELECT ccpurge_retry_failed('cec')}, @bob),
	'4', "bob's ccpurge_retry_failed('cec') requeues his 4 items");
CcpTest::wait_request($node, $b1, 'bob retried');
is(CcpTest::done_counts($node, "request_id = $b1"),
	'4|4', "bob's retried items are done");
is($node->safe_psql('postgres', 'SELECT ccpurge_retry_failed()'),
	'0', 'nothing failed is left');

$node->stop;
done_testing();
