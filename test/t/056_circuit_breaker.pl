# test/t/056_circuit_breaker.pl: a server that keeps failing gets one
# probe per backoff period, and full speed again once a probe succeeds.
#
# The simulator answers every CEC erasure 503 while 30 items wait in 30
# batches (batch_size 1).  Without a circuit breaker each batch would be
# retried on its own backoff, about 30 requests a second; with it, after
# the first bursts (the batches sent before two failures in a row opened
# the breaker), the requests that reach the vendor come one per backoff
# period (ccpurge.retry_backoff = retry_backoff_max = 1 s, with jitter over its
# upper half: at least 0.5 s apart).  Once the fault is cleared, a probe
# succeeds and the rest goes at once, several batches together, rows whose
# own backoff had an hour to run included, and every item is done.

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
my $node = CcpTest::new_node(
	'main',
	conf => [
		"ccpurge.retry_backoff = '1s'",
		"ccpurge.retry_backoff_max = '1s'",
		"ccpurge.batch_linger = 0",
	]);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['cec'],
	server_options => { cec => { batch_size => '1' } });

# erasures returns the at_ms of the simulator's CEC erasure requests that
# were answered $status, oldest first.
sub erasures
{
	my ($status) = @_;
	return map { $_->{at_ms} }
	  grep { $_->{endpoint} eq 'cec_customers' && $_->{status} == $status }
	  @{ $sim->request_log(10000) };
}

# after_burst returns the times of @at more than 500 ms after the first.
sub after_burst
{
	my @at = @_;
	return () unless @at;
	return grep { $_ > $at[0] + 500 } @at;
}

$sim->fault(
	kind => 'status',
	status => 503,
	count => 1000000,
	path => 'cleancustpersonaldata');
my $id = $node->safe_psql('postgres', CcpTest::enqueue_sql('outage-', 30));

# the outage: wait for six requests after the first burst
ok( CcpTest::poll_until(
		$PostgreSQL::Test::Utils::timeout_default,
		sub { after_burst(erasures(503)) >= 6 }),
	'outage: the worker keeps probing the server');
my @probes = after_burst(erasures(503));
my @gaps = map { $probes[$_] - $probes[ $_ - 1 ] } 1 .. $#probes;
my $closest = (sort { $a <=> $b } @gaps)[0];
cmp_ok($closest, '>=', 400,
	'outage: one request per backoff period reaches the vendor (closest two '
	  . "of @{[scalar @probes]} were $closest ms apart)");
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FROM ccpurge_status
	WHERE request_id = $id AND state NOT IN ('queued', 'sending')}),
	'0',
	'outage: every item is still waiting');
cmp_ok(
	$node->safe_psql(
		'postgres', qq{
	SELECT count(*) FROM ccpurge_status WHERE request_id = $id AND attempts = 0}),
	'>', 0,
	'outage: items the breaker held back were not sent at all');

# The rows that were sent have backed off.  Make their backoff long, as
# after a long outage: once a probe (a row held back, due now) succeeds,
# they must not wait for it.
my $pushed = $node->safe_psql(
	'postgres', qq{
	WITH pushed AS (
		UPDATE ccpurge.queue SET next_attempt_at = now() + interval '1 hour'
		WHERE request_id = $id AND state = 'queued' AND attempts > 0
		RETURNING 1)
	SELECT count(*) FROM pushed});
cmp_ok($pushed, '>', 0, "outage: $pushed rows wait for a backoff of an hour");

# recovery
$sim->post('/_sim/fault/clear');
CcpTest::wait_request($node, $id, 'recovery');
is(CcpTest::done_counts($node, "request_id = $id"),
	'30|30', 'recovery: every item is done without any action');
is($sim->deleted_with_prefix('outage-'), 30,
	'recovery: the simulator erased all 30 customers');
my @ok = erasures(200);
my $together = grep { $_ < $ok[0] + 400 } @ok;
cmp_ok($together, '>=', 3,
	"recovery: after a probe succeeded, batches went together ($together within 400 ms)");

$node->stop;
done_testing();
