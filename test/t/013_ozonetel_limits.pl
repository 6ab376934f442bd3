# test/t/013_ozonetel_limits.pl: Ozonetel's limits, shared by every backend.
#
# The simulator plays an Ozonetel account allowing 5 DeleteBulkData
# requests per sliding second, one at a time, each taking 20 ms.  Covers:
#   - three sessions at once erase 1,000 phone numbers each through a
#     server with rate_limit '5/second' (max_inflight stays at the vendor
#     default 1): every row is ok, the simulator never refused a request
#     for its rate or for overlapping, never saw two requests in flight, and
#     deleted all 3,000 pairs; the three sessions shared one token;
#   - a server whose rate_limit is higher than the vendor's: the vendor's
#     "Max limit exceeded" is waited out and retried once, so one session
#     still gets every row ok; several sessions at once get, per row, either
#     ok or a clear not-ok row, and no row is lost;
#   - "Token Expired" is answered by one refresh and a retry.

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

my $sim = CcpTest::Sim->start(
	config => { oz_rate_limit => 5, oz_window_ms => 1000, oz_processing_ms => 20 });
my $node = CcpTest::new_node('main');
CcpTest::setup_servers(
	$node, $sim,
	servers => ['ozonetel'],
	server_options => { ozonetel => { rate_limit => '5/second' } });

my $campaign = 'QA_Outbound_Predictive';


# phones_sql returns an SQL array of $n phone numbers starting at $first.
sub phones_sql
{
	my ($first, $n) = @_;
	return "ARRAY(SELECT ($first + g)::text FROM generate_series(0, "
	  . ($n - 1) . ") g)";
}

# deleted_phones returns the simulator's deleted pairs of the campaign as a
# hash of phone numbers.
sub deleted_phones
{
	my %h;
	for my $pair (@{ $sim->deleted('ozonetel') })
	{
		my ($phone, $camp) = split /\|/, $pair, 2;
		$h{$phone} = 1 if $camp eq $campaign;
	}
	return \%h;
}

# 1. Three sessions at once, 1,000 numbers each, at 5 requests a second.
my @sqls = map {
	my $first = 7000000000 + $_ * 100000;
	"SELECT count(*) || '/' || count(*) FILTER (WHERE ok) || '/' "
	  . "|| count(DISTINCT request_no) || '/' "
	  . "|| coalesce(string_agg(DISTINCT message, ';') FILTER (WHERE NOT ok), '') "
	  . "FROM ccpurge_delete_bulk_data("
	  . phones_sql($first, 1000)
	  . ", ARRAY['$campaign'])"
} 1 .. 3;
my $t0 = time;
my @res = CcpTest::run_together($node, 4712, @sqls);
my $elapsed = time - $t0;
note(sprintf('3 x 1,000 numbers at 5/second took %.1f s', $elapsed));
for my $i (0 .. $#res)
{
	my ($out, $err, $success) = @{ $res[$i] };
	ok($success, "session $i finished without error") or diag($err);
	is($out, "1000/1000/10/\n", "session $i: 1,000 rows, all ok, 10 requests");
}

my $state = $sim->state;
is($state->{requests}{oz_delete}, 30, 'the simulator saw 30 requests');
is($state->{rejections}{rate}, 0, 'no request was refused for the rate');
is($state->{rejections}{inflight},
	0, 'no request was refused for overlapping another');
is($state->{max_inflight}{ozonetel}, 1, 'never two requests in flight');
is($state->{deleted}{ozonetel}, 3000, 'the simulator deleted 3,000 pairs');
is(scalar(keys %{ deleted_phones() }), 3000, 'all of them for the campaign');
is($state->{tokens_issued}{ozonetel},
	1, 'the three sessions shared one token');
cmp_ok($elapsed, '>=', 5,
	'30 requests at 5 a second took at least 5 seconds');

# The log: one entry per request, each ok, each with 100 items.
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) || '/' || count(*) FILTER (WHERE ok AND item_count = 100)
		FROM ccpurge.request_log WHERE operation = 'delete_bulk_data'}),
	'30/30',
	'the request log has the 30 requests, all ok');

# 2. The vendor is stricter than the server: "Max limit exceeded".
$sim->config(oz_rate_limit => 1);
$node->safe_psql('postgres',
	"ALTER SERVER ozonetel OPTIONS (SET rate_limit '100/second')");
my $req = $sim->state->{requests}{oz_delete};
my $rej = $sim->state->{rejections}{rate};
my $out = $node->safe_psql(
	'postgres', qq{
	SELECT count(*) || '/' || count(*) FILTER (WHERE ok) || '/'
		|| coalesce(string_agg(DISTINCT message, ';') FILTER (WHERE NOT ok), '')
	FROM ccpurge_delete_bulk_data(} . phones_sql(7100000000, 300) . qq{,
		ARRAY['$campaign'])});
is($out, '300/300/', 'one session: every row ok despite "Max limit exceeded"');
$state = $sim->state;
my $refused = $state->{rejections}{rate} - $rej;
cmp_ok($refused, '>=', 1, 'the vendor did refuse for its rate');
is($state->{requests}{oz_delete} - $req,
	3 + $refused, 'each refused request was retried once');
my $deleted = deleted_phones();
is(scalar(grep { $deleted->{ 7100000000 + $_ } } 0 .. 299),
	300, 'the simulator deleted all 300 numbers');

# Two sessions at once against the same strict vendor: a retry may be
# refused again, but every row comes back, and a not-ok row says why.
@sqls = map {
	my $first = 7200000000 + $_ * 100000;
	"SELECT string_agg(item || ':' || ok || ':' || message, E'\\n') "
	  . "FROM ccpurge_delete_bulk_data("
	  . phones_sql($first, 300)
	  . ", ARRAY['$campaign'])"
} 1 .. 2;
@res = CcpTest::run_together($node, 4712, @sqls);
$deleted = deleted_phones();
for my $i (0 .. $#res)
{
	my ($o, $err, $success) = @{ $res[$i] };
	ok($success, "strict vendor, session $i finished without error")
	  or diag($err);
	my @rows = split /\n/, $o;
	is(scalar @rows, 300, "strict vendor, session $i: no row was lost");
	my @bad =
	  grep { !/^\d+:true:/ && !/^\d+:false:(Max limit exceeded|.*still being processed)/ }
	  @rows;
	is_deeply(\@bad, [],
		"strict vendor, session $i: each row is ok or says the vendor's limit");
	my @ok = map { (split /:/)[0] } grep { /^\d+:true:/ } @rows;
	my @notok = map { (split /:/)[0] } grep { /^\d+:false:/ } @rows;
	note("strict vendor, session $i: " . scalar(@ok) . ' ok, '
		  . scalar(@notok) . ' not ok');
	is(scalar(grep { $deleted->{$_} } @ok),
		scalar @ok, "strict vendor, session $i: every ok row was deleted");
	is(scalar(grep { $deleted->{$_} } @notok),
		0, "strict vendor, session $i: no not-ok row was deleted");
}

# 3. "Token Expired": one refresh, then the call succeeds.
$sim->config(oz_rate_limit => 100);
my $tokens = $sim->state->{tokens_issued}{ozonetel};
$sim->fault(kind => 'expire_tokens');
is( $node->safe_psql(
		'postgres',
		"SELECT ok FROM ccpurge_delete_bulk_data(ARRAY['7300000000'], ARRAY['$campaign'])"
	),
	't',
	'a call after the token expired succeeds');
is($sim->state->{tokens_issued}{ozonetel},
	$tokens + 1, 'the expired token was replaced exactly once');

$node->stop;
$sim->stop;
done_testing();
