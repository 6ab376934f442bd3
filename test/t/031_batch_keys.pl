# test/t/031_batch_keys.pl: the Idempotency-Key of queued webhook batches.
#
# The key is the same for every automatic attempt of one batch, and a new
# attempt generation (ccpurge_retry) gets a new one.  A batch queued again
# after a transient failure keeps its rows, and so its key, until it is
# final.  Covers, against the simulator's webhook receiver (which answers a
# repeated key from its idempotency table, and refuses a known key with
# another body):
#   - the receiver refuses one item ("locked-1") after a transient 503:
#     both automatic attempts carry one key, the item ends failed; once the
#     lock is gone, ccpurge_retry sends it with a new key, the receiver
#     erases it and the row is done (with the key of the first generation,
#     the receiver would replay its old answer and the row would stay
#     failed for good);
#   - a batch queued again after a 503 is not coalesced with a newer
#     request queued meanwhile: its second attempt has its own key and its
#     own items only, and the newer request goes out on its own;
#   - when one of the two requests of a batch waiting for its retry is
#     canceled, the other goes out in a new attempt generation, with a new
#     key: the key is never sent with another body;
#   - a batch made of a whole row and part of a split row is sent again as
#     exactly that batch, with its key, after the rest of the split row has
#     gone out in a batch of its own;
#   - rows a stopped worker left "sending" are sent again by the next one
#     with the same key, which the receiver answers from its idempotency
#     table.
# The backoff is an hour, so no attempt is made before the test makes the
# rows due (make_due).

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
		"ccpurge.retry_backoff = '1h'", "ccpurge.retry_backoff_max = '1h'",
		"ccpurge.batch_linger = 0"
	]);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['webhook'],
	server_options => { webhook => { url => $sim->url . '/webhook/erase' } });

# enqueue queues @items for the webhook in one request and returns its id.
sub enqueue
{
	my (@items) = @_;
	my $array = join(', ', map { CcpTest::quote_literal($_) } @items);
	return $node->safe_psql('postgres',
		"SELECT ccpurge_enqueue('erase', ARRAY[$array])");
}

# wait_backoff waits until every item of request $id is queued again after
# $attempts attempts.
sub wait_backoff
{
	my ($id, $attempts, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT bool_and(state = 'queued' AND attempts = $attempts)
		FROM ccpurge_status WHERE request_id = $id}),
		"$what: request $id is queued again after $attempts attempt(s)");
	return;
}

# make_due ends the backoff of the queued rows of the requests @ids and
# wakes the worker (a reload sets its latch).
sub make_due
{
	my (@ids) = @_;
	$node->safe_psql(
		'postgres', sprintf(q{
		UPDATE ccpurge.queue SET next_attempt_at = now()
		WHERE request_id IN (%s) AND state = 'queued';
		SELECT pg_reload_conf();}, join(', ', @ids)));
	return;
}

# summary returns "items|states|attempts|messages" of request $id.
sub summary
{
	my ($id) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || '|' || string_agg(DISTINCT state, ',') || '|'
			|| string_agg(DISTINCT attempts::text, ',') || '|'
			|| coalesce(string_agg(DISTINCT message, ','), '')
		FROM ccpurge_status WHERE request_id = $id});
}

# webhook_log returns the simulator's log entries of webhook requests,
# oldest first, from the $from-th on (counting from 0).
sub webhook_log
{
	my ($from) = @_;
	my @log = grep { $_->{endpoint} eq 'webhook' } @{ $sim->request_log(10000) };
	return @log[ $from .. $#log ];
}

# webhook_count returns how many webhook requests the simulator logged.
sub webhook_count
{
	my @log = webhook_log(0);
	return scalar @log;
}

# describe shows log entries as "status/items" (items -1: a fault answered
# before the items were read).
sub describe
{
	return join(' ', map { "$_->{status}/$_->{items}" } @_);
}

# 1. The receiver refuses an item, then the lock goes away.
{
	my $from = webhook_count();
	$sim->config(
		webhook_results => 'per_item',
		webhook_fail_items => ['locked-1']);
	$sim->fault(kind => 'status', status => 503, count => 1, path => '/webhook/');
	my $id = enqueue('locked-1');
	wait_backoff($id, 1, 'refused item');
	make_due($id);
	CcpTest::wait_request($node, $id, 'refused item');
	is(summary($id), '1|failed|2|item is locked',
		'refused item: failed after the transient failure and the refusal');

	$sim->config(webhook_fail_items => []);
	is($node->safe_psql('postgres', "SELECT ccpurge_retry($id)"),
		'1', 'refused item: ccpurge_retry queues it again');
	CcpTest::wait_request($node, $id, 'refused item retried');
	is(summary($id), '1|done|1|1 of 1 item erased',
		'refused item: after the retry it is done');
	is_deeply($sim->deleted('webhook'), ['locked-1'],
		'refused item: the receiver erased it');

	my @log = webhook_log($from);
	is(describe(@log), '503/-1 200/1 200/1',
		'refused item: a 503, the refusal and the retry reached the receiver');
	is($log[1]{idempotency_key}, $log[0]{idempotency_key},
		'refused item: the automatic attempts carry one key');
	isnt($log[2]{idempotency_key}, $log[0]{idempotency_key},
		'refused item: ccpurge_retry sent a new key');
	is($sim->state->{webhook}{idempotent_repeats},
		0, 'refused item: the receiver never answered a repeat');
	$sim->config(webhook_results => 'none');
}

# 2. A newer request queued while a batch waits for its retry.
{
	my $from = webhook_count();
	$sim->fault(kind => 'status', status => 503, count => 1, path => '/webhook/');
	my $older = enqueue('a-1', 'a-2');
	wait_backoff($older, 1, 'newer request');

	# the newer request and the end of the backoff in one transaction: at
	# its commit both are due at once
	my $newer = $node->safe_psql(
		'postgres', qq{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['b-1']);
		UPDATE ccpurge.queue SET next_attempt_at = now()
		 WHERE request_id = $older AND state = 'queued';
		COMMIT;});
	CcpTest::wait_request($node, $older, 'newer request');
	CcpTest::wait_request($node, $newer, 'newer request');
	is(summary($older), '2|done|2|erased', 'newer request: the retried batch is done');
	is(summary($newer), '1|done|1|erased', 'newer request: the newer request is done');

	my @log = webhook_log($from);
	my $key = $log[0]{idempotency_key};
	is(describe($log[0]), '503/-1', 'newer request: the first attempt failed');
	my @again = grep { $_->{idempotency_key} eq $key } @log[ 1 .. $#log ];
	my @other = grep { $_->{idempotency_key} ne $key } @log[ 1 .. $#log ];
	is(describe(@again), '200/2',
		'newer request: the second attempt has the key and the 2 items of the first');
	is(describe(@other), '200/1',
		'newer request: the newer request went out alone with a key of its own');
	is_deeply($sim->deleted('webhook'), [ 'a-1', 'a-2', 'b-1', 'locked-1' ],
		'newer request: the receiver erased every item');
}

# 3. One of the two requests of a batch waiting for its retry is canceled.
{
	my $from = webhook_count();
	$sim->fault(kind => 'status', status => 503, count => 1, path => '/webhook/');
	my ($gone, $kept) = split /\n/,
	  $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['f-1']);
		SELECT ccpurge_enqueue('erase', ARRAY['g-1']);
		COMMIT;});
	wait_backoff($gone, 1, 'canceled part');
	wait_backoff($kept, 1, 'canceled part');
	is($node->safe_psql('postgres', "SELECT ccpurge_cancel($gone)"),
		'1', 'canceled part: one request of the batch is canceled');
	make_due($kept);
	CcpTest::wait_request($node, $kept, 'canceled part');
	is(summary($kept), '1|done|2|erased', 'canceled part: the rest is done');
	like(summary($gone), qr/^1\|canceled\|1\|canceled by /,
		'canceled part: the canceled item stays canceled');

	my @log = webhook_log($from);
	is(describe(@log), '503/-1 200/1',
		'canceled part: the batch, then the rest of it alone');
	isnt($log[1]{idempotency_key}, $log[0]{idempotency_key},
		'canceled part: the rest went out under a new key');
	ok(!grep({ $_ eq 'f-1' } @{ $sim->deleted('webhook') }),
		'canceled part: the canceled item was not erased');
}

# 4. A batch that took part of a split row.  With batch_size 2, a request
#    of 1 item and one of 2 items make a batch of the first and half of the
#    second; max_inflight 1 sends the two batches one after the other.
{
	$node->safe_psql('postgres',
		"ALTER SERVER webhook OPTIONS (ADD batch_size '2', ADD max_inflight '1')");
	my $from = webhook_count();
	$sim->fault(kind => 'status', status => 503, count => 1, path => '/webhook/');
	my ($c, $d) = split /\n/,
	  $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['c-1']);
		SELECT ccpurge_enqueue('erase', ARRAY['d-1', 'd-2']);
		COMMIT;});
	wait_backoff($c, 1, 'split row');
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT string_agg(state || '/' || attempts, ',' ORDER BY item)
		FROM ccpurge_status WHERE request_id = $d},
			'queued/1,done/1'),
		'split row: the rest of the split row went out on its own');
	make_due($c, $d);
	CcpTest::wait_request($node, $c, 'split row');
	CcpTest::wait_request($node, $d, 'split row');
	is(summary($c), '1|done|2|erased', 'split row: the whole row is done');
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(state || '/' || attempts, ',' ORDER BY attempts DESC)
		FROM ccpurge_status WHERE request_id = $d}),
		'done/2,done/1', 'split row: both parts of the split row are done');

	my @log = webhook_log($from);
	is(describe(@log), '503/-1 200/1 200/2',
		'split row: the batch, the rest of the row, the batch again');
	is($log[2]{idempotency_key}, $log[0]{idempotency_key},
		'split row: the batch was sent again with its key');
	isnt($log[1]{idempotency_key}, $log[0]{idempotency_key},
		'split row: the rest of the row had a key of its own');
	$node->safe_psql('postgres',
		"ALTER SERVER webhook OPTIONS (DROP batch_size, DROP max_inflight)");
}

# 5. The worker stops while a batch is being sent.
{
	my $from = webhook_count();
	my $before = $sim->state;
	$sim->fault(kind => 'delay', delay_ms => 2000, count => 1, path => '/webhook/');
	my $e = enqueue('e-1');
	ok( $sim->wait_for(
			sub { $_[0]{requests}{webhook} > $before->{requests}{webhook} }),
		'worker restart: the request reached the receiver');
	my $pid = CcpTest::worker_pid($node);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	CcpTest::wait_request($node, $e, 'worker restart');
	is(summary($e), '1|done|1|erased', 'worker restart: the item is done');
	isnt(CcpTest::worker_pid($node), $pid, 'worker restart: another worker sent it');

	my @log = webhook_log($from);
	is(scalar @log, 2, 'worker restart: the batch was sent twice');
	is($log[1]{idempotency_key}, $log[0]{idempotency_key},
		'worker restart: with the same key');
	is($sim->state->{webhook}{idempotent_repeats},
		$before->{webhook}{idempotent_repeats} + 1,
		'worker restart: the receiver answered the second from its table');
}

$node->stop;
$sim->stop;
done_testing();
