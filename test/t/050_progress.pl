# test/t/050_progress.pl: ccpurge_progress shows a running synchronous call
# to a second session.
#
# Covers, against the vendor simulator, each observed from another session
# while the call runs:
#   - a call held by a slow answer: its function, server, pid, items and
#     requests, waiting_for 'http', with the requests already answered
#     counted (two of three, four of five items);
#   - a call held by the rate limit after its first request: waiting_for
#     'rate limit', one request and two items done;
#   - a call held by a slow token request: waiting_for 'token';
#   - a cancelled call, or one that failed, leaves no row; a finished one
#     neither.

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
my $node = CcpTest::new_node('main');
CcpTest::setup_servers(
	$node, $sim,
	servers => [ 'cec', 'limited', 'ozonetel' ],
	vendors => { limited => 'cec' },
	server_options => {
		cec => { batch_size => '2' },
		limited => { batch_size => '2', rate_limit => '1/minute' },
	});

my $cec_path = 'cleancustpersonaldata';
my $five = "ARRAY['p1', 'p2', 'p3', 'p4', 'p5']";

# shows runs a condition on the one ccpurge_progress row of backend $pid
# until it holds
sub shows
{
	my ($pid, $cond, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', "SELECT $cond FROM ccpurge_progress WHERE pid = $pid"),
		$what)
	  or diag($node->safe_psql('postgres', 'SELECT * FROM ccpurge_progress'));
}

# no_row waits until backend $pid has no ccpurge_progress row
sub no_row
{
	my ($pid, $what) = @_;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM ccpurge_progress WHERE pid = $pid"),
		$what);
}

is($node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge_progress'),
	'0', 'no call runs: no row');

# 1. a slow third request: two requests answered, the third awaited
$sim->fault(kind => 'delay', delay_ms => 1, count => 2, path => $cec_path);
$sim->fault(kind => 'delay', delay_ms => 120000, count => 1, path => $cec_path);
my ($bg, $pid) = CcpTest::start_call($node,
	"SELECT * FROM ccpurge_delete_customers($five, 'cec')");
shows(
	$pid, q{function = 'ccpurge_delete_customers' AND server = 'cec'
	  AND items_total = 5 AND requests_total = 3
	  AND requests_done = 2 AND items_done = 4 AND waiting_for = 'http'
	  AND started_at <= now()},
	'a call awaiting its third answer shows two requests and four items done, waiting for http'
);
ok(CcpTest::cancel_call($node, $pid), 'the slow call is cancelled');
no_row($pid, 'a cancelled call leaves no row while its session lives on');
$bg->quit;

# 2. the rate limit holds the second request for a minute
($bg, $pid) = CcpTest::start_call($node,
	"SELECT * FROM ccpurge_call('delete_customers', $five, '{}', 'limited')");
shows(
	$pid, q{function = 'ccpurge_call' AND server = 'limited'
	  AND requests_total = 3 AND requests_done = 1 AND items_done = 2
	  AND waiting_for = 'rate limit'},
	'a call held by the rate limit says so, one request done');
ok(CcpTest::cancel_call($node, $pid), 'the waiting call is cancelled');
no_row($pid, 'and leaves no row');
$bg->quit;

# 3. a slow token request
$sim->fault(kind => 'delay', delay_ms => 120000, count => 1,
	path => 'generateToken');
($bg, $pid) = CcpTest::start_call($node,
	"SELECT * FROM ccpurge_delete_bulk_data(ARRAY['9000000001'], ARRAY['QA'])");
shows(
	$pid, q{function = 'ccpurge_delete_bulk_data' AND server = 'ozonetel'
	  AND items_total = 1 AND requests_done = 0 AND waiting_for = 'token'},
	'a call getting its token waits for the token');
ok(CcpTest::cancel_call($node, $pid), 'the call is cancelled');
no_row($pid, 'and leaves no row');
$bg->quit;

# 4. calls that finish leave no row, whether they succeed or fail
my ($ok_rows) = $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE ok) FROM ccpurge_delete_customers($five, 'cec');
SELECT count(*) FROM ccpurge_progress;});
is($ok_rows, "5\n0", 'a finished call leaves no row');
my ($rc, $out, $err) = $node->psql(
	'postgres', q{
SET statement_timeout = '200ms';
SELECT * FROM ccpurge_delete_customers(ARRAY['late'], 'limited');
RESET statement_timeout;
SELECT count(*) FROM ccpurge_progress;},
	on_error_stop => 0);
like($err, qr/statement timeout/, 'a call fails on its statement timeout');
is($out, '0', 'a failed call leaves no row, seen from its own session');

$node->stop;
done_testing();
