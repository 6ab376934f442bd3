# test/t/049_drop_extension.pl: DROP EXTENSION ccpurge does not lose work.
#
# Covers:
#   - with items queued (no worker reaches the vendor: the server points
#     at a closed port and retries wait), DROP EXTENSION is refused with
#     an error counting them by state and a hint naming the functions
#     that finish or cancel them; the queue keeps them;
#   - with items failed, likewise;
#   - DROP SCHEMA ... CASCADE of the extension's schema and DROP OWNED BY
#     its owner, which would drop it too, are refused likewise; DROP OWNED
#     BY another superuser is not;
#   - once they are canceled, DROP EXTENSION succeeds, and the database's
#     worker leaves;
#   - with nothing but done items, it succeeds at once.

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

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main',
	conf => [ 'ccpurge.max_attempts = 1', "ccpurge.retry_backoff = '1h'" ]);
CcpTest::setup_servers($node, $sim, servers => ['cec']);
my $drop = 'SET client_min_messages = warning; DROP EXTENSION ccpurge CASCADE';

# 1. Items that fail for good: the simulator refuses the app_secret.
$node->safe_psql('postgres',
	"ALTER USER MAPPING FOR PUBLIC SERVER cec OPTIONS (SET app_secret 'wrong')");
my $failed = $node->safe_psql('postgres', CcpTest::enqueue_sql('fail-', 3));
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 3 FROM ccpurge_status WHERE request_id = $failed AND state = 'failed'"
	),
	'the items failed');
my ($ret, $out, $err) = $node->psql('postgres', $drop);
isnt($ret, 0, 'failed items: DROP EXTENSION is refused');
like(
	$err,
	qr/ERROR:  cannot drop extension ccpurge while items are queued, sending or failed\n.*DETAIL:  0 items are queued, 0 sending and 3 failed; dropping the extension would lose them\.\n.*HINT:  .*ccpurge_retry_failed\(\).*ccpurge_cancel\(\)/s,
	'failed items: the error counts them and says how to finish');

# 2. Queued items: no worker can send them (a closed port, retried in 1h).
$node->safe_psql('postgres',
	"ALTER SERVER cec OPTIONS (SET url 'http://127.0.0.1:1')");
$node->safe_psql('postgres', "ALTER SYSTEM SET ccpurge.max_attempts = 5");
$node->reload;
my $queued = $node->safe_psql('postgres', CcpTest::enqueue_sql('queued-', 2));
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM ccpurge_status WHERE request_id = $queued AND state = 'queued' AND attempts >= 1"
	),
	'queued items: tried once, waiting for a retry');
($ret, $out, $err) = $node->psql('postgres', $drop);
isnt($ret, 0, 'queued items: DROP EXTENSION is refused');
like($err, qr/DETAIL:  2 items are queued, 0 sending and 3 failed/,
	'queued items: the error counts them');
is($node->safe_psql('postgres', 'SELECT sum(nitems) FROM ccpurge.queue'),
	'5', 'the queue kept every item');

# The extension also goes with its schema and with its owner's objects.
my $refused =
  qr/ERROR:  cannot drop extension ccpurge while items are queued, sending or failed/;
($ret, $out, $err) = $node->psql('postgres',
	'SET client_min_messages = warning; DROP SCHEMA public CASCADE');
isnt($ret, 0, 'queued items: DROP SCHEMA ... CASCADE of its schema is refused');
like($err, $refused, 'DROP SCHEMA: with the same error');
($ret, $out, $err) = $node->psql('postgres', 'DROP OWNED BY CURRENT_USER');
isnt($ret, 0, 'queued items: DROP OWNED BY its owner is refused');
like($err, $refused, 'DROP OWNED: with the same error');
# a superuser that owns nothing of it drops its own objects
$node->safe_psql('postgres',
	'CREATE ROLE bystander SUPERUSER; SET ROLE bystander; CREATE TABLE bystanders (x int); RESET ROLE'
);
($ret, $out, $err) = $node->psql('postgres', 'DROP OWNED BY bystander');
is($ret, 0, "DROP OWNED BY another superuser is not refused") or diag($err);
is( $node->safe_psql('postgres',
		"SELECT to_regclass('bystanders') IS NULL AND sum(nitems) = 5 FROM ccpurge.queue"),
	't', 'it dropped its own table; the queue kept every item');

# 3. Canceled, everything may go.
$node->safe_psql('postgres', "SELECT ccpurge_cancel($_)") for ($failed, $queued);
ok(CcpTest::wait_worker_connected($node, 'postgres'), 'a worker serves the database');
($ret, $out, $err) = $node->psql('postgres', $drop);
is($ret, 0, 'canceled: DROP EXTENSION succeeds') or diag($err);
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'"
	),
	'canceled: the worker left');

# 4. Done items only.
CcpTest::setup_servers($node, $sim, servers => ['cec']);
my $done = $node->safe_psql('postgres', CcpTest::enqueue_sql('done-', 2));
is(CcpTest::wait_done($node, $done), '2|2', 'done items: the request is done');
($ret, $out, $err) = $node->psql('postgres', $drop);
is($ret, 0, 'done items: DROP EXTENSION succeeds') or diag($err);

$node->stop;
$sim->stop;
done_testing();
