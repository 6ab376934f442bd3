# test/t/011_cancel.pl: a synchronous call can be interrupted.
#
# Covers, against the vendor simulator:
#   - statement_timeout stops a call waiting for a slow answer within about
#     100 ms of the timeout;
#   - pg_cancel_backend stops a call waiting for a slow answer promptly, and
#     the same session works again afterwards;
#   - neither leaks a rate-limit ticket: a server with max_inflight 1 still
#     takes the next request (Ozonetel, whose simulator also refuses a second
#     request in flight);
#   - a call waiting for the rate limiter itself is interrupted by
#     statement_timeout, after the NOTICE about the wait, whose detail
#     counts a limit of one request in the singular;
#   - a cancel stops the validation and de-duplication of a huge array
#     (10,000,000 items) promptly, not when it is done seconds later.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
$sim->config(oz_rate_limit => 100, oz_window_ms => 1000);
my $node = CcpTest::new_node('main');
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'cec', 'ozonetel' ],
	server_options => {
		cec => { max_inflight => '1' },
		ozonetel => { rate_limit => '100/second' },
	});

my $cec_path = 'cleancustpersonaldata';
my $oz_path = 'DeleteBulkData';

# warm up: the token and a connection exist before anything is timed
is( $node->safe_psql(
		'postgres', "SELECT ok FROM ccpurge_delete_customers(ARRAY['warm'])"),
	't',
	'warm-up call succeeds');

# 1. statement_timeout during a slow answer.
$sim->fault(kind => 'delay', delay_ms => 10000, count => 1, path => $cec_path);
my ($out, $err) = ('', '');
my $t0 = time;
my $rc = $node->psql(
	'postgres', q{
SET statement_timeout = '300ms';
DO $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	PERFORM * FROM ccpurge_delete_customers(ARRAY['slow-timeout']);
	RAISE NOTICE 'not interrupted';
EXCEPTION WHEN query_canceled THEN
	RAISE NOTICE 'interrupted after % ms: %',
		round(extract(epoch FROM clock_timestamp() - t0) * 1000), SQLERRM;
END
$$;},
	stdout => \$out,
	stderr => \$err);
my $elapsed = time - $t0;
is($rc, 0, 'the DO block caught the interruption');
like(
	$err,
	qr/interrupted after \d+ ms: canceling statement due to statement timeout/,
	'the slow call failed with the statement timeout error');
my ($server_ms) = $err =~ /interrupted after (\d+) ms/;
$server_ms //= 1e9;
note("statement_timeout 300ms: interrupted after $server_ms ms in the server,"
	  . sprintf(" %.0f ms in psql", $elapsed * 1000));
cmp_ok($elapsed, '<', 2, 'the interrupted call returned within 2 seconds');
cmp_ok($server_ms, '<', 300 + 250,
	'the transfer stopped within about 100 ms of the timeout');

# Without the DO block, the statement itself fails with the timeout error.
$sim->fault(kind => 'delay', delay_ms => 10000, count => 1, path => $cec_path);
$t0 = time;
$rc = $node->psql(
	'postgres', q{
SET statement_timeout = '300ms';
SELECT * FROM ccpurge_delete_customers(ARRAY['slow-timeout-2']);},
	stderr => \$err);
$elapsed = time - $t0;
isnt($rc, 0, 'a statement interrupted by statement_timeout fails');
like($err, qr/canceling statement due to statement timeout/,
	'with the statement timeout error');
cmp_ok($elapsed, '<', 2, 'within 2 seconds');

# 2. pg_cancel_backend during a slow answer, then the same session again.
my $bg = $node->background_psql('postgres', on_error_stop => 0, timeout => 60);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$sim->fault(kind => 'delay', delay_ms => 10000, count => 1, path => $cec_path);
my $sent = $sim->state->{requests}{cec_customers};
$bg->query_until(qr/sending/,
	"\\echo sending\nSELECT * FROM ccpurge_delete_customers(ARRAY['slow-cancel']);\n"
);
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT state = 'active' AND query LIKE '%slow-cancel%'
	FROM pg_stat_activity WHERE pid = $pid}),
	'the call is running');
# the request has reached the simulator, which holds it for 10 s: the
# call now waits for the answer
ok($sim->wait_for(sub { $_[0]->{requests}{cec_customers} > $sent }),
	'the call is waiting for the slow answer');
$t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"),
	't', 'pg_cancel_backend signals the session');
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $pid}),
	'the cancelled call ends');
my $cancel_s = time - $t0;
note(sprintf("pg_cancel_backend: the call ended after %.0f ms",
		$cancel_s * 1000));
cmp_ok($cancel_s, '<', 2, 'the cancel took effect within 2 seconds');

# a leaked ticket would make this call wait forever: bound it
my ($after, $after_err) = $bg->query(
	"SET statement_timeout = '10s';\n"
	  . "SELECT pg_backend_pid() || ' ' || ok FROM ccpurge_delete_customers(ARRAY['after-cancel'])"
);
like($bg->{stderr}, qr/canceling statement due to user request/,
	'the cancelled call failed with the cancel error');
is($after, "$pid true",
	'the same session succeeds afterwards (max_inflight 1: no leaked ticket)');
ok($sim->deleted_set('cec_customers')->{'after-cancel'},
	'the call after the cancel reached the simulator');
$bg->quit;

# 3. Ozonetel (max_inflight 1, the simulator refuses overlapping requests):
# a timed-out call leaks no ticket.
is( $node->safe_psql(
		'postgres',
		"SELECT ok FROM ccpurge_delete_bulk_data(ARRAY['7000000001'], ARRAY['QA'])"
	),
	't',
	'Ozonetel warm-up call succeeds');
$sim->fault(kind => 'delay', delay_ms => 1500, count => 1, path => $oz_path);
my $oz_deleted = $sim->state->{deleted}{ozonetel};
$bg = $node->background_psql('postgres', on_error_stop => 0, timeout => 60);
$t0 = time;
my ($o, $e) = $bg->query(q{
SET statement_timeout = '300ms';
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['7000000002'], ARRAY['QA']);});
like($bg->{stderr}, qr/canceling statement due to statement timeout/,
	'the slow Ozonetel call fails with the statement timeout error');
cmp_ok(time - $t0, '<', 2, 'within 2 seconds');
$bg->{stderr} = '';

# the simulator still processes the abandoned request, and refuses any
# other meanwhile; it is done when it has deleted the number
ok($sim->wait_for(sub { $_[0]->{deleted}{ozonetel} > $oz_deleted }),
	'the simulator finished the abandoned request');
my $req = $sim->state->{requests}{oz_delete};
my $rej = $sim->state->{rejections};
($o, $e) = $bg->query(q{
SET statement_timeout = '10s';
SELECT count(*) FILTER (WHERE ok) || '/' || count(*)
FROM ccpurge_delete_bulk_data(ARRAY['7000000003'], ARRAY['QA']);});
is($o, '1/1',
	'the same session erases again: no ticket of max_inflight 1 was leaked')
  or diag($bg->{stderr});
$bg->quit;
is( $node->safe_psql(
		'postgres', q{
SET statement_timeout = '10s';
SELECT count(*) FILTER (WHERE ok) || '/' || count(*)
FROM ccpurge_delete_bulk_data(ARRAY['7000000004'], ARRAY['QA']);}),
	'1/1',
	'another session erases too');
my $state = $sim->state;
is($state->{requests}{oz_delete} - $req,
	2, 'the two calls after the cancel took one request each');
is($state->{rejections}{inflight},
	$rej->{inflight}, 'no request overlapped one in flight');
is($state->{max_inflight}{ozonetel}, 1, 'never two Ozonetel requests in flight');

# 4. A wait for the rate limiter is interrupted too, after a NOTICE.
$node->safe_psql('postgres',
	"ALTER SERVER ozonetel OPTIONS (SET rate_limit '1/hour')");
is( $node->safe_psql(
		'postgres',
		"SELECT ok FROM ccpurge_delete_bulk_data(ARRAY['7000000005'], ARRAY['QA'])"
	),
	't',
	'the only request of the hour goes out');
$req = $sim->state->{requests}{oz_delete};
$t0 = time;
$rc = $node->psql(
	'postgres', q{
SET ccpurge.rate_limit_notice = '200ms';
SET statement_timeout = '1500ms';
SELECT * FROM ccpurge_delete_bulk_data(ARRAY['7000000006'], ARRAY['QA']);},
	stderr => \$err);
$elapsed = time - $t0;
isnt($rc, 0, 'a call waiting for the rate limiter fails on statement_timeout');
like($err, qr/NOTICE:  waiting for the rate limit of server "ozonetel"/,
	'the wait raised a NOTICE');
like(
	$err,
	qr/DETAIL:  The server allows 1 request per 3600000 ms and at most 1 in flight\./,
	'its detail counts the one request an hour in the singular');
like($err, qr/canceling statement due to statement timeout/,
	'the wait ended with the statement timeout error');
cmp_ok($elapsed, '<', 3, 'within 3 seconds');
is($sim->state->{requests}{oz_delete}, $req, 'nothing was sent');

# 5. A cancel stops the validation of a huge array.
$node->safe_psql('postgres', q{
	CREATE TABLE huge AS
	SELECT array_agg('h' || g) AS a FROM generate_series(1, 10000000) g;});
$req = $sim->state->{requests}{cec_customers};
my $huge = $node->background_psql('postgres', on_error_stop => 0);
my $huge_pid = $huge->query_safe('SELECT pg_backend_pid()');
$huge->query_until(qr/started/, q{
\echo started
SELECT count(*) FROM ccpurge_delete_customers((SELECT a FROM huge));
});
# let it get past reading the array into validating it
ok( $node->poll_query_until('postgres', qq{
	SELECT clock_timestamp() - query_start > interval '1 second'
	  FROM pg_stat_activity WHERE pid = $huge_pid AND state = 'active'}),
	'the call is busy with its 10,000,000 items');
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($huge_pid)");
ok( $node->poll_query_until('postgres', qq{
	SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $huge_pid}),
	'the call ends');
my $huge_cancel = time - $t0;
note(sprintf('the huge call ended %.0f ms after the cancel', $huge_cancel * 1000));
cmp_ok($huge_cancel, '<', 1.5, 'within 1.5 seconds of the cancel');
is($sim->state->{requests}{cec_customers}, $req, 'nothing was sent');
$huge->quit;

$node->stop;
$sim->stop;
done_testing();
