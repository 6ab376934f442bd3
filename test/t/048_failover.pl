# test/t/048_failover.pl: a failover in the middle of a drain.
#
# A primary drains 2,000 webhook items in batches of 10, two requests in
# flight, each taking 50 ms at the simulator; a streaming standby follows
# it.  Once a few hundred items are done, the primary stops at once
# (immediate: a crash), and the standby is promoted.  Covers:
#   - on the new primary a worker starts and finishes everything: every
#     item ends "done" in ccpurge_status, and the simulator erased all
#     2,000;
#   - the test reports how many items the simulator received twice (those
#     the old primary sent but whose outcome did not reach the standby):
#     a repeat is allowed, since erasure is idempotent, a loss is not.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use List::Util qw(sum0);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $n = 2000;
my $sim = CcpTest::Sim->start;
my $primary = CcpTest::new_node('primary', init => { allows_streaming => 1 });
CcpTest::setup_servers(
	$primary, $sim,
	servers => ['webhook'],
	server_options => {
		webhook => {
			url => $sim->url . '/webhook/erase',
			batch_size => '10',
			max_inflight => '2'
		}
	});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

$sim->fault(kind => 'delay', delay_ms => 50, count => 100000, path => 'webhook');
my $id = $primary->safe_psql(
	'postgres', qq{
	SELECT ccpurge_enqueue('erase', ARRAY(SELECT 'fo-' || g FROM generate_series(1, $n) g))});
CcpTest::wait_progress($primary, "request_id = $id", 300);
$primary->stop('immediate');
my $sent_before = sum0(@{ $sim->state->{items_per_request}{webhook} });
note("the primary stopped after the simulator received $sent_before items");
$standby->promote;

ok(CcpTest::wait_worker_connected($standby, 'postgres'),
	'a worker starts on the promoted standby');
is($standby->safe_psql('postgres', "SELECT ccpurge_wait($id, '180 s')"),
	't', 'the new primary finishes the request');
is( $standby->safe_psql(
		'postgres',
		"SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'done') FROM ccpurge_status WHERE request_id = $id"
	),
	"$n|$n",
	'every item is done');
my $state = $sim->state;
is($state->{deleted}{webhook}, $n, "the simulator erased all $n items");
my $received = sum0(@{ $state->{items_per_request}{webhook} });
my $twice = $received - $state->{deleted}{webhook};
cmp_ok($twice, '>=', 0, 'no item was lost');
note("items sent twice after the failover: $twice "
	  . "(of $received received; idempotent repeats: $state->{webhook}{idempotent_repeats})");
diag("failover: $twice items sent twice");

$standby->stop;
$sim->stop;
done_testing();
