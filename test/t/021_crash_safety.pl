# test/t/021_crash_safety.pl: the queue loses nothing when the worker or
# the whole server dies in the middle of a drain.
#
# The simulator answers every customer-deletion request after 250 ms and
# the server allows one request in flight, so 20,000 items (20 requests)
# take about five seconds to drain.  In the middle of a drain:
#   - kill -9 of the worker: the postmaster restarts every process, the
#     worker comes back, sends again what was in flight, and every item
#     ends done; the simulator's deleted set holds all 20,000;
#   - an immediate shutdown and a start: the same;
#   - a fast shutdown and a start: the same.
# The worker is killed three times in the first drain.
# Both runs also check that no item was lost or duplicated in the queue
# itself (exactly 20,000 status rows, all done), that the restarted
# worker's log line counts the items and rows it queued again, and that
# every request the simulator received has a request-log row: the worker
# writes a request's row before the request leaves, so the one in flight
# at the crash keeps a row marked "outcome unknown".

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

my $nitems = 20000;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main', conf => ['restart_after_crash = on']);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['cec'],
	server_options => { cec => { max_inflight => '1' } });

# a slow vendor, for the whole test
$sim->fault(
	kind => 'delay',
	delay_ms => 250,
	count => 100000,
	path => 'cleancustpersonaldata');

# wait_partly_done waits until at least $n items starting with $prefix are
# done, and returns "done|unfinished" at that moment.
sub wait_partly_done
{
	my ($prefix, $n) = @_;
	CcpTest::wait_progress($node, CcpTest::prefix_sql($prefix, $nitems), $n);
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'done') || '|'
			|| count(*) FILTER (WHERE state IN ('queued', 'sending'))
		FROM ccpurge_status WHERE @{[ CcpTest::prefix_sql($prefix, $nitems) ]}});
}

# check_all_done waits until every item starting with $prefix is finished
# and checks that all $nitems are done, in the queue and at the vendor.
sub check_all_done
{
	my ($prefix, $what) = @_;
	ok(CcpTest::wait_finished($node, CcpTest::prefix_sql($prefix, $nitems)),
		"$what: the queue drained");
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) || '|' || count(DISTINCT item) || '|'
			|| count(*) FILTER (WHERE state = 'done')
		FROM ccpurge_status WHERE @{[ CcpTest::prefix_sql($prefix, $nitems) ]}}),
		"$nitems|$nitems|$nitems",
		"$what: all $nitems items are in the queue once, and done");
	is($sim->deleted_with_prefix($prefix), $nitems,
		"$what: the simulator erased all $nitems customers");
	return;
}

# check_log checks that the request log has a row for every deletion
# request the simulator received: rows with an answer are at most as many
# as the requests received, and with the rows whose answer was never
# recorded ("outcome unknown": sent, or about to be sent, when the worker
# died) at least as many.  Without a record written before sending, the
# request in flight at a crash had none.
sub check_log
{
	my ($what) = @_;
	my $received = $sim->state->{requests}{cec_customers};
	my ($known, $unknown) = split /\|/,
	  $node->safe_psql(
		'postgres', q{
		SELECT count(*) FILTER (WHERE ok IS NOT NULL) || '|'
			|| count(*) FILTER (WHERE ok IS NULL AND code = 'outcome_unknown')
		FROM ccpurge.request_log WHERE operation = 'delete_customers'});
	note("$what: $received requests received, $known log rows with an answer, $unknown outcome unknown");
	cmp_ok($known, '<=', $received, "$what: no answer is logged that was not received");
	cmp_ok($known + $unknown, '>=', $received,
		"$what: every request received has a log row ($received received, $known + $unknown rows)");
	is( $node->safe_psql(
			'postgres', q{
		SELECT count(*) FROM ccpurge.request_log
		WHERE operation = 'delete_customers' AND code = 'pending'}),
		'0', "$what: no row is left pending");
	return;
}

# 1. kill -9 of the worker in the middle of a drain.
{
	my $prefix = 'kill9-';
	my $pid = CcpTest::worker_pid($node);
	like($pid, qr/^\d+$/, 'the worker runs');

	$node->safe_psql('postgres', CcpTest::enqueue_sql($prefix, $nitems));
	my ($done, $left) = split /\|/, wait_partly_done($prefix, 2000);
	cmp_ok($left, '>', 0, "kill -9: the drain is in progress ($done done)");

	# three times, each after more progress; the worker may have been
	# restarted in between: kill the current one
	for my $round (1 .. 3)
	{
		if ($round > 1)
		{
			($done, $left) = split /\|/,
			  wait_partly_done($prefix, $done + 2000);
			cmp_ok($left, '>', 0,
				"kill -9 #$round: the drain is still in progress ($done done)");
		}
		$pid = CcpTest::worker_pid($node);
		my $log_offset = -s $node->logfile;
		ok(kill('KILL', $pid), "kill -9 #$round of worker $pid");

		ok( $node->poll_query_until(
				'postgres', qq{
			SELECT count(*) = 1 FROM pg_stat_activity
			WHERE backend_type = 'ccpurge worker' AND pid <> $pid}),
			"kill -9 #$round: a new worker runs");
		ok( $node->log_contains(
				qr/background worker "ccpurge worker" \(PID $pid\) was terminated by signal 9/,
				$log_offset),
			"kill -9 #$round: the postmaster saw the worker die");
	}
	check_all_done($prefix, 'kill -9');
	check_log('kill -9');
}

# 2. Immediate shutdown and a start in the middle of a drain; this time the
#    items come from 20 transactions of 1,000 items each.
{
	my $prefix = 'immediate-';
	my $per = $nitems / 20;
	for my $i (0 .. 19)
	{
		$node->safe_psql('postgres',
			CcpTest::enqueue_sql($prefix, $per, first => $i * $per + 1));
	}
	my ($done, $left) = split /\|/, wait_partly_done($prefix, 2000);
	cmp_ok($left, '>', 0,
		"immediate shutdown: the drain is in progress ($done done)");

	$node->stop('immediate');
	$node->start;
	like(CcpTest::worker_pid($node), qr/^\d+$/, 'immediate shutdown: the worker runs again');
	check_all_done($prefix, 'immediate shutdown');
	check_log('immediate shutdown');
}

# 3. A fast shutdown and a start in the middle of a drain: the worker
#    stops at once, leaving the request in flight without its answer.
{
	my $prefix = 'fast-';
	$node->safe_psql('postgres', CcpTest::enqueue_sql($prefix, $nitems));
	my ($done, $left) = split /\|/, wait_partly_done($prefix, 2000);
	cmp_ok($left, '>', 0, "fast shutdown: the drain is in progress ($done done)");

	$node->stop('fast');
	$node->start;
	like(CcpTest::worker_pid($node), qr/^\d+$/, 'fast shutdown: the worker runs again');
	check_all_done($prefix, 'fast shutdown');
	check_log('fast shutdown');
}

# Nothing failed, and the log says why items were sent again.
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM ccpurge_status WHERE state <> 'done'"),
	'0',
	'no item ended in another state than done');

# Each batch in flight was one queue row of 1,000 items, and a restarted
# worker that found one says so.  (With the worker's asynchronous commits,
# a crash may also lose the claim, and the restart then finds nothing.)
my @requeued = CcpTest::log_reports($node, qr/ccpurge worker queued /);
note('sent again after restarts: ' . join('; ', @requeued));
is_deeply(
	\@requeued,
	[
		(
			"ccpurge worker queued 1000 interrupted items again\n"
			  . 'DETAIL:  1 queue row was left in state "sending" when a worker stopped or failed.'
		) x @requeued
	],
	'each restart that queued items again counted 1,000 items in 1 row');

# The worker chained every row, those of interrupted requests included.
ok( $node->poll_query_until(
		'postgres',
		'SELECT count(*) = 0 FROM ccpurge.request_log WHERE chain_seq IS NULL'),
	'every log row is chained');
is($node->safe_psql('postgres', 'SELECT ok FROM ccpurge_verify_log()'),
	't', 'the chain verifies after the crashes');

$node->stop;
done_testing();
