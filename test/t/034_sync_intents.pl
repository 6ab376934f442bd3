# test/t/034_sync_intents.pl: a synchronous call's requests have a durable
# record before they leave, whatever ends the call.
#
# A call of 200 one-item requests (batch_size 1) against a simulator that
# answers each after 200 ms takes 40 s.  In the middle of it:
#   1. kill -9 of the calling backend: the postmaster restarts every
#      process, and the worker writes the rows the backend's intent file
#      holds;
#   2. an immediate shutdown and a start: the same;
#   3. a fast shutdown: the backend is terminated and its rollback hands
#      the rows to the worker;
#   4. pg_cancel_backend, and 5. statement_timeout: the session lives on,
#      and its rollback hands the rows to the worker.
# Each run asserts that every request the simulator received has exactly
# one log row, finished or "outcome unknown": rows with an answer are at
# most the requests received, rows with an answer and "outcome unknown"
# rows are at least as many, every number the simulator erased is in
# exactly one row (its keyed digest), and, where the session lives on,
# rows equal requests exactly; every erased number has its receipt.  After a crash the intents made ahead of
# the request being sent (at most CCP_INTENT_WINDOW - 1 = 63) may add
# "outcome unknown" rows of requests that never left.  Without the intent
# file the crash runs left no row at all for requests received.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $ncalls = 200;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node('main', conf => ['restart_after_crash = on']);
CcpTest::setup_servers(
	$node, $sim,
	servers => ['cec'],
	server_options => { cec => { batch_size => '1' } });

$sim->fault(
	kind => 'delay',
	delay_ms => 200,
	count => 1000000,
	path => 'cleancustpersonaldata');

# start_call runs the long call in a background session and waits until
# the simulator has received $n of its requests; returns the session and
# its backend's PID.
sub start_call
{
	my ($prefix, $n, $setup) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0,
		timeout => 120);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_safe($setup) if defined $setup;
	my $before = $sim->state->{requests}{cec_customers};
	$bg->query_until(qr/sending/,
		    "\\echo sending\n"
		  . "SELECT count(*) FROM ccpurge_delete_customers("
		  . "ARRAY(SELECT '$prefix' || g FROM generate_series(1, $ncalls) g));\n"
	);
	ok( $sim->wait_for(
			sub { $_[0]->{requests}{cec_customers} >= $before + $n }),
		"$prefix: the call has sent $n requests");
	return ($bg, $pid, $before);
}

# rows_for returns "answered|unknown" for the log rows of numbers starting
# with $prefix: synchronous rows whose digest is that of one such number
# (each request carried one).
sub rows_for
{
	my ($prefix) = @_;
	return $node->safe_psql(
		'postgres', qq{
		WITH d AS (
			SELECT ccpurge_items_digest(ARRAY['$prefix' || g]) AS h
			FROM generate_series(1, $ncalls) g)
		SELECT count(*) FILTER (WHERE l.ok IS NOT NULL) || '|'
			|| count(*) FILTER (WHERE l.ok IS NULL
								AND l.code = 'outcome_unknown')
		FROM ccpurge.request_log l JOIN d ON l.items_hmac = d.h
		WHERE l.origin = 'sync'});
}

# check_rows waits for the worker to write what it adopts, then checks the
# rows against the simulator; $exact when no crash happened.
sub check_rows
{
	my ($prefix, $before, $exact) = @_;
	my $received = $sim->state->{requests}{cec_customers} - $before;
	my $erased = $sim->deleted_with_prefix($prefix);

	# the worker writes the adopted rows as soon as it runs
	ok( $node->poll_query_until(
			'postgres', qq{
		WITH d AS (
			SELECT ccpurge_items_digest(ARRAY['$prefix' || g]) AS h
			FROM generate_series(1, $ncalls) g)
		SELECT count(*) >= $received
		FROM ccpurge.request_log l JOIN d ON l.items_hmac = d.h
		WHERE l.origin = 'sync'}),
		"$prefix: the log has a row per request received");
	my ($answered, $unknown) = split /\|/, rows_for($prefix);
	note("$prefix: $received requests received, $erased numbers erased, "
		  . "$answered rows with an answer, $unknown outcome unknown");
	cmp_ok($answered, '<=', $received,
		"$prefix: no answer is logged that was not received");
	cmp_ok($answered + $unknown, '>=', $received,
		"$prefix: every request received has a row");
	if ($exact)
	{
		is($answered + $unknown, $received,
			"$prefix: exactly one row per request received");
	}
	else
	{
		cmp_ok($answered + $unknown, '<=', $received + 63,
			"$prefix: at most the intent window's requests beyond those received");
	}
	cmp_ok($unknown, '>=', 1, "$prefix: the request in flight reads outcome unknown");

	# every erased number is in exactly one row
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) FROM pg_catalog.jsonb_array_elements_text(
			'@{[ JSON::PP->new->encode($sim->deleted('cec_customers')) ]}'::jsonb) AS e(item)
		WHERE starts_with(e.item, '$prefix')
		AND (SELECT count(*) FROM ccpurge.request_log l
			 WHERE l.items_hmac = ccpurge_items_digest(ARRAY[e.item])) <> 1}),
		'0',
		"$prefix: every number the simulator erased is in exactly one row");
	# and has its receipt, written with its row (from the intent file too)
	is( $node->safe_psql(
			'postgres', qq{
		SELECT count(*) FROM pg_catalog.jsonb_array_elements_text(
			'@{[ JSON::PP->new->encode($sim->deleted('cec_customers')) ]}'::jsonb) AS e(item)
		WHERE starts_with(e.item, '$prefix')
		AND NOT EXISTS (SELECT FROM ccpurge_erasure_receipt(e.item))}),
		'0',
		"$prefix: every number the simulator erased has a receipt");
	is( $node->safe_psql(
			'postgres', 'SELECT ok FROM ccpurge_verify_log()'),
		't', "$prefix: the chain verifies");
	return;
}

# wait_restarted waits until the server accepts connections and the
# worker runs again after a crash.
sub wait_restarted
{
	my ($what) = @_;
	ok( $node->poll_query_until(
			'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'ccpurge worker'}),
		"$what: the worker runs again");
	return;
}

# 1. kill -9 of the calling backend.
{
	my ($bg, $pid, $before) = start_call('k9-', 5);
	ok(kill('KILL', $pid), "kill -9 of backend $pid in the call");
	eval { $bg->quit; };
	wait_restarted('kill -9');
	check_rows('k9-', $before, 0);
	ok( !glob($node->data_dir . '/pg_ccpurge/intent-*'),
		'kill -9: no intent file is left once the rows are written');
}

# 2. Immediate shutdown during the call.
{
	my ($bg, $pid, $before) = start_call('imm-', 5);
	$node->stop('immediate');
	eval { $bg->quit; };
	$node->start;
	wait_restarted('immediate shutdown');
	check_rows('imm-', $before, 0);
}

# 3. A fast shutdown during the call: the backend is terminated, and its
#    rollback hands the rows to the worker in a synced spill file, which
#    the worker writes after the start; no crash, so exactly.
{
	my ($bg, $pid, $before) = start_call('fast-', 5);
	$node->stop('fast');
	eval { $bg->quit; };
	$node->start;
	wait_restarted('fast shutdown');
	check_rows('fast-', $before, 1);
}

# 4. pg_cancel_backend during the call: the session rolls back and lives.
{
	my ($bg, $pid, $before) = start_call('cancel-', 5);
	is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"),
		't', 'pg_cancel_backend signals the session');
	is($bg->query('SELECT 1'), '1', 'cancel: the session lives on');
	like($bg->{stderr}, qr/canceling statement due to user request/,
		'cancel: the call failed with the cancel error');
	check_rows('cancel-', $before, 1);
	$bg->quit;
}

# 5. statement_timeout during the call.
{
	my ($bg, $pid, $before) =
	  start_call('timeout-', 1, "SET statement_timeout = '1500ms'");
	is($bg->query('SELECT 1'), '1', 'statement_timeout: the session lives on');
	like($bg->{stderr}, qr/canceling statement due to statement timeout/,
		'statement_timeout: the call failed with the timeout error');
	check_rows('timeout-', $before, 1);
	$bg->quit;
}

# The chain of the rows written from intent files, after the crashes, is
# kept by a dump and a restore into another database.
ok( $node->poll_query_until(
		'postgres',
		'SELECT count(*) = 0 FROM ccpurge.request_log WHERE chain_seq IS NULL'),
	'every log row is chained');
my $checked = $node->safe_psql('postgres',
	'SELECT ok || \'|\' || rows_checked FROM ccpurge_verify_log()');
my $dump = $node->basedir . '/intents.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into a new database');
is($node->safe_psql('restored',
		'SELECT ok || \'|\' || rows_checked FROM ccpurge_verify_log()'),
	$checked, "the restored log verifies, with the same rows ($checked)");

$node->stop;
$sim->stop;
done_testing();
