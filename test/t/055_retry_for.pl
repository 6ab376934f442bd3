# test/t/055_retry_for.pl: transient failures are retried for
# ccpurge.retry_for, not a number of attempts.
#
# Covers, against the vendor simulator (stopped: every request is a
# connection failure):
#   - ccpurge.max_attempts is 0 (no cap) by default;
#   - with the vendor down for longer than ccpurge.retry_for (4 s here),
#     items are retried and stay queued until retry_for has passed, then
#     are failed with the transport error and reported once with code
#     retry_expired, those that the circuit breaker held back included
#     (batch_size 1: one batch per item, one probe per backoff period);
#   - with the vendor back before retry_for runs out, every item is done
#     without any action.

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
		"ccpurge.retry_backoff = '100ms'",
		"ccpurge.retry_backoff_max = '300ms'",
		"ccpurge.retry_for = '4s'",
		"ccpurge.batch_linger = 0",
	]);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['cec'],
	server_options => { cec => { batch_size => '1' } });

is($node->safe_psql('postgres', 'SHOW ccpurge.max_attempts'),
	'0', 'ccpurge.max_attempts has no cap by default');

# 1. The vendor is down for longer than ccpurge.retry_for.
{
	$sim->stop;
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres', CcpTest::enqueue_sql('gone-', 5));
	$node->poll_query_until(
		'postgres', qq{
		SELECT max(attempts) >= 2 FROM ccpurge_status WHERE request_id = $id})
	  or die 'the worker did not retry';

	CcpTest::wait_request($node, $id, 'vendor down past retry_for');
	my ($summary, $early, $maxatt) = split /\|/,
	  $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || ':' || string_agg(DISTINCT state, ',') || '|'
			|| count(*) FILTER (WHERE finished_at < enqueued_at + interval '4 s')
			|| '|' || max(attempts)
		FROM ccpurge_status WHERE request_id = $id});
	is($summary, '5:failed', 'vendor down: all 5 items failed in the end');
	is($early, '0', 'vendor down: no item failed before ccpurge.retry_for had passed');
	cmp_ok($maxatt, '>=', 2, "vendor down: items were retried ($maxatt attempts)");
	like(
		$node->safe_psql(
			'postgres', qq{
		SELECT string_agg(DISTINCT message, ',') FROM ccpurge_status
		WHERE request_id = $id}),
		qr/Couldn't connect to server/,
		'vendor down: the items keep the transport error as their message');

	ok(CcpTest::wait_for_log_count($node, qr/Code retry_expired: /, 1, $offset),
		'vendor down: the failure is reported with code retry_expired');
	my @reports = CcpTest::log_reports($node, qr/ccpurge requests? /, $offset);
	my $items = 0;
	for my $r (@reports)
	{
		like($r, qr/DETAIL:  Code retry_expired: .*ccpurge\.retry_for/,
			'vendor down: the report says retry_for ran out');
		$items += $1 if $r =~ /failed: (\d+) items? on server "cec"/;
	}
	is($items, 5, 'vendor down: each item is reported once');
}

# 2. The vendor comes back before ccpurge.retry_for runs out.
{
	CcpTest::set_setting($node, 'ccpurge.retry_for', '1h', '1h');
	my $id = $node->safe_psql('postgres', CcpTest::enqueue_sql('back-', 5));
	$node->poll_query_until(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE attempts >= 1) >= 2
		FROM ccpurge_status WHERE request_id = $id})
	  or die 'the worker did not try';
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) FROM ccpurge_status
		WHERE request_id = $id AND state NOT IN ('queued', 'sending')}),
		'0',
		'vendor down: the items wait for another attempt');

	$sim->restart;
	CcpTest::wait_request($node, $id, 'vendor back');
	is( CcpTest::done_counts($node, "request_id = $id"),
		'5|5', 'vendor back: every item is done without any action');
	is($sim->deleted_with_prefix('back-'), 5,
		'vendor back: the simulator erased all 5 customers');
}

$node->stop;
done_testing();
