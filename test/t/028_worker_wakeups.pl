# test/t/028_worker_wakeups.pl: the worker comes back by itself, and
# shared slots run out cleanly.
#
# An idle worker sleeps until a commit that queued work wakes it.  Some
# work becomes possible without such a commit, and the worker must then
# come back on its own.  Covers:
#   - retention while idle: with ccpurge.retention = 5s, the done rows of a
#     request are removed without any further work, while the row of a
#     request that failed for good stays;
#   - rows the worker found locked (a user's SELECT ... FOR UPDATE) stay
#     queued while the lock is held, and once it is rolled back they are
#     sent with no new work queued, ccpurge_wait seeing them finish;
#   - the same for rows held by a ccpurge_cancel that is rolled back;
#   - a lowered ccpurge.retention also applies to rows that finished under
#     the old one (a reload makes the worker time the removal again);
#   - on a node with ccpurge.max_servers = 4, four CEC servers of four
#     vendor accounts with rate_limit '1/hour' fill the shared slots: a fifth server is refused
#     with SQLSTATE 53400 and a hint naming the setting, nothing is sent
#     for it, and the first server's next call is still held by its rate
#     window (canceled by statement_timeout, not sent).
#
# ccpurge.batch_linger is 0, except where a linger of 3 s gives the test
# the time to lock freshly queued rows before the worker claims them.

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
my $node = CcpTest::new_node('main', conf => ["ccpurge.batch_linger = '0'"]);
CcpTest::setup_servers($node, $sim, servers => ['cec']);

# status returns "items|states" of request $id as ccpurge_status shows it.
sub status
{
	my ($id) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || '|' || coalesce(string_agg(DISTINCT state, ','), '')
		FROM ccpurge_status WHERE request_id = $id});
}

# 1. Retention while idle.
{
	CcpTest::set_setting($node, 'ccpurge.retention', '5s', '5s');

	# a request that fails for good: CEC's 400 is not retried
	$sim->fault(
		kind => 'status',
		status => 400,
		count => 1,
		path => 'cleancustpersonaldata');
	my $failed =
	  $node->safe_psql('postgres', CcpTest::enqueue_sql('rt-failed-', 1));
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($failed, '30 s')"),
		't', 'retention: the failing request finishes');
	is( $node->safe_psql(
			'postgres', qq{
		SELECT state || '|' || attempts || '|' || http_status
		FROM ccpurge_status WHERE request_id = $failed}),
		'failed|1|400',
		'retention: it failed at the first attempt with HTTP 400');

	my $done = $node->safe_psql('postgres', CcpTest::enqueue_sql('rt-', 500));
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($done, '60 s')"),
		't', 'retention: 500 items finish');
	is(status($done), '500|done', 'retention: all 500 are done');
	is($sim->deleted_with_prefix('rt-'), 500, 'retention: and erased');

	# nothing else is queued from here on
	ok( CcpTest::poll_sql(
			$node, 'postgres',
			"SELECT count(*) = 0 FROM ccpurge.queue WHERE request_id = $done", 90),
		'retention: the done rows are removed without any new work');
	is( $node->safe_psql(
			'postgres', qq{
		SELECT state || '|' || (now() - finished_at > interval '5 s')
		FROM ccpurge.queue WHERE request_id = $failed}),
		'failed|true',
		'retention: the failed row, older than the retention, is kept');

	CcpTest::set_setting($node, 'ccpurge.retention', undef, '7d');
}

# 2. Rows the worker finds locked by a user.
my $enqueuer = $node->background_psql('postgres');
my $locker = $node->background_psql('postgres');
CcpTest::set_setting($node, 'ccpurge.batch_linger', '3s', '3s');
{
	my $id = $enqueuer->query_safe(
		'BEGIN; ' . CcpTest::enqueue_sql('lk-', 2) . '; COMMIT;');
	is( $locker->query_safe(
			qq{BEGIN;
		SELECT string_agg(state, ',') FROM (
			SELECT state FROM ccpurge.queue WHERE request_id = $id FOR UPDATE) s;}
		),
		'queued',
		'locked rows: the new row is locked while it is still queued');

	# past the linger the worker tries to claim the row, skips it, and
	# tries again a second later
	CcpTest::wait_age($node, $id, 5);
	is(status($id), '2|queued', 'locked rows: the items stay queued while locked');
	is($sim->deleted_with_prefix('lk-'), 0, 'locked rows: nothing was sent');

	$locker->query_safe('ROLLBACK');
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '30 seconds')"),
		't', 'locked rows: once the lock is gone, ccpurge_wait sees them finish');
	is(status($id), '2|done', 'locked rows: both items are done');
	is($sim->deleted_with_prefix('lk-'), 2, 'locked rows: and erased');
}

# 3. Rows held by a ccpurge_cancel that is rolled back.
{
	my $id = $enqueuer->query_safe(
		'BEGIN; ' . CcpTest::enqueue_sql('cx-', 2) . '; COMMIT;');
	is($locker->query_safe("BEGIN; SELECT ccpurge_cancel($id);"),
		'2', 'rolled-back cancel: the cancel holds both items');

	CcpTest::wait_age($node, $id, 5);
	is(status($id), '2|queued',
		'rolled-back cancel: the items stay queued while it is open');
	is($sim->deleted_with_prefix('cx-'), 0,
		'rolled-back cancel: nothing was sent');

	$locker->query_safe('ROLLBACK');
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '30 seconds')"),
		't', 'rolled-back cancel: after the rollback the request finishes');
	is(status($id), '2|done', 'rolled-back cancel: both items are done');
	is($sim->deleted_with_prefix('cx-'), 2, 'rolled-back cancel: and erased');
}
$enqueuer->quit;
$locker->quit;
CcpTest::set_setting($node, 'ccpurge.batch_linger', undef, '0');

# 4. A lowered retention applies to rows that finished under the old one.
{
	my $rows = $node->safe_psql('postgres',
		"SELECT count(*) FROM ccpurge.queue WHERE state = 'done'");
	is($rows, '2', 'lowered retention: the done rows of sections 2 and 3 are kept (7 days)');
	CcpTest::set_setting($node, 'ccpurge.retention', '5s', '5s');

	# The worker timed the next removal under the 7-day retention; the
	# reload makes it look again.
	ok( CcpTest::poll_sql(
			$node, 'postgres',
			"SELECT count(*) = 0 FROM ccpurge.queue WHERE state = 'done'", 40),
		'lowered retention: they are removed without any new work');
	CcpTest::set_setting($node, 'ccpurge.retention', undef, '7d');
}

$node->stop;

# 5. More servers than ccpurge.max_servers.
{
	$sim->reset;
	my $slots = CcpTest::new_node('slots', conf => ['ccpurge.max_servers = 4']);
	$slots->safe_psql('postgres', 'CREATE EXTENSION ccpurge');
	# six accounts: slots belong to vendor accounts, so each server's URL
	# differs, each a spelling of the simulator's loopback address
	my @hosts = qw(127.0.0.1 localhost 127.1 127.0.1 2130706433 0x7f000001);
	CcpTest::create_server($slots, "cec$_",
		url => 'http://' . $hosts[ $_ - 1 ] . ':' . $sim->port,
		options => { rate_limit => '1/hour' })
	  for 1 .. 6;

	for my $n (1 .. 4)
	{
		is( $slots->safe_psql(
				'postgres',
				"SELECT item || ':' || ok FROM ccpurge_delete_customers(ARRAY['ms-$n'], 'cec$n')"
			),
			"ms-$n:true",
			"max_servers: a call on cec$n is sent");
	}
	for my $n (5, 6)
	{
		my ($ret, $out, $err) = $slots->psql(
			'postgres', qq{\\set VERBOSITY verbose
SELECT * FROM ccpurge_delete_customers(ARRAY['ms-$n'], 'cec$n');});
		like(
			$err,
			qr/ERROR:  53400: too many ccpurge servers are in use$/m,
			"max_servers: a call on cec$n fails with SQLSTATE 53400 (configuration_limit_exceeded)"
		);
		like(
			$err,
			qr/^HINT:  Increase "ccpurge\.max_servers" and restart the server\.$/m,
			"max_servers: the hint names ccpurge.max_servers");
	}

	# cec1's window of one request an hour is still held: the call waits
	my ($ret, $out, $err) = $slots->psql(
		'postgres', q{\set VERBOSITY verbose
SET statement_timeout = '2s';
SELECT * FROM ccpurge_delete_customers(ARRAY['ms-1b'], 'cec1');});
	like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
		'max_servers: a second call on cec1 waits for its window until the timeout');

	my $state = $sim->state;
	is($state->{requests}{cec_customers}, 4,
		'max_servers: the simulator received 4 deletion requests');
	is($state->{requests}{cec_token}, 4,
		'max_servers: and 4 token requests, one per server');
	is_deeply($sim->deleted('cec_customers'),
		[ 'ms-1', 'ms-2', 'ms-3', 'ms-4' ],
		'max_servers: it erased the items of cec1 to cec4 only');
	$slots->stop;
}

done_testing();
