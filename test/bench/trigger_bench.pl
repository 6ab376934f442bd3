#
# test/bench/trigger_bench.pl: what the erase-on-delete trigger adds to a
# bulk DELETE.
#
# Tables of 100,000 CRM-like rows (CCP_BENCH_ROWS), identical but for their
# triggers, are emptied with one DELETE each, timed together with its
# COMMIT (the trigger's items reach the queue at commit).  The variants:
#   plain      no trigger: the baseline;
#   stmt_noop  a plpgsql FOR EACH STATEMENT trigger that does nothing, with
#              REFERENCING OLD TABLE: PostgreSQL's own transition table cost;
#   ccp_stmt   ccpurge_erase_on_delete('delete_customers', 'phone') FOR EACH
#              STATEMENT with REFERENCING OLD TABLE (target: <= 1.5x);
#   row_noop   a plpgsql FOR EACH ROW trigger that does nothing: the cost of
#              the after-trigger event queue plus a plpgsql call per row;
#   ccp_row    the same ccpurge trigger FOR EACH ROW (target: <= 5x);
#   plpgsql    for scale, a plpgsql FOR EACH ROW trigger inserting the phone
#              number into a logged queue table.
# There are CCP_BENCH_REPS rounds (default 5).  Each round refills every
# table, vacuums and analyses it and takes a CHECKPOINT, so that every
# DELETE starts from the same state, then runs the variants' DELETEs back
# to back in an order that rotates from round to round.  Each DELETE runs
# in a fresh session; its wall time comes from psql's \timing (BEGIN,
# DELETE and COMMIT, each one round trip over the Unix socket), and the
# backend's CPU time for the three from /proc/self/sched, which leaves out
# time spent waiting for a CPU (on a virtual machine whose host is busy it
# still moves with the wall time).  CCP_BENCH_WORK_MEM sets work_mem, to
# show the statement form when the transition table need not spill, and
# CCP_BENCH_CONF any other settings ("fsync = on;synchronous_commit = on").
#
# No worker serves the benchmark's database (ccpurge.serve_database is off
# there), so nothing drains the queue while DELETEs are timed: enqueueing
# does not need the worker.  The cluster runs
# with the test framework's fsync = off, which makes COMMIT cheap for every
# variant alike, and the default work_mem (4MB), so the transition table of
# 100,000 rows spills to a temporary file.
#
# It prints the median wall and CPU time of each variant and their ratios
# to the plain DELETE, and the median of the ratios to the plain DELETE of
# the same round ("paired"), which slow drifts of the machine's speed
# disturb less.  Other load on the machine moves every figure; run it on
# an otherwise idle machine, or raise CCP_BENCH_REPS.  This is a benchmark, not a test: it fails only when a DELETE
# does not delete every row or the queue does not receive every item, never
# on a slow figure.
#
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rows = $ENV{CCP_BENCH_ROWS} // 100_000;
my $reps = $ENV{CCP_BENCH_REPS} // 5;
my $db = 'bench';

my $node = CcpTest::new_node(
	'bench_trigger',
	conf => [
		'shared_buffers = 256MB', 'max_wal_size = 4GB',
		'checkpoint_timeout = 1h', 'autovacuum = off',
		'log_statement = none', 'jit = off',
		# CCP_BENCH_WORK_MEM (e.g. 64MB) keeps the transition table in memory
		($ENV{CCP_BENCH_WORK_MEM} ? ("work_mem = '$ENV{CCP_BENCH_WORK_MEM}'") : ()),
		# CCP_BENCH_CONF adds settings, separated by ";" (e.g. "fsync = on")
		split(/;/, $ENV{CCP_BENCH_CONF} // '')
	]);
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql('postgres', "ALTER DATABASE $db SET ccpurge.serve_database = off");
# The servers are never contacted: the worker does not serve this database.
CcpTest::setup_servers($node, undef,
	dbname => $db,
	servers => ['cec'],
	url => 'http://127.0.0.1:9');

# variant name => trigger DDL for its table (%t is the table name)
my @variants = (
	[ plain => '' ],
	[
		stmt_noop => "CREATE TRIGGER noop AFTER DELETE ON %t"
		  . " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
		  . " EXECUTE FUNCTION bench_noop()"
	],
	[
		ccp_stmt => "CREATE TRIGGER erase AFTER DELETE ON %t"
		  . " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
		  . " EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone')"
	],
	[
		row_noop => "CREATE TRIGGER noop AFTER DELETE ON %t"
		  . " FOR EACH ROW EXECUTE FUNCTION bench_noop()"
	],
	[
		ccp_row => "CREATE TRIGGER erase AFTER DELETE ON %t"
		  . " FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone')"
	],
	[
		plpgsql => "CREATE TRIGGER log_phone AFTER DELETE ON %t"
		  . " FOR EACH ROW EXECUTE FUNCTION bench_log_phone()"
	],);

my $ddl = q{
CREATE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql
AS $$BEGIN RETURN NULL; END$$;
CREATE TABLE erase_log (
	id bigserial PRIMARY KEY,
	phone text NOT NULL,
	queued_at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION bench_log_phone() RETURNS trigger LANGUAGE plpgsql
AS $$BEGIN INSERT INTO erase_log (phone) VALUES (OLD.phone); RETURN NULL; END$$;
};
for my $v (@variants)
{
	my ($name, $trigger) = @$v;
	my $t = "customer_$name";
	$ddl .= qq{
CREATE TABLE $t (
	id int PRIMARY KEY,
	full_name text NOT NULL,
	phone text,
	email text,
	city text,
	segment text,
	created_at timestamptz NOT NULL DEFAULT now(),
	closed_at timestamptz
) WITH (autovacuum_enabled = off);
};
	(my $trig = $trigger) =~ s/%t/$t/g;
	$ddl .= "$trig;\n" if $trig ne '';
}
$node->safe_psql($db, $ddl);

# refill empties every variant's table and the queues, loads $rows rows
# into each table, vacuums and analyses them, and takes a checkpoint.
sub refill
{
	my $sql = "TRUNCATE erase_log, ccpurge.queue;\n";
	for my $v (@variants)
	{
		my $t = "customer_$v->[0]";
		$sql .= qq{
TRUNCATE $t;
INSERT INTO $t (id, full_name, phone, email, city, segment, closed_at)
SELECT g, 'Customer ' || g, '9' || lpad(g::text, 9, '0'),
	   'customer' || g || '\@example.com',
	   (ARRAY['Mumbai', 'Pune', 'Delhi', 'Chennai'])[1 + g % 4],
	   (ARRAY['retail', 'sme', 'enterprise'])[1 + g % 3],
	   now() - interval '8 years'
  FROM generate_series(1, $rows) g;
VACUUM ANALYZE $t;
};
	}
	$node->safe_psql($db, $sql . "CHECKPOINT;\n");
	return;
}

# timed_delete runs BEGIN, DELETE, COMMIT in a new session and returns the
# milliseconds of the DELETE and of the COMMIT from psql's \timing, and the
# CPU time the backend used for the three (from /proc/self/sched, which the
# backend reads itself with pg_read_file).
sub timed_delete
{
	my ($name) = @_;
	my ($out, $err) = ('', '');
	my $cpu = q{SELECT substring(pg_read_file('/proc/self/sched')}
	  . q{ FROM 'se.sum_exec_runtime\s+:\s+([0-9.]+)')::numeric};
	$node->psql(
		$db, qq{$cpu AS cpu0 \\gset
\\timing on
BEGIN;
DELETE FROM customer_$name;
COMMIT;
\\timing off
$cpu - :cpu0;
},
		stdout => \$out,
		stderr => \$err,
		on_error_die => 1);
	my @ms = $out =~ /^Time: ([0-9.]+) ms/mg;
	my ($cpu_ms) = $out =~ /^(-?[0-9.]+)\s*\z/m;
	die "unexpected psql output: $out $err" unless @ms == 3 && defined $cpu_ms;
	return ($ms[0] + $ms[1], $ms[2], $cpu_ms);
}

# median of a list
sub median
{
	my @s = sort { $a <=> $b } @_;
	return @s % 2 ? $s[ $#s / 2 ] : ($s[ @s / 2 - 1 ] + $s[ @s / 2 ]) / 2;
}


my (%total, %delete, %commit, %cpu, %paired);
for my $rep (1 .. $reps)
{
	refill();

	# rotate the order, so that no variant always runs first or last; the
	# DELETEs of one round run back to back, under the same conditions
	my @order = map { $variants[ ($_ + $rep) % @variants ][0] } 0 .. $#variants;
	my %round;
	for my $name (@order)
	{
		my ($del, $com, $used) = timed_delete($name);
		push @{ $cpu{$name} }, $used;
		push @{ $delete{$name} }, $del;
		push @{ $commit{$name} }, $com;
		push @{ $total{$name} }, $del + $com;
		$round{$name} = $del + $com;
	}
	push @{ $paired{$_} }, $round{$_} / $round{plain} for keys %round;

	for my $name (@order)
	{
		is($node->safe_psql($db, "SELECT count(*) FROM customer_$name"),
			0, "$name run $rep deleted every row");
	}
	is( $node->safe_psql(
			$db, "SELECT string_agg(n::text, ',') FROM (SELECT sum(nitems) AS n"
			  . " FROM ccpurge.queue WHERE state = 'queued' GROUP BY request_id) s"),
		"$rows,$rows",
		"run $rep: each ccpurge trigger queued every phone number in one request");
	is($node->safe_psql($db, 'SELECT count(*) FROM erase_log'),
		$rows, "run $rep: the plpgsql trigger logged every phone number");
}

my $base = median(@{ $total{plain} });
my $base_cpu = median(@{ $cpu{plain} });
my %target = (ccp_stmt => 1.5, ccp_row => 5);
diag(sprintf("DELETE of %d rows with its COMMIT, median of %d runs: wall time"
	  . " (psql \\timing) and the backend's CPU time (/proc/self/sched)",
		$rows, $reps));
for my $v (@variants)
{
	my $name = $v->[0];
	my $med = median(@{ $total{$name} });
	my $med_cpu = median(@{ $cpu{$name} });
	diag(sprintf(
			"  %-9s wall %7.1f ms (DELETE %7.1f + COMMIT %5.1f) %5.2fx,"
			  . " paired %5.2fx; cpu %7.1f ms %5.2fx, %5.2f us/row over plain;"
			  . " wall runs: %s",
			$name, $med,
			median(@{ $delete{$name} }),
			median(@{ $commit{$name} }),
			$med / $base, median(@{ $paired{$name} }),
			$med_cpu, $med_cpu / $base_cpu,
			1000 * ($med_cpu - $base_cpu) / $rows,
			join(' ', map { sprintf '%.1f', $_ } @{ $total{$name} })));
}
for my $name ('ccp_stmt', 'ccp_row', 'plpgsql')
{
	diag(sprintf("RATIO %s/plain: wall %.2f, paired %.2f, cpu %.2f%s", $name,
			median(@{ $total{$name} }) / $base,
			median(@{ $paired{$name} }),
			median(@{ $cpu{$name} }) / $base_cpu,
			$target{$name} ? " (target <= $target{$name})" : ' (for scale)'));
}
diag(sprintf("RATIO ccp_stmt/stmt_noop: wall %.2f, cpu %.2f"
	  . " (ccpurge's part of the statement form; stmt_noop/plain: cpu %.2f)",
		median(@{ $total{ccp_stmt} }) / median(@{ $total{stmt_noop} }),
		median(@{ $cpu{ccp_stmt} }) / median(@{ $cpu{stmt_noop} }),
		median(@{ $cpu{stmt_noop} }) / $base_cpu));

$node->stop;
done_testing();
