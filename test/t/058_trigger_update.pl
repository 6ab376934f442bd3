# test/t/058_trigger_update.pl: the update to 1.2 binds the triggers 1.1
# made, so that adding a server breaks none of them.
#
# Covers, in a database where 1.1 is installed with one CEC server and two
# iSales servers:
#   - triggers made under 1.1 without a server argument (FOR EACH ROW on a
#     table, FOR EACH ROW on a partitioned table, whose partitions carry
#     clones, FOR EACH STATEMENT) are bound by ALTER EXTENSION ccpurge
#     UPDATE to the one CEC server: their arguments name it, the clones'
#     too;
#   - triggers that cannot be bound are left as they were, each with a
#     WARNING naming it and saying why, and the update succeeds: an iSales
#     trigger (two servers of its vendor), a BEFORE DELETE trigger, and
#     one naming a column its table does not have;
#   - after a second CEC server is created, a DELETE under each bound
#     trigger queues its values for the first server, and the worker
#     erases them; before the update bound them, that DELETE failed with
#     "more than one ccpurge server".

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
$node->safe_psql('postgres', "CREATE EXTENSION ccpurge VERSION '1.1'");
CcpTest::setup_servers($node, $sim, extension => 0, servers => ['cec']);
CcpTest::create_server($node, $_, vendor => 'isales', url => $sim->url)
  for qw(isales_a isales_b);

# triggers as 1.1 took them: no server argument, nothing checked
$node->safe_psql(
	'postgres', q{
CREATE TABLE contacts (id int PRIMARY KEY, phone text);
CREATE TRIGGER contacts_erase AFTER DELETE ON contacts
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');

CREATE TABLE calls (id int, phone text, region text) PARTITION BY LIST (region);
CREATE TABLE calls_north PARTITION OF calls FOR VALUES IN ('north');
CREATE TABLE calls_south PARTITION OF calls FOR VALUES IN ('south');
CREATE TRIGGER calls_erase AFTER DELETE ON calls
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');

CREATE TABLE leads (id int, phone text);
CREATE TRIGGER leads_erase AFTER DELETE ON leads
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'phone');

CREATE TABLE callers (id int, caller text);
CREATE TRIGGER callers_erase AFTER DELETE ON callers
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_caller_numbers', 'caller',
	'{"vdn_id": 1, "campaign_id": 42}');
CREATE TRIGGER callers_before BEFORE DELETE ON callers
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'caller');
CREATE TRIGGER contacts_typo AFTER DELETE ON contacts
  FOR EACH ROW EXECUTE FUNCTION ccpurge_erase_on_delete('delete_customers', 'fone');
});

# args returns the arguments of the triggers named $name (clones included),
# one line per trigger: table|arg,arg,...
sub args
{
	my ($name) = @_;
	return $node->safe_psql(
		'postgres', qq{
	SELECT string_agg(tgrelid::regclass || '|' ||
			 array_to_string((string_to_array(encode(tgargs, 'escape'), '\\000'))[1:tgnargs], ','),
			 E'\\n' ORDER BY tgrelid::regclass::text)
	  FROM pg_trigger WHERE tgname = '$name'});
}
is(args('contacts_erase'), 'contacts|delete_customers,phone',
	'1.1: the row trigger names no server');

my ($ret, $out, $err) =
  $node->psql('postgres', 'ALTER EXTENSION ccpurge UPDATE');
is($ret, 0, 'the update succeeds') or diag($err);
is( $node->safe_psql(
		'postgres', "SELECT extversion FROM pg_extension WHERE extname = 'ccpurge'"),
	'1.2', '1.2 is installed');

is(args('contacts_erase'), 'contacts|delete_customers,phone,{},cec',
	'the row trigger is bound to the one CEC server');
is( args('calls_erase'),
	"calls|delete_customers,phone,{},cec\ncalls_north|delete_customers,phone,{},cec\n"
	  . 'calls_south|delete_customers,phone,{},cec',
	'a row trigger of a partitioned table and its clones on the partitions are bound');
is(args('leads_erase'), 'leads|delete_customers,phone,{},cec',
	'the statement trigger is bound');

for my $t (
	[ 'callers_erase', 'callers', qr/more than one ccpurge server/ ],
	[ 'callers_before', 'callers', qr/AFTER DELETE/ ],
	[ 'contacts_typo', 'contacts', qr/fone/ ])
{
	my ($name, $table, $why) = @$t;
	like($err,
		qr/WARNING:  trigger "$name" on table "$table" was not bound to a ccpurge server\nDETAIL:  CREATE TRIGGER would refuse it now: [^\n]*$why/,
		"$name is not bound, with a WARNING that says why");
	unlike(args($name), qr/,\{\},/, "$name keeps its arguments");
}

# A second CEC server changes nothing for the bound triggers.
CcpTest::create_server($node, 'cec_two', vendor => 'cec', url => $sim->url);
$node->safe_psql('postgres', 'DROP TRIGGER contacts_typo ON contacts');
$node->safe_psql(
	'postgres', q{
INSERT INTO contacts VALUES (1, 'upd-1'), (2, 'upd-2');
INSERT INTO calls VALUES (1, 'upd-3', 'north'), (2, 'upd-4', 'south');
INSERT INTO leads VALUES (1, 'upd-5');
});
for my $table (qw(contacts calls leads))
{
	($ret, $out, $err) = $node->psql('postgres', "DELETE FROM $table");
	is($ret, 0, "with a second CEC server, a DELETE FROM $table works")
	  or diag($err);
}
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(DISTINCT server, ',') || '|' || count(*) FROM ccpurge_status}),
	'cec|5', 'their values are queued for the server they were bound to');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 5 FROM ccpurge_status WHERE state = 'done'}),
	'and erased');
is_deeply([ sort grep { /^upd-/ } @{ $sim->deleted('cec_customers') } ],
	[ map { "upd-$_" } 1 .. 5 ], 'the simulator erased the five numbers');

$node->stop;
$sim->stop;
done_testing();
