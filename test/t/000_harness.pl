# test/t/000_harness.pl: proves the TAP harness itself works: CcpTest
# starts the vendor simulator and a node with ccpurge preloaded, the
# simulator's control API answers, it restarts on the same port, and
# CREATE EXTENSION ccpurge with the three standard servers succeeds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The simulator answers its control API.
my $sim = CcpTest::Sim->start;
ok($sim->port > 0, 'simulator listens on a port');
is($sim->url, 'http://127.0.0.1:' . $sim->port, 'simulator url');
is(ref $sim->state, 'HASH', 'GET /_sim/state answers a JSON object');
$sim->reset;
is(ref $sim->state, 'HASH', 'state still answers after POST /_sim/reset');

# A restart keeps the port, so servers created before it stay valid.
my $port = $sim->port;
my $pid = $sim->pid;
$sim->restart;
is($sim->port, $port, 'restart keeps the port');
isnt($sim->pid, $pid, 'restart starts a new process');
is(ref $sim->state, 'HASH', 'state answers after restart');

SKIP:
{
	skip 'ccpurge is not installed (run "make install" first)', 4
	  unless CcpTest::extension_installed();

	my $node = CcpTest::new_node('main');
	is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
		'ccpurge', 'ccpurge is preloaded');

	CcpTest::setup_servers($node, $sim);
	is( $node->safe_psql(
			'postgres',
			"SELECT extversion FROM pg_extension WHERE extname = 'ccpurge'"),
		'1.2',
		'CREATE EXTENSION ccpurge');
	is( $node->safe_psql(
			'postgres', q{
		SELECT string_agg(s.srvname || ':' || u.umuser, ',' ORDER BY s.srvname)
		FROM pg_foreign_server s
		JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
		JOIN pg_user_mappings u ON u.srvid = s.oid
		WHERE w.fdwname = 'ccpurge'}),
		'cec:0,isales:0,ozonetel:0',
		'servers cec, isales and ozonetel with PUBLIC user mappings');

	my $log = slurp_file($node->logfile);
	ok(!(grep { index($log, $_) >= 0 } @CcpTest::SECRETS),
		'setup_servers keeps the secrets out of the server log');

	$node->stop;
}

$sim->stop;
ok(!defined $sim->pid, 'simulator stopped');

done_testing();
