#
# test/bench/receipt_bench.pl: what receipts cost the worker's drain, how
# much room they take, and how fast one person's receipts are found.
#
# 1. Drain: one transaction queues N distinct customer numbers (CCP_BENCH_N,
#    default 1000000) and the worker drains them, timed from COMMIT to the
#    last finished_at, as in drain_bench.  Each round drains once with
#    receipts and once without, in the same cluster: the baseline renames
#    ccpurge.erasure_packed away, so that ccpurge finds no receipts table
#    and, as in an installation not yet updated to 1.2, computes and writes
#    no receipt (a bench-only step: it is renamed back at once).  Everything
#    else is the same in both, but for what the queue keeps of done items:
#    without receipts their digests in the rows, with receipts where the
#    receipts are (see ccp_store_record).
#    CCP_BENCH_ROUNDS rounds (default 2), alternating; the best of each is
#    compared.  Target: with receipts at least 0.7x the items/s without.
# 2. Storage: pg_total_relation_size of ccpurge.erasure_packed (heap,
#    TOAST, primary key and GIN index) per receipt after the drains, and
#    after the GIN index's pending list is merged (the time that merge
#    takes is printed: the part autovacuum had not done yet).  Target:
#    <= 100 bytes.
# 3. Look-up: synthetic receipts are added in bulk (CCP_BENCH_RECEIPTS in
#    all, default 10000000, 1,000 per row as the worker writes them), then
#    ccpurge_erasure_receipt of one drained number is timed (median of 101
#    calls in one session) against SELECT 1 through the same path.  Target:
#    under 5 ms; the plan of its query must use the GIN index.
#
# A benchmark, not a test: it fails only when items do not end done or a
# receipt is not found, never on a slow figure.
#
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

my $n = $ENV{CCP_BENCH_N} // 1_000_000;
my $rounds = $ENV{CCP_BENCH_ROUNDS} // 2;
my $total_receipts = $ENV{CCP_BENCH_RECEIPTS} // 10_000_000;

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node(
	'bench_receipts',
	conf => [ 'log_statement = none', 'max_wal_size = 4GB', 'jit = off',
			  'shared_buffers = 256MB' ]);
CcpTest::setup_servers($node, $sim, servers => ['cec']);

# drain queues $n numbers from $first on and returns the drain's seconds.
sub drain
{
	my ($first) = @_;
	my $out = $node->safe_psql(
		'postgres', qq{
BEGIN;
SELECT ccpurge_enqueue('delete_customers',
	ARRAY(SELECT ($first + g)::text FROM generate_series(1, $n) g)) AS id \\gset
COMMIT;
SELECT :id || ' ' || extract(epoch FROM clock_timestamp());
});
	my ($id, $t0) = split / /, $out;
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '30 minutes')"),
		't', "request $id finished");
	my ($states, $t1) = split /\|/,
	  $node->safe_psql(
		'postgres', qq{
SELECT string_agg(state || ':' || items, ','), max(last)
  FROM (SELECT state, sum(nitems) AS items,
			   extract(epoch FROM max(finished_at)) AS last
		  FROM ccpurge.queue WHERE request_id = $id GROUP BY state) s});
	is($states, "done:$n", "every item of request $id is done");
	$node->safe_psql('postgres', "DELETE FROM ccpurge.queue WHERE request_id = $id");
	return $t1 - $t0;
}

# receipts_off renames the receipts table away (the baseline), or back.
sub receipts_off
{
	my ($off) = @_;
	$node->safe_psql('postgres',
		$off
		? 'ALTER TABLE ccpurge.erasure_packed RENAME TO erasure_packed_bench_off'
		: 'ALTER TABLE ccpurge.erasure_packed_bench_off RENAME TO erasure_packed');
	# the worker's cached plans name the table: a restart forgets them
	$node->restart;
	return;
}

my (@with, @without);
my $first = 7_000_000_000;
for my $round (1 .. $rounds)
{
	receipts_off(1);
	push @without, drain($first);
	$first += $n;
	receipts_off(0);
	push @with, drain($first);
	$first += $n;
}
my ($best_with) = sort { $a <=> $b } @with;
my ($best_without) = sort { $a <=> $b } @without;
my $receipts = $node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge.erasure');
is($receipts, $n * $rounds, 'one receipt per item of the drains with receipts');

my $size = $node->safe_psql('postgres',
	"SELECT pg_total_relation_size('ccpurge.erasure_packed')");
my $t_merge = time;
my $merged = $node->safe_psql('postgres',
	"SELECT gin_clean_pending_list('ccpurge.erasure_packed_items_idx')");
$t_merge = time - $t_merge;
$node->safe_psql('postgres', 'VACUUM ccpurge.erasure_packed');
my $size_merged = $node->safe_psql('postgres',
	"SELECT pg_total_relation_size('ccpurge.erasure_packed')");

# synthetic receipts up to $total_receipts, 1,000 per row, in slices
my $rows = int(($total_receipts - $receipts) / 1000);
my $t_fill = time;
for (my $done = 0; $done < $rows; $done += 500)
{
	my $m = $rows - $done < 500 ? $rows - $done : 500;
	$node->safe_psql(
		'postgres', qq{
INSERT INTO ccpurge.erasure_packed (log_id, key_id, item_hmacs)
SELECT -1 - ($done + r), 1,
	   (SELECT decode(string_agg(md5(random()::text) || md5(random()::text), ''), 'hex')
		  FROM generate_series(1, 1000) WHERE r IS NOT NULL)
  FROM generate_series(1, $m) r});
}
$t_fill = time - $t_fill;
$node->safe_psql('postgres',
	"SELECT gin_clean_pending_list('ccpurge.erasure_packed_items_idx'); VACUUM ANALYZE ccpurge.erasure_packed");
my $all = $node->safe_psql('postgres',
	'SELECT sum(octet_length(item_hmacs) / 32) FROM ccpurge.erasure_packed');
my $size_all = $node->safe_psql('postgres',
	"SELECT pg_total_relation_size('ccpurge.erasure_packed')");

my $item = 7_000_000_000 + $n + 4242;	# a number of the first drain with receipts
my $plan = $node->safe_psql('postgres',
	"EXPLAIN SELECT log_id FROM ccpurge.erasure_packed"
	  . " WHERE ccpurge.receipt_keys(item_hmacs) @> ARRAY[42::int8] AND key_id = 1");
like($plan, qr/Bitmap Index Scan on erasure_packed_items_idx/,
	'the look-up is an index scan');
my $timing = $node->safe_psql(
	'postgres', qq{
CREATE TEMP TABLE t (what text, ms float8);
DO \$\$
DECLARE t0 timestamptz; c bigint;
BEGIN
	FOR i IN 1 .. 101 LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO c FROM ccpurge_erasure_receipt('$item');
		INSERT INTO t VALUES ('receipt', extract(epoch FROM clock_timestamp() - t0) * 1000);
		IF c <> 1 THEN RAISE 'expected one receipt, found %', c; END IF;
		t0 := clock_timestamp();
		PERFORM 1;
		INSERT INTO t VALUES ('nothing', extract(epoch FROM clock_timestamp() - t0) * 1000);
	END LOOP;
END \$\$;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE what = 'receipt')
	   || '|' || max(ms) FILTER (WHERE what = 'receipt') FROM t});
my ($median_ms, $max_ms) = split /\|/, $timing;

diag(sprintf("RECEIPTS drain of %d items: with receipts %.0f items/s (best of %s s),"
	  . " without %.0f items/s (best of %s s): %.2fx (target >= 0.7x)",
	$n, $n / $best_with, join('/', map { sprintf '%.2f', $_ } @with),
	$n / $best_without, join('/', map { sprintf '%.2f', $_ } @without),
	$best_without / $best_with));
diag(sprintf("RECEIPTS storage: %.1f bytes per receipt after the drains (%d receipts),"
	  . " %.1f after the GIN pending list is merged; %.1f among %d receipts (target <= 100)",
	$size / $receipts, $receipts, $size_merged / $receipts, $size_all / $all, $all));
diag(sprintf("RECEIPTS index merge left after the drains (autovacuum merges in the background):"
	  . " %d pending pages merged in %.2f s", $merged, $t_merge));
diag(sprintf("RECEIPTS look-up of one item among %d receipts: median %.3f ms, max %.3f ms"
	  . " over 101 calls (target < 5 ms); synthetic fill %.0f s",
	$all, $median_ms, $max_ms, $t_fill));

$node->stop;
$sim->stop;
done_testing();
