# test/t/014_isales_auth.pl: a wrong iSales SK fails that call only.
#
# iSales requests are signed with the user mapping's ak and sk (C2).  The
# simulator answers a bad signature with HTTP 401.  Covers:
#   - with the right SK, caller numbers and call data are deleted;
#   - after ALTER USER MAPPING sets a wrong SK, the next call gives rows
#     with ok = false and http_status 401, is not retried, and deletes
#     nothing; call data fails the same way;
#   - once the right SK is back, the very next call succeeds;
#   - neither SK reaches the server log or the request log.

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
CcpTest::setup_servers($node, $sim, servers => ['isales']);

my $wrong_sk = 'wrong-sk-for-test';

# set_sk changes the SK of the PUBLIC mapping without logging the statement.
sub set_sk
{
	my ($sk) = @_;
	$node->safe_psql('postgres',
		"SET log_statement = 'none';\n"
		  . "ALTER USER MAPPING FOR PUBLIC SERVER isales OPTIONS (SET sk "
		  . CcpTest::quote_literal($sk) . ')');
	return;
}

# callers deletes access codes of VDN 1, campaign 42 and returns the rows as
# "item|ok|http_status|code|message" lines.
sub callers
{
	my (@codes) = @_;
	my $array = 'ARRAY[' . join(',', map { "'$_'" } @codes) . ']';
	return $node->safe_psql(
		'postgres', qq{
		SELECT item || '|' || ok || '|' || coalesce(http_status::text, '')
			|| '|' || coalesce(code, '') || '|' || message
		FROM ccpurge_delete_caller_numbers(1, 42, $array)
		ORDER BY item});
}

# calldata deletes the call data of one session id and returns
# "ok|http_status|success_count".
sub calldata
{
	my ($session) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT ok || '|' || coalesce(http_status::text, '') || '|'
			|| coalesce(success_count::text, '')
		FROM ccpurge_delete_calldata(1, 42, '{"sessionId": "$session"}')});
}

# The right SK works.
my $first = callers('5245241');
like($first, qr/^5245241\|true\|200\|/, 'the right SK deletes a caller number')
  or diag($first);
ok($sim->deleted_set('isales_caller_numbers')->{'1/42/5245241'},
	'the simulator deleted it');

$sim->post('/_sim/isales/calldata',
	{ vdn => 1, campaign => 42, records => [ { sessionId => 'sess-1' } ] });
like(calldata('sess-1'), qr/^true\|200\|/, 'the right SK deletes call data');

# A wrong SK: this call fails with 401.
set_sk($wrong_sk);
my $st = $sim->state;
my $rows = callers('5245242', '5245243');
my @rows = split /\n/, $rows;
is(scalar @rows, 2, 'a call with a wrong SK returns one row per item');
like($_, qr/^\d+\|false\|401\|/, 'row has ok = false and http_status 401')
  for @rows;
like($rows[0], qr/signature/, 'the message names the signature');
my $after = $sim->state;
is($after->{requests}{isales_caller_numbers}
	  - $st->{requests}{isales_caller_numbers},
	1, 'the refused request was not retried');
is($after->{rejections}{auth} - $st->{rejections}{auth},
	1, 'the simulator refused one signature');
my $deleted = $sim->deleted_set('isales_caller_numbers');
ok(!$deleted->{'1/42/5245242'} && !$deleted->{'1/42/5245243'},
	'nothing was deleted with the wrong SK');

$sim->post('/_sim/isales/calldata',
	{ vdn => 1, campaign => 42, records => [ { sessionId => 'sess-2' } ] });
like(calldata('sess-2'), qr/^false\|401\|/, 'call data fails with 401 too');

# The right SK again: the very next call succeeds.
set_sk($CcpTest::CREDENTIALS{isales}{sk});
$rows = callers('5245242', '5245243');
like($rows, qr/\A5245242\|true\|200\|0200000\|[^\n]*\n5245243\|true\|200\|0200000\|/,
	'the next call with the right SK succeeds for every item');
$deleted = $sim->deleted_set('isales_caller_numbers');
ok($deleted->{'1/42/5245242'} && $deleted->{'1/42/5245243'},
	'the simulator deleted both');
like(calldata('sess-2'), qr/^true\|200\|1$/,
	'call data is deleted with the right SK, successCount 1');

# A long-lived session sees each change of the mapping at its next call.
my $bg = $node->background_psql('postgres');
my $q = q{SELECT string_agg(ok || ':' || coalesce(http_status::text, ''), ',')
	FROM ccpurge_delete_caller_numbers(1, 43, ARRAY['%s'])};
is($bg->query_safe(sprintf($q, '61')), 'true:200', 'a session deletes');
set_sk($wrong_sk);
is($bg->query_safe(sprintf($q, '62')),
	'false:401', 'the same session gets 401 right after the SK changed');
set_sk($CcpTest::CREDENTIALS{isales}{sk});
is($bg->query_safe(sprintf($q, '63')),
	'true:200', 'and succeeds right after it was put back');
$bg->quit;

# Neither SK reached the logs.
my $log = slurp_file($node->logfile);
my $reqlog = $node->safe_psql('postgres',
	'SELECT string_agg(l::text, E\'\n\') FROM ccpurge.request_log l');
for my $secret (@CcpTest::SECRETS, $wrong_sk)
{
	ok(index($log, $secret) < 0, "server log does not contain \"$secret\"");
	ok(index($reqlog, $secret) < 0, "request log does not contain \"$secret\"");
}

$node->stop;
$sim->stop;
done_testing();
