#
# 030_chaos: a hostile vendor breaks nothing
#
# The simulator's chaos mode answers a seeded random share of requests
# with invalid, truncated, mistyped, deeply nested, over-long or invalid
# UTF-8 JSON, junk after JSON, connection resets, slow answers,
# redirects, 401 and 429 storms and bodies over 1 MiB.  Thousands of
# requests go through the synchronous functions and the worker, and then:
#   - no backend or worker crashed;
#   - every item has a row (synchronous) or a final state (queue);
#   - every request the vendor received has exactly one log row (libcurl
#     resends a request on a new connection when a kept-alive one was
#     reset; the first send then has a row of its own, "outcome unknown");
#   - the database still dumps and restores.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

my $seed = $ENV{CCP_CHAOS_SEED} // 7;
my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('chaos',
	conf => [
		"ccpurge.retry_backoff = '20ms'", "ccpurge.retry_backoff_max = '200ms'",
		"ccpurge.max_attempts = 4", "ccpurge.batch_linger = 0"
	]);
CcpTest::setup_servers($node, $sim,
	servers => [ 'cec', 'isales', 'webhook' ],
	server_options => {
		cec => { batch_size => '1', timeout_ms => '5000' },
		isales => { batch_size => '1', timeout_ms => '5000' },
		webhook => {
			url => $sim->url . '/webhook/erase',
			batch_size => '2',
			timeout_ms => '5000'
		},
	});
$sim->config(chaos_rate => 0.3, chaos_seed => $seed, chaos_max_delay_ms => 200);

# synchronous calls: one request per item
my %sync = (
	"ccpurge_delete_customers(ARRAY(SELECT 'c' || g FROM generate_series(1, 800) g))" => 800,
	"ccpurge_delete_called_routes(ARRAY(SELECT g::text FROM generate_series(1, 300) g))" => 300,
	"ccpurge_delete_caller_numbers(1, 42, ARRAY(SELECT (5000000 + g)::text FROM generate_series(1, 300) g))" => 300,
	"ccpurge_erase(ARRAY(SELECT 'w' || g FROM generate_series(1, 600) g))" => 600,);
for my $call (sort keys %sync)
{
	my ($rows, $bad) = split /\|/, $node->safe_psql('postgres',
		"SELECT count(*), count(*) FILTER (WHERE ok IS NULL OR message IS NULL) FROM $call");
	is($rows, $sync{$call}, "every item has a row: $call");
	is($bad, '0', 'and each row an outcome and a message');
}

# the worker: many small requests of every operation
$node->safe_psql('postgres', q{
	SELECT ccpurge_enqueue('delete_customers', ARRAY['q' || g]) FROM generate_series(1, 600) g;
	SELECT ccpurge_enqueue('erase', ARRAY['qw' || g, 'qx' || g]) FROM generate_series(1, 300) g;
	SELECT ccpurge_enqueue('delete_caller_numbers', ARRAY[(6000000 + g)::text],
						   '{"vdn_id": 1, "campaign_id": 43}') FROM generate_series(1, 200) g;});
ok( $node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM ccpurge.queue WHERE state IN ('queued', 'sending')}, 't'),
	'every queued item reaches a final state');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ccpurge_status WHERE state NOT IN ('done', 'failed')}),
	'0', 'only done and failed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge_status'),
	'1400', 'and no item was lost');

# a webhook item is done only when the receiver erased it: a mangled 2xx
# answer (HTML, trailing junk, JSON of another shape) is never an erasure
# (done items keep only their digests: the erased set is compared as digests)
my %erased = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	'SELECT pg_catalog.unnest(ccpurge.forget_items('
	  . CcpTest::quote_literal('{' . join(',', map { "\"$_\"" } @{ $sim->deleted('webhook') }) . '}')
	  . '::text[]))');
my @false_done = grep { !$erased{$_} } split /\n/, $node->safe_psql('postgres', q{
	SELECT item FROM ccpurge_status WHERE operation = 'erase' AND state = 'done'});
is(scalar(@false_done), 0,
	'every webhook item marked done was erased by the simulator ('
	  . join(',', @false_done[0 .. ($#false_done < 4 ? $#false_done : 4)]) . ')');

# nothing crashed: no server process ended by a signal, the worker is the
# one that started
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated by|server process .* exited with exit code [^01]/,
	'no backend or worker crashed');
unlike($log, qr/PANIC|TRAP:/, 'no PANIC or assertion');
isnt(CcpTest::worker_pid($node), '', 'the worker still runs');

# every request the simulator received has a log row
my $state = $sim->state;
my $received = 0;
$received += $state->{requests}{$_}
  for qw(cec_token cec_customers cec_routes isales_caller_numbers webhook);
my $chaos = $state->{chaos};
my $chaos_total = 0;
$chaos_total += $chaos->{$_} for keys %$chaos;
cmp_ok($chaos_total, '>=', 500, "the simulator misbehaved often ($chaos_total times)");
my $logged = $node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge.request_log');
# libcurl's own resends after a reset have rows of their own
is($logged, $received,
	"every request the simulator received has one log row ($logged rows, $received requests, $chaos->{reset} resets)");

# the database still dumps and restores
my $dump = $node->basedir . '/chaos.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore');
is($node->safe_psql('restored', 'SELECT count(*) FROM ccpurge.request_log'),
	$logged, 'the log is restored whole');

$node->stop;
$sim->stop;
done_testing();
