#
# test/bench/databases_bench.pl: a worker per database, one vendor account
# shared by databases, and restarts under Ozonetel's token limit.
#
# Three measures, each against a baseline of the same run:
#   1. drain: database d1 alone drains N queued CEC customer items
#      (CCP_BENCH_N, default 500000), timed from COMMIT to its last
#      finished_at; then d1 and d2 each queue N in one transaction at once
#      and both are timed from the first COMMIT to the last finished_at of
#      both.  It prints the items/s of each and their ratio (target: two
#      databases at least 0.8x of one);
#   2. one Ozonetel account: servers in d1 and d2 for the same simulator
#      URL and username, both at rate_limit '2/minute' (the simulator's
#      limit), each with 20 requests of 100 numbers queued, for
#      CCP_BENCH_OZ_S seconds (default 180): tokens issued (target 1),
#      "Max limit exceeded" (target 0) and utilisation, the DeleteBulkData
#      requests accepted against the 2 a minute allowed (target >= 95%);
#   3. restarts: 12 restarts (every other one immediate), each followed by
#      one Ozonetel erasure, against a simulator allowing 10 tokens an
#      hour and 10 requests a minute (server rate_limit '10/minute'):
#      tokens issued, tokens refused and rate rejections (targets 1, 0, 0).
# This is a benchmark, not a test: it fails only when an item is not done
# or erased, never on a figure.
#
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $n = $ENV{CCP_BENCH_N} // 500_000;
my $oz_s = $ENV{CCP_BENCH_OZ_S} // 180;
my $campaign = 'QA_Outbound_Predictive';

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node(
	'bench_databases',
	conf => [
		'log_statement = none', 'max_wal_size = 4GB', 'jit = off',
		'restart_after_crash = on'
	]);
for my $db (qw(d1 d2))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	CcpTest::setup_servers($node, $sim, dbname => $db, servers => ['cec']);
}

# drain queues $n items in each database of @dbs at once (one transaction
# each, committed one after the other) and returns the seconds from the
# first COMMIT to the last item done.
sub drain
{
	my ($tag, @dbs) = @_;
	my (%bg, %id);
	for my $db (@dbs)
	{
		$bg{$db} = $node->background_psql($db);
		$bg{$db}->query_safe('BEGIN');
		$id{$db} = $bg{$db}->query_safe(
			"SELECT ccpurge_enqueue('delete_customers', ARRAY(SELECT '$tag-$db-' || g FROM generate_series(1, $n) g))"
		);
	}
	my $start = $node->safe_psql('postgres', 'SELECT extract(epoch FROM clock_timestamp())');
	$bg{$_}->query_safe('COMMIT') for @dbs;
	my $end = 0;
	for my $db (@dbs)
	{
		is($node->safe_psql($db, "SELECT ccpurge_wait($id{$db}, '30 min')"),
			't', "$tag: the request of $db finished");
		my $last = $node->safe_psql($db,
			"SELECT extract(epoch FROM max(finished_at)) FROM ccpurge.queue WHERE request_id = $id{$db}");
		$end = $last if $last > $end;
		$bg{$db}->quit;
	}
	return $end - $start;
}

# 1. One database, then two at once.
my $t1 = drain('one', 'd1');
my $t2 = drain('two', 'd1', 'd2');
my ($r1, $r2) = ($n / $t1, 2 * $n / $t2);
diag(sprintf("drain: one database %d items in %.2f s = %.0f items/s; "
	  . "two databases %d items in %.2f s = %.0f items/s; ratio %.2fx (target >= 0.8x)",
	$n, $t1, $r1, 2 * $n, $t2, $r2, $r2 / $r1));
is($sim->deleted_with_prefix("two-d2-"), $n, 'drain: d2 erased every item');

# 2. One Ozonetel account from both databases at 2/minute.
$sim->reset;
for my $db (qw(d1 d2))
{
	CcpTest::setup_servers($node, $sim, dbname => $db, servers => ['ozonetel'],
		server_options => { ozonetel => { rate_limit => '2/minute' } });
}
my $t0 = time;
for my $db (qw(d1 d2))
{
	my $base = $db eq 'd1' ? 7000000000 : 8000000000;
	$node->safe_psql(
		$db, qq{
		SELECT ccpurge_enqueue('delete_bulk_data',
			ARRAY(SELECT ($base + g)::text FROM generate_series(1, 2000) g),
			'{"campaign_names": ["$campaign"]}')});
}
# the window opens with the first request: count what $oz_s seconds allow
ok($sim->wait_for(sub { $_[0]->{requests}{oz_delete} >= 1 }, 60), 'oz: the first request went out');
my $first = time;
sleep 1 while time < $first + $oz_s - 1;
my $state = $sim->state;
my $accepted = $state->{requests}{oz_delete} - $state->{rejections}{rate} - $state->{rejections}{inflight};
my $allowed = 2 * (1 + int(($oz_s - 1) / 60));
diag(sprintf("one Ozonetel account, 2 databases, %d s at 2/minute: %d token(s), %d \"Max limit exceeded\", "
	  . "%d requests accepted of %d allowed: utilisation %.0f%% (targets 1, 0, >= 95%%)",
	$oz_s, $state->{tokens_issued}{ozonetel}, $state->{rejections}{rate},
	$accepted, $allowed, 100 * $accepted / $allowed));
for my $db (qw(d1 d2))
{
	$node->safe_psql($db, 'SELECT ccpurge_cancel(request_id) FROM ccpurge_status GROUP BY request_id');
}

# 3. Twelve restarts under Ozonetel's token limit.
$sim->reset;
$sim->config(oz_rate_limit => 10, oz_window_ms => 60000);
$node->safe_psql('d1', "ALTER SERVER ozonetel OPTIONS (SET rate_limit '10/minute')");
my $ok = 0;
my $before;
$t0 = time;
for my $i (0 .. 12)
{
	if ($i % 2) { $node->stop('immediate'); $node->start; }
	elsif ($i) { $node->restart; }
	$ok += $node->safe_psql(
		'd1', qq{
		SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_bulk_data(ARRAY['} . (9000000000 + $i) . qq{'], ARRAY['$campaign'])});
	# the reset above killed the cached token: count from the first erasure
	$before //= $sim->state;
}
$state = $sim->state;
diag(sprintf("12 restarts in %.0f s, an erasure after each: %d of 12 ok; %d token(s) issued, "
	  . "%d rate or token-limit rejections, %d auth rejections (targets 12, 0, 0, 0; one token before them)",
	time - $t0, $ok - 1,
	$state->{tokens_issued}{ozonetel} - $before->{tokens_issued}{ozonetel},
	$state->{rejections}{rate} - $before->{rejections}{rate},
	$state->{rejections}{auth} - $before->{rejections}{auth}));

$node->stop;
$sim->stop;
done_testing();
