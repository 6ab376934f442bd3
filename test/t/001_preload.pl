#
# 001_preload: ccpurge refuses to work unless it is preloaded
#
# The token cache, the rate limiter and the worker live in shared memory,
# which only shared_preload_libraries can reserve.  Without it the
# extension installs (so that a dump restores), its settings are known, and
# every function fails with a hint naming the setting.
#
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CcpTest;

my $node = CcpTest::new_node('nopreload', preload => 0);
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'ccpurge is not preloaded');

$node->safe_psql('postgres', 'CREATE EXTENSION ccpurge');
$node->safe_psql('postgres', q{
CREATE SERVER cec FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'http://127.0.0.1:1');
CREATE USER MAPPING FOR PUBLIC SERVER cec OPTIONS (app_key 'k', app_secret 's');});

# every SQL entry point refuses, before validating its input
for my $call (
	"SELECT * FROM ccpurge_delete_customers(ARRAY['x'])",
	"SELECT * FROM ccpurge_delete_called_routes(ARRAY['1'])",
	"SELECT * FROM ccpurge_delete_caller_numbers(1, 2, ARRAY['3'])",
	"SELECT * FROM ccpurge_delete_calldata(1, 2, '{\"called\":\"3\"}')",
	"SELECT * FROM ccpurge_delete_bulk_data(ARRAY['1'], ARRAY['c'])",
	"SELECT ccpurge_enqueue('delete_customers', ARRAY['x'])",
	"SELECT * FROM ccpurge_delete_customers(NULL)")
{
	my ($rc, $out, $err) = $node->psql('postgres', $call);
	isnt($rc, 0, "refused: $call");
	like($err, qr/ccpurge must be loaded via "shared_preload_libraries"/,
		"the error names the setting: $call");
	like($err, qr/HINT:  Add ccpurge to "shared_preload_libraries"/,
		"the hint says what to do: $call");
}

# the GUC prefix is reserved: a misspelt ccpurge setting is an error
my ($rc, $out, $err) = $node->psql('postgres', "LOAD 'ccpurge'; SET ccpurge.no_such_setting = 1");
isnt($rc, 0, 'an unknown ccpurge.* setting is refused');
like($err, qr/invalid configuration parameter name "ccpurge.no_such_setting"/,
	'with the reserved-prefix error');

# no worker runs without preloading
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'"),
	'0', 'no ccpurge worker');

$node->stop;
done_testing();
