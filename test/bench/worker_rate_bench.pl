#
# test/bench/worker_rate_bench.pl: how closely the background worker follows
# a server's rate limit.
#
# The simulator plays an Ozonetel account allowing 20 DeleteBulkData
# requests per sliding second; the server has rate_limit '20/second' (and
# the vendor's default max_inflight 1).  One transaction queues 20,000
# numbers (CCP_BENCH_ITEMS) with ccpurge_enqueue('delete_bulk_data', ...)
# for one campaign: 200 requests of 100 numbers, which the worker starts
# sending when the transaction commits.
#
# From the simulator's request log (arrival times, in ms) it prints:
#   - the utilisation of the sliding window: for every request i, the
#     request i + 20 may arrive one window (1 s) later at the earliest, so
#     1 s / mean(t[i+20] - t[i]) is the share of the allowed rate used
#     (target: at least 95%).  It holds for any pattern, bursts of 20 or
#     evenly spaced requests alike;
#   - the brief's raw figure: requests / (20 * (last - first arrival)),
#     which counts the first window's burst as free and so reads high;
#   - the end-to-end rate: requests / (20 * (end of the last request -
#     COMMIT)), which includes the first token request;
#   - the simulator's rate and in-flight rejections (target: 0).
# This is a benchmark, not a test: it fails only when an item does not end
# done or the simulator did not erase every number, never on a slow figure.
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

my $rate = 20;
my $window_ms = 1000;
my $items = $ENV{CCP_BENCH_ITEMS} // 20_000;
my $campaign = 'QA_Outbound_Predictive';
my $first_phone = 8_000_000_000;

my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => $rate, oz_window_ms => $window_ms });
my $node = CcpTest::new_node('bench_worker_rate',
	conf => [ 'log_statement = none' ]);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['ozonetel'],
	server_options => { ozonetel => { rate_limit => "$rate/second" } });

my $before = $sim->state;
my $log_before = scalar @{ $sim->request_log(10_000) };

# queue everything in one transaction; the worker starts at COMMIT
my ($id, $t0) = split / /,
  $node->safe_psql(
	'postgres', qq{
BEGIN;
SELECT ccpurge_enqueue('delete_bulk_data',
	ARRAY(SELECT ($first_phone + g)::text FROM generate_series(1, $items) g),
	'{"campaign_names": ["$campaign"]}') AS id \\gset
COMMIT;
SELECT :id || ' ' || extract(epoch FROM clock_timestamp());
});

my $wall = time;
is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '30 minutes')"),
	't', 'the request finished');
$wall = time - $wall;

is( $node->safe_psql(
		'postgres', "SELECT string_agg(state || ':' || n, ',' ORDER BY state)"
		  . " FROM (SELECT state, sum(nitems) AS n FROM ccpurge.queue"
		  . " WHERE request_id = $id GROUP BY state) s"),
	"done:$items",
	'every item is done');

my $after = $sim->state;
is($after->{deleted}{ozonetel} - $before->{deleted}{ozonetel},
	$items, 'the simulator erased every number');

# the delete requests of this run, in arrival order
my @log = @{ $sim->request_log(10_000) };
splice(@log, 0, $log_before);
my @del = sort { $a->{at_ms} <=> $b->{at_ms} }
  grep { $_->{endpoint} eq 'oz_delete' } @log;
my @refused = grep { $_->{message} =~ /^(Max limit exceeded|Previous request)/ } @del;
@del = grep { $_->{message} !~ /^(Max limit exceeded|Previous request)/ } @del;
my $n = scalar @del;
my $want = int(($items + 99) / 100);

my $rate_rej = $after->{rejections}{rate} - $before->{rejections}{rate};
my $inflight_rej =
  $after->{rejections}{inflight} - $before->{rejections}{inflight};
my $tokens =
  $after->{tokens_issued}{ozonetel} - ($before->{tokens_issued}{ozonetel} // 0);
is($n, $want, "the simulator accepted $want requests");
is(scalar @refused, $rate_rej + $inflight_rej, 'the log shows every rejection');

die "too few requests to measure a rate" if $n <= $rate;

my @t = map { $_->{at_ms} } @del;
my $gaps = 0;
$gaps += $t[ $_ + $rate ] - $t[$_] for 0 .. $n - $rate - 1;
my $mean_gap = $gaps / ($n - $rate);
my $util = $window_ms / $mean_gap;

my $span = ($t[-1] - $t[0]) / 1000;
my $raw = $n / ($rate * $span);

my $end_ms = 0;
for my $r (@del)
{
	my $e = $r->{at_ms} + $r->{duration_ms};
	$end_ms = $e if $e > $end_ms;
}
my $e2e_s = $end_ms / 1000 - $t0;
my $e2e = $n / ($rate * $e2e_s);

# the longest and shortest distance between request i and i + rate
my ($min_gap, $max_gap);
for my $i (0 .. $n - $rate - 1)
{
	my $g = $t[ $i + $rate ] - $t[$i];
	$min_gap = $g if !defined $min_gap || $g < $min_gap;
	$max_gap = $g if !defined $max_gap || $g > $max_gap;
}

diag(sprintf(
		"worker at rate_limit %d/second: %d items in %d requests, %d token(s);"
		  . " first to last arrival %.3f s, COMMIT to last answer %.3f s,"
		  . " ccpurge_wait returned after %.2f s",
		$rate, $items, $n, $tokens, $span, $e2e_s, $wall));
diag(sprintf(
		"t[i+%d] - t[i]: mean %.1f ms, min %d ms, max %d ms (a window is %d ms)",
		$rate, $mean_gap, $min_gap, $max_gap, $window_ms));
diag(sprintf(
		"raw requests / (%d * first-to-last) = %.1f%%; end to end from COMMIT = %.1f%%",
		$rate, 100 * $raw, 100 * $e2e));
diag(sprintf(
		"simulator: %d rate rejections, %d in-flight rejections, peak in flight %d",
		$rate_rej, $inflight_rej, $after->{max_inflight}{ozonetel}));
diag(sprintf(
		"UTILISATION %.1f%% of %d/second (sliding window; target >= 95%%),"
		  . " %d rate rejections (target 0)",
		100 * $util, $rate, $rate_rej));

$node->stop;
$sim->stop;
done_testing();
