#
# test/bench/percall_bench.pl: the cost of one synchronous call per row.
#
# Application code and triggers call the functions once per row, so a
# separate call must cost little more than a request inside one call.
# Measured in one run against the same simulator, with batch_size 1:
#   1. in-call: one ccpurge_delete_customers call with 2,000 numbers
#      (2,000 requests): time per request;
#   2. separate: 2,000 one-number calls in one statement
#      (SELECT ... FROM generate_series, one call per row): time per call;
#   3. the private RSS (RssAnon; shared buffers the backend touches are
#      not its own memory) of one backend while it runs 20,000 one-number
#      calls in one statement, which must stay flat: sampled when the
#      simulator has seen 2,000, 10,000 and 19,000 of them.  The growth
#      from the first sample to the last, per call, is the figure; the
#      sample before the statement is printed too (the statement's own
#      generate_series keeps up to work_mem of rows, and the backend's
#      first calls fill its caches, once).
# It prints the figures and the ratio of 2 to 1 (target: at most 1.3).
# This is a benchmark, not a test: it never fails on a slow figure.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use CcpTest;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('bench_percall');
CcpTest::setup_servers($node, $sim, servers => ['cec']);
$node->safe_psql('postgres', "ALTER SERVER cec OPTIONS (ADD batch_size '1')");

my $reps = $ENV{CCP_BENCH_REPS} // 3;
my $n = 2000;

# run_timed runs one statement in a session of its own and returns the
# seconds it took inside the server, and the backend's RSS in kB before and
# after it (from /proc, as the test runs on the server's machine).
sub run_timed
{
	my ($sql) = @_;
	my $out = $node->safe_psql('postgres', qq{
SELECT pg_backend_pid() AS pid \\gset
SELECT pg_read_file('/proc/' || :pid || '/status') AS s0 \\gset
SELECT clock_timestamp() AS t0 \\gset
$sql
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SELECT (regexp_match(:'s0', 'RssAnon:\\s+(\\d+)'))[1];
SELECT (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'RssAnon:\\s+(\\d+)'))[1];});
	my @lines = split /\n/, $out;
	return @lines[ -3 .. -1 ];
}

# warm up: token, connection, caches
$node->safe_psql('postgres',
	"SELECT count(*) FROM ccpurge_delete_customers(ARRAY['warm'])");

my (@incall, @separate);
for my $r (1 .. $reps)
{
	my ($s) = run_timed(
		"SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers("
		  . "ARRAY(SELECT 'in$r-' || g FROM generate_series(1, $n) g)) \\g /dev/null");
	push @incall, $s / $n;
	($s) = run_timed(
		"SELECT count(*) FILTER (WHERE r.ok) FROM generate_series(1, $n) g,"
		  . " ccpurge_delete_customers(ARRAY['sep$r-' || g]) r \\g /dev/null");
	push @separate, $s / $n;
}
# rss_kb reads the private RSS of backend $pid from /proc (the benchmark
# runs on the server's machine, as the server's OS user).
sub rss_kb
{
	my ($pid) = @_;
	my $status = slurp_file("/proc/$pid/status");
	return $status =~ /RssAnon:\s+(\d+)/ ? $1 : -1;
}

my $bg = $node->background_psql('postgres');
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
my $before = $sim->state->{deleted}{cec_customers};
my $rss_idle = rss_kb($pid);
my $t0 = [ Time::HiRes::gettimeofday() ];
$bg->query_until(qr/started/,
	"\\echo started\n"
	  . "SELECT count(*) FILTER (WHERE r.ok) FROM generate_series(1, 20000) g,"
	  . " ccpurge_delete_customers(ARRAY['rss-' || g]) r;\n");
my @marks = (2000, 10000, 19000);
my @rss;
for my $mark (@marks)
{
	my $deadline = time + 300;
	while ($sim->state->{deleted}{cec_customers} - $before < $mark
		&& time < $deadline)
	{
		Time::HiRes::usleep(20_000);
	}
	push @rss, rss_kb($pid);
}
$bg->quit;
my $rs = Time::HiRes::tv_interval($t0);

my $state = $sim->state;
is($state->{deleted}{cec_customers}, 1 + 2 * $reps * $n + 20000,
	'every number reached the simulator');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM ccpurge.request_log WHERE operation = 'delete_customers' AND NOT ok"),
	'0', 'every request succeeded');

my @si = sort { $a <=> $b } @incall;
my @ss = sort { $a <=> $b } @separate;
my $mi = $si[ int(@si / 2) ];
my $ms = $ss[ int(@ss / 2) ];
diag(sprintf("in-call request: %.1f us (median of %d runs of %d)", $mi * 1e6, $reps, $n));
diag(sprintf("separate call:   %.1f us (median of %d runs of %d)", $ms * 1e6, $reps, $n));
diag(sprintf("ratio separate / in-call: %.2f (target <= 1.3)", $ms / $mi));
diag(sprintf("20,000 separate calls in one statement: %.1f us each (client clock)", $rs / 20000 * 1e6));
diag(sprintf("backend private RSS (RssAnon): %d kB idle; %d / %d / %d kB after %d / %d / %d calls",
		$rss_idle, @rss, @marks));
diag(sprintf("growth from call %d to call %d: %+d kB (%.0f bytes per call; flat is about 0)",
		$marks[0], $marks[-1], $rss[-1] - $rss[0],
		($rss[-1] - $rss[0]) * 1024 / ($marks[-1] - $marks[0])));

$node->stop;
$sim->stop;
done_testing();
