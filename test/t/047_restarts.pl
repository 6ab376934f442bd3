# test/t/047_restarts.pl: restarts and crashes cause no vendor rejection.
#
# The simulator plays an Ozonetel account allowing 10 tokens per sliding
# hour (each new one kills the last) and 10 DeleteBulkData requests per
# sliding minute; the server's rate_limit is '10/minute'.  Covers:
#   - 12 restarts within a few minutes, every other one an immediate stop
#     (a crash for the server), each followed by an erasure: every row is
#     ok, the simulator issued one token and refused none, and it never
#     answered "Max limit exceeded": the token and the rate window survive
#     restarts (the 11th and 12th requests wait for the window instead);
#   - a CEC token survives a kill -9 of the worker (a crash restart): the
#     items queued after it are erased with the same token;
#   - what survives lives in $PGDATA/pg_ccpurge/state, which only the server's
#     owner can enter, in files only it can read.

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

my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => 10, oz_window_ms => 60000 });
my $node = CcpTest::new_node('main', conf => ['restart_after_crash = on']);
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'ozonetel', 'cec' ],
	server_options => { ozonetel => { rate_limit => '10/minute' } });
my $campaign = 'QA_Outbound_Predictive';

# erase erases phone number $n at Ozonetel and returns "rows/ok rows".
sub erase
{
	my ($n) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || '/' || count(*) FILTER (WHERE ok)
		FROM ccpurge_delete_bulk_data(ARRAY['} . (7000000000 + $n) . qq{'], ARRAY['$campaign'])});
}

# 1. Twelve restarts, each followed by an erasure.
is(erase(0), '1/1', 'before any restart: erased');
for my $i (1 .. 12)
{
	if ($i % 2)
	{
		$node->stop('immediate');
		$node->start;
	}
	else
	{
		$node->restart;
	}
	is(erase($i), '1/1', "after restart $i: erased");
}
my $state = $sim->state;
is($state->{tokens_issued}{ozonetel}, 1, 'restarts: the simulator issued one token');
is($state->{rejections}{rate}, 0,
	'restarts: no "Max limit exceeded" and no token refused for the hourly limit');
is($state->{rejections}{auth}, 0, 'restarts: no token was refused as expired');
is($state->{deleted}{ozonetel}, 13, 'restarts: 13 numbers erased');

# 2. A CEC token and a kill -9 of the worker.
my $id = $node->safe_psql('postgres', CcpTest::enqueue_sql('before-kill-', 2));
is(CcpTest::wait_done($node, $id), '2|2', 'CEC: queued items are done');
my $tokens = $sim->state->{tokens_issued}{cec};
ok(CcpTest::wait_worker_connected($node, 'postgres'), 'CEC: the worker runs');
my $pid = CcpTest::worker_pid($node, 'postgres');
kill 'KILL', $pid;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker' AND pid <> $pid"
	),
	'CEC: a new worker runs after the crash restart');
$id = $node->safe_psql('postgres', CcpTest::enqueue_sql('after-kill-', 2));
is(CcpTest::wait_done($node, $id), '2|2', 'CEC: items queued after the crash are done');
is($sim->state->{tokens_issued}{cec}, $tokens, 'CEC: with the token from before the crash');

# 3. Only the server's owner can read what survives.
my $dir = $node->data_dir . '/pg_ccpurge/state';
is(sprintf('%04o', (stat $dir)[2] & 07777), '0700', 'pg_ccpurge/state: mode 0700');
for my $f ('tokens', 'windows')
{
	ok(-f "$dir/$f", "pg_ccpurge/state/$f exists");
	is(sprintf('%04o', (stat "$dir/$f")[2] & 07777), '0600', "pg_ccpurge/state/$f: mode 0600");
}

$node->stop;
$sim->stop;
done_testing();
