#
# 025_dump: pending work, failures and the request log survive pg_dump and
# restore
#
# The queue is registered with pg_extension_config_dump for its queued,
# sending and failed rows (failed rows still need action; done and canceled
# rows are history), the request log for all rows, and their sequences
# too, so that a restored database goes on where the old one stopped.  The
# same holds for a fresh install and for one updated from 1.1, whose dump
# condition the update changes.  No worker serves any database here
# (ccpurge.serve_database is off), so nothing is sent while the test looks.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

# Both databases' servers are one CEC account, whose failed token request
# would otherwise answer the second database's call for 2 s without a
# request (ccpurge.token_failure_hold).
my $node = CcpTest::new_node('dump',
	conf => [ 'ccpurge.serve_database = off', 'ccpurge.token_failure_hold = 0' ]);

# dump_and_restore fills database $old (whose extension is already
# installed), dumps it, restores it into $new and checks what came back.
sub dump_and_restore
{
	my ($old, $new, $how) = @_;

	CcpTest::setup_servers($node, undef, dbname => $old, servers => ['cec'],
		url => 'http://127.0.0.1:9', extension => 0);

	# queued work, a canceled row, a failed row and a request-log row
	$node->safe_psql($old, q{
	SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-1', 'dump-2']);
	SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-3']);
	SELECT ccpurge_cancel(2);
	SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-6']);
	-- as the worker leaves a permanent refusal
	UPDATE ccpurge.queue SET state = 'failed', attempts = 1, http_status = 400,
		message = 'refused', finished_at = now() WHERE request_id = 3;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['dump-4']);});
	is($node->safe_psql($old,
			"SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT " . CcpTest::shown_item_sql() . " || ':' || state AS s FROM ccpurge_status) x"),
		'digest:canceled,dump-1:queued,dump-2:queued,dump-6:failed',
		"$how: the old database has queued, canceled and failed items");
	# the server is never reached: the failed token request is the logged one
	is($node->safe_psql($old, "SELECT operation || ':' || ok FROM ccpurge.request_log"),
		'token:false', "$how: and a request-log row");

	my $dump = $node->basedir . "/$old.dump";
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr($old) ],
		"$how: pg_dump of a database with ccpurge");
	$node->safe_psql('postgres', "CREATE DATABASE $new");
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr($new), $dump ],
		"$how: pg_restore into a new database");

	is($node->safe_psql($new,
			"SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT " . CcpTest::shown_item_sql() . " || ':' || state AS s FROM ccpurge_status) x"),
		'dump-1:queued,dump-2:queued,dump-6:failed',
		"$how: queued and failed items are restored, finished ones are not");
	is($node->safe_psql($new, q{
		SELECT http_status || ':' || message FROM ccpurge_status WHERE state = 'failed'}),
		'400:refused', "$how: a failed item keeps its reason");
	is($node->safe_psql($new, "SELECT operation || ':' || ok FROM ccpurge.request_log"),
		'token:false', "$how: the request log is restored");
	is($node->safe_psql($new, q{
		SELECT count(*) FROM ccpurge_status WHERE request_id = 1}), '2',
		"$how: the items keep their request id");
	# the sequences went on: a new request gets a new id, not 1 again
	my $rid = $node->safe_psql($new,
		"SELECT ccpurge_enqueue('delete_customers', ARRAY['dump-5'])");
	cmp_ok($rid, '>', 3, "$how: a new request after the restore gets a fresh id");
	is($node->safe_psql($new,
			"SELECT srvname || ':' || array_to_string(ARRAY(SELECT unnest(srvoptions) ORDER BY 1), ',') FROM pg_foreign_server"),
		'cec:url=http://127.0.0.1:9,vendor=cec', "$how: the server is restored");
}

$node->safe_psql('postgres', 'CREATE DATABASE olddb');
$node->safe_psql('olddb', 'CREATE EXTENSION ccpurge');
dump_and_restore('olddb', 'newdb', 'fresh install');

$node->safe_psql('postgres', 'CREATE DATABASE olddb11');
$node->safe_psql('olddb11',
	"CREATE EXTENSION ccpurge VERSION '1.1'; ALTER EXTENSION ccpurge UPDATE");
dump_and_restore('olddb11', 'newdb11', 'updated from 1.1');

$node->stop;
done_testing();
