#
# test/bench/sync_bench.pl: per-request overhead of the synchronous path.
#
# Measured in one run against the same simulator:
#   1. ccpurge_delete_customers with 100,000 customer numbers (100 requests
#      of 1000): items per second;
#   2. the same function with batch_size 1 and 2,000 numbers (2,000
#      requests): time per request;
#   3. the baseline: one curl process sending the same 2,000 requests over
#      one keep-alive connection;
#   4. 500 separate one-item calls, each its own transaction: the WAL
#      flushes per call, the worker's included (target: at most one).
# It prints the figures and the ratio of 2 to 3 (target: at most 1.2).
# This is a benchmark, not a test: it never fails on a slow figure.
#
use strict;
use warnings;

use File::Temp qw(tempfile);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use CcpTest;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('bench_sync');
CcpTest::setup_servers($node, $sim);

# sql_seconds runs a statement and returns the seconds it took inside the
# server, so psql's start-up is not counted.
sub sql_seconds
{
	my ($sql) = @_;
	my $out = $node->safe_psql('postgres', qq{
SELECT clock_timestamp() AS t0 \\gset
$sql
SELECT extract(epoch FROM clock_timestamp() - :'t0');});
	my @lines = split /\n/, $out;
	return $lines[-1];
}

my $reps = $ENV{CCP_BENCH_REPS} // 3;

# warm up: token, connections, catalog caches
$node->safe_psql('postgres',
	"SELECT count(*) FROM ccpurge_delete_customers(ARRAY['warm'])");

# 1. 100,000 numbers
my $big = sql_seconds(
	"SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers("
	  . "ARRAY(SELECT 'big' || g FROM generate_series(1, 100000) g)) \\g /dev/null\n");
my $state = $sim->state;
is($state->{deleted}{cec_customers}, 100001, '100,000 numbers reached the simulator');

# 2. 2,000 requests of one number
$node->safe_psql('postgres', "ALTER SERVER cec OPTIONS (ADD batch_size '1')");
my @ext;
for my $r (1 .. $reps)
{
	push @ext, sql_seconds(
		"SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers("
		  . "ARRAY(SELECT 'one$r-' || g FROM generate_series(1, 2000) g)) \\g /dev/null\n");
}

# 3. raw curl over one keep-alive connection, same endpoint and headers
my $url = $sim->url;
my $tok = `curl -s -X POST -H 'Content-Type: application/json' -H 'X-Token-Expire: 3600' -d '{"app_key":"cec-app-key","app_secret":"cec-app-secret"}' $url/apigovernance/api/oauth/tokenByAkSk`;
my ($token) = $tok =~ /"AccessToken"\s*:\s*"([^"]+)"/;
die "no token from the simulator: $tok" unless $token;
my @raw;
for my $r (1 .. $reps)
{
	my ($fh, $cfg) = tempfile();
	print $fh "silent\noutput = /dev/null\n";
	print $fh "header = \"Content-Type: application/json\"\n";
	print $fh "header = \"Authorization: Bearer $token\"\n";
	print $fh "header = \"X-APP-Key: cec-app-key\"\n";
	print $fh "data = \"{\\\"customNos\\\":[\\\"raw$r\\\"]}\"\n";
	print $fh "url = \"$url/apiaccess/CC-Management/v1/clearUserInfo/cleancustpersonaldata\"\n"
	  for 1 .. 2000;
	close $fh;
	my $t0 = time;
	system('curl', '-K', $cfg) == 0 or die "curl failed";
	push @raw, time - $t0;
	unlink $cfg;
}

# 4. separate one-item calls, each its own transaction: the WAL flushes
# each costs, those of the worker chaining their log rows included
# (pg_stat_wal counts flushes only with fsync on: CCP_BENCH_FSYNC=on;
# processes report statistics at most once a second)
my $separate = 500;
sleep 1.2;
my ($syncs0) = CcpTest::wal_syncs($node);
$node->safe_psql('postgres',
	join("\n",
		map { "SELECT count(*) FROM ccpurge_delete_customers(ARRAY['sep$_']);" }
		  1 .. $separate));
sleep 1.2;
my $syncs = (CcpTest::wal_syncs($node))[0] - $syncs0;

# median of a list
sub median
{
	my @s = sort { $a <=> $b } @_;
	return $s[ int(@s / 2) ];
}
my $ext = median(@ext);
my $raw = median(@raw);

diag(sprintf("sync 100,000 customers: %.3f s, %.0f items/s, %d requests",
		$big, 100000 / $big, 100));
diag(sprintf("sync batch_size 1: %.1f us/request (%.0f requests/s), runs: %s",
		$ext / 2000 * 1e6, 2000 / $ext, join(' ', map { sprintf '%.3f', $_ } @ext)));
diag(sprintf("raw keep-alive curl: %.1f us/request (%.0f requests/s), runs: %s",
		$raw / 2000 * 1e6, 2000 / $raw, join(' ', map { sprintf '%.3f', $_ } @raw)));
diag(sprintf("RATIO ccpurge/curl per request: %.2f (target <= 1.2)", $ext / $raw));
diag(sprintf("separate one-item calls: %.3f WAL flushes per call (%d calls, %d flushes%s; target <= 1)",
		$syncs / $separate, $separate, $syncs,
		($ENV{CCP_BENCH_FSYNC} // '') eq 'on' ? '' : '; counted only with CCP_BENCH_FSYNC=on'));

$node->stop;
$sim->stop;
done_testing();
