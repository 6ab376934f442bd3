#
# 025_dump: pending work and the request log survive pg_dump and restore
#
# The queue is registered with pg_extension_config_dump for its queued and
# sending rows (finished rows are history), the request log for all rows,
# and their sequences too, so that a restored database goes on where the
# old one stopped.  The worker serves another database here, so nothing
# is sent while the test looks.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

my $node = CcpTest::new_node('dump', database_name => 'postgres');
$node->safe_psql('postgres', 'CREATE DATABASE olddb');
CcpTest::setup_servers($node, undef, dbname => 'olddb', servers => ['cec'],
	url => 'http://127.0.0.1:9');

# queued work, a finished row, and a request-log row
$node->safe_psql('olddb', q{
SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-1', 'dump-2']);
SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-3']);
SELECT ccpurge_cancel(2);
SELECT count(*) FROM ccpurge_delete_customers(ARRAY['dump-4']);});
is($node->safe_psql('olddb',
		"SELECT string_agg(item || ':' || state, ',' ORDER BY item) FROM ccpurge_status"),
	'dump-1:queued,dump-2:queued,dump-3:canceled', 'the old database has queued and canceled items');
# the server is never reached: the failed token request is the logged one
is($node->safe_psql('olddb', "SELECT operation || ':' || ok FROM ccpurge.request_log"),
	'token:false', 'and a request-log row');

my $dump = $node->basedir . '/olddb.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('olddb') ],
	'pg_dump of a database with ccpurge');
$node->safe_psql('postgres', 'CREATE DATABASE newdb');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('newdb'), $dump ],
	'pg_restore into a new database');

is($node->safe_psql('newdb',
		"SELECT string_agg(item || ':' || state, ',' ORDER BY item) FROM ccpurge_status"),
	'dump-1:queued,dump-2:queued', 'queued items are restored, finished ones are not');
is($node->safe_psql('newdb', "SELECT operation || ':' || ok FROM ccpurge.request_log"),
	'token:false', 'the request log is restored');
is($node->safe_psql('newdb', q{
	SELECT count(*) FROM ccpurge_status WHERE request_id = 1}), '2',
	'the items keep their request id');
# the sequences went on: a new request gets a new id, not 1 again
my $rid = $node->safe_psql('newdb',
	"SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-5'])");
cmp_ok($rid, '>', 2, 'a new request after the restore gets a fresh id');
is($node->safe_psql('newdb',
		"SELECT srvname || ':' || array_to_string(ARRAY(SELECT unnest(srvoptions) ORDER BY 1), ',') FROM pg_foreign_server"),
	'cec:url=http://127.0.0.1:9,vendor=cec', 'the server is restored');

$node->stop;
done_testing();
