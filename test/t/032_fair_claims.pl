# test/t/032_fair_claims.pl: a slow server does not hold back another.
#
# Two webhook servers on the simulator, "slow" (every request of its path
# waits 30 s at the receiver) and "fast".  40 items are queued for the
# slow one in batches of 1, far more than the worker keeps in flight; once
# the worker sends them, one item is queued for the fast one.  It must be
# done while every slow request is still waiting at the receiver: the
# worker keeps slots free for a server that has nothing in flight, so the
# fast item does not wait for a slot of the slow server to come free.

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
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'slow', 'fast' ],
	vendors => { slow => 'webhook', fast => 'webhook' },
	server_options => {
		slow => {
			url => $sim->url . '/webhook/slow',
			batch_size => '1',
			timeout_ms => '600000'
		},
		fast => { url => $sim->url . '/webhook/fast' },
	});
$sim->fault(
	kind => 'delay',
	delay_ms => 30000,
	count => 1000,
	path => '/webhook/slow');

# counts returns "queued|sending|done" of the items of server $server.
sub counts
{
	my ($server) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'queued') || '|'
			|| count(*) FILTER (WHERE state = 'sending') || '|'
			|| count(*) FILTER (WHERE state = 'done')
		FROM ccpurge_status WHERE server = '$server'});
}

$node->safe_psql(
	'postgres', q{
	SELECT ccpurge_enqueue('erase',
		ARRAY(SELECT 'slow-' || g FROM generate_series(1, 40) g), '{}', 'slow')});
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) > 0 FROM ccpurge_status
	WHERE server = 'slow' AND state = 'sending'}),
	'the worker sends the slow items');
my ($queued, $sending) = split /\|/, counts('slow');
cmp_ok($queued, '>', 0,
	"the slow items do not all fit in flight ($sending sending, $queued queued)");

$node->safe_psql('postgres',
	q{SELECT ccpurge_enqueue('erase', ARRAY['fast-1'], '{}', 'fast')});
# the fast item ends, or a slow request does, whichever comes first
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) > 0 FROM ccpurge_status
	WHERE state = 'done' AND (server = 'fast' OR server = 'slow')}),
	'something is done');
is(counts('fast'), '0|0|1', 'the fast item is done');
my ($sq, $ss, $sd) = split /\|/, counts('slow');
is($sd, 0, 'before any slow request came back');
cmp_ok($ss, '>', 0, "while $ss slow requests are in flight");
is_deeply($sim->deleted('webhook'), ['fast-1'],
	'the receiver erased the fast item only');

$node->stop;
$sim->stop;
done_testing();
