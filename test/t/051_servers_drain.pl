# test/t/051_servers_drain.pl: ccpurge_servers while the worker drains the
# queue.
#
# Covers, against the vendor simulator, one CEC server with batch_size 1
# and rate_limit 2/minute, and four queued items:
#   - while the rate limit holds the queue: two items queued since the
#     request was queued, the window full (2 of 2) until a time to come,
#     the last success and the hour's requests;
#   - once the limit is raised and the vendor holds an answer: the request
#     in flight and its item sending;
#   - once drained: nothing queued, sending or in flight;
#   - a permanent refusal: one failed item and the vendor's message as
#     last_error, with the secret it echoed redacted; no column of any row
#     holds a secret or the token.

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
	servers => ['cec'],
	server_options => { cec => { batch_size => '1', rate_limit => '2/minute' } });
my $cec_path = 'cleancustpersonaldata';

# servers runs a condition on the row of server cec until it holds
sub servers
{
	my ($cond, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', "SELECT $cond FROM ccpurge_servers WHERE server = 'cec'"),
		$what)
	  or diag($node->safe_psql('postgres', 'SELECT * FROM ccpurge_servers'));
}

my $id = $node->safe_psql('postgres', CcpTest::enqueue_sql('drain', 4));
my $queued_at = $node->safe_psql('postgres',
	"SELECT min(enqueued_at) FROM ccpurge.queue WHERE request_id = $id");

# 1. two requests fill the window of 2/minute; two items wait
servers(
	qq{vendor = 'cec' AND rate_limit = '2/minute'
	  AND queued = 2 AND sending = 0 AND failed = 0
	  AND oldest_queued_at = '$queued_at' AND inflight = 0
	  AND window_used = 2 AND next_slot_at > now()
	  AND next_slot_at <= now() + interval '1 minute'
	  AND token_expires_at > now() AND last_ok_at IS NOT NULL
	  AND last_error IS NULL AND requests_1h >= 2 AND errors_1h = 0},
	'the rate limit holds two items: the window is full until next_slot_at');

# 2. a higher limit lets the rest go; the vendor holds one answer
$sim->fault(kind => 'delay', delay_ms => 10000, count => 1, path => $cec_path);
$node->safe_psql('postgres',
	"ALTER SERVER cec OPTIONS (SET rate_limit '100/second')");
servers(q{inflight >= 1 AND sending >= 1 AND rate_limit = '100/second'},
	'a request held by the vendor is in flight and its item sending');

# 3. drained
is(CcpTest::ccpurge_wait($node, $id), 't', 'the queue drains');
servers(
	q{queued = 0 AND sending = 0 AND failed = 0 AND oldest_queued_at IS NULL
	  AND inflight = 0 AND requests_1h >= 4 AND errors_1h = 0},
	'drained: nothing queued, sending or in flight');

# 4. a permanent refusal that echoes the secret
$sim->fault(
	kind => 'body',
	status => 400,
	path => $cec_path,
	body => '{"retCode":"0100007","retMsg":"refused for cec-app-secret"}');
$id = $node->safe_psql('postgres', CcpTest::enqueue_sql('refused', 1));
is(CcpTest::ccpurge_wait($node, $id), 't', 'the refused request finishes');
servers(
	q{failed = 1 AND errors_1h = 1 AND last_error_at >= last_ok_at
	  AND last_error LIKE '%refused for <redacted>%'},
	'a failed item counts, and last_error is the redacted vendor message');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM ccpurge_servers v
 WHERE strpos(lower(v::text), 'cec-app-secret') > 0
	OR strpos(lower(v::text), 'cec-app-key') > 0}),
	'0', 'no secret in any column');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM ccpurge_servers v WHERE v::text ~ '[0-9a-f]{32}'}),
	'0', 'nothing shaped like a token in any column');

$node->stop;
done_testing();
