# test/t/012_chunk_fault.pl: a fault on one chunk of a chunked call.
#
# With batch_size 2, six customer numbers go out as three requests.  The
# simulator is told to let the first request through and to spoil the
# second one (a no-op fault - a delay of 0 ms - queued in front of the real
# one takes the first request).  For each kind of fault - HTTP 500, a
# connection reset, a body that is not JSON, an oversized body, and an
# answer slower than the server's timeout_ms - the test checks that:
#   - exactly three requests were made (the synchronous path does not
#     retry a failed chunk);
#   - the rows of the second chunk are not ok, with the expected status and
#     message, and the rows of the other chunks are ok;
#   - the simulator deleted exactly the items of chunks one and three;
#   - the request log has one failed and two successful rows.

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
	server_options => { cec => { batch_size => '2', timeout_ms => '1000' } });

my $path = 'cleancustpersonaldata';

# warm-up: the token request must not take one of the faults below
is( $node->safe_psql(
		'postgres', "SELECT ok FROM ccpurge_delete_customers(ARRAY['warm'])"),
	't',
	'warm-up call succeeds');

# Each case: name, fault (its count included), expected http_status of the
# failed rows ('' for none), a pattern for their message, the number of
# requests the simulator sees, and whether the vendor still deleted the
# failed chunk's items (it did for an oversized answer: only the answer
# was spoiled).
#
# A reset is queued twice: the second chunk goes out on a reused keep-alive
# connection, and libcurl replays a request once on a fresh connection
# when a reused one dies before any answer (that is how a connection the
# vendor closed while idle is told apart from a failure); the reset of the
# replay is what the call reports.
my @cases = (
	[
		'status500', { kind => 'status', status => 500, count => 1 },
		'500', qr/HTTP 500/, 3, 0
	],
	[ 'reset', { kind => 'reset', count => 2 }, '', qr/request failed/, 4, 0 ],
	[
		'garbage', { kind => 'garbage', count => 1 },
		'200', qr/not the documented JSON/, 3, 0
	],
	[
		'oversize', { kind => 'oversize', count => 1 },
		'200', qr/request failed: .*1 MiB/, 3, 1
	],
	[
		'timeout', { kind => 'delay', delay_ms => 10000, count => 1 },
		'', qr/timed out/, 3, 0
	],
);

for my $case (@cases)
{
	my ($name, $fault, $status, $message, $nreq, $vendor_deleted) = @$case;
	my @items = map { "$name-$_" } 1 .. 6;
	my $array = 'ARRAY[' . join(',', map { "'$_'" } @items) . ']';

	my $req = $sim->state->{requests}{cec_customers};
	my $logged = $node->safe_psql('postgres',
		'SELECT coalesce(max(log_id), 0) FROM ccpurge.request_log');

	# the first request takes the no-op fault, the second the real one
	$sim->fault(kind => 'delay', delay_ms => 0, count => 1, path => $path);
	$sim->fault(%$fault, path => $path);

	my $rows = $node->safe_psql(
		'postgres', qq{
		SELECT item, request_no, ok, coalesce(http_status::text, ''), message
		FROM ccpurge_delete_customers($array)
		ORDER BY request_no, item});
	my @rows = map { [ split /\|/, $_, 5 ] } split /\n/, $rows;

	is(scalar @rows, 6, "$name: one row per customer number");
	is_deeply(
		[ map { "$_->[0]:$_->[1]:$_->[2]" } @rows ],
		[
			"$name-1:1:t", "$name-2:1:t", "$name-3:2:f",
			"$name-4:2:f", "$name-5:3:t", "$name-6:3:t"
		],
		"$name: only the second chunk failed");
	for my $r (grep { $_->[2] eq 'f' } @rows)
	{
		is($r->[3], $status, "$name: $r->[0] has http_status '$status'");
		like($r->[4], $message, "$name: $r->[0] says why: $r->[4]");
	}

	is($sim->state->{requests}{cec_customers} - $req,
		$nreq, "$name: $nreq requests, the failed chunk was not retried");

	my $deleted = $sim->deleted_set('cec_customers');
	if ($vendor_deleted)
	{
		is_deeply([ grep { $deleted->{$_} } @items ],
			\@items, "$name: the vendor deleted every item");
	}
	else
	{
		is_deeply(
			[ grep { $deleted->{$_} } @items ],
			[ "$name-1", "$name-2", "$name-5", "$name-6" ],
			"$name: the simulator deleted exactly the other chunks' items");
	}

	is( $node->safe_psql(
			'postgres', qq{
			SELECT string_agg(ok::text || ':' || item_count, ',' ORDER BY log_id)
			FROM ccpurge.request_log
			WHERE log_id > $logged AND operation <> 'token'}),
		'true:2,false:2,true:2',
		"$name: the request log has the three requests");
}

# A fault on the first chunk: the later chunks still go out.
$sim->fault(kind => 'status', status => 503, count => 1, path => $path);
my $rows = $node->safe_psql(
	'postgres', q{
	SELECT string_agg(item || ':' || ok, ',' ORDER BY item)
	FROM ccpurge_delete_customers(ARRAY['first-1','first-2','first-3','first-4'])});
is($rows, 'first-1:false,first-2:false,first-3:true,first-4:true',
	'a failed first chunk does not stop the second');

$node->stop;
$sim->stop;
done_testing();
