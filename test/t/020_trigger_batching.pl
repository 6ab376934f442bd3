# test/t/020_trigger_batching.pl: ccpurge_erase_on_delete queues deleted
# rows in the deleting transaction, and the worker sends them in full
# vendor batches.
#
# Covers, against the vendor simulator:
#   - 5,000 rows deleted under a FOR EACH ROW trigger reach the simulator
#     in at most ceil(5000/1000) + 5 requests, and all 5,000 are erased;
#   - the same with FOR EACH STATEMENT ... REFERENCING OLD TABLE;
#   - a rolled-back DELETE queues nothing and sends nothing;
#   - ROLLBACK TO SAVEPOINT drops the items queued since the savepoint,
#     and RELEASE keeps them, for both trigger forms;
#   - the DELETE does not wait for the network: with the vendor answering
#     after 5 seconds, DELETE + COMMIT still takes well under a second;
#   - DROP EXTENSION ccpurge CASCADE after the trigger fired, in the same
#     transaction: the commit warns, counting the item in the singular.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX qw(ceil);
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main');
CcpTest::setup_servers($node, $sim, servers => ['cec']);

my $nrows = 5000;
my $max_requests = ceil($nrows / 1000) + 5;

$node->safe_psql(
	'postgres', q{
	CREATE SCHEMA crm;
	CREATE TABLE crm.customer (id int PRIMARY KEY, phone text);
});

# cec_requests returns how many customer-deletion requests the simulator
# has received so far.
sub cec_requests
{
	return $sim->state->{requests}{cec_customers};
}


# fill inserts customers $from .. $to with phone numbers "$prefix<id>".
sub fill
{
	my ($prefix, $from, $to) = @_;
	$node->safe_psql(
		'postgres', qq{
		INSERT INTO crm.customer
		SELECT g, '$prefix' || g FROM generate_series($from, $to) g});
	return;
}

# queued_with_prefix returns "items|requests" for the queue's items that
# start with $prefix, as ccpurge_status shows them (done ones as their
# digests, CcpTest::prefix_sql).
sub queued_with_prefix
{
	my ($prefix) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT count(*) || '|' || count(DISTINCT request_id)
		FROM ccpurge_status WHERE @{[ CcpTest::prefix_sql($prefix, 5000) ]}});
}

# wait_prefix_done waits until every queued item starting with $prefix is
# finished (ccpurge_wait on each of their requests) and returns
# "items|done".
sub wait_prefix_done
{
	my ($prefix) = @_;
	my @ids = split /\n/,
	  $node->safe_psql(
		'postgres', qq{
		SELECT DISTINCT request_id FROM ccpurge_status
		WHERE @{[ CcpTest::prefix_sql($prefix, 5000) ]} ORDER BY 1});
	for my $id (@ids)
	{
		is(CcpTest::ccpurge_wait($node, $id),
			't', "request $id of \"$prefix\" items finished");
	}
	return CcpTest::done_counts($node, CcpTest::prefix_sql($prefix, 5000));
}

# 1. and 2.: a bulk DELETE under each trigger form.
my %forms = (
	row => q{CREATE TRIGGER erase_at_vendor AFTER DELETE ON crm.customer
	  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone')},
	statement => q{CREATE TRIGGER erase_at_vendor AFTER DELETE ON crm.customer
	  REFERENCING OLD TABLE AS old_rows
	  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone')},
);

for my $form (qw(row statement))
{
	my $prefix = "139$form-";

	$node->safe_psql('postgres',
		"DROP TRIGGER IF EXISTS erase_at_vendor ON crm.customer; $forms{$form}");
	fill($prefix, 1, $nrows);

	my $before = cec_requests();
	is( $node->safe_psql(
			'postgres', 'WITH d AS (DELETE FROM crm.customer RETURNING 1)
			SELECT count(*) FROM d'),
		$nrows,
		"$form trigger: DELETE removed $nrows rows");
	is(queued_with_prefix($prefix), "$nrows|1",
		"$form trigger: the DELETE queued $nrows items under one request id");
	is(wait_prefix_done($prefix), "$nrows|$nrows",
		"$form trigger: every item is done");

	my $requests = cec_requests() - $before;
	cmp_ok($requests, '<=', $max_requests,
		"$form trigger: $nrows items took at most $max_requests requests");
	cmp_ok($requests, '>=', ceil($nrows / 1000),
		"$form trigger: and at least ceil($nrows/1000)");
	is($sim->deleted_with_prefix($prefix), $nrows,
		"$form trigger: the simulator erased all $nrows customers");
	note("$form trigger: $requests requests for $nrows items");
}

# 3. A rolled-back DELETE queues nothing and sends nothing.
{
	my $prefix = '139rollback-';
	fill($prefix, 1, 1000);
	my $before = cec_requests();
	my $queue_before =
	  $node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge_status');

	$node->safe_psql(
		'postgres', q{
		BEGIN;
		DELETE FROM crm.customer;
		ROLLBACK;});
	# a failing statement after the DELETE aborts the transaction too
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
		BEGIN;
		DELETE FROM crm.customer;
		SELECT 1/0;
		COMMIT;});
	like($err, qr/division by zero/, 'the second transaction failed');

	# A marker queued after both transactions: once it is done, the worker
	# has claimed everything of the same server and operation that was
	# committed before it, which would include any item the rolled-back
	# DELETEs had left behind (the worker claims the oldest rows first).
	my $marker =
	  $node->safe_psql('postgres', CcpTest::enqueue_sql('139marker-', 1));
	is(CcpTest::wait_done($node, $marker),
		'1|1', 'a marker queued afterwards is done');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM crm.customer'),
		'1000', 'the rows are still there');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM ccpurge_status WHERE request_id <> $marker"),
		$queue_before,
		'rolled-back DELETEs queued nothing');
	is(cec_requests(), $before + 1,
		'and the simulator received nothing but the marker');
	is($sim->deleted_with_prefix($prefix), 0, 'and erased nothing');
	$node->safe_psql('postgres', 'ALTER TABLE crm.customer DISABLE TRIGGER erase_at_vendor;
		DELETE FROM crm.customer;
		ALTER TABLE crm.customer ENABLE TRIGGER erase_at_vendor');
}

# 4. ROLLBACK TO SAVEPOINT drops the items queued since the savepoint;
#    RELEASE SAVEPOINT keeps them.  Rows 1-10 are deleted before the
#    savepoint, 11-20 in a rolled-back savepoint, 21-25 in a released one
#    and 26-30 after it; 31-40 stay in the table.
for my $form (qw(row statement))
{
	my $prefix = "139sp$form-";

	$node->safe_psql('postgres',
		"DROP TRIGGER IF EXISTS erase_at_vendor ON crm.customer; $forms{$form}");
	fill($prefix, 1, 40);
	$node->safe_psql(
		'postgres', q{
		BEGIN;
		DELETE FROM crm.customer WHERE id <= 10;
		SAVEPOINT a;
		DELETE FROM crm.customer WHERE id BETWEEN 11 AND 20;
		SAVEPOINT nested;
		DELETE FROM crm.customer WHERE id = 31;
		ROLLBACK TO SAVEPOINT a;
		SAVEPOINT b;
		DELETE FROM crm.customer WHERE id BETWEEN 21 AND 25;
		RELEASE SAVEPOINT b;
		DELETE FROM crm.customer WHERE id BETWEEN 26 AND 30;
		COMMIT;});

	is(wait_prefix_done($prefix), '20|20',
		"$form trigger with savepoints: 20 items queued and done");
	my %deleted = map { $_ => 1 }
	  grep { index($_, $prefix) == 0 } @{ $sim->deleted('cec_customers') };
	my @want = map { "$prefix$_" } (1 .. 10, 21 .. 30);
	is_deeply(
		[ sort grep { $deleted{$_} } @want ],
		[ sort @want ],
		"$form trigger with savepoints: the kept items were erased");
	is_deeply([ sort grep { !{ map { $_ => 1 } @want }->{$_} } keys %deleted ],
		[], "$form trigger with savepoints: nothing else was erased");
	is( $node->safe_psql(
			'postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM crm.customer'),
		join(',', 11 .. 20, 31 .. 40),
		"$form trigger with savepoints: the rolled-back rows are still in the table");
	$node->safe_psql('postgres', 'ALTER TABLE crm.customer DISABLE TRIGGER erase_at_vendor;
		DELETE FROM crm.customer;
		ALTER TABLE crm.customer ENABLE TRIGGER erase_at_vendor');
}

# 5. The DELETE never waits for the network.  The worker is kept busy on a
#    request the vendor answers after 5 seconds; a DELETE + COMMIT meanwhile
#    returns at local speed, and its items are sent afterwards.
{
	my $prefix = '139fast-';
	fill($prefix, 1, 2000);
	$sim->fault(
		kind => 'delay',
		delay_ms => 5000,
		count => 10,
		path => 'cleancustpersonaldata');

	my $before = cec_requests();
	my $busy = $node->safe_psql('postgres',
		"SELECT ccpurge_enqueue('delete_customers', ARRAY['139busy-1'])");
	ok($sim->wait_for(sub { $_[0]->{requests}{cec_customers} > $before }, 30),
		'the worker is sending a request');

	my $t0 = time;
	$node->safe_psql('postgres', 'BEGIN; DELETE FROM crm.customer; COMMIT;');
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 1.0,
		'DELETE + COMMIT of 2000 rows returned in under 1 s with a 5 s vendor');
	note(sprintf('DELETE + COMMIT took %.3f s', $elapsed));

	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) FROM ccpurge_status
		WHERE @{[ CcpTest::prefix_sql($prefix, 5000) ]} AND state IN ('queued', 'sending')}),
		'2000',
		'right after the commit its items are still waiting to be sent');

	is(wait_prefix_done($prefix), '2000|2000', 'then they are all done');
	is($sim->deleted_with_prefix($prefix), 2000, 'and the simulator erased them');
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($busy, '60 s')"),
		't', 'the slow request finished too');
	$sim->post('/_sim/fault/clear');
}

# Nothing failed anywhere in this test.
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM ccpurge_status WHERE state <> 'done'"),
	'0',
	'no item ended in another state than done');

# 6. The extension is dropped after the trigger fired: the item is counted
#    in the warning, as one item.
{
	fill('139gone-', 1, 1);
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
		BEGIN;
		DELETE FROM crm.customer;
		DROP EXTENSION ccpurge CASCADE;
		COMMIT;});
	is($ret, 0, 'DROP EXTENSION after the trigger fired: the commit succeeds');
	like(
		$err,
		qr/: WARNING:  1 item queued by triggers is not erased\nDETAIL:  The ccpurge queue no longer exists: the extension was dropped after the triggers fired\.$/m,
		'DROP EXTENSION after the trigger fired: the warning counts 1 item');
}

$node->stop;
done_testing();
