# test/t/031_failure_reports.pl: every queued item that fails for good is
# reported once, in ccpurge's own words.
#
# Any role can LISTEN, so a role with no grants at all listens on
# ccpurge_failed here, and every payload it gets is compared whole; the
# server log lines of the failures are compared whole too.  With
# ccpurge.max_attempts = 1 every failure is final at its first attempt.
# Covers:
#   - a permanent refusal whose vendor text holds an e-mail address, a
#     phone number and a code of its own: the payload and the log line say
#     "refused" and the HTTP status, never the vendor's words, which stay in
#     ccpurge_status;
#   - two batches of one request that fail in the same record transaction
#     with otherwise equal facts (no token: the token endpoint refused with
#     vendor text): two notifications arrive, told apart by their batch
#     ids, whose items add up to the request's;
#   - per-item refusals of a receiver: one notification naming only the
#     requests whose items were refused, with the number of refused items;
#   - 150 requests failing in one batch: the payload names the first 100
#     and counts all 150;
#   - rows failed while the worker resolves a batch (a user mapping dropped
#     after the enqueue, an operation the worker does not know): reported
#     once each, like any other failure;
#   - nothing is reported twice: each collect gets exactly the expected
#     notifications.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use JSON::PP;
use List::Util qw(sum0);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main',
	conf => [ 'ccpurge.max_attempts = 1', "ccpurge.batch_linger = '100ms'" ]);
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'cec', 'ozonetel', 'webhook' ],
	server_options => {
		ozonetel => {
			batch_size => '5',
			rate_limit => '100/second',
			max_inflight => '4'
		},
		webhook => { url => $sim->url . '/webhook/erase' },
	});
$node->safe_psql('postgres', 'CREATE ROLE nobody LOGIN');
my $listener = CcpTest::Listener->new($node, 'ccpurge_failed', user => 'nobody');

# vendor text that must never reach a listener or the server log
my $vendor_text = 'customer kehu@example.com / 13500009999 not found';
my $vendor_leak = qr/kehu\@example\.com|13500009999|CC-404/;

my $json = JSON::PP->new;
my $hint = 'HINT:  The message of these rows in ccpurge_status gives the full reason.';

# batches returns "batch_id:items" of the failed rows of requests @ids,
# one per batch, ordered by batch id.
sub batches
{
	my (@ids) = @_;
	my $list = join(',', @ids);
	return split /\n/, $node->safe_psql(
		'postgres', qq{
		SELECT batch_id || ':' || sum(nitems) FROM ccpurge.queue
		WHERE request_id IN ($list) AND state = 'failed'
		GROUP BY batch_id ORDER BY batch_id});
}

# one_batch returns the batch id of the failed rows of requests @ids,
# checking that they are one batch of $items items.
sub one_batch
{
	my ($items, @ids) = @_;
	my @found = batches(@ids);
	is_deeply([ map { s/^\d+://r } @found ],
		[$items], "requests @ids failed in one batch of $items items");
	return @found ? (split /:/, $found[0])[0] : 'none';
}

# payload returns the notification expected for a failure.
sub payload
{
	my (%f) = @_;
	my @ids = @{ $f{ids} };
	my $named = join(',', @ids[ 0 .. ($#ids < 99 ? $#ids : 99) ]);
	return
	    qq({"batch_id": $f{batch}, "request_ids": [$named], )
	  . qq("request_count": ) . scalar(@ids)
	  . qq(, "server": "$f{server}", "operation": "$f{operation}", )
	  . qq("items": $f{items}, "code": "$f{code}", "http_status": )
	  . ($f{status} // 'null') . '}';
}

# failure_log returns the failure reports in the server log after $offset.
sub failure_log
{
	my ($offset) = @_;
	return CcpTest::log_reports($node, qr/ccpurge requests? \S+ failed: /, $offset);
}

# wait_failed waits until request $id has $n failed items and nothing
# queued or sending.
sub wait_failed
{
	my ($id, $n, $what) = @_;
	ok( CcpTest::wait_finished($node, "request_id = $id")
		  && $node->safe_psql(
			'postgres', qq{
			SELECT count(*) FILTER (WHERE state = 'failed') = $n
			FROM ccpurge_status WHERE request_id = $id}) eq 't',
		"$what: request $id has $n failed items");
	return;
}

# 1. A permanent refusal with personal data and a code in the vendor's text.
{
	my $offset = -s $node->logfile;
	$sim->fault(
		kind => 'body',
		status => 200,
		path => 'cleancustpersonaldata',
		body => qq({"retCode":"CC-404","retMsg":"$vendor_text"}));
	my $id = $node->safe_psql('postgres',
		"SELECT ccpurge_enqueue('delete_customers', ARRAY['nf-a1', 'nf-a2', 'nf-a3'])");
	wait_failed($id, 3, 'refused');
	my $batch = one_batch(3, $id);

	is_deeply(
		[ $listener->collect ],
		[
			payload(
				batch => $batch,
				ids => [$id],
				server => 'cec',
				operation => 'delete_customers',
				items => 3,
				code => 'refused',
				status => 200)
		],
		'refused: one notification, in ccpurge\'s words only');
	is_deeply(
		[ failure_log($offset) ],
		[
			qq(ccpurge request $id failed: 3 items on server "cec", operation "delete_customers"\n)
			  . "DETAIL:  Code refused (HTTP status 200): the vendor refused the request for good.\n"
			  . $hint
		],
		'refused: one log line, in ccpurge\'s words only');
	unlike(slurp_file($node->logfile, $offset), $vendor_leak,
		'refused: the server log holds none of the vendor\'s text');
	my $messages = $node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT code || ': ' || message, ';') FROM ccpurge_status WHERE request_id = $id"
	);
	is($messages, "CC-404: $vendor_text",
		'refused: the vendor\'s code and message stay in ccpurge_status');
}

# 2. Two batches of one request fail in one record transaction with
#    otherwise equal facts: no token, since the token endpoint refused.
{
	my $offset = -s $node->logfile;
	$sim->fault(
		kind => 'body',
		status => 401,
		path => 'generateToken',
		body => qq({"message":"$vendor_text"}));
	my $id = $node->safe_psql(
		'postgres', q{
		SELECT ccpurge_enqueue('delete_bulk_data',
			ARRAY(SELECT (9200000000 + g)::text FROM generate_series(1, 10) g),
			'{"campaign_names": ["QA"]}', 'ozonetel')});
	wait_failed($id, 10, 'no token');
	my @batches = batches($id);
	is(scalar(@batches), 2, 'no token: the request went out in two batches');

	my @expected = map {
		my ($batch, $items) = split /:/;
		payload(
			batch => $batch,
			ids => [$id],
			server => 'ozonetel',
			operation => 'delete_bulk_data',
			items => $items,
			code => 'retries_exhausted',
			status => 401)
	} @batches;
	my @got = $listener->collect;
	is(scalar(@got), 2, 'no token: two notifications arrive');
	is(sum0(map { $json->decode($_)->{items} // 0 } grep { /^\{/ } @got),
		10, 'no token: their items add up to the request\'s 10');
	is_deeply([ sort @got ], [ sort @expected ],
		'no token: both batches are reported, told apart by their batch ids');
	my $line =
	    qq(ccpurge request $id failed: 5 items on server "ozonetel", operation "delete_bulk_data"\n)
	  . 'DETAIL:  Code retries_exhausted (HTTP status 401): the request failed '
	  . "transiently as often as ccpurge.max_attempts (1) allows.\n"
	  . $hint;
	is_deeply([ failure_log($offset) ], [ $line, $line ],
		'no token: one log line per batch');
	unlike(slurp_file($node->logfile, $offset), $vendor_leak,
		'no token: the server log holds none of the vendor\'s text');
}

# 3. A receiver refuses some items: only their requests are named.
{
	my $offset = -s $node->logfile;
	$sim->config(
		webhook_results => 'per_item',
		webhook_fail_items => [ 'nf-c2', 'nf-c5' ]);
	my @ids = split /\n/, $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['nf-c1', 'nf-c2'], '{}', 'webhook');
		SELECT ccpurge_enqueue('erase', ARRAY['nf-c3', 'nf-c4'], '{}', 'webhook');
		SELECT ccpurge_enqueue('erase', ARRAY['nf-c5'], '{}', 'webhook');
		COMMIT;});
	is(scalar(@ids), 3, 'per item: three requests');
	wait_failed($ids[0], 1, 'per item');
	wait_failed($ids[2], 1, 'per item');
	my $batch = one_batch(2, @ids);

	is_deeply(
		[ $listener->collect ],
		[
			payload(
				batch => $batch,
				ids => [ $ids[0], $ids[2] ],
				server => 'webhook',
				operation => 'erase',
				items => 2,
				code => 'items_refused',
				status => 200)
		],
		'per item: one notification naming the two requests with refused items');
	is_deeply(
		[ failure_log($offset) ],
		[
			qq(ccpurge requests $ids[0],$ids[2] failed: 2 items on server "webhook", operation "erase"\n)
			  . 'DETAIL:  Code items_refused (HTTP status 200): the receiver '
			  . "answered per item and refused these items.\n"
			  . $hint
		],
		'per item: one log line naming no item');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM ccpurge_status WHERE request_id = $ids[1] AND state = 'done'"
		),
		'2',
		'per item: the request without refused items is done');
	$sim->config(webhook_results => 'none', webhook_fail_items => []);
}

# 4. 150 requests fail in one batch: 100 are named, all 150 counted.
{
	my $offset = -s $node->logfile;
	$sim->fault(kind => 'status', status => 400, path => 'webhook');
	my @ids = split /\n/, $node->safe_psql(
		'postgres', q{
		SELECT ccpurge_enqueue('erase', ARRAY['nf-d' || g], '{}', 'webhook')
		FROM generate_series(1, 150) g});
	is(scalar(@ids), 150, '150 requests: queued');
	wait_failed($_, 1, '150 requests') for ($ids[0], $ids[-1]);
	my $batch = one_batch(150, @ids);

	is_deeply(
		[ $listener->collect ],
		[
			payload(
				batch => $batch,
				ids => \@ids,
				server => 'webhook',
				operation => 'erase',
				items => 150,
				code => 'refused',
				status => 400)
		],
		'150 requests: the payload names the first 100 and counts 150');
	is_deeply(
		[ failure_log($offset) ],
		[
			'ccpurge requests '
			  . join(',', @ids)
			  . qq( failed: 150 items on server "webhook", operation "erase"\n)
			  . "DETAIL:  Code refused (HTTP status 400): the vendor refused the request for good.\n"
			  . $hint
		],
		'150 requests: the log line names all 150');
}

# 5. Rows failed while the worker resolves their batch.
{
	my $offset = -s $node->logfile;
	$node->safe_psql(
		'postgres', qq{
		SET log_statement = 'none';
		CREATE SERVER gone FOREIGN DATA WRAPPER ccpurge
			OPTIONS (vendor 'webhook', url '@{[ $sim->url ]}/webhook/erase');
		CREATE USER MAPPING FOR PUBLIC SERVER gone
			OPTIONS (signing_secret 'webhook-signing-secret-0123');});
	my $gone = $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['nf-e1', 'nf-e2'], '{}', 'gone');
		DROP USER MAPPING FOR PUBLIC SERVER gone;
		COMMIT;});
	my $unknown = $node->safe_psql(
		'postgres', q{
		BEGIN;
		SELECT ccpurge_enqueue('erase', ARRAY['nf-f1'], '{}', 'webhook') AS id \gset
		UPDATE ccpurge.queue SET operation = 'no_such_operation' WHERE request_id = :id;
		COMMIT;
		SELECT :id;});
	wait_failed($gone, 2, 'mapping dropped');
	wait_failed($unknown, 1, 'unknown operation');
	my $gone_batch = one_batch(2, $gone);
	my $unknown_batch = one_batch(1, $unknown);

	is_deeply(
		[ sort $listener->collect ],
		[
			sort(
				payload(
					batch => $gone_batch,
					ids => [$gone],
					server => 'gone',
					operation => 'erase',
					items => 2,
					code => 'server_unusable'),
				payload(
					batch => $unknown_batch,
					ids => [$unknown],
					server => 'webhook',
					operation => 'no_such_operation',
					items => 1,
					code => 'unknown_operation'))
		],
		'resolve: a dropped mapping and an unknown operation are reported once each');
	is_deeply(
		[ sort(failure_log($offset)) ],
		[
			sort(
				qq(ccpurge request $gone failed: 2 items on server "gone", operation "erase"\n)
				  . 'DETAIL:  Code server_unusable: the server or the requesting '
				  . "role's user mapping for it cannot be used.\n"
				  . $hint,
				qq(ccpurge request $unknown failed: 1 item on server "webhook", operation "no_such_operation"\n)
				  . 'DETAIL:  Code unknown_operation: this version of ccpurge does '
				  . "not know the operation.\n"
				  . $hint)
		],
		'resolve: one log line each');
	like(
		$node->safe_psql(
			'postgres', "SELECT message FROM ccpurge_status WHERE request_id = $gone LIMIT 1"),
		qr/user mapping/,
		'resolve: the row keeps the reason');
}

# Nothing more arrives later: each failure was reported once.
is_deeply([ $listener->collect ], [], 'no failure is reported again');
$listener->quit;

$node->stop;
$sim->stop;
done_testing();
