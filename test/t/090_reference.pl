#
# 090_reference: doc/ccpurge.md documents everything ccpurge installs
#
# The reference gives every object a "### name" heading: functions and
# views by name, tables by schema-qualified name (ccpurge.queue), settings
# by their full name (ccpurge.max_attempts), server and user mapping
# options by name.  Under the heading of each function, view and table it
# quotes the object's comment (src/sql/90_comments.sql) as a "> comment"
# line.  This test installs the extension and fails for anything installed
# that the reference leaves out, for any function, view or table without a
# comment or whose comment the reference does not quote, and for a
# ccpurge_ or ccpurge. heading that names nothing installed.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

my $doc_file = CcpTest::root() . '/doc/ccpurge.md';
ok(-f $doc_file, 'doc/ccpurge.md exists') or BAIL_OUT("no $doc_file");

# %section maps each "### name" heading to the text under it, up to the
# next heading of any level.
my %section;
{
	my $current;
	for my $line (split /\n/, slurp_file($doc_file))
	{
		if ($line =~ /^###\s+`?([^`]+?)`?\s*$/)
		{
			$current = $1;
			$section{$current} //= '';
		}
		elsif ($line =~ /^#{1,6}\s/)
		{
			undef $current;
		}
		elsif (defined $current)
		{
			$section{$current} .= "$line\n";
		}
	}
}

my $node = CcpTest::new_node('reference');
$node->safe_psql('postgres', 'CREATE EXTENSION ccpurge');

# documented NAME WHAT checks that NAME has a heading.
sub documented
{
	my ($name, $what) = @_;
	ok(exists $section{$name}, "$what $name has a heading in the reference");
}

# commented NAME WHAT COMMENT checks that the object has a comment and that
# its section quotes it.
sub commented
{
	my ($name, $what, $comment) = @_;
	isnt($comment, '', "$what $name has a comment");
	return unless $comment ne '' && exists $section{$name};
	my @quotes = map { s/^>\s*//r } grep { /^>/ } split /\n/, $section{$name};
	ok((grep { $_ eq $comment } @quotes),
		"the reference quotes the comment of $what $name")
	  or diag("comment: \"$comment\"\nquoted: " . join(' | ', @quotes));
}

# The extension's functions, views and tables with their comments, one per
# line: kind, name and comment separated by tabs.  Tables outside the
# extension's schema are named with their schema.
my $objects = $node->safe_psql(
	'postgres', q{
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'ccpurge'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
	   AND d.deptype = 'e')
SELECT kind || E'\t' || name || E'\t' || coalesce(comment, '')
  FROM (SELECT 'function' AS kind,
			   CASE WHEN p.pronamespace = ext.extnamespace THEN p.proname::text
					ELSE p.pronamespace::regnamespace || '.' || p.proname END AS name,
			   obj_description(p.oid, 'pg_proc') AS comment
		  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid, ext
		UNION ALL
		SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END,
			   CASE WHEN c.relnamespace = ext.extnamespace THEN c.relname::text
					ELSE n.nspname || '.' || c.relname END,
			   obj_description(c.oid, 'pg_class')
		  FROM members m
		  JOIN pg_class c ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
		  JOIN pg_namespace n ON n.oid = c.relnamespace, ext
		 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS o
 ORDER BY kind, name});

my %installed;
my %count;
for my $line (split /\n/, $objects)
{
	my ($kind, $name, $comment) = split /\t/, $line, 3;
	$comment //= '';
	$count{$kind}++;
	$installed{$name} = 1;
	documented($name, $kind);
	commented($name, $kind, $comment);
}
cmp_ok($count{function} // 0, '>=', 13, 'the extension has functions');
cmp_ok($count{view} // 0, '>=', 1, 'and views');
cmp_ok($count{table} // 0, '>=', 2, 'and tables');

# the foreign-data wrapper
documented('ccpurge', 'foreign-data wrapper');
commented('ccpurge', 'foreign-data wrapper',
	$node->safe_psql('postgres',
		"SELECT coalesce(obj_description(oid, 'pg_foreign_data_wrapper'), '')"
		  . " FROM pg_foreign_data_wrapper WHERE fdwname = 'ccpurge'"));

# every setting of the library
my @settings = split /\n/,
  $node->safe_psql('postgres',
	"SELECT name FROM pg_settings WHERE name LIKE 'ccpurge.%' ORDER BY 1");
cmp_ok(scalar @settings, '>=', 9, 'the library defines settings');
for my $name (@settings)
{
	$installed{$name} = 1;
	documented($name, 'setting');
}

# every server and user mapping option, as the validator's hint lists them
# for an unknown option
my ($rc, $out, $err) = $node->psql('postgres', q{
CREATE SERVER ref_probe FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:9', no_such_option 'x')});
my ($server_opts) = $err =~ /Valid options in this context are: (.*)\./;
ok(defined $server_opts, 'the validator lists the server options')
  or diag($err);
documented($_, 'server option') for split /, /, $server_opts // '';

$node->safe_psql('postgres', q{
CREATE SERVER ref_probe FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url 'http://127.0.0.1:9')});
($rc, $out, $err) = $node->psql('postgres', q{
CREATE USER MAPPING FOR PUBLIC SERVER ref_probe OPTIONS (no_such_option 'x')});
my ($mapping_opts) = $err =~ /Valid options in this context are: (.*)\./;
ok(defined $mapping_opts, 'the validator lists the user mapping options')
  or diag($err);
documented($_, 'user mapping option') for split /, /, $mapping_opts // '';

# no heading names a function, view, table or setting that is not there
for my $name (sort keys %section)
{
	next unless $name =~ /^ccpurge[_.]/;
	ok($installed{$name}, "the reference heading $name names something installed");
}

$node->stop;
done_testing();
