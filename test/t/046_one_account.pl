# test/t/046_one_account.pl: one Ozonetel account used from two databases.
#
# Databases crm1 and crm2 each have a server "ozonetel" for the same
# simulator URL and username: one vendor account.  The simulator allows 5
# DeleteBulkData requests per sliding second, one at a time, and a new
# token kills the previous one.  Covers, for synchronous calls in both
# databases at once, then for items queued in both and drained by their
# two workers at once:
#   - the simulator issued one token (the account's, shared);
#   - it never refused a request for its rate ("Max limit exceeded") or
#     for overlapping another, nor a token as expired;
#   - every number was deleted.
# The servers' own settings differ (crm2's is the stricter, 4/second):
# the account runs under the strictest.

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

my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => 5, oz_window_ms => 1000, oz_processing_ms => 20 });
my $node = CcpTest::new_node('main');
my %rate = (crm1 => '10/second', crm2 => '4/second');
for my $db (qw(crm1 crm2))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	CcpTest::setup_servers(
		$node, $sim,
		dbname => $db,
		servers => ['ozonetel'],
		server_options => { ozonetel => { rate_limit => $rate{$db} } });
}
my $campaign = 'QA_Outbound_Predictive';

# phones_sql returns an SQL array of $n phone numbers starting at $first.
sub phones_sql
{
	my ($first, $n) = @_;
	return "ARRAY(SELECT ($first + g)::text FROM generate_series(0, "
	  . ($n - 1) . ") g)";
}

# check_sim asserts what the simulator saw, for $what.
sub check_sim
{
	my ($what, $deleted) = @_;
	my $state = $sim->state;
	is($state->{tokens_issued}{ozonetel}, 1, "$what: one token for the account");
	is($state->{rejections}{rate}, 0, "$what: no \"Max limit exceeded\"");
	is($state->{rejections}{inflight}, 0, "$what: no request overlapped another");
	is($state->{rejections}{auth}, 0, "$what: no token was refused");
	is($state->{deleted}{ozonetel}, $deleted, "$what: $deleted numbers deleted");
	return;
}

# 1. Synchronous calls, two sessions in each database at once.
my @sqls;
for my $i (0 .. 3)
{
	my $db = $i % 2 ? 'crm2' : 'crm1';
	push @sqls,
	  [
		$db,
		"SELECT count(*) || '/' || count(*) FILTER (WHERE ok) "
		  . "FROM ccpurge_delete_bulk_data("
		  . phones_sql(7000000000 + $i * 100000, 300)
		  . ", ARRAY['$campaign'])"
	  ];
}
my @res = CcpTest::run_together($node, 4713, @sqls);
for my $i (0 .. $#res)
{
	my ($out, $err, $success) = @{ $res[$i] };
	ok($success, "sync: session $i finished without error") or diag($err);
	is($out, "300/300\n", "sync: session $i: 300 rows, all ok");
}
check_sim('sync', 1200);

# 2. Queued items in both databases, drained by both workers at once.
my %ids;
for my $db (qw(crm1 crm2))
{
	ok(CcpTest::wait_worker_connected($node, $db), "queue: a worker serves $db");
}
for my $db (qw(crm1 crm2))
{
	my $first = $db eq 'crm1' ? 7100000000 : 7200000000;
	$ids{$db} = $node->safe_psql(
		$db, qq{
		SELECT ccpurge_enqueue('delete_bulk_data', } . phones_sql($first, 500) . qq{,
			'{"campaign_names": ["$campaign"]}')});
}
for my $db (qw(crm1 crm2))
{
	is($node->safe_psql($db, "SELECT ccpurge_wait($ids{$db}, '120 s')"),
		't', "queue: the request of $db finished");
	is( $node->safe_psql(
			$db,
			"SELECT count(*) FILTER (WHERE state <> 'done') FROM ccpurge_status WHERE request_id = $ids{$db}"
		),
		'0',
		"queue: every item of $db is done");
}
check_sim('queue', 2200);

$node->stop;
$sim->stop;
done_testing();
