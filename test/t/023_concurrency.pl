# test/t/023_concurrency.pl: sessions enqueue while the worker dequeues,
# and no item is sent twice.
#
# Two sessions each run a loop of ccpurge_enqueue calls with 1 to 7
# distinct items, committing after every call, while the worker claims and
# sends.  The server's batch_size is 50 and ccpurge.batch_linger is 0, so
# the worker claims small batches as soon as each commit wakes it, joins
# rows of both sessions and splits rows that do not fit a batch, all while
# new rows keep arriving.  The simulator answers after 20 ms, so claims
# also overlap requests in flight.
#
# At the end every item is done, the simulator erased every item, and the
# items it received over all requests add up to exactly the number of
# distinct items: none was sent twice.  The worker's own request log
# agrees.

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

my $loops = 400;

my $sim = CcpTest::Sim->start;
my $node =
  CcpTest::new_node('main', conf => ["ccpurge.batch_linger = '0'"]);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['cec'],
	server_options => { cec => { batch_size => '50' } });
$sim->fault(
	kind => 'delay',
	delay_ms => 20,
	count => 100000,
	path => 'cleancustpersonaldata');

# enqueue_loop returns a DO block that queues $loops requests of 1 to 7
# items "$prefix<i>-<j>", committing after each and pausing 3 ms, so that
# the worker's claims fall between the commits.
sub enqueue_loop
{
	my ($prefix) = @_;
	return qq{
	DO \$\$
	BEGIN
		FOR i IN 1..$loops LOOP
			PERFORM ccpurge_enqueue('delete_customers',
				ARRAY(SELECT '$prefix' || i || '-' || j
					  FROM generate_series(1, 1 + i % 7) j));
			COMMIT;
			PERFORM pg_sleep(0.003);
		END LOOP;
	END
	\$\$;};
}

# items per session: sum over i of 1 + i % 7
my $per_session = 0;
$per_session += 1 + $_ % 7 for 1 .. $loops;
my $total = 2 * $per_session;

my $requests_before = $sim->state->{requests}{cec_customers};

# Both sessions start together (run_together's barrier).
my @prefixes = ('a-', 'b-');
my @res =
  CcpTest::run_together($node, 2323, map { enqueue_loop($_) } @prefixes);
for my $i (0 .. $#res)
{
	ok($res[$i][2], "session \"$prefixes[$i]\" queued its $loops requests")
	  or diag($res[$i][1]);
}

ok(CcpTest::wait_finished($node, 'true'), 'the queue drained');

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) || '|' || count(DISTINCT item) || '|'
		|| count(*) FILTER (WHERE state = 'done') || '|'
		|| count(DISTINCT request_id)
	FROM ccpurge_status}),
	"$total|$total|$total|" . (2 * $loops),
	"all $total items of " . (2 * $loops) . ' requests are in the queue once, and done');

my %deleted = map { $_ => 1 } @{ $sim->deleted('cec_customers') };
my @missing;
for my $prefix ('a-', 'b-')
{
	for my $i (1 .. $loops)
	{
		for my $j (1 .. 1 + $i % 7)
		{
			push @missing, "$prefix$i-$j" unless $deleted{"$prefix$i-$j"};
		}
	}
}
is(scalar(@missing), 0, "the simulator erased all $total items")
  or diag('missing: ' . join(', ', @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ]));
is(scalar(keys %deleted), $total, 'and nothing else');

# What the vendor received, request by request.
my $state = $sim->state;
my $requests = $state->{requests}{cec_customers} - $requests_before;
cmp_ok($requests, '<', 10000,
	"$requests requests fit in the simulator's request log");
my @log = grep { $_->{endpoint} eq 'cec_customers' }
  @{ $sim->request_log(10000) };
is(scalar(@log), $requests, 'the request log holds every request');
my $sent = 0;
my $bad = 0;
for my $e (@log)
{
	$sent += $e->{items};
	$bad++ if $e->{status} != 200 || $e->{items} > 50;
}
is($bad, 0, 'every request succeeded and carried at most 50 items');
is($sent, $total,
	"the requests carried $sent items in all: each of the $total items exactly once"
);
cmp_ok($requests, '>=', $total / 50, "at least $total/50 requests were needed");
my $partial = grep { $_->{items} < 50 } @log;
cmp_ok($partial, '>', 0,
	"$partial requests had a partial batch: the worker claimed while sessions were still queueing"
);
note("$requests requests for $total items");

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) || '|' || sum(item_count) || '|' || bool_and(ok)
	FROM ccpurge.request_log
	WHERE origin = 'worker' AND operation = 'delete_customers'}),
	"$requests|$total|true",
	"ccpurge's request log shows the same requests and items");

# the worker chained the rows the sessions' and its own transactions wrote
ok( $node->poll_query_until(
		'postgres',
		'SELECT count(*) = 0 FROM ccpurge.request_log WHERE chain_seq IS NULL'),
	'every log row is chained');
is($node->safe_psql('postgres', 'SELECT ok FROM ccpurge_verify_log()'),
	't', 'the chain verifies after concurrent writers');

$node->stop;
done_testing();
