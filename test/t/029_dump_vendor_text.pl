#
# 029_dump_vendor_text: text a vendor sends is valid in the database
# encoding wherever it is stored, so a dump always restores
#
# Fixed-size shared buffers (a failed token request's message, reused by
# calls in the next seconds; the request-log rows a rolled-back call hands
# to the worker) used to cut multibyte text in the middle of a character.
# Rows holding such text made COPY fail at restore, and the pending work
# and the log were lost.  Here a token endpoint answers 401 with 200 x "é"
# and a business answer carries a retCode of 40 x "é" inside a rolled-back
# call; pg_dump | psql into a new database must restore every row.
#
# The same buffer used to keep only 511 bytes of a message, where a
# committed row keeps 1000 and "...": a rolled-back call and a committed
# one, both answered with 1500 bytes, must store the same message.  In a
# database no worker serves, the row of a rolled-back call is lost with a
# warning that counts it.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('dumptext',
	init => { extra => [ '--encoding=UTF8', '--locale=C' ] });
CcpTest::setup_servers($node, $sim, servers => ['cec', 'ozonetel']);

# "é" as JSON escapes, so that this file and the control calls stay ASCII
my $e200 = '\u00e9' x 200;
my $e40 = '\u00e9' x 40;

# a token request refused with long multibyte text: the call's rows, the
# queue rows of a request the worker tries, and the log all get it
$sim->fault(kind => 'body', status => 401, path => 'tokenByAkSk', count => 1,
	body => qq({"error_msg":"$e200"}));
my $msg = $node->safe_psql('postgres',
	"SELECT message FROM ccpurge_delete_customers(ARRAY['t-1'])");
like($msg, qr/^could not get a token: token request refused \(HTTP 401\): (\xc3\xa9)+(\.\.\.)?$/,
	'the refusal reaches the row');
my $rid = $node->safe_psql('postgres',
	"SELECT ccpurge_enqueue('delete_customers', ARRAY['t-2', 't-3'])");
ok( $node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM ccpurge_status
	 WHERE request_id = $rid AND message LIKE 'could not get a token%'}),
	'the worker records the refusal in the queue (the refusal is cached briefly)');
ok( $node->poll_query_until('postgres', qq{
	SELECT bool_and(state = 'done') FROM ccpurge_status WHERE request_id = $rid}),
	'and its retry, with a new token, succeeds');

# a business answer with a long multibyte code, in a call that rolls back:
# its log row goes through shared memory to the worker
$sim->fault(kind => 'body', status => 200, path => 'cleancustpersonaldata',
	body => qq({"retCode":"$e40","retMsg":"$e200"}));
$node->safe_psql('postgres', q{
	SET ccpurge.rate_limit_notice = 0;
	BEGIN;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['t-4']);
	ROLLBACK;});
ok( $node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM ccpurge.request_log WHERE code LIKE U&'\00E9\00E9%'}),
	'the rolled-back call\'s log row is written by the worker');

# a message longer than ccpurge keeps: a rolled-back call's row keeps as
# much of it as a committed call's, cut at a character boundary
my $e750 = '\u00e9' x 750;
$sim->fault(kind => 'body', status => 200, path => 'cleancustpersonaldata', count => 2,
	body => qq({"retCode":"long","retMsg":"$e750"}));
$node->safe_psql('postgres',
	"SELECT count(*) FROM ccpurge_delete_customers(ARRAY['t-5'])");
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['t-6']);
	ROLLBACK;});
ok( $node->poll_query_until('postgres', q{
	SELECT count(*) = 2 FROM ccpurge.request_log WHERE code = 'long'}),
	'the rolled-back call\'s log row with a long message is written by the worker');
is( $node->safe_psql('postgres', q{
	SELECT string_agg(CASE items_hmac WHEN ccpurge_items_digest(ARRAY['t-5'])
			THEN 'committed' ELSE 'rolled back' END
		|| ' ' || octet_length(message) || ' ' || right(message, 4), ', '
		ORDER BY items_hmac = ccpurge_items_digest(ARRAY['t-5']) DESC)
	FROM ccpurge.request_log WHERE code = 'long'}),
	"committed 1003 \xc3\xa9..., rolled back 1003 \xc3\xa9...",
	'both keep the first 1000 bytes and "..."');

# pg_dump | psql into a new database restores every row
my $log_rows = $node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge.request_log');
my $queue_rows = $node->safe_psql('postgres',
	"SELECT count(*) FROM ccpurge.queue WHERE state IN ('queued', 'sending')");
cmp_ok($log_rows, '>=', 3, 'there are log rows to dump');
my $dump = $node->basedir . '/all.sql';
$node->command_ok([ 'pg_dump', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
# no worker serves the restored database: it would drain the restored rows
$node->safe_psql('postgres',
	'ALTER DATABASE restored SET ccpurge.serve_database = off');
my ($stdout, $stderr);
my $ok = IPC::Run::run(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'),
	  '-f', $dump ],
	'>', \$stdout, '2>', \$stderr);
ok($ok, 'psql restores the dump without an error') or diag($stderr);
is($node->safe_psql('restored', 'SELECT count(*) FROM ccpurge.request_log'),
	$log_rows, 'every log row is restored');
is($node->safe_psql('restored',
		"SELECT count(*) FROM ccpurge.queue WHERE state IN ('queued', 'sending')"),
	$queue_rows, 'every pending queue row is restored');

# a database no worker serves (ccpurge.serve_database is off there): a
# rolled-back call's row cannot be handed over, and the warning counts it
# in the singular
$node->safe_psql('restored', q{
	SET ccpurge.rate_limit_notice = 0;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['t-7'])});
my ($ret, $out, $err) = $node->psql('restored', q{
	SET ccpurge.rate_limit_notice = 0;
	BEGIN;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['t-8']);
	ROLLBACK;});
like($err,
	qr/: WARNING:  1 request log row of a rolled-back transaction was not kept$/m,
	'another database: the lost row is counted in the warning');

$node->stop;
$sim->stop;
done_testing();
