# test/t/045_databases.pl: a worker for every database where ccpurge is
# installed.
#
# The cluster serves at most two databases (ccpurge.max_databases = 2) and
# still names a database in the old ccpurge.database_name.  Covers:
#   - ccpurge.database_name is accepted and ignored, with a WARNING;
#   - no worker stays where the extension is not installed;
#   - CREATE EXTENSION in a new database while the cluster runs: its
#     first enqueue is drained (ccpurge_wait within 30 s; the time taken
#     is reported), by a worker of its own; a second database likewise,
#     while the first keeps its worker;
#   - DROP DATABASE of a database whose worker is busy succeeds, and frees
#     its place: a third database is then served;
#   - a terminated launcher is replaced, and its successor serves every
#     database with one worker;
#   - a database beyond ccpurge.max_databases: CREATE EXTENSION warns,
#     and enqueueing there is an error that says why, instead of items
#     that would wait forever.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main',
	conf => [ 'ccpurge.max_databases = 2', "ccpurge.database_name = 'crm'" ]);

ok( $node->log_contains(qr/WARNING:  "ccpurge.database_name" is ignored/),
	'ccpurge.database_name: ignored with a warning');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'"
	),
	'no worker where the extension is not installed');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'ccpurge launcher'"
	),
	'the launcher runs');

# new_database creates database $db with the extension and a CEC server,
# queues 3 items at once and returns whether they were drained, and how
# long after CREATE EXTENSION.
sub new_database
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my $t0 = time;
	CcpTest::setup_servers($node, $sim, dbname => $db, servers => ['cec']);
	my $id = $node->safe_psql($db, CcpTest::enqueue_sql("$db-", 3));
	my $drained = CcpTest::ccpurge_wait($node, $id, dbname => $db, timeout => '30 s');
	return ($drained, time - $t0);
}

for my $db (qw(crm1 crm2))
{
	my ($drained, $took) = new_database($db);
	is($drained, 't', "CREATE EXTENSION in $db: its first enqueue is drained");
	note(sprintf('%s: CREATE EXTENSION to drained in %.2f s', $db, $took));
	is($sim->deleted_with_prefix("$db-"), 3, "$db: the simulator erased its items");
	ok(CcpTest::wait_worker_connected($node, $db), "$db: a worker of its own");
}
ok(CcpTest::wait_worker_connected($node, 'crm1'), 'crm1 keeps its worker');

# DROP DATABASE while crm2's worker is busy: one request in flight at a
# time, each taking 200 ms.
$node->safe_psql('crm2', "ALTER SERVER cec OPTIONS (ADD max_inflight '1')");
$sim->fault(kind => 'delay', delay_ms => 200, count => 1000, path => 'cleancustpersonaldata');
my $busy = $node->safe_psql('crm2', CcpTest::enqueue_sql('busy-', 5000));
CcpTest::wait_progress($node, "request_id = $busy", 200, dbname => 'crm2');
my $log_offset = -s $node->logfile;
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE crm2');
is($ret, 0, 'DROP DATABASE of a database whose worker is busy succeeds') or diag($err);
$sim->post('/_sim/fault/clear');
ok( !$node->log_contains(qr/terminated by signal|database "crm2" does not exist/, $log_offset),
	'DROP DATABASE: no crash, no worker looking for the database');

my ($drained, $took) = new_database('crm3');
is($drained, 't', 'after DROP DATABASE a third database is served');

# The launcher terminated: its successor starts one worker per database
# again (the old workers are asked to leave), and new work drains.
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ccpurge launcher'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'ccpurge launcher' AND pid <> $launcher"
	),
	'a terminated launcher is replaced');
my $again = $node->safe_psql('crm1', CcpTest::enqueue_sql('again-', 2));
is(CcpTest::ccpurge_wait($node, $again, dbname => 'crm1'), 't',
	'after the new launcher, crm1 drains');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker' AND datname = 'crm1'"
	),
	'after the new launcher, crm1 has one worker');

# crm4 is one database too many
$node->safe_psql('postgres', 'CREATE DATABASE crm4');
($ret, $out, $err) = $node->psql('crm4', 'CREATE EXTENSION ccpurge');
like($err, qr/WARNING:  no ccpurge worker can serve this database/,
	'beyond ccpurge.max_databases: CREATE EXTENSION warns');
($ret, $out, $err) = $node->psql('crm4', q{
	CREATE SERVER cec FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'http://127.0.0.1:1');
	CREATE USER MAPPING FOR PUBLIC SERVER cec OPTIONS (app_key 'k', app_secret 's');
	} . CcpTest::enqueue_sql('lost-', 1));
like(
	$err,
	qr/ERROR:  no ccpurge worker can serve this database\n.*DETAIL:  Workers already serve 2 databases, as many as "ccpurge.max_databases" allows\./s,
	'beyond ccpurge.max_databases: enqueueing is an error that says why');
is($node->safe_psql('crm4', 'SELECT count(*) FROM ccpurge.queue'), '0',
	'beyond ccpurge.max_databases: nothing was queued');

$node->stop;
$sim->stop;
done_testing();
