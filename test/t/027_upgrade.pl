# test/t/027_upgrade.pl: ALTER EXTENSION ccpurge UPDATE from 1.0 and 1.1.
#
# 1.0 built ccpurge_status on an unqualified unnest(), which a look-alike
# planted in public before CREATE EXTENSION captured; 1.1 builds it on
# pg_catalog.unnest.  Here every database gets such a look-alike first.
# Covers:
#   - an installation of 1.0 in use (the worker's database, a request-log
#     row of a synchronous call, three requests queued while the vendor is
#     down and the worker retrying them) updates to 1.1 without losing
#     anything: the old request-log rows are there unchanged, the items are
#     still waiting, and once the vendor is back they all end done and
#     erased;
#   - after the update the view's rewrite rule calls pg_catalog.unnest and
#     depends on no function outside pg_catalog but ccpurge's own;
#   - a fresh install and installs updated from 1.0 (through 1.1) and from
#     1.1, one of them by another superuser than the one who installed it,
#     have the same objects, owners included, down to columns, defaults,
#     constraints, indexes, privileges, comments, dump configuration and the functions they are bound to (a
#     catalog description of every member of the extension, compared line
#     by line), so an object added to src/sql/ and not to the update script
#     fails here; the comparison itself is shown to see such an object.

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

# A look-alike of pg_catalog.unnest that an unqualified unnest(text[])
# prefers; it only passes the call on.
my $plant = q{
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text
  LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.unnest($1)';
};

# describe_sql is one query describing every member object of the ccpurge
# extension, one text line per fact, sorted.  Newlines inside definitions
# are written as \n, and facts that are NULL are left out.
my $describe_sql = q{
WITH ext AS (
	SELECT oid, extnamespace, extrelocatable, extconfig, extcondition
	  FROM pg_extension WHERE extname = 'ccpurge'
), member AS (
	SELECT d.classid, d.objid
	  FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
), rel AS (
	SELECT c.*, pg_describe_object('pg_class'::regclass, c.oid, 0) AS what
	  FROM pg_class c
	  JOIN member m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
), line(l) AS (
	-- every member object, whatever its kind
	SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM member
	UNION ALL
	SELECT format('extension ccpurge: schema %s, relocatable %s, comment %L',
				  extnamespace::regnamespace, extrelocatable,
				  obj_description(ext.oid, 'pg_extension'))
	  FROM ext
	UNION ALL
	-- the tables and sequences pg_dump dumps, with their conditions
	SELECT format('config dump %s: %L', c.cfg::regclass, c.cond)
	  FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(cfg, cond)
	UNION ALL
	-- functions
	SELECT format('%s: %s = %s',
				  pg_describe_object('pg_proc'::regclass, p.oid, 0), a.k, a.v)
	  FROM pg_proc p
	  JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid,
	  LATERAL (VALUES
		('definition', replace(pg_get_functiondef(p.oid), E'\n', '\n')),
		('owner', pg_get_userbyid(p.proowner)::text),
		('acl', p.proacl::text),
		('security definer', p.prosecdef::text),
		('parallel', p.proparallel::text),
		('volatility', p.provolatile::text),
		('comment', obj_description(p.oid, 'pg_proc'))) AS a(k, v)
	 WHERE a.v IS NOT NULL
	UNION ALL
	-- tables, views and sequences
	SELECT format('%s: %s = %s', r.what, a.k, a.v)
	  FROM rel r,
	  LATERAL (VALUES
		('kind', r.relkind::text),
		('owner', pg_get_userbyid(r.relowner)::text),
		('acl', r.relacl::text),
		('options', r.reloptions::text),
		('persistence', r.relpersistence::text),
		('row security', r.relrowsecurity || '/' || r.relforcerowsecurity),
		('comment', obj_description(r.oid, 'pg_class')),
		('view definition', CASE WHEN r.relkind = 'v'
			THEN replace(pg_get_viewdef(r.oid), E'\n', '\n') END)) AS a(k, v)
	 WHERE a.v IS NOT NULL
	UNION ALL
	-- columns of tables and views
	SELECT format('%s: column %s = %s', r.what, quote_ident(a.attname),
				  concat_ws(' ', format_type(a.atttypid, a.atttypmod),
						CASE WHEN a.attnotnull THEN 'NOT NULL' END,
						'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid),
						'IDENTITY ' || nullif(a.attidentity, '')::text,
						'GENERATED ' || nullif(a.attgenerated, '')::text,
						'COLLATE ' || nullif(a.attcollation, 0)::regcollation,
						'COMPRESSION ' || nullif(a.attcompression, '')::text,
						'STORAGE ' || a.attstorage::text,
						'ACL ' || a.attacl::text,
						'COMMENT ' || quote_literal(col_description(r.oid, a.attnum))))
	  FROM rel r
	  JOIN pg_attribute a ON a.attrelid = r.oid
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE r.relkind IN ('r', 'p', 'v') AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	-- constraints, indexes, triggers, rules and policies of tables
	SELECT format('%s: constraint %s = %s', r.what, quote_ident(co.conname),
				  pg_get_constraintdef(co.oid))
	  FROM rel r JOIN pg_constraint co ON co.conrelid = r.oid
	UNION ALL
	SELECT format('%s: index = %s', r.what, pg_get_indexdef(i.indexrelid))
	  FROM rel r JOIN pg_index i ON i.indrelid = r.oid
	UNION ALL
	SELECT format('%s: trigger = %s', r.what, pg_get_triggerdef(t.oid))
	  FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
	UNION ALL
	SELECT format('%s: rule = %s', r.what,
				  replace(pg_get_ruledef(ru.oid), E'\n', '\n'))
	  FROM rel r JOIN pg_rewrite ru ON ru.ev_class = r.oid
	 WHERE ru.rulename <> '_RETURN'
	UNION ALL
	SELECT format('%s: policy %s', r.what, quote_ident(po.polname))
	  FROM rel r JOIN pg_policy po ON po.polrelid = r.oid
	UNION ALL
	-- sequences
	SELECT format('%s: sequence %s start %s increment %s min %s max %s cache %s cycle %s owned by %s',
				  r.what, s.seqtypid::regtype, s.seqstart, s.seqincrement,
				  s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
				  coalesce((SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
							  FROM pg_depend d
							 WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
							   AND d.refclassid = 'pg_class'::regclass
							   AND d.deptype = 'a'), 'nothing'))
	  FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
	UNION ALL
	-- the foreign-data wrapper
	SELECT format('%s: handler %s, validator %s, options %s, owner %s, acl %s, comment %L',
				  pg_describe_object('pg_foreign_data_wrapper'::regclass, w.oid, 0),
				  nullif(w.fdwhandler, 0)::regprocedure,
				  nullif(w.fdwvalidator, 0)::regprocedure, w.fdwoptions,
				  pg_get_userbyid(w.fdwowner), w.fdwacl,
				  obj_description(w.oid, 'pg_foreign_data_wrapper'))
	  FROM pg_foreign_data_wrapper w
	  JOIN member m ON m.classid = 'pg_foreign_data_wrapper'::regclass
		   AND m.objid = w.oid
	UNION ALL
	-- schemas
	SELECT format('%s: owner %s, acl %s, comment %L',
				  pg_describe_object('pg_namespace'::regclass, n.oid, 0),
				  pg_get_userbyid(n.nspowner), n.nspacl,
				  obj_description(n.oid, 'pg_namespace'))
	  FROM pg_namespace n
	  JOIN member m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
	UNION ALL
	-- the functions, operators, types and collations that every member and
	-- its parts (rewrite rules, defaults, constraints, indexes) are bound
	-- to; pinned objects of pg_catalog are never recorded, so these are the
	-- ones outside it
	SELECT DISTINCT format('%s: uses %s',
				  pg_describe_object(m.classid, m.objid, 0),
				  pg_describe_object(u.refclassid, u.refobjid, 0))
	  FROM member m
	  JOIN LATERAL (
		SELECT m.classid, m.objid
		UNION
		SELECT d.classid, d.objid FROM pg_depend d
		 WHERE d.refclassid = m.classid AND d.refobjid = m.objid
		   AND d.deptype IN ('a', 'i')
		   AND d.classid IN ('pg_rewrite'::regclass, 'pg_attrdef'::regclass,
							 'pg_constraint'::regclass, 'pg_class'::regclass)
	  ) part ON true
	  JOIN pg_depend u ON u.classid = part.classid AND u.objid = part.objid
	 WHERE u.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass,
							'pg_type'::regclass, 'pg_collation'::regclass)
)
SELECT l FROM line ORDER BY l COLLATE "C";
};

# describe returns the description of the extension's objects in $db.
sub describe
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, $describe_sql);
}

# line_diff lists the lines found in only one of two descriptions.
sub line_diff
{
	my ($name_a, $a, $name_b, $b) = @_;
	my %in_a = map { $_ => 1 } split /\n/, $a;
	my %in_b = map { $_ => 1 } split /\n/, $b;
	my @out;
	push @out, "only in $name_a: $_" for grep { !$in_b{$_} } split /\n/, $a;
	push @out, "only in $name_b: $_" for grep { !$in_a{$_} } split /\n/, $b;
	return join("\n", @out);
}

# same_objects compares the descriptions of databases $a and $b.
sub same_objects
{
	my ($node, $a, $b, $what) = @_;
	my $desc_a = describe($node, $a);
	my $desc_b = describe($node, $b);
	is($desc_b, $desc_a, $what)
	  or diag(line_diff($a, $desc_a, $b, $desc_b));
	return;
}

# outside_functions lists the functions outside pg_catalog that
# ccpurge_status's rewrite rule depends on, as in sql/01_install_safety.sql.
my $outside_functions_sql = q{
SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, 0), ', ' ORDER BY 1)
  FROM pg_depend d
  JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
  JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
 WHERE r.ev_class = 'ccpurge_status'::regclass
   AND p.pronamespace <> 'pg_catalog'::regnamespace
   -- ccpurge's own functions, in its own schema, are no look-alikes
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
				   WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
					 AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e'
					 AND p.pronamespace = 'ccpurge'::regnamespace)};

# calls_catalog_unnest tells whether the rule's query calls
# pg_catalog.unnest(anyarray) itself (pinned functions get no pg_depend row,
# so the query tree is read).
my $calls_catalog_unnest_sql = <<'SQL';
SELECT strpos(ev_action::text,
			  format('{FUNCEXPR :funcid %s ',
					 'pg_catalog.unnest(anyarray)'::regprocedure::oid)) > 0
  FROM pg_rewrite WHERE ev_class = 'ccpurge_status'::regclass
SQL

my $sim = CcpTest::Sim->start;
my $node = CcpTest::new_node(
	'main',
	conf => [
		# while the vendor is down, the worker keeps trying, often
		"ccpurge.retry_backoff = '100ms'",
		"ccpurge.retry_backoff_max = '500ms'",
		'ccpurge.max_attempts = 1000',
	]);

# 1. 1.0 in the worker's database, with a look-alike planted first.
$node->safe_psql('postgres', $plant . "CREATE EXTENSION ccpurge VERSION '1.0';");
CcpTest::setup_servers($node, $sim, extension => 0, servers => ['cec']);
is( $node->safe_psql(
		'postgres', "SELECT extversion FROM pg_extension WHERE extname = 'ccpurge'"),
	'1.0',
	'1.0 is installed');
is($node->safe_psql('postgres', $outside_functions_sql),
	'function unnest(text[])',
	"1.0: ccpurge_status's rule depends on the planted unnest");

is( $node->safe_psql(
		'postgres',
		"SELECT item || ':' || ok FROM ccpurge_delete_customers(ARRAY['up-0'])"),
	'up-0:true',
	'1.0: a synchronous call erases');
is( $node->safe_psql(
		'postgres', q{
	SELECT string_agg(operation || ':' || origin || ':' || ok, ',' ORDER BY log_id)
	FROM ccpurge.request_log}),
	'token:sync:true,delete_customers:sync:true',
	'1.0: and is in the request log');

# 2. The vendor goes away; three requests wait in the queue, and the worker
#    fails to send them again and again.
$sim->stop;
my @ids;
my @items;
for my $r (qw(a b c))
{
	my @these = map { "up-$r-$_" } 1 .. 4;
	push @items, @these;
	push @ids,
	  $node->safe_psql('postgres',
		    "SELECT ccpurge_enqueue('delete_customers', ARRAY['"
		  . join("','", @these)
		  . "'])");
}
my $id_list = join(',', @ids);
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT min(attempts) >= 3 FROM ccpurge.queue WHERE request_id IN ($id_list)}),
	'the worker has tried to send every item three times');

# waiting returns the items of the three requests, "request:item:state" with
# the unfinished states (queued, or sending for an attempt under way) as
# "waiting".
my $waiting_sql = qq{
	SELECT string_agg(request_id || ':' || item || ':'
		|| CASE WHEN state IN ('queued', 'sending') THEN 'waiting' ELSE state END,
		',' ORDER BY request_id, item)
	FROM ccpurge_status WHERE request_id IN ($id_list)};
my $waiting = join(',',
	map { my $i = $_; map { "$ids[$i]:$_:waiting" } @items[ $i * 4 .. $i * 4 + 3 ] }
	  0 .. 2);
is($node->safe_psql('postgres', $waiting_sql),
	$waiting, '1.0: all 12 items are waiting');

# The request log as it is now, row by row; the worker adds rows as it goes.
# (the columns 1.0 had: later versions add columns, NULL in old rows)
my $old_columns = q{(r.log_id, r.logged_at, r.server, r.vendor, r.operation,
	r.origin, r.role, r.request_id, r.item_count, r.items_sha256, r.ok,
	r.http_status, r.code, r.message, r.duration_ms)::text};
my $log_sql = qq{
	SELECT log_id || ' ' || $old_columns FROM ccpurge.request_log r ORDER BY log_id};
my $old_log = $node->safe_psql('postgres', $log_sql);
my @old_log_ids = map { (split / /)[0] } split /\n/, $old_log;
cmp_ok(scalar(@old_log_ids), '>', 2,
	'1.0: the request log holds the worker\'s failed attempts too ('
	  . scalar(@old_log_ids) . ' rows)');

# 3. The update, with the worker still retrying.
$node->safe_psql('postgres', 'ALTER EXTENSION ccpurge UPDATE');
is( $node->safe_psql(
		'postgres', "SELECT extversion FROM pg_extension WHERE extname = 'ccpurge'"),
	'1.2',
	'after the update 1.2 is installed');
my $old_ids = join(',', @old_log_ids);
is( $node->safe_psql(
		'postgres', qq{
	SELECT log_id || ' ' || $old_columns FROM ccpurge.request_log r
	WHERE log_id IN ($old_ids) ORDER BY log_id}),
	$old_log,
	'after the update every old request-log row is there, unchanged');
is($node->safe_psql('postgres', $waiting_sql),
	$waiting, 'after the update the 12 items are still waiting');
is($node->safe_psql('postgres', $outside_functions_sql),
	'', "after the update ccpurge_status's rule depends on no function outside pg_catalog");
is($node->safe_psql('postgres', $calls_catalog_unnest_sql),
	't', 'and calls pg_catalog.unnest');

# 4. The vendor is back on the same port: everything drains.
$sim->restart;
for my $id (@ids)
{
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '60 s')"),
		't', "request $id finishes once the vendor is back");
}
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'done')
	FROM ccpurge_status WHERE request_id IN ($id_list)}),
	'12|12',
	'all 12 items are done');
is_deeply($sim->deleted('cec_customers'),
	[ sort @items ], 'the simulator erased all 12 items');
is( $node->safe_psql(
		'postgres', q{
	SELECT sum(item_count) FROM ccpurge.request_log
	WHERE origin = 'worker' AND operation = 'delete_customers' AND ok}),
	'12',
	'the request log records the worker sending the 12 items once');

# The worker chains every row, 1.0's included, and the chain verifies;
# 1.0's rows keep their unkeyed digest, new rows have a keyed one.
ok( $node->poll_query_until(
		'postgres',
		'SELECT count(*) = 0 FROM ccpurge.request_log WHERE chain_seq IS NULL'),
	'after the update the worker chains every row of the log');
is($node->safe_psql('postgres', q{SELECT ok || '|' || detail FROM ccpurge_verify_log()}),
	'true|every row is chained', 'and the chain verifies');
# rows the 1.2 library wrote into 1.0's log, which had no keys, have no
# digest; rows written after the update have a keyed one
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FILTER (WHERE log_id IN ($old_ids) AND items_hmac IS NOT NULL)
		|| '|' || bool_and(items_hmac IS NOT NULL AND key_id IS NOT NULL)
			FILTER (WHERE log_id NOT IN ($old_ids))
	FROM ccpurge.request_log WHERE item_count > 0}),
	'0|true',
	'rows written after the update carry a keyed digest, older ones none');

# 5. A fresh install and updated ones have the same objects.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE updated');
$node->safe_psql('postgres', 'CREATE DATABASE updated11');
$node->safe_psql('postgres', 'CREATE DATABASE updated_by_other');
$node->safe_psql('postgres', 'CREATE ROLE other_super SUPERUSER');
$node->safe_psql('fresh', $plant . 'CREATE EXTENSION ccpurge;');
$node->safe_psql('updated',
	$plant . "CREATE EXTENSION ccpurge VERSION '1.0'; ALTER EXTENSION ccpurge UPDATE;");
$node->safe_psql('updated11',
	$plant . "CREATE EXTENSION ccpurge VERSION '1.1'; ALTER EXTENSION ccpurge UPDATE;");
# installed by the bootstrap superuser, updated by another one
$node->safe_psql('updated_by_other',
	    $plant
	  . "CREATE EXTENSION ccpurge VERSION '1.0';"
	  . " SET ROLE other_super; ALTER EXTENSION ccpurge UPDATE TO '1.1';"
	  . " ALTER EXTENSION ccpurge UPDATE;");
is( $node->safe_psql(
		'updated11', "SELECT extversion FROM pg_extension WHERE extname = 'ccpurge'"),
	'1.2',
	'1.1 updates to 1.2');

my $fresh = describe($node, 'fresh');
note("description of a fresh install:\n$fresh");
like($fresh, qr/^member view ccpurge_status$/m,
	'the description lists the members');
like(
	$fresh,
	qr/^table ccpurge\.queue: column items = text\[\] NOT NULL .*STORAGE x$/m,
	'the description details columns');
like($fresh, qr/^config dump ccpurge\.queue: 'WHERE state IN/m,
	'the description has the dump configuration');
same_objects($node, 'fresh', 'updated',
	'a fresh install and 1.0 updated through 1.1 have the same objects');
same_objects($node, 'fresh', 'updated11',
	'a fresh install and 1.1 updated have the same objects');
same_objects($node, 'fresh', 'updated_by_other',
	'an install updated by another superuser has the same objects and owners');
same_objects($node, 'fresh', 'postgres',
	'and so has the 1.0 install updated while in use');

# The comparison sees an object that only one side has.
$node->safe_psql(
	'fresh', q{
	CREATE FUNCTION ccpurge_only_in_src() RETURNS int LANGUAGE sql AS 'SELECT 1';
	ALTER EXTENSION ccpurge ADD FUNCTION ccpurge_only_in_src();});
is( line_diff('fresh', describe($node, 'fresh'), 'updated', describe($node, 'updated')),
	join("\n",
		'only in fresh: function ccpurge_only_in_src(): definition = '
		  . 'CREATE OR REPLACE FUNCTION public.ccpurge_only_in_src()\n'
		  . ' RETURNS integer\n LANGUAGE sql\nAS $function$SELECT 1$function$\n',
		'only in fresh: function ccpurge_only_in_src(): owner = '
		  . $node->safe_psql('fresh', 'SELECT current_user'),
		'only in fresh: function ccpurge_only_in_src(): parallel = u',
		'only in fresh: function ccpurge_only_in_src(): security definer = false',
		'only in fresh: function ccpurge_only_in_src(): volatility = v',
		'only in fresh: member function ccpurge_only_in_src()'),
	'the comparison finds a member added to one install only');

$node->stop;
done_testing();
