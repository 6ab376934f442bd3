#
# test/bench/drain_bench.pl: how fast the background worker drains a full
# queue, in how many requests, and in how much memory.
#
# For each size N (CCP_BENCH_N, a comma-separated list; default 250000 and
# 1000000) the node is restarted, so that the worker's peak RSS belongs to
# that size alone, and one transaction queues N distinct customer numbers
# with ccpurge_enqueue('delete_customers', ...) against the CEC simulator.
# The worker cannot see them before COMMIT, and COMMIT wakes it, so the
# drain is timed from the moment COMMIT returned (the server's clock) to the
# last finished_at of the request (the worker's clock, same host).  While it
# runs, the worker's /proc/PID/status is sampled every 20 ms.
#
# It prints, per size: items per second (target: at least 100,000; pg_net,
# one request per item, drains about 200 per second here), the
# cleancustpersonaldata requests the simulator saw (target: exactly
# ceil(N/1000)), and the worker's peak RSS (VmHWM; target: under 64 MB and
# flat as N grows), with its anonymous part; the WAL written per item, and
# the WAL flushes with their time (track_wal_io_timing), and, with
# CCP_BENCH_WALSTATS=1, the WAL by record type (pg_walinspect).  This is a
# benchmark, not a
# test: it fails only when an item does not end done or the simulator did
# not erase every number, never on a slow figure.
#
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use IPC::Run;
use POSIX qw(ceil);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep sleep);

my @sizes = split /\s*,\s*/, ($ENV{CCP_BENCH_N} // '250000,1000000');

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node(
	'bench_drain',
	conf => [
		'log_statement = none', 'max_wal_size = 4GB', 'jit = off',
		'track_wal_io_timing = on'
	]);
CcpTest::setup_servers($node, $sim, servers => ['cec']);

# worker_pid waits for the worker to be connected and returns its pid.
sub worker_pid
{
	my $pid;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'");
		return $pid if $pid =~ /^\d+$/;
		usleep(100_000);
	}
	die "the ccpurge worker did not start";
}

# memory returns the worker's VmHWM, VmRSS and RssAnon in kB.
sub memory
{
	my ($pid) = @_;
	my %m;
	open my $fh, '<', "/proc/$pid/status" or return;
	while (<$fh>)
	{
		$m{$1} = $2 if /^(VmHWM|VmRSS|RssAnon|RssShmem|RssFile):\s+(\d+) kB/;
	}
	close $fh;
	return \%m;
}

my @report;
my $first = 7_000_000_000;
for my $n (@sizes)
{
	$node->safe_psql('postgres', 'TRUNCATE ccpurge.queue');
	$node->restart;
	my $pid = worker_pid();
	my $idle = memory($pid);
	my $before = $sim->state;

	# queue N numbers in one transaction; the drain starts at COMMIT
	my $t_enq = time;
	my $out = $node->safe_psql(
		'postgres', qq{
BEGIN;
SELECT ccpurge_enqueue('delete_customers',
	ARRAY(SELECT ($first + g)::text FROM generate_series(1, $n) g)) AS id \\gset
COMMIT;
SELECT :id || ' ' || extract(epoch FROM clock_timestamp())
	|| ' ' || pg_current_wal_insert_lsn();
});
	$t_enq = time - $t_enq;
	my ($id, $t0, $lsn0) = split / /, $out;
	my @syncs0 = CcpTest::wal_syncs($node);
	$first += $n;

	# wait for the request in another session, sampling the worker's memory
	my ($wout, $werr) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
			$node->connstr('postgres'), '-c',
			"SELECT ccpurge_wait($id, '30 minutes')"
		],
		'>', \$wout, '2>', \$werr);
	my ($peak_anon, $peak_rss) = (0, 0);
	while ($h->pumpable)
	{
		my $m = memory($pid);
		if ($m)
		{
			$peak_anon = $m->{RssAnon} if $m->{RssAnon} > $peak_anon;
			$peak_rss = $m->{VmRSS} if $m->{VmRSS} > $peak_rss;
		}
		usleep(20_000);
		$h->pump_nb;
	}
	$h->finish;
	is($wout, "t\n", "N=$n: ccpurge_wait saw the request finish") or diag($werr);

	my $mem = memory($pid);
	my ($states, $t1) = split /\|/,
	  $node->safe_psql(
		'postgres', qq{
SELECT string_agg(state || ':' || items, ',' ORDER BY state),
	   max(last)
  FROM (SELECT state, sum(nitems) AS items,
			   extract(epoch FROM max(finished_at)) AS last
		  FROM ccpurge.queue WHERE request_id = $id GROUP BY state) s});
	is($states, "done:$n", "N=$n: every item is done");
	is($node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'"),
		$pid, "N=$n: the worker ran the whole drain without restarting");

	# the WAL flushes in the drain, and the time they took
	sleep 1.2;    # every process has reported its statistics
	my ($nsync, $sync_ms) = map { $_ - shift @syncs0 } CcpTest::wal_syncs($node);
	push @report,
	  sprintf("N=%d: %d WAL flushes, %.0f ms in all (%.2f ms each)",
		$n, $nsync, $sync_ms, $nsync ? $sync_ms / $nsync : 0);

	# the WAL the drain wrote, per item, and by resource manager when
	# pg_walinspect is at hand (CCP_BENCH_WALSTATS=1)
	my $lsn1 = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
	my $wal = $node->safe_psql('postgres',
		"SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint");
	if ($ENV{CCP_BENCH_WALSTATS})
	{
		$node->safe_psql('postgres',
			'CREATE EXTENSION IF NOT EXISTS pg_walinspect');
		diag("N=$n: WAL by resource manager, bytes per item:\n"
			  . $node->safe_psql(
				'postgres', qq{
SELECT "resource_manager/record_type" || ': ' || round(combined_size::numeric / $n, 1)
	|| ' (' || count || ' records, FPI ' || round(fpi_size::numeric / $n, 1) || ')'
  FROM pg_get_wal_stats('$lsn0', '$lsn1', true)
 WHERE count > 0 ORDER BY combined_size DESC LIMIT 12}));
	}

	my $after = $sim->state;
	my $requests = $after->{requests}{cec_customers} - $before->{requests}{cec_customers};
	my $erased = $after->{deleted}{cec_customers} - $before->{deleted}{cec_customers};
	my $tokens = $after->{tokens_issued}{cec} - $before->{tokens_issued}{cec};
	is($erased, $n, "N=$n: the simulator erased every number");

	my $elapsed = $t1 - $t0;
	push @report,
	  sprintf(
		"N=%d: enqueue %.2f s; drain %.3f s = %.0f items/s; %d requests"
		  . " (ceil(N/1000) = %d), %d token(s); worker VmHWM %.1f MB"
		  . " (idle %.1f MB), peak VmRSS %.1f MB, peak RssAnon %.1f MB"
		  . " (idle %.1f MB), RssShmem at end %.1f MB; WAL %.0f bytes per item",
		$n, $t_enq, $elapsed, $n / $elapsed, $requests, ceil($n / 1000), $tokens,
		$mem->{VmHWM} / 1024, $idle->{VmHWM} / 1024, $peak_rss / 1024,
		$peak_anon / 1024, $idle->{RssAnon} / 1024, $mem->{RssShmem} / 1024,
		$wal / $n);
	push @report,
	  sprintf("DRAIN N=%d: %.0f items/s (target >= 100000), %d requests"
		  . " (target %d), worker peak RSS %.1f MB (target < 64 MB)",
		$n, $n / $elapsed, $requests, ceil($n / 1000), $mem->{VmHWM} / 1024);
}

diag($_) for @report;

$node->stop;
$sim->stop;
done_testing();
