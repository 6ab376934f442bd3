# test/t/015_tls.pl: TLS verification and the plain-http rule.
#
# The test makes a throwaway CA and two server certificates with the
# openssl command: one for 127.0.0.1 (subjectAltName IP:127.0.0.1) and one
# for another name, and runs one HTTPS simulator with each.  Covers:
#   - verification is on by default: a CEC server with an https URL and no
#     ca_file gets rows with ok = false and a message about the
#     certificate, and the simulator sees no request at all;
#   - with ca_file naming the CA the same call succeeds at once (a failed
#     token request is remembered for ccpurge.token_failure_hold, but not
#     across a change of the TLS settings);
#   - a certificate for another name fails even with the CA;
#   - verify_tls 'false' succeeds without the CA;
#   - a relative ca_file and a bad verify_tls are refused at DDL;
#   - plain http to an address that is not loopback is refused at DDL
#     unless ccpurge.allow_insecure_http is on (which only a superuser may
#     set), and refused again at call time once it is off, before anything
#     is sent.  No call is ever made with the setting on, so nothing tries
#     to reach such an address.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use Cwd ();
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

# The certificates.
my $certs = Cwd::abs_path(PostgreSQL::Test::Utils::tempdir('015_tls_certs'));

my $ca = CcpTest::test_ca($certs);
CcpTest::server_cert($certs, 'good', '127.0.0.1', 'IP:127.0.0.1', 2);
CcpTest::server_cert($certs, 'wrong', 'wrong.example', 'DNS:wrong.example', 3);

my $sim = CcpTest::Sim->start(
	tls_cert => "$certs/good.crt",
	tls_key => "$certs/good.key");
my $wrong = CcpTest::Sim->start(
	tls_cert => "$certs/wrong.crt",
	tls_key => "$certs/wrong.key");
like($sim->url, qr{^https://127\.0\.0\.1:\d+$}, 'the simulator URL is https');
is($sim->state->{requests}{cec_token}, 0,
	'control calls reach an HTTPS simulator');

my $node = CcpTest::new_node('main');

# total_requests returns the number of vendor requests a simulator saw.
sub total_requests
{
	my ($s) = @_;
	my $n = 0;
	$n += $_ for values %{ $s->state->{requests} };
	return $n;
}

# ddl_error runs $sql and returns its error output ('' when it succeeded).
sub ddl_error
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	return $ret == 0 ? '' : $err;
}

$node->safe_psql('postgres', 'CREATE EXTENSION ccpurge');
CcpTest::create_server($node, 'cec', url => $sim->url);

# 1. Verification is on by default: the simulator's CA is unknown.
my $rows = CcpTest::customers($node, 'cec', '880001', '880002');
my @rows = split /\n/, $rows;
is(scalar @rows, 2, 'without ca_file every item gets a row');
like($_, qr/^\d+\|false\|\|/, 'row has ok = false and no HTTP status')
  for @rows;
like($rows[0], qr/certificate/i, 'the message is about the certificate')
  or diag($rows);
is(total_requests($sim), 0, 'the simulator saw no request at all');
is(scalar @{ $sim->request_log }, 0, 'and logged none');

# 2. The CA in ca_file.  The failed token request of step 1 is remembered
# for ccpurge.token_failure_hold, but its fingerprint covers the TLS settings,
# so the first call right after the change asks again and succeeds.
$node->safe_psql('postgres',
	"ALTER SERVER cec OPTIONS (ADD ca_file '$ca')");
like(CcpTest::customers($node, 'cec', '880010'),
	qr/^880010\|true\|200\|/,
	'with ca_file the call succeeds at once');
$rows = CcpTest::customers($node, 'cec', '880001', '880002');
like($rows, qr/\A880001\|true\|200\|[^\n]*\n880002\|true\|200\|[^\n]*\z/,
	'with ca_file the call succeeds');
my $deleted = $sim->deleted_set('cec_customers');
ok($deleted->{880001} && $deleted->{880002}, 'the simulator deleted both numbers');

# A second server with the CA from the start.
CcpTest::create_server($node, 'cec_ca',
	url => $sim->url,
	options => { ca_file => $ca });
like(CcpTest::customers($node, 'cec_ca', '880003'),
	qr/^880003\|true\|200\|/,
	'a server created with ca_file succeeds');

# 3. A certificate for another name fails even with the CA.
CcpTest::create_server($node, 'cec_wrong',
	url => $wrong->url,
	options => { ca_file => $ca });
$rows = CcpTest::customers($node, 'cec_wrong', '880004');
like($rows, qr/^880004\|false\|\|/, 'a certificate for another name fails');
like($rows, qr/certificate subject name.*host name/i,
	'the message is about the name in the certificate')
  or diag($rows);
note("wrong name: $rows");
is(total_requests($wrong), 0,
	'the simulator with the wrong name saw no request');

# 4. verify_tls 'false' needs no CA, and ignores the name too.
CcpTest::create_server($node, 'cec_noverify',
	url => $sim->url,
	options => { verify_tls => 'false' });
like(CcpTest::customers($node, 'cec_noverify', '880005'),
	qr/^880005\|true\|200\|/,
	"verify_tls 'false' succeeds without the CA");
CcpTest::create_server($node, 'cec_noverify_wrong',
	url => $wrong->url,
	options => { verify_tls => 'off' });
like(CcpTest::customers($node, 'cec_noverify_wrong', '880006'),
	qr/^880006\|true\|200\|/,
	"verify_tls 'off' accepts a certificate for another name");

# And back on: the connection without verification is not reused.
$node->safe_psql('postgres',
	"ALTER SERVER cec_noverify OPTIONS (SET verify_tls 'true')");
like(CcpTest::customers($node, 'cec_noverify', '880007'),
	qr/^880007\|false\|\|.*certificate/i,
	"verify_tls 'true' again fails without the CA");

# 5. DDL checks of the TLS options.
my $err = ddl_error("ALTER SERVER cec OPTIONS (SET ca_file 'certs/ca.crt')");
like($err, qr/invalid value for option "ca_file"/, 'a relative ca_file is refused');
like($err, qr/absolute path/, 'the detail asks for an absolute path');
$err = ddl_error("ALTER SERVER cec OPTIONS (SET ca_file '')");
like($err, qr/invalid value for option "ca_file"/, 'an empty ca_file is refused');
$err = ddl_error("ALTER SERVER cec OPTIONS (ADD verify_tls 'maybe')");
like($err, qr/invalid value for option "verify_tls": "maybe"/,
	'a verify_tls that is not a Boolean is refused');
like($node->safe_psql('postgres',
		"SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server WHERE srvname = 'cec'"),
	qr/ca_file=\Q$ca\E/, 'the refused changes left the server alone');

# 6. Plain http to an address that is not loopback.
$err = ddl_error("ALTER SERVER cec OPTIONS (SET url 'http://10.0.0.1')");
like($err, qr/plain http is only allowed to loopback addresses/,
	'ALTER SERVER to plain http on 10.0.0.1 is refused');
like($err, qr/HINT:.*allow_insecure_http/, 'the hint names the setting');
$err = ddl_error(
	"CREATE SERVER far FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'http://10.0.0.1:8080')"
);
like($err, qr/plain http is only allowed to loopback addresses/,
	'CREATE SERVER with plain http to 10.0.0.1 is refused');
is( ddl_error(
		"CREATE SERVER far_tls FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'https://10.0.0.1')"
	),
	'',
	'https to 10.0.0.1 is accepted (DDL only, never called)');
is( ddl_error(
		"CREATE SERVER near FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor 'cec', url 'http://localhost:1')"
	),
	'',
	'plain http to localhost is accepted');

$node->safe_psql('postgres', 'CREATE ROLE plain_user LOGIN');
$err = ddl_error(
	"SET ROLE plain_user; SET ccpurge.allow_insecure_http = on");
like($err, qr/permission denied to set parameter "ccpurge.allow_insecure_http"/,
	'only a superuser may allow insecure http');

# With the setting on, the DDL is accepted; no call is made in that state.
is( ddl_error(
		"SET ccpurge.allow_insecure_http = on;\n"
		  . "ALTER SERVER cec_wrong OPTIONS (SET url 'http://10.0.0.1')"),
	'',
	'with ccpurge.allow_insecure_http on, ALTER SERVER accepts it');
is( $node->safe_psql('postgres',
		"SELECT 'url=http://10.0.0.1' = ANY (srvoptions) FROM pg_foreign_server WHERE srvname = 'cec_wrong'"
	),
	't',
	'the server now points at http://10.0.0.1');

# The setting is off again in this new session: the call is refused while
# the server is being resolved, before any request is made.
my $log_before = $node->safe_psql('postgres',
	'SELECT count(*) FROM ccpurge.request_log');
my ($ret, $out);
($ret, $out, $err) = $node->psql('postgres',
	"SELECT * FROM ccpurge_delete_customers(ARRAY['880008'], 'cec_wrong')");
isnt($ret, 0, 'a call through the plain http server fails');
like($err, qr/plain http is only allowed to loopback addresses/,
	'the call is refused with the plain-http error');
like($err, qr/Host "10\.0\.0\.1" is not a loopback address/,
	'the detail names the host');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ccpurge.request_log'),
	$log_before, 'no request was recorded for it');

# Nothing leaked the secrets meanwhile.
my $log = slurp_file($node->logfile);
for my $secret (@CcpTest::SECRETS)
{
	ok(index($log, $secret) < 0, "server log does not contain \"$secret\"");
}

$node->stop;
$sim->stop;
$wrong->stop;
done_testing();
