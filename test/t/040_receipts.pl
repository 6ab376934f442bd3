#
# test/t/040_receipts.pl: receipts answer the auditor's question for one
# person after the queue has forgotten the person, and no erased item
# stays in clear text.
#
# Covers, against the vendor simulator:
#   - one number out of a 5,000-row DELETE under the FOR EACH STATEMENT
#     trigger has a receipt after retention has pruned the queue rows; its
#     certificate names server, time, outcome and request id, and
#     test/bin/check-certificate verifies it, and fails once a row of it
#     is edited;
#   - two requests the worker coalesced into one batch both appear in the
#     log row's request_ids, and both items' receipts name that row;
#   - synchronous, worker and rolled-back synchronous calls all leave
#     receipts;
#   - per-item refusals of the webhook, sent by the worker: ok = false for
#     exactly those items;
#   - a done item's clear text is gone from every table, and from a
#     pg_dump, the moment it is done; a canceled one's too.
#
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
CcpTest::setup_servers($node, $sim, servers => ['cec']);
CcpTest::create_server($node, 'hook', vendor => 'webhook',
	url => $sim->url . '/webhook/erase');
my $check = CcpTest::root() . '/test/bin/check-certificate';

# receipt returns "server|origin|ok|request_id|request_ids" of each
# receipt of $item, one per line, oldest first.
sub receipt
{
	my ($item) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT r.server || '|' || r.origin || '|' || r.ok || '|'
			   || coalesce(r.request_id::text, '') || '|'
			   || coalesce(l.request_ids::text, '')
		  FROM ccpurge_erasure_receipt(} . CcpTest::quote_literal($item) . q{) AS r
		  JOIN ccpurge.request_log AS l USING (log_id)});
}

# wait_chained waits until the worker has chained every log row.
sub wait_chained
{
	return $node->poll_query_until('postgres',
		q{SELECT detail = 'every row is chained' FROM ccpurge_verify_log()});
}

# 5,000 rows deleted at once under the statement trigger
$node->safe_psql(
	'postgres', q{
	CREATE SCHEMA crm;
	CREATE TABLE crm.customer (id int PRIMARY KEY, phone text);
	INSERT INTO crm.customer SELECT g, '+91970000' || lpad(g::text, 4, '0')
	  FROM generate_series(1, 5000) g;
	CREATE TRIGGER erase AFTER DELETE ON crm.customer
	  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
	  EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');
	DELETE FROM crm.customer;});
my $req = $node->safe_psql('postgres', 'SELECT max(request_id) FROM ccpurge.queue');
is(CcpTest::ccpurge_wait($node, $req), 't', 'the 5,000 items are erased');
CcpTest::set_setting($node, 'ccpurge.retention', '1s', '1s');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM ccpurge.queue WHERE request_id = $req"),
	'retention has pruned the queue rows of the request');
is(receipt('+919700000042'), "cec|worker|true|$req|{$req}",
	'one number of the 5,000 still has its receipt: server, worker, erased, request id');
is(receipt('+919700005001'), '', 'a number that was not deleted has none');

ok(wait_chained(), 'the worker chained the log');
my $cert = $node->safe_psql('postgres',
	q{SELECT ccpurge_erasure_certificate('+919700000042')});
is( $node->safe_psql(
		'postgres', qq{
	SELECT string_agg(c->>0 || '=' || (c->>1 IS NOT NULL), ',')
	  FROM jsonb_array_elements(} . CcpTest::quote_literal($cert) . q{::jsonb->'receipts'->0->'row') c
	 WHERE c->>0 IN ('server', 'logged_at', 'ok', 'request_ids')}),
	'logged_at=true,server=true,ok=true,request_ids=true',
	'the certificate names server, time, outcome and request ids');
like($cert, qr/"request_ids", "\{$req\}"/, 'and the request id of the DELETE');
my $file = $node->basedir . '/certificate.json';
CcpTest::write_file($file, $cert);
my ($out, $err);
IPC::Run::run([ $^X, $check, $file ], '>', \$out, '2>', \$err);
is($?, 0, 'check-certificate verifies the certificate without ccpurge');
like($out, qr/^log_id \d+: delete_customers at cec, .*request \{$req\}: erased$/m,
	'and says what the receipt proves');
(my $forged = $cert) =~ s/\["ok", "t"\]/["ok", "f"]/
  or die 'no outcome to forge';
CcpTest::write_file($file, $forged);
IPC::Run::run([ $^X, $check, $file ], '>', \$out, '2>', \$err);
isnt($?, 0, 'check-certificate fails on a certificate whose row was edited');
like($out, qr/row_hash does not match/, 'and says so');

# two requests coalesced into one batch
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT ccpurge_enqueue('delete_customers', ARRAY['coalesced-a']);
	SELECT ccpurge_enqueue('delete_customers', ARRAY['coalesced-b']);
	COMMIT;});
my ($ra, $rb) = split /\n/, $node->safe_psql('postgres',
	'SELECT request_id FROM ccpurge.queue ORDER BY request_id DESC LIMIT 2');
($ra, $rb) = ($rb, $ra);
CcpTest::ccpurge_wait($node, $rb);
is(receipt('coalesced-a'), "cec|worker|true|$ra|{$ra,$rb}",
	'the first item\'s receipt names the batch, which carried both requests');
is(receipt('coalesced-b'), "cec|worker|true|$ra|{$ra,$rb}",
	'so does the second\'s');

# synchronous calls, committed and rolled back
$node->safe_psql('postgres',
	q{SELECT count(*) FROM ccpurge_delete_customers(ARRAY['sync-kept'])});
is(receipt('sync-kept'), 'cec|sync|true||', 'a synchronous call leaves a receipt');
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT count(*) FROM ccpurge_delete_customers(ARRAY['sync-rolled-back']);
	ROLLBACK;});
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM ccpurge_erasure_receipt('sync-rolled-back')}),
	'a rolled-back synchronous call leaves a receipt, written by the worker');
is(receipt('sync-rolled-back'), 'cec|sync|true||', 'with its outcome');

# the webhook refuses one item of a batch the worker sends
$sim->config(webhook_results => 'per_item', webhook_fail_items => ['hook-locked']);
my $rh = $node->safe_psql('postgres',
	q{SELECT ccpurge_enqueue('erase', ARRAY['hook-1', 'hook-locked', 'hook-2'], '{}', 'hook')});
is(CcpTest::ccpurge_wait($node, $rh), 't', 'the webhook answered the batch per item');
is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(i || '=' || r.ok || ':' || coalesce(r.code, ''), ',' ORDER BY i)
	  FROM unnest(ARRAY['hook-1', 'hook-locked', 'hook-2']) i,
		   ccpurge_erasure_receipt(i) r}),
	'hook-1=true:,hook-2=true:,hook-locked=false:item_refused',
	'the worker\'s receipts: ok = false for exactly the refused item');
$sim->config(webhook_results => 'none', webhook_fail_items => []);

# no clear text after erasure: set retention back so that done rows stay
CcpTest::set_setting($node, 'ccpurge.retention', '7d', '7d');
my $person = '+861350000777';
my $rp = $node->safe_psql('postgres',
	"SELECT ccpurge_enqueue('delete_customers', ARRAY['$person'])");
is(CcpTest::ccpurge_wait($node, $rp), 't', 'the person is erased');

# tables_holding returns the tables of the database whose rows' text holds
# $text.
sub tables_holding
{
	my ($text) = @_;
	return $node->safe_psql(
		'postgres', q{
	DO $$
	DECLARE r record; n bigint;
	BEGIN
		CREATE TEMP TABLE holding (tbl text);
		FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
				  WHERE c.relkind = 'r' AND c.relpersistence = 'p'
					AND c.relnamespace NOT IN ('pg_catalog'::regnamespace,
											   'information_schema'::regnamespace)
		LOOP
			EXECUTE format('SELECT count(*) FROM %s AS x WHERE x::text LIKE %L',
						   r.t, } . CcpTest::quote_literal("%$text%") . q{) INTO n;
			IF n > 0 THEN INSERT INTO holding VALUES (r.t::text); END IF;
		END LOOP;
	END $$;
	SELECT coalesce(string_agg(tbl, ','), '') FROM holding});
}
is( $node->safe_psql('postgres',
		"SELECT state || '|' || (item LIKE 'hmac:%') FROM ccpurge_status WHERE request_id = $rp"),
	'done|true', 'ccpurge_status shows the done item as its digest');
is(tables_holding($person), '', 'no table holds the erased number');
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', 'postgres', '-f', $dump ], 'pg_dump');
unlike(slurp_file($dump), qr/\Q$person\E/, 'nor does a pg_dump');
is(receipt($person), "cec|worker|true|$rp|{$rp}", 'its receipt finds it');

# A row erased as a whole keeps no item of its own: it points at its
# items' receipts, and ccpurge_status shows their digests from there, each
# row its own items (two requests coalesced into one batch).
my ($r1, $r2) = split /\n/, $node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT ccpurge_enqueue('delete_customers', ARRAY['pt-1', 'pt-2', 'pt-3']);
	SELECT ccpurge_enqueue('delete_customers', ARRAY['pt-4', 'pt-5']);
	COMMIT;});
is(CcpTest::ccpurge_wait($node, $r2), 't', 'two coalesced requests are erased');
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FILTER (WHERE items = '{}' AND receipt_log_id IS NOT NULL)
		   || '|' || count(DISTINCT receipt_log_id)
	  FROM ccpurge.queue WHERE request_id IN ($r1, $r2)}),
	'2|1', 'their done rows point at the receipts of their one batch');
is( $node->safe_psql(
		'postgres', qq{
	SELECT string_agg(request_id || ':' || (item = d), ',' ORDER BY request_id, item)
	  FROM ccpurge_status s
	  LEFT JOIN (SELECT unnest(ccpurge.forget_items(ARRAY['pt-1', 'pt-2', 'pt-3'])) AS d, $r1 AS r
				 UNION ALL
				 SELECT unnest(ccpurge.forget_items(ARRAY['pt-4', 'pt-5'])), $r2) f
		ON f.r = s.request_id AND f.d = s.item
	 WHERE request_id IN ($r1, $r2)}),
	"$r1:true,$r1:true,$r1:true,$r2:true,$r2:true",
	'ccpurge_status shows each row its own items\' digests');
# an item two requests of one batch name is sent once: their rows keep
# their items' digests themselves
my ($d1, $d2) = split /\n/, $node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT ccpurge_enqueue('delete_customers', ARRAY['pt-dup', 'pt-6']);
	SELECT ccpurge_enqueue('delete_customers', ARRAY['pt-dup']);
	COMMIT;});
is(CcpTest::ccpurge_wait($node, $d2), 't', 'a batch naming an item twice is erased');
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FILTER (WHERE receipt_log_id IS NULL AND items <> '{}')
		   || '|' || (SELECT count(*) FILTER (WHERE item LIKE 'hmac:%')
						FROM ccpurge_status WHERE request_id IN ($d1, $d2))
	  FROM ccpurge.queue WHERE request_id IN ($d1, $d2)}),
	'2|3', 'its rows keep their items\' digests, which ccpurge_status shows');
is(tables_holding('pt-dup'), '', 'and neither keeps the clear text');

# a canceled item loses its clear text too; a failed one keeps it
$node->safe_psql(
	'postgres', q{
	BEGIN;
	SELECT ccpurge_enqueue('delete_customers', ARRAY['+861350000888']) AS r \gset
	SELECT ccpurge_cancel(:r);
	COMMIT;});
is(tables_holding('+861350000888'), '', 'a canceled item leaves no clear text');

done_testing();
