# test/t/022_retries.pl: how the worker retries, gives up and cancels.
#
# Covers, against the vendor simulator:
#   - the simulator down for 10 seconds: queued items are retried with
#     backoff (attempts > 1 in ccpurge_status, for the batches that probe
#     the server while its circuit breaker is open) and all are done once
#     it is back, on the same port;
#   - every token expired in the middle of a 20,000-item drain: the worker
#     gets a new one and no item fails;
#   - permanent vendor errors (iSales 0200007 "campaign does not exist", a
#     CEC HTTP 400) fail the item at once (attempts = 1) with the vendor's
#     message, and after the cause is fixed ccpurge_retry requeues it and
#     it ends done;
#   - ccpurge.max_attempts = 3 (set with a reload, an optional cap on top
#     of ccpurge.retry_for) and a persistent 503: the item is failed after
#     exactly 3 requests;
#   - ccpurge_cancel on queued items marks them canceled and they are never
#     sent (until ccpurge_retry queues them again).

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
		"ccpurge.retry_backoff = '200ms'",
		"ccpurge.retry_backoff_max = '2s'",
		# ccpurge.max_attempts stays 0 (no cap): retried for ccpurge.retry_for
	]);
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'cec', 'isales' ],
	server_options => { cec => { max_inflight => '1' } });


# enqueue_customers queues customer numbers "$prefix1" .. "$prefix$n" in
# one request and returns its id.
sub enqueue_customers
{
	my ($prefix, $n) = @_;
	return $node->safe_psql('postgres', CcpTest::enqueue_sql($prefix, $n));
}

# request_summary returns "items|state|min attempts|max attempts|
# http_status|code|message" of request $id, with states and messages
# joined when they differ.
sub request_summary
{
	my ($id) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || '|' || string_agg(DISTINCT state, ',') || '|'
			|| min(attempts) || '|' || max(attempts) || '|'
			|| coalesce(string_agg(DISTINCT http_status::text, ','), '') || '|'
			|| coalesce(string_agg(DISTINCT code, ','), '') || '|'
			|| coalesce(string_agg(DISTINCT message, ','), '')
		FROM ccpurge_status WHERE request_id = $id});
}

# 1. The simulator is down until the worker has retried.
{
	my $prefix = 'down-';
	$sim->stop;
	my $id = enqueue_customers($prefix, 3000);
	# the worker has tried, failed and queued the items again
	$node->poll_query_until('postgres', qq{
		SELECT max(attempts) > 1 FROM ccpurge_status WHERE request_id = $id})
	  or die 'the worker did not retry';

	my ($done, $maxatt, $msg) = split /\|/,
	  $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'done') || '|' || max(attempts)
			|| '|' || coalesce(max(message), '')
		FROM ccpurge_status WHERE request_id = $id});
	is($done, 0, 'vendor down: nothing is done while it is down');
	cmp_ok($maxatt, '>', 1, "vendor down: the worker retried ($maxatt attempts)");
	isnt($msg, '', "vendor down: the reason is recorded ($msg)");
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) FROM ccpurge_status
		WHERE request_id = $id AND state NOT IN ('queued', 'sending')}),
		'0',
		'vendor down: nothing failed, everything is waiting for a retry');

	$sim->restart;
	CcpTest::wait_request($node, $id, 'vendor back');
	my @s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]", '3000|done', 'vendor back: all 3000 items are done');
	# the batches that probed the server were retried; those the circuit
	# breaker held back (056_circuit_breaker) went once, after recovery
	cmp_ok($s[3], '>', 1,
		"vendor back: the probing batches were retried ($s[2]..$s[3] attempts)");
	cmp_ok($s[2], '>=', 1, 'vendor back: every item was sent');
	is($sim->deleted_with_prefix($prefix), 3000,
		'vendor back: the simulator erased all 3000 customers');
}

# 2. Tokens expire in the middle of a drain.
{
	my $prefix = 'expire-';
	$sim->fault(
		kind => 'delay',
		delay_ms => 100,
		count => 100000,
		path => 'cleancustpersonaldata');
	my $id = enqueue_customers($prefix, 20000);
	$node->poll_query_until(
		'postgres', qq{
		SELECT count(*) >= 3000 FROM ccpurge_status
		WHERE request_id = $id AND state = 'done'})
	  or die 'the drain did not progress';

	my $before = $sim->state;
	$sim->fault(kind => 'expire_tokens');
	my $left = $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FROM ccpurge_status
		WHERE request_id = $id AND state IN ('queued', 'sending')});
	cmp_ok($left, '>', 2000,
		"token expiry: $left items were still to be sent when tokens expired");

	CcpTest::wait_request($node, $id, 'token expiry');
	my $after = $sim->state;
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'done')
		FROM ccpurge_status WHERE request_id = $id}),
		'20000|20000',
		'token expiry: no item failed, all 20000 are done');
	cmp_ok($after->{rejections}{auth}, '>', $before->{rejections}{auth},
		'token expiry: the vendor did refuse an expired token');
	cmp_ok($after->{tokens_issued}{cec}, '>', $before->{tokens_issued}{cec},
		'token expiry: the worker got a new token');
	is($sim->deleted_with_prefix($prefix), 20000,
		'token expiry: the simulator erased all 20000 customers');
	$sim->post('/_sim/fault/clear');
}

# 3a. A permanent iSales error: the campaign does not exist.
{
	$sim->config(isales_missing_campaigns => [77]);
	my $before = $sim->state->{requests}{isales_caller_numbers};
	my $id = $node->safe_psql(
		'postgres', q{
		SELECT ccpurge_enqueue('delete_caller_numbers',
			ARRAY['5245241', '5245242'], '{"vdn_id": 1, "campaign_id": 77}')});
	CcpTest::wait_request($node, $id, 'missing campaign');
	my @s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]|$s[2]|$s[3]|$s[5]", '2|failed|1|1|0200007',
		'missing campaign: both items failed at once with code 0200007');
	like($s[6], qr/campaign does not exist/i,
		"missing campaign: the vendor's message is kept ($s[6])");
	is($sim->state->{requests}{isales_caller_numbers} - $before,
		1, 'missing campaign: one request, not retried');

	$sim->config(isales_missing_campaigns => []);
	is($node->safe_psql('postgres', "SELECT ccpurge_retry($id)"),
		'2', 'missing campaign: ccpurge_retry requeues both items');
	CcpTest::wait_request($node, $id, 'missing campaign retried');
	@s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]|$s[2]|$s[5]", '2|done|1|0200000',
		'missing campaign: after the retry both items are done');
	my %deleted =
	  map { $_ => 1 } @{ $sim->deleted('isales_caller_numbers') };
	ok($deleted{'1/77/5245241'} && $deleted{'1/77/5245242'},
		'missing campaign: the simulator erased both calling numbers');
}

# 3b. A permanent CEC error: HTTP 400.
{
	$sim->fault(
		kind => 'status',
		status => 400,
		count => 1,
		path => 'cleancustpersonaldata');
	my $id = enqueue_customers('bad-request-', 3);
	CcpTest::wait_request($node, $id, 'HTTP 400');
	my @s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]|$s[2]|$s[3]|$s[4]", '3|failed|1|1|400',
		'HTTP 400: the items failed at once');
	like($s[6], qr/HTTP 400/, "HTTP 400: the message says why ($s[6])");
	is($sim->deleted_with_prefix('bad-request-'), 0, 'HTTP 400: nothing was erased');

	is($node->safe_psql('postgres', "SELECT ccpurge_retry($id)"),
		'3', 'HTTP 400: ccpurge_retry requeues the items');
	CcpTest::wait_request($node, $id, 'HTTP 400 retried');
	@s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]", '3|done', 'HTTP 400: after the retry the items are done');
	is($sim->deleted_with_prefix('bad-request-'), 3,
		'HTTP 400: the simulator erased them');
	is($node->safe_psql('postgres', "SELECT ccpurge_retry($id)"),
		'0', 'HTTP 400: a second ccpurge_retry finds nothing to requeue');
}

# 4. ccpurge.max_attempts = 3 and a vendor that always answers 503.
{
	CcpTest::set_setting($node, 'ccpurge.max_attempts', '3', '3');
	$sim->fault(
		kind => 'status',
		status => 503,
		count => 1000,
		path => 'cleancustpersonaldata');
	my $before = $sim->state->{requests}{cec_customers};
	my $id = enqueue_customers('always-503-', 5);
	CcpTest::wait_request($node, $id, 'persistent 503');
	my @s = split /\|/, request_summary($id);
	is("$s[0]|$s[1]|$s[2]|$s[3]|$s[4]", '5|failed|3|3|503',
		'persistent 503: the items failed after 3 attempts');
	is($sim->state->{requests}{cec_customers} - $before,
		3, 'persistent 503: exactly 3 requests were made');
	$sim->post('/_sim/fault/clear');
	CcpTest::set_setting($node, 'ccpurge.max_attempts', undef, '0');
}

# 5. ccpurge_cancel.  A long batch linger keeps a partial batch queued
#    while it is canceled.
{
	CcpTest::set_setting($node, 'ccpurge.batch_linger', '30s', '30s');
	my $before = $sim->state->{requests}{cec_customers};
	my $id = enqueue_customers('cancel-', 5);
	is($node->safe_psql('postgres', "SELECT ccpurge_cancel($id)"),
		'5', 'cancel: ccpurge_cancel cancels the 5 queued items');

	# canceled in the transaction that queued them
	my $id2 = $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('delete_customers', ARRAY['cancel-x1', 'cancel-x2']) \gset
		SELECT ccpurge_cancel(:ccpurge_enqueue);
		COMMIT;
		SELECT :ccpurge_enqueue;});
	($id2) = reverse split /\n/, $id2;

	CcpTest::set_setting($node, 'ccpurge.batch_linger', undef, '200ms');
	# work queued after the cancel goes out, so the worker has looked
	my $later = enqueue_customers('after-cancel-', 5);
	CcpTest::wait_request($node, $later, 'cancel');
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '1 s')"),
		't', 'cancel: the canceled request counts as finished');
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) || '|' || string_agg(DISTINCT state, ',')
		FROM ccpurge_status WHERE request_id IN ($id, $id2)}),
		'7|canceled',
		'cancel: all 7 items are still canceled');
	is($sim->deleted_with_prefix('cancel-'), 0,
		'cancel: the simulator erased none of them');
	is($sim->state->{requests}{cec_customers} - $before,
		1, 'cancel: only the later request was sent');
	is($node->safe_psql('postgres', "SELECT ccpurge_cancel($later)"),
		'0', 'cancel: a finished request has nothing to cancel');

	# a canceled item keeps only its digest: there is nothing to send again
	is($node->safe_psql('postgres', "SELECT ccpurge_retry($id)"),
		'0', 'cancel: ccpurge_retry leaves the canceled items, which keep no clear text');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM ccpurge_status WHERE request_id = $id AND item LIKE 'hmac:%'"),
		'5', 'cancel: ccpurge_status shows their digests');
}

$node->stop;
done_testing();
