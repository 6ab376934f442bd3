#
# test/t/033_rollback_spill.pl: no cap drops the request-log rows of a
# rolled-back transaction.
#
# The requests of a synchronous call went out whatever becomes of the
# caller's transaction, so when it rolls back its log rows go to the worker:
# through a ring of 256 rows in shared memory, and beyond that through
# spill files in $PGDATA/pg_ccpurge.  Here one rolled-back transaction
# makes 300 requests (and a token request), more than the ring holds; every
# one of them ends up in the log, and nothing says a row was not kept.
# A second transaction makes 1,300 separate one-item calls and rolls back:
# past 1,000 written rows a transaction keeps them in a temporary file
# instead of memory, and those too reach the log.  A transaction that sent
# requests cannot be prepared for two-phase commit (ROLLBACK PREPARED would
# lose its rows): PREPARE TRANSACTION fails and its rows reach the log.
#
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
my $node = CcpTest::new_node('main', conf => 'max_prepared_transactions = 2');
CcpTest::setup_servers($node, $sim, servers => ['cec'],
	server_options => { cec => { batch_size => '1' } });

my $log_offset = -s $node->logfile;
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
	BEGIN;
	SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers(
		ARRAY(SELECT 'spill-' || g FROM generate_series(1, 300) g));
	ROLLBACK;});
is($ret, 0, 'the rolled-back transaction ran');
is($stdout, '300', 'it made 300 requests, each erasing its item');
unlike($stderr, qr/not kept/, 'no row was dropped');
is($sim->state->{requests}{cec_customers}, 300,
	'the simulator received the 300 requests');

ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) = 300 FROM ccpurge.request_log
	WHERE operation = 'delete_customers' AND origin = 'sync' AND ok}),
	'the worker wrote the 300 rows of the rolled-back requests');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) || '|' || count(DISTINCT items_hmac)
	FROM ccpurge.request_log WHERE operation = 'delete_customers'}),
	'300|300', 'each request has exactly one row (the ring holds 256: 44 or more came through spill files)');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_ls_dir('pg_ccpurge') AS f
	WHERE f LIKE 'spill-%.rec'}),
	'0', 'the spill files are gone once their rows are written');
ok(!$node->log_contains(qr/was not kept|were not kept/, $log_offset),
	'the server log reports no lost row');

# 1,300 separate calls in one statement: the log rows are written in slices
# as the statement runs, and past 1,000 the transaction keeps them in its
# temporary file; the rollback hands all of them to the worker.
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
	BEGIN;
	SELECT count(*) FILTER (WHERE r.ok) FROM generate_series(1, 1300) g,
		ccpurge_delete_customers(ARRAY['keep-' || g]) r;
	ROLLBACK;});
is($ret, 0, 'the rolled-back transaction of 1,300 calls ran');
is($stdout, '1300', 'each of the 1,300 calls erased its item');
unlike($stderr, qr/not kept/, 'no row of the 1,300 was dropped');
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) = 1600 FROM ccpurge.request_log
	WHERE operation = 'delete_customers' AND origin = 'sync' AND ok}),
	'the worker wrote the 1,300 rows, those kept in the file included');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) || '|' || count(DISTINCT items_hmac)
	FROM ccpurge.request_log WHERE operation = 'delete_customers'}),
	'1600|1600', 'each request of both transactions has exactly one row');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_ls_dir('base/pgsql_tmp', true, false) AS f
	WHERE f LIKE 'pgsql_tmpccpurge%'}),
	'0', 'the temporary file is gone after the rollback');
ok(!$node->log_contains(qr/was not kept|were not kept/, $log_offset),
	'the server log still reports no lost row');

# two-phase commit: refused once a request went out, and nothing is lost
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
	BEGIN;
	SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers(
		ARRAY['twophase-1', 'twophase-2']);
	PREPARE TRANSACTION 'ccp_2pc';});
like($stderr,
	qr/cannot prepare a transaction that sent ccpurge requests/,
	'PREPARE TRANSACTION after a synchronous call is refused');
is( $node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
	'0', 'no transaction was prepared');
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) = 1602 FROM ccpurge.request_log
	WHERE operation = 'delete_customers' AND origin = 'sync' AND ok}),
	'the worker wrote the rows of the refused transaction');

# a transaction that only queues work can still be prepared
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT ccpurge_enqueue('delete_customers', ARRAY['twophase-q'], server => 'cec');
	PREPARE TRANSACTION 'ccp_2pc_queue';
	COMMIT PREPARED 'ccp_2pc_queue';});
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM ccpurge.queue WHERE 'twophase-q' = ANY (items)}),
	'1', 'a transaction that queued work was prepared and committed');

$node->stop;
$sim->stop;
done_testing();
