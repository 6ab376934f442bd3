#
# test/bench/rate_bench.pl: utilisation of the shared rate limiter.
#
# The simulator plays an Ozonetel account allowing 20 DeleteBulkData
# requests per sliding second; the server has rate_limit '20/second' (and
# the vendor's default max_inflight 1).  After a warm-up that fills the
# window, ccpurge_delete_bulk_data sends 100 numbers per request for about
# CCP_BENCH_SECONDS seconds (default 30: 600 requests), split over
# CCP_BENCH_SESSIONS sessions running at once (default 1).
#
# It prints the requests the simulator accepted, the time they took, the
# utilisation - requests / (20 * seconds) - (target: at least 95%) and the
# simulator's rate rejections (target: 0).  This is a benchmark, not a
# test: it fails only when rows are not ok or the simulator counts do not
# add up, never on a slow figure.
#
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $rate = 20;
my $seconds = $ENV{CCP_BENCH_SECONDS} // 30;
my $sessions = $ENV{CCP_BENCH_SESSIONS} // 1;
my $campaign = 'QA_Outbound_Predictive';

my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => $rate, oz_window_ms => 1000 });
my $node = CcpTest::new_node('bench_rate');
CcpTest::setup_servers(
	$node, $sim,
	servers => ['ozonetel'],
	server_options => { ozonetel => { rate_limit => "$rate/second" } });

# bulk_sql returns a statement erasing $requests x 100 numbers from $first
# that prints "rows/ok rows".
sub bulk_sql
{
	my ($first, $requests) = @_;
	my $n = $requests * 100;
	return "SELECT count(*) || '/' || count(*) FILTER (WHERE ok) "
	  . "FROM ccpurge_delete_bulk_data(ARRAY(SELECT ($first + g)::text "
	  . "FROM generate_series(0, " . ($n - 1) . ") g), ARRAY['$campaign'])";
}

# warm up: token, connection, and a window full of recent requests, so the
# measured part starts in the steady state
is($node->safe_psql('postgres', bulk_sql(6000000000, $rate)),
	($rate * 100) . '/' . ($rate * 100), 'warm-up: every row ok');

my $total = $seconds * $rate;
my $per = int($total / $sessions);
my $before = $sim->state;

my @runs;
my $t0 = time;
for my $s (0 .. $sessions - 1)
{
	my $n = $s == $sessions - 1 ? $total - $per * ($sessions - 1) : $per;
	my %r = (n => $n, out => '', err => '');
	$r{h} = IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres'),
			'-c', bulk_sql(6100000000 + $s * 10_000_000, $n)
		],
		'>', \$r{out}, '2>', \$r{err});
	push @runs, \%r;
}
for my $r (@runs)
{
	$r->{ok} = $r->{h}->finish;
}
my $elapsed = time - $t0;
my $after = $sim->state;

for my $i (0 .. $#runs)
{
	my $r = $runs[$i];
	ok($r->{ok}, "session $i finished without error") or diag($r->{err});
	is($r->{out}, ($r->{n} * 100) . '/' . ($r->{n} * 100) . "\n",
		"session $i: every row ok");
}

my $sent = $after->{requests}{oz_delete} - $before->{requests}{oz_delete};
my $rate_rej = $after->{rejections}{rate} - $before->{rejections}{rate};
my $inflight_rej =
  $after->{rejections}{inflight} - $before->{rejections}{inflight};
is($sent, $total, "the simulator saw $total requests");

my $util = $sent / ($rate * $elapsed);
diag(sprintf(
		"rate limiter %d/second, %d session(s): %d requests in %.2f s = %.2f requests/s",
		$rate, $sessions, $sent, $elapsed, $sent / $elapsed));
diag(sprintf(
		"simulator: %d rate rejections, %d in-flight rejections, peak in flight %d, %d token(s)",
		$rate_rej, $inflight_rej, $after->{max_inflight}{ozonetel},
		$after->{tokens_issued}{ozonetel}));
diag(sprintf("UTILISATION %.1f%% of %d/second (target >= 95%%), %d rate rejections (target 0)",
		100 * $util, $rate, $rate_rej));

$node->stop;
$sim->stop;
done_testing();
