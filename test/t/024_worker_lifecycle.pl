# test/t/024_worker_lifecycle.pl: the worker's life around the work.
#
# The worker of database ccpdb (the launcher starts one for each database
# where the extension is installed) does the work, and
# the CEC server allows one request in flight, so that a drain of 10,000
# items with a 200 ms vendor takes about two seconds.  Covers:
#   - an idle worker makes no system calls over 5 seconds (strace), while
#     the same trace does see them once work arrives;
#   - a SIGHUP while the worker is busy: it keeps draining, and a changed
#     ccpurge.batch_linger takes effect (a 30 s linger holds a partial
#     batch back, 3 s old, through a claim that sends another server's
#     full batch; going back to 0 lets it go at once);
#   - the enqueuing role's own user mapping is used: a role whose mapping
#     has a wrong app_secret gets failed items while PUBLIC's succeed, and
#     once its mapping is fixed ccpurge_retry gets them done;
#   - DROP EXTENSION ccpurge while a drain is in progress is refused with
#     a hint, and loses nothing; once the request is canceled and its
#     batches in flight are done it succeeds, the worker leaves without an
#     error, and after CREATE EXTENSION a new worker drains new work,
#     also from a session that queued work before the drop;
#   - DROP DATABASE of the worker's database while it is busy succeeds,
#     and once the database is created again (and the extension in it) a
#     worker serves it again;
#   - an error inside the worker (its queue table renamed away until the
#     worker has reported the error three times) is survived: new work
#     drains afterwards and the worker still exits cleanly on SIGTERM;
#   - a worker stopped while a batch is in flight: its successor queues
#     the batch's rows again and its log line counts their items and rows;
#   - a DROP DATABASE that is refused (the role does not own the database)
#     leaves the worker alone: the same worker does the next work.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my $db = 'ccpdb';
my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node(
	'main',
	conf => [
		# failures below are meant to end quickly
		'ccpurge.max_attempts = 2',
		"ccpurge.retry_backoff = '100ms'",
		# a worker crash must not end the test's server
		'restart_after_crash = on',
	]);
$node->safe_psql('postgres', "CREATE DATABASE $db");
# no worker runs where the extension is not installed
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'"
	),
	'no worker runs before CREATE EXTENSION');

# setup creates the extension and the CEC server in the worker's database.
sub setup
{
	CcpTest::setup_servers(
		$node, $sim,
		dbname => $db,
		servers => ['cec'],
		server_options => { cec => { max_inflight => '1' } });
	return;
}
setup();

# enqueue queues "$prefix1" .. "$prefix$n" in one request and returns its
# id; %params go to safe_psql (extra_params => ['-U', role]).
sub enqueue
{
	my ($prefix, $n, %params) = @_;
	return $node->safe_psql($db, CcpTest::enqueue_sql($prefix, $n), %params);
}

# the options of the shared queue helpers: the worker's database
my %in_db = (dbname => $db);

# slow_vendor makes the next customer-deletion requests take 200 ms.
sub slow_vendor
{
	$sim->fault(
		kind => 'delay',
		delay_ms => 200,
		count => 100000,
		path => 'cleancustpersonaldata');
	return;
}

# strace_syscalls traces $pid with "strace -f -c" for $seconds seconds,
# running $during (if given) once strace has attached.  Returns the number
# of system calls seen and a summary of them, or undef and strace's
# complaint when it could not attach.
sub strace_syscalls
{
	my ($pid, $seconds, $during) = @_;
	my $out = $node->basedir . '/strace.out';
	my ($stdout, $stderr) = ('', '');
	unlink $out;

	my $h = IPC::Run::start(
		[
			'timeout', '-s', 'INT', $seconds, 'strace', '-f', '-c', '-o', $out,
			'-p', $pid
		],
		'>', \$stdout, '2>', \$stderr);
	CcpTest::poll_until(
		10,
		sub {
			$h->pump_nb if $h->pumpable;
			return $stderr =~ /attached/ || !$h->pumpable;
		});
	$during->() if $during && $stderr =~ /attached/;
	$h->finish;
	return (undef, $stderr) unless $stderr =~ /attached/;

	my $calls = 0;
	my @names;
	open my $fh, '<', $out or return (undef, "no strace output: $!");
	while (my $line = <$fh>)
	{
		my @f = split ' ', $line;
		next unless @f >= 5 && $f[0] =~ /^\d/;
		if ($f[-1] eq 'total') { $calls = $f[3]; }
		else { push @names, "$f[-1]=$f[3]"; }
	}
	close $fh;
	return ($calls, join(' ', @names));
}

# a worker connects once the extension exists there
ok(CcpTest::wait_worker_connected($node, $db),
	"the worker is connected to $db");

# 1. An idle worker makes no system calls.
SKIP:
{
	my $strace = `sh -c 'command -v strace'`;
	skip 'strace is not installed (see test/install-deps.sh)', 5
	  unless $strace;

	# some work first, so that the worker has its token and connections
	my $id = enqueue('idle-warm-', 10);
	is(CcpTest::wait_done($node, $id, %in_db), '10|10',
		'idle: a first request is done');
	# the worker recorded it; after the claim that follows it waits for work
	ok( CcpTest::wait_worker_idle(
			$node, $db,
			"SELECT max(finished_at) FROM ccpurge.queue WHERE request_id = $id"),
		'idle: the worker waits for work');
	my $pid = CcpTest::worker_pid($node, $db);

	# A worker that polls makes calls in every window.  One that waits
	# makes none, unless something legitimately woke it once (a session
	# leaving with a handed-over request-log row sets its latch, say), so
	# the check allows three windows and wants one of them silent.
	my ($calls, $what) = strace_syscalls($pid, 5);
	for (my $try = 1; defined $calls && $calls > 0 && $try < 3; $try++)
	{
		diag("idle: window $try had $calls system calls: $what");
		($calls, $what) = strace_syscalls($pid, 5);
	}
	if (!defined $calls)
	{
		my $scope = '(no Yama LSM)';
		if (open my $fh, '<', '/proc/sys/kernel/yama/ptrace_scope')
		{
			$scope = <$fh>;
			chomp $scope;
			close $fh;
		}
		skip "strace cannot attach to the worker (kernel.yama.ptrace_scope = $scope): $what",
		  3;
	}
	is($calls, 0, 'idle: the worker made no system calls for 5 s')
	  or diag("system calls: $what");

	# the same trace does see the worker work
	my $busy_id;
	($calls, $what) = strace_syscalls(
		$pid, 3,
		sub {
			$busy_id = enqueue('idle-wake-', 10);
			$node->safe_psql($db, "SELECT ccpurge_wait($busy_id, '60 s')");
		});
	cmp_ok($calls, '>', 0,
		"idle: woken by a commit, the worker made system calls ($calls)");
	note("system calls while busy: $what");
	is(CcpTest::wait_done($node, $busy_id, %in_db),
		'10|10', 'idle: the work that woke it is done');
}

# 2. SIGHUP while the worker is busy.
{
	slow_vendor();
	my $pid = CcpTest::worker_pid($node, $db);
	my $id = enqueue('hup-', 10000);
	CcpTest::wait_progress($node, "request_id = $id", 1000, %in_db);

	CcpTest::set_setting($node, 'ccpurge.batch_linger', '30s', '30s');
	is(CcpTest::wait_done($node, $id, %in_db), '10000|10000',
		'SIGHUP: the worker kept draining after the reload');
	is(CcpTest::worker_pid($node, $db), $pid, 'SIGHUP: the same worker is still running');
	is($sim->deleted_with_prefix('hup-'), 10000,
		'SIGHUP: the simulator erased all 10000 customers');
	$sim->post('/_sim/fault/clear');

	# a partial batch now lingers for 30 s: 3 s old, it is still left
	# queued by a claim that sends a full batch of another server (one
	# item, as its batch_size is 1), a claim that looks at every due row
	my $linger = enqueue('linger-', 5);
	CcpTest::wait_age($node, $linger, 3, %in_db);
	CcpTest::create_server($node, 'cec_one',
		dbname => $db,
		url => $sim->url,
		options => { batch_size => '1' });
	my $other = $node->safe_psql($db,
		"SELECT ccpurge_enqueue('delete_customers', ARRAY['linger-other'], '{}', 'cec_one')"
	);
	is(CcpTest::wait_done($node, $other, %in_db),
		'1|1', 'SIGHUP: meanwhile a full batch of another server is sent');
	is( $node->safe_psql(
			$db,
			"SELECT string_agg(DISTINCT state, ',') FROM ccpurge_status WHERE request_id = $linger"
		),
		'queued',
		'SIGHUP: with batch_linger = 30s a partial batch waits');

	# ... and goes at once when the linger is set back to 0
	$node->safe_psql($db, "ALTER SYSTEM SET ccpurge.batch_linger = 0");
	my $t0 = time;
	$node->reload;
	is(CcpTest::wait_done($node, $linger, %in_db),
		'5|5', 'SIGHUP: with batch_linger = 0 it is sent');
	my $took = time - $t0;
	cmp_ok($took, '<', 15,
		sprintf('SIGHUP: it went %.1f s after the reload, not after 30 s', $took));
	CcpTest::set_setting($node, 'ccpurge.batch_linger', undef, '200ms');
	# calls without a server argument need cec to be the only CEC server
	$node->safe_psql($db, 'DROP SERVER cec_one CASCADE');
}

# 3. The enqueuing role's own user mapping.
{
	$node->safe_psql(
		$db, q{
		SET log_statement = 'none';
		CREATE ROLE alice LOGIN;
		GRANT USAGE ON FOREIGN SERVER cec TO alice;
		GRANT EXECUTE ON FUNCTION ccpurge_enqueue(text, text[], jsonb, text),
			ccpurge_wait(bigint, interval), ccpurge_retry(bigint) TO alice;
		GRANT SELECT ON ccpurge_status TO alice;
		CREATE USER MAPPING FOR alice SERVER cec
			OPTIONS (app_key 'cec-app-key', app_secret 'alice-wrong-secret');});
	my @alice = (extra_params => [ '-U', 'alice' ]);

	my $auth_before = $sim->state->{rejections}{auth};
	my $a_id = enqueue('alice-', 3, @alice);
	my $p_id = enqueue('public-', 3);
	$node->safe_psql($db, "SELECT ccpurge_wait($a_id, '60 s')", @alice);
	is(CcpTest::wait_done($node, $p_id, %in_db),
		'3|3', "mapping: PUBLIC's items are done");

	my ($n, $state, $attempts, $msg) = split /\|/,
	  $node->safe_psql(
		$db, qq{
		SELECT count(*) || '|' || string_agg(DISTINCT state, ',') || '|'
			|| max(attempts) || '|' || max(message)
		FROM ccpurge_status WHERE request_id = $a_id});
	is("$n|$state|$attempts", '3|failed|2',
		"mapping: alice's items failed after ccpurge.max_attempts = 2");
	like($msg, qr/token/i, "mapping: the message says why ($msg)");
	unlike($msg, qr/alice-wrong-secret/, 'mapping: the secret is not in it');
	cmp_ok($sim->state->{rejections}{auth}, '>', $auth_before,
		"mapping: the vendor refused alice's credentials");
	is($sim->deleted_with_prefix('alice-'), 0, "mapping: none of alice's items was erased");
	is($sim->deleted_with_prefix('public-'), 3, "mapping: PUBLIC's items were erased");
	is($node->safe_psql($db, 'SELECT count(*) FROM ccpurge_status', @alice),
		'3', 'mapping: alice sees only her own items');

	$node->safe_psql(
		$db, q{
		SET log_statement = 'none';
		ALTER USER MAPPING FOR alice SERVER cec
			OPTIONS (SET app_secret 'cec-app-secret');});
	is($node->safe_psql($db, "SELECT ccpurge_retry($a_id)", @alice),
		'3', "mapping: alice requeues her items");
	is(CcpTest::wait_done($node, $a_id, %in_db, @alice), '3|3',
		"mapping: with her mapping fixed, alice's items are done");
	is($sim->deleted_with_prefix('alice-'), 3, "mapping: and erased");
}

# 4. DROP EXTENSION while a drain is in progress.
{
	my $bg = $node->background_psql($db);
	slow_vendor();
	my $pid = CcpTest::worker_pid($node, $db);
	my $id = $bg->query_safe(CcpTest::enqueue_sql('drop-ext-', 10000));
	CcpTest::wait_progress($node, "request_id = $id", 1000, %in_db);

	my $log_offset = -s $node->logfile;
	my $drop = q{
		SET client_min_messages = warning;
		DROP EXTENSION ccpurge CASCADE;};
	my ($ret, $out, $err) = $node->psql($db, $drop);
	isnt($ret, 0, 'DROP EXTENSION: refused while the drain is in progress');
	like($err,
		qr/cannot drop extension ccpurge while items are queued, sending or failed.*HINT:.*ccpurge_cancel/s,
		'DROP EXTENSION: the error says why and how to finish');
	is($node->safe_psql($db, 'SELECT count(*) > 0 FROM ccpurge.queue'),
		't', 'DROP EXTENSION: the queue is still there');

	# cancel what is queued; the batches in flight end done
	$node->safe_psql($db, "SELECT ccpurge_cancel($id)");
	$sim->post('/_sim/fault/clear');
	ok( $node->poll_query_until(
			$db,
			"SELECT count(*) = 0 FROM ccpurge_status WHERE request_id = $id AND state IN ('queued', 'sending', 'failed')"
		),
		'DROP EXTENSION: the canceled request is finished');
	($ret, $out, $err) = $node->psql($db, $drop);
	is($ret, 0, 'DROP EXTENSION: then it succeeds') or diag($err);

	# at the drop's commit the worker looks at the queue again and leaves
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'ccpurge worker' AND datname = '$db'"
		),
		'DROP EXTENSION: the worker leaves');
	ok( $node->log_contains(
			qr/ccpurge worker stopped: the extension is no longer installed/,
			$log_offset),
		'DROP EXTENSION: it says why');
	ok( !$node->log_contains(
			qr/ccpurge worker.*(terminated by signal|exited with exit code)/,
			$log_offset),
		'DROP EXTENSION: the worker did not die');

	setup();
	# the session that queued before the drop queues again
	my $id2 = $bg->query_safe(CcpTest::enqueue_sql('recreated-', 5));
	$bg->quit;
	is(CcpTest::wait_done($node, $id2, %in_db), '5|5',
		'DROP EXTENSION: after CREATE EXTENSION new work is done');
	is($sim->deleted_with_prefix('recreated-'), 5,
		'DROP EXTENSION: and erased by the simulator');
}

# 5. DROP DATABASE of the worker's database while it is busy.
{
	slow_vendor();
	my $id = enqueue('drop-db-', 10000);
	CcpTest::wait_progress($node, "request_id = $id", 1000, %in_db);

	my $log_offset = -s $node->logfile;
	my $t0 = time;
	my ($ret, $out, $err) =
	  $node->psql('postgres', "DROP DATABASE $db");
	my $took = time - $t0;
	is($ret, 0, 'DROP DATABASE: it succeeds while the worker is busy')
	  or diag($err);
	cmp_ok($took, '<', 5, sprintf('DROP DATABASE: it took %.1f s', $took));
	is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = '$db'"),
		'0', 'DROP DATABASE: the database is gone');
	$sim->post('/_sim/fault/clear');
	ok( !$node->log_contains(qr/terminated by signal/, $log_offset),
		'DROP DATABASE: nothing crashed');

	# the worker comes back once the database exists again
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	setup();
	my $id2 = enqueue('new-db-', 5);
	is(CcpTest::wait_done($node, $id2, %in_db),
		'5|5', 'DROP DATABASE: work in the new database is done');
	is($sim->deleted_with_prefix('new-db-'), 5, 'DROP DATABASE: and erased by the simulator');
	like(CcpTest::worker_pid($node, $db), qr/^\d+$/, 'DROP DATABASE: the worker serves the new database');
}


# 6. An error inside the worker (here: the queue table renamed away under
#    it for a few seconds, so that its claim fails several times) is reported and survived: once the table is back
#    the worker drains again, and it still stops cleanly when told to.
{
	my $pid = CcpTest::worker_pid($node, $db);
	my $log_offset = -s $node->logfile;
	$node->safe_psql($db, 'ALTER TABLE ccpurge.queue RENAME TO queue_away');
	$node->reload;
	ok( $node->wait_for_log(qr/relation "ccpurge.queue" does not exist/,
			$log_offset),
		'worker error: the worker reported the missing table');
	# it tries again every second: let it fail twice more
	ok( CcpTest::wait_for_log_count(
			$node, qr/relation "ccpurge.queue" does not exist/,
			3, $log_offset),
		'worker error: the worker reported it again at its next attempts');
	# (retried: a worker crashing here restarts the whole server)
	my $back = CcpTest::poll_until(
		180,
		sub {
			$node->psql($db,
				"SET lock_timeout = '5s'; ALTER TABLE ccpurge.queue_away RENAME TO queue"
			);
			return $node->psql($db, 'SELECT 1') == 0
			  && $node->safe_psql($db,
				"SELECT to_regclass('ccpurge.queue') IS NOT NULL") eq 't';
		});
	ok($back, 'worker error: the queue table is back');

	my $id = enqueue('after-error-', 3);
	my $drained = $node->safe_psql($db, "SELECT ccpurge_wait($id, '15 s')");
	is($drained, 't', 'worker error: afterwards new work is done');
	is($sim->deleted_with_prefix('after-error-'), 3,
		'worker error: and erased by the simulator');
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $gone = CcpTest::poll_sql($node, 'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid", 10);
	ok($gone, 'worker error: the worker still obeys SIGTERM');
	ok( $node->log_contains(
			qr/terminating background worker "ccpurge worker" due to administrator command/,
			$log_offset)
		  && !$node->log_contains(qr/terminated by signal/, $log_offset),
		'worker error: it exits cleanly, without a crash');

	# a worker wedged by the error is replaced, for the test below
	my $current = CcpTest::worker_pid($node, $db);
	if ($current ne '' && ($drained ne 't' || !$gone))
	{
		note("killing the wedged worker $current");
		kill 'KILL', $current;
	}
}

# 7. A worker stopped while a batch is in flight: its successor queues the
#    batch's rows again, sends them, and its log line counts the items and
#    the rows.
{
	ok(CcpTest::wait_worker_connected($node, $db),
		"stopped in flight: the worker is connected to $db");
	my $log_offset = -s $node->logfile;
	$sim->fault(
		kind => 'delay',
		delay_ms => 60000,
		count => 1,
		path => 'cleancustpersonaldata');
	my $before = $sim->state->{requests}{cec_customers};
	my @ids = split /\n/,
	  $node->safe_psql($db,
		    'BEGIN;'
		  . CcpTest::enqueue_sql('inflight-a-', 2) . ';'
		  . CcpTest::enqueue_sql('inflight-b-', 1)
		  . ';COMMIT;');
	ok($sim->wait_for(sub { $_[0]->{requests}{cec_customers} > $before }, 30),
		'stopped in flight: the batch of both requests went out');
	my $pid = CcpTest::worker_pid($node, $db);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	is( CcpTest::wait_done($node, $ids[0], %in_db) . ' '
		  . CcpTest::wait_done($node, $ids[1], %in_db),
		'2|2 1|1',
		'stopped in flight: a new worker sends both requests again');
	is_deeply(
		[ CcpTest::log_reports($node, qr/ccpurge worker queued /, $log_offset) ],
		[
			"ccpurge worker queued 3 interrupted items again\n"
			  . 'DETAIL:  2 queue rows were left in state "sending" when a worker stopped or failed.'
		],
		'stopped in flight: the new worker counts 3 items in 2 rows');
	$sim->post('/_sim/fault/clear');
}

# 8. DROP DATABASE by a role that may not drop the database must not
#    disturb the worker.  (Last, as the hook holds the worker away from
#    its database for 30 s when it signals it.)
{
	ok(CcpTest::wait_worker_connected($node, $db),
		"the worker is connected to $db");
	my $pid = CcpTest::worker_pid($node, $db);
	my $log_offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql(
		'postgres', "DROP DATABASE $db",
		extra_params => [ '-U', 'alice' ]);
	like($err, qr/must be owner of database/,
		'DROP DATABASE by a non-owner: refused');
	# a worker signaled to leave would stop before it takes new work
	my $id = enqueue('non-owner-', 1);
	is(CcpTest::wait_done($node, $id, %in_db),
		'1|1', 'DROP DATABASE by a non-owner: new work is done');
	is(CcpTest::worker_pid($node, $db), $pid,
		'DROP DATABASE by a non-owner: the worker was left alone');
	ok( !$node->log_contains(
			qr/terminating background worker "ccpurge worker"/, $log_offset),
		'DROP DATABASE by a non-owner: the worker was not terminated');
}

# immediate: a worker wedged by a bug above must not hang the shutdown
$node->stop('immediate');
done_testing();
