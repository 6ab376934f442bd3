# test/t/026_standby.pl: nothing is sent from a hot standby or a read-only
# transaction.
#
# Every request ccpurge sends must be recorded, and neither a standby nor a
# read-only transaction can write the record; a token request from a
# standby would also kill the primary's Ozonetel token.  So the calls are
# refused before anything goes out.  A primary with servers for all three
# vendors, and a streaming standby built from its backup, with the same
# postgresql.conf (ccpurge preloaded).  Covers:
#   - on the standby, every synchronous function, ccpurge_enqueue,
#     ccpurge_retry and ccpurge_cancel fail with SQLSTATE 25006 and the
#     hint to run them on the primary, and the simulator's request counters
#     (token endpoints included) do not move;
#   - on the primary, inside BEGIN READ ONLY, the same refusal (25006),
#     again with nothing sent;
#   - the worker does not run on the standby, while the primary's worker
#     drains an item enqueued there, whose outcome the standby then reads.

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
my $primary =
  CcpTest::new_node('primary', init => { allows_streaming => 1 });
CcpTest::setup_servers($primary, $sim);

# Before the standby exists, the primary erases once at each vendor that
# uses a token, so that tokens live there while the standby is called.
is( $primary->safe_psql(
		'postgres', q{
	SELECT ok FROM ccpurge_delete_customers(ARRAY['pr-0'])
	UNION ALL
	SELECT ok FROM ccpurge_delete_bulk_data(ARRAY['9876000000'], ARRAY['c1'])}),
	"t\nt",
	'the primary erases at CEC and Ozonetel');

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');
is($standby->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'ccpurge', 'the standby preloads ccpurge too (the backup has its postgresql.conf)');
is( $standby->safe_psql(
		'postgres',
		q{SELECT string_agg(srvname, ',' ORDER BY srvname) FROM pg_foreign_server}),
	'cec,isales,ozonetel',
	'the standby has the three servers');

# refusal runs $sql in database postgres of $node with verbose error
# messages and returns "psql exit status|SQLSTATE|message|hint" of the
# error it raised (empty fields for what was not there).
sub refusal
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	# psql reading a script prefixes the error with "psql:<stdin>:N: "
	my ($code, $msg) = $err =~ /ERROR:  ([0-9A-Z]{5}): (.*)$/m;
	my ($hint) = $err =~ /^HINT:  (.*)$/m;
	note("$sql\n$err");
	return join('|', $ret, $code // '', $msg // '', $hint // '');
}

my $in_recovery = '3|25006|cannot erase or queue erasures during recovery|'
  . 'Run it on the primary.';
my $in_read_only =
  '3|25006|cannot erase or queue erasures in a read-only transaction|';

# 1. On the standby: every call that could send is refused first.
{
	my $before = $sim->state;
	my @calls = (
		q{SELECT * FROM ccpurge_delete_customers(ARRAY['sb-1'])},
		q{SELECT * FROM ccpurge_delete_called_routes(ARRAY['1'])},
		q{SELECT * FROM ccpurge_delete_bulk_data(ARRAY['9876001000'], ARRAY['c1'])},
		q{SELECT * FROM ccpurge_delete_caller_numbers(1, 42, ARRAY['5245241'])},
		q{SELECT * FROM ccpurge_delete_calldata(1, 42, '{"called":"88001"}')},
		q{SELECT ccpurge_enqueue('delete_customers', ARRAY['sb-2'])},
		q{SELECT ccpurge_retry(1)},
		q{SELECT ccpurge_cancel(1)},);
	for my $sql (@calls)
	{
		my ($fn) = $sql =~ /(ccpurge_\w+)/;
		is(refusal($standby, $sql), $in_recovery,
			"standby: $fn fails with 25006 and the hint to use the primary");
	}

	my $after = $sim->state;
	is_deeply($after->{requests}, $before->{requests},
		'standby: the simulator received no request, token requests included');
	is_deeply($after->{tokens_issued}, $before->{tokens_issued},
		'standby: and issued no token');
	is($standby->safe_psql('postgres', 'SELECT count(*) FROM ccpurge.queue'),
		'0', 'standby: the queue is empty');
}

# 2. On the primary, a read-only transaction is refused the same way; there
#    is no hint, as the primary is the right place.
{
	my $before = $sim->state;
	is( refusal(
			$primary, q{
		BEGIN READ ONLY;
		SELECT * FROM ccpurge_delete_customers(ARRAY['ro-1']);}),
		$in_read_only,
		'read-only transaction: ccpurge_delete_customers fails with 25006');
	is( refusal(
			$primary, q{
		BEGIN READ ONLY;
		SELECT * FROM ccpurge_delete_bulk_data(ARRAY['9876002000'], ARRAY['c1']);}),
		$in_read_only,
		'read-only transaction: ccpurge_delete_bulk_data fails with 25006');
	is( refusal(
			$primary, q{
		SET default_transaction_read_only = on;
		SELECT ccpurge_enqueue('delete_customers', ARRAY['ro-2']);}),
		$in_read_only,
		'read-only transaction: ccpurge_enqueue fails with 25006');
	my $after = $sim->state;
	is_deeply($after->{requests}, $before->{requests},
		'read-only transaction: the simulator received no request');
	is( $primary->safe_psql(
			'postgres',
			q{SELECT count(*) FROM ccpurge.request_log WHERE origin = 'sync'}),
		'4',
		'read-only transaction: the request log still holds only the 4 rows of the first calls'
	);
}

# 3. The worker runs on the primary only.
{
	is( $standby->safe_psql(
			'postgres',
			q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'}
		),
		'0',
		'no ccpurge worker runs on the standby');
	like(CcpTest::worker_pid($primary),
		qr/^\d+$/, 'the ccpurge worker runs on the primary');

	my $id = $primary->safe_psql('postgres',
		q{SELECT ccpurge_enqueue('delete_customers', ARRAY['pr-1', 'pr-2'])});
	is($primary->safe_psql('postgres', "SELECT ccpurge_wait($id, '60 s')"),
		't', 'primary: the enqueued request finishes');
	is( $primary->safe_psql(
			'postgres', qq{
		SELECT string_agg(@{[ CcpTest::shown_item_sql() ]} || ':' || state, ',')
		FROM ccpurge_status WHERE request_id = $id}),
		'digest:done,digest:done',
		'primary: both items are done');
	is_deeply($sim->deleted('cec_customers'),
		[ 'pr-0', 'pr-1', 'pr-2' ],
		'primary: the simulator erased them (and nothing from the standby)');

	$primary->wait_for_catchup($standby);
	is( $standby->safe_psql(
			'postgres', qq{
		SELECT string_agg(@{[ CcpTest::shown_item_sql() ]} || ':' || state, ',')
		FROM ccpurge_status WHERE request_id = $id}),
		'digest:done,digest:done',
		'the standby reads the outcome once it has replayed it');
}

$standby->stop;
$primary->stop;
done_testing();
