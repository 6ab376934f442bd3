# test/t/017_proxy.pl: erasures through a proxy.
#
# The test runs Debian's tinyproxy on a free loopback port, with its log in
# the test's temporary directory, Basic authentication (user
# ccp-proxy-user), and CONNECT allowed only to the port of an HTTPS
# simulator whose certificate comes from a throwaway CA (as in 015_tls).
# Covers:
#   (a) a CEC erasure to a plain-http simulator through the proxy with the
#       mapping's proxy_user and proxy_password: the proxy log shows the
#       token and the erasure request;
#   (b) the same to the HTTPS simulator, through a CONNECT tunnel, with
#       verification on (ca_file): the proxy log shows one CONNECT, which
#       carries a later call of the same session too; without ca_file the
#       certificate is refused through the tunnel as well;
#   (c) a wrong proxy password gives rows with ok = false and a message
#       saying the proxy refused the tunnel (tinyproxy answers a wrong
#       password with 401), and a mapping without proxy credentials gets
#       the proxy's 407 with a message saying so; nothing is deleted, and
#       neither proxy password reaches the rows, ccpurge.request_log, the
#       simulator's log or the server log;
#   (d) no_proxy listing 127.0.0.1 sends the requests directly: the proxy
#       log shows nothing new;
#   (e) with http_proxy, HTTPS_PROXY, ALL_PROXY (pointing at a dead port)
#       and NO_PROXY (127.0.0.1) in the postmaster's environment, servers
#       without a proxy still connect directly, over http and https, and a
#       server with a proxy still uses it, from a session and from the
#       worker;
#   (f) in one session, a role whose mapping has the right proxy
#       credentials and then a role whose mapping has wrong ones: the second
#       never rides the first one's tunnel, and the first one's tunnel is
#       still reused afterwards; and ten roles with ten proxy users, more
#       than a backend keeps connection caches for, one after another in
#       one session: each gets its own tunnel, and the first, whose cache
#       was dropped meanwhile, connects again.  (libcurl 8.19 and later
#       keep tunnels of different proxy credentials apart themselves, and
#       Debian backports that; ccpurge does not rely on it.)
#
# The test is skipped when tinyproxy is not installed (Debian package
# tinyproxy-bin).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../perl";

use CcpTest;
use Cwd ();
use IPC::Run;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'ccpurge is not installed (run "make install" first)'
  unless CcpTest::extension_installed();

my ($tinyproxy) = grep { -x $_ }
  ((map { "$_/tinyproxy" } split(/:/, $ENV{PATH} // '')),
	'/usr/bin/tinyproxy', '/usr/sbin/tinyproxy');
plan skip_all => 'tinyproxy is not installed (Debian package tinyproxy-bin)'
  unless defined $tinyproxy;

my $proxy_user = 'ccp-proxy-user';
my $proxy_password = 'ccp-proxy-secret-1';
my $wrong_password = 'ccp-proxy-wrong-2';
my @proxy_secrets = ($proxy_password, $wrong_password);

# Ten more proxy users for the roles of (f).
my @many = map { [ "prx_r$_", "ccp-proxy-user-$_", "ccp-proxy-many-$_" ] } (1 .. 10);

# The certificates: a CA and a certificate for 127.0.0.1 signed by it.
my $certs = Cwd::abs_path(PostgreSQL::Test::Utils::tempdir('017_proxy_certs'));

my $ca = CcpTest::test_ca($certs);
CcpTest::server_cert($certs, 'server', '127.0.0.1', 'IP:127.0.0.1', 2);

my $sim = CcpTest::Sim->start;
my $tls = CcpTest::Sim->start(
	tls_cert => "$certs/server.crt",
	tls_key => "$certs/server.key");
my $sim_port = $sim->port;
my $tls_port = $tls->port;

# The proxy.  It runs in the foreground (-d) and is stopped by its pid.
my $proxy_dir = Cwd::abs_path(PostgreSQL::Test::Utils::tempdir('017_proxy_tinyproxy'));
my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $proxy_log = "$proxy_dir/tinyproxy.log";
my $proxy_pid;
my $proxy_url = "http://127.0.0.1:$proxy_port";

CcpTest::write_file(
	"$proxy_dir/tinyproxy.conf", <<"EOF");
Port $proxy_port
Listen 127.0.0.1
Timeout 60
LogFile "$proxy_log"
LogLevel Info
MaxClients 20
Allow 127.0.0.1
BasicAuth $proxy_user $proxy_password
ConnectPort $tls_port
DisableViaHeader Yes
EOF
open my $conf, '>>', "$proxy_dir/tinyproxy.conf"
  or die "could not write $proxy_dir/tinyproxy.conf: $!";
print $conf "BasicAuth $_->[1] $_->[2]\n" for @many;
close $conf or die "could not write $proxy_dir/tinyproxy.conf: $!";

# stop_proxy ends tinyproxy (SIGTERM, then SIGKILL after 5 seconds).
sub stop_proxy
{
	return unless $proxy_pid;
	CcpTest::stop_process($proxy_pid);
	undef $proxy_pid;
	return;
}

END
{
	local $?;
	stop_proxy();
}

$proxy_pid = fork();
die "could not fork: $!" unless defined $proxy_pid;
if ($proxy_pid == 0)
{
	open(STDIN, '<', '/dev/null');
	open(STDOUT, '>>', "$proxy_dir/stdout.log") or POSIX::_exit(126);
	open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
	exec { $tinyproxy } $tinyproxy, '-d', '-c', "$proxy_dir/tinyproxy.conf"
	  or POSIX::_exit(127);
}

# proxy_log_text returns the proxy's log from byte $from on.
sub proxy_log_text
{
	my ($from) = @_;
	return '' unless -e $proxy_log;
	my $text = slurp_file($proxy_log);
	return substr($text, $from // 0);
}

# proxy_log_size returns the current length of the proxy's log.
sub proxy_log_size
{
	return -e $proxy_log ? -s $proxy_log : 0;
}

# tinyproxy is ready once its log says so; it may exit instead
my $exited = 0;
CcpTest::poll_until(
	30,
	sub {
		return 1 if proxy_log_text() =~ /Accepting connections/;
		$exited = waitpid($proxy_pid, WNOHANG) != 0;
		return $exited;
	});
if (proxy_log_text() !~ /Accepting connections/)
{
	my $out = -e "$proxy_dir/stdout.log" ? slurp_file("$proxy_dir/stdout.log") : '';
	undef $proxy_pid if $exited;
	BAIL_OUT("tinyproxy did not start: $out" . proxy_log_text());
}
note("tinyproxy pid $proxy_pid on port $proxy_port");

my $node = CcpTest::new_node('main');
$node->safe_psql('postgres', 'CREATE EXTENSION ccpurge');

# count_matches returns how often $re matches $text.
sub count_matches
{
	my ($text, $re) = @_;
	my $n = () = $text =~ /$re/g;
	return $n;
}

my %proxy_auth = (proxy_user => $proxy_user, proxy_password => $proxy_password);
my $forward_re = qr{Request \(file descriptor \d+\): POST http://127\.0\.0\.1:$sim_port/};
my $connect_re = qr{Request \(file descriptor \d+\): CONNECT 127\.0\.0\.1:$tls_port };

# A client connecting or a request arriving; lines the proxy writes late
# about earlier connections ("Closed connection ...") do not match.
my $activity_re = qr{(?:Connect|Request) \(file descriptor \d+\)};

# (a) Plain http through the proxy.
CcpTest::create_server($node, 'via_http',
	url => $sim->url,
	options => { proxy => $proxy_url },
	mapping => \%proxy_auth);
my $mark = proxy_log_size();
like(CcpTest::customers($node, 'via_http', '170001', '170002'),
	qr/\A170001\|true\|200\|[^\n]*\n170002\|true\|200\|[^\n]*\z/,
	'(a) plain http through the proxy: both numbers erased');
my $seen = proxy_log_text($mark);
is(count_matches($seen, $forward_re), 2,
	'(a) the proxy forwarded the token request and the erasure')
  or diag($seen);
like($seen, qr{POST http://127\.0\.0\.1:$sim_port/apigovernance/api/oauth/tokenByAkSk },
	'(a) the proxy log names the token request');
my $erased = $sim->deleted_set('cec_customers');
ok($erased->{170001} && $erased->{170002},
	'(a) the simulator erased both numbers');

# (b) HTTPS through a CONNECT tunnel, verified against the CA.
CcpTest::create_server($node, 'via_tls',
	url => $tls->url,
	options => { proxy => $proxy_url, ca_file => $ca },
	mapping => \%proxy_auth);
$mark = proxy_log_size();
like(
	$node->safe_psql(
		'postgres',
		CcpTest::customers_sql('via_tls', '170011')
		  . CcpTest::customers_sql('via_tls', '170012')),
	qr/\A170011\|true\|200\|[^\n]*\n170012\|true\|200\|[^\n]*\z/,
	'(b) https through a tunnel: two calls in one session succeed');
$seen = proxy_log_text($mark);
is(count_matches($seen, $connect_re), 1,
	'(b) the proxy opened one tunnel for the token and both erasures')
  or diag($seen);
is(count_matches($seen, $forward_re), 0, '(b) and forwarded nothing in clear');
$erased = $tls->deleted_set('cec_customers');
ok($erased->{170011} && $erased->{170012},
	'(b) the HTTPS simulator erased both numbers');

CcpTest::create_server($node, 'via_tls_noca',
	url => $tls->url,
	options => { proxy => $proxy_url },
	mapping => \%proxy_auth);
$mark = proxy_log_size();
like(CcpTest::customers($node, 'via_tls_noca', '170013'),
	qr/^170013\|false\|\|.*certificate/i,
	'(b) without ca_file the certificate is refused through the tunnel too');
is(count_matches(proxy_log_text($mark), $connect_re), 1,
	'(b) that call did go through the proxy');
ok(!$tls->deleted_set('cec_customers')->{170013}, '(b) and erased nothing');

# (c) A wrong proxy password, and no proxy credentials at all.
CcpTest::create_server($node, 'wrong_tls',
	url => $tls->url,
	options => { proxy => $proxy_url, ca_file => $ca },
	mapping => { proxy_user => $proxy_user, proxy_password => $wrong_password });
$mark = proxy_log_size();
my $rows = CcpTest::customers($node, 'wrong_tls', '170021', '170022');
note("wrong password: $rows");
my @rows = split /\n/, $rows;
is(scalar @rows, 2, '(c) a wrong proxy password: every item gets a row');
like($_, qr/^\d+\|false\|\|.*the proxy refused to open a tunnel to the server \(HTTP 401\)/,
	'(c) row has ok = false and says the proxy refused')
  for @rows;
like(proxy_log_text($mark), $connect_re, '(c) the proxy saw the tunnel request');

CcpTest::create_server($node, 'noauth_http',
	url => $sim->url,
	options => { proxy => $proxy_url });
$rows = CcpTest::customers($node, 'noauth_http', '170023');
note("no credentials: $rows");
like($rows,
	qr/^170023\|false\|\|.*the proxy requires authentication \(HTTP 407\), and no proxy credentials were given/,
	'(c) no proxy credentials: ok = false and the proxy\'s 407');
ok( !$sim->deleted_set('cec_customers')->{170023}
	  && !$tls->deleted_set('cec_customers')->{170021},
	'(c) nothing was erased');

my $logged = $node->safe_psql('postgres',
	"SELECT string_agg(r::text, E'\\n') FROM ccpurge.request_log r");
like($logged, qr/HTTP 407/, '(c) the request log has the refusal');
my $sim_log = join("\n",
	map { join(' ', map { $_ // '' } values %$_) }
	  (@{ $sim->request_log(1000) }, @{ $tls->request_log(1000) }));
for my $secret (@proxy_secrets)
{
	ok(index($rows . join("\n", @rows), $secret) < 0,
		"(c) the rows do not contain \"$secret\"");
	ok(index($logged, $secret) < 0,
		"(c) ccpurge.request_log does not contain \"$secret\"");
	ok(index($sim_log, $secret) < 0,
		"(c) the simulators' logs do not contain \"$secret\"");
}

# (d) no_proxy: 127.0.0.1 is reached directly.
CcpTest::create_server($node, 'bypass',
	url => $sim->url,
	options => { proxy => $proxy_url, no_proxy => 'localhost, 127.0.0.1' },
	mapping => \%proxy_auth);
$mark = proxy_log_size();
like(CcpTest::customers($node, 'bypass', '170031'),
	qr/^170031\|true\|200\|/,
	'(d) no_proxy: the call succeeds');
is(count_matches(proxy_log_text($mark), $activity_re), 0,
	'(d) the proxy log shows no new connection');
ok($sim->deleted_set('cec_customers')->{170031},
	'(d) the simulator erased the number');

# (f) Roles with other proxy credentials never share a tunnel.
$node->safe_psql(
	'postgres', qq{SET log_statement = 'none';
	CREATE ROLE prx_alice;
	CREATE ROLE prx_mallory;
	GRANT EXECUTE ON FUNCTION ccpurge_delete_customers(text[], text)
		TO prx_alice, prx_mallory;
});
CcpTest::create_server($node, 'roles_tls',
	url => $tls->url,
	options => { proxy => $proxy_url, ca_file => $ca });
for my $role ([ 'prx_alice', $proxy_password ], [ 'prx_mallory', $wrong_password ])
{
	my $cred = $CcpTest::CREDENTIALS{cec};
	$node->safe_psql(
		'postgres', qq{SET log_statement = 'none';
		GRANT USAGE ON FOREIGN SERVER roles_tls TO $role->[0];
		CREATE USER MAPPING FOR $role->[0] SERVER roles_tls OPTIONS (
			app_key '$cred->{app_key}', app_secret '$cred->{app_secret}',
			proxy_user '$proxy_user', proxy_password '$role->[1]')});
}
$mark = proxy_log_size();
$rows = $node->safe_psql(
	'postgres',
	'SET ROLE prx_alice;'
	  . CcpTest::customers_sql('roles_tls', '170041')
	  . 'SET ROLE prx_mallory;'
	  . CcpTest::customers_sql('roles_tls', '170042')
	  . 'SET ROLE prx_alice;'
	  . CcpTest::customers_sql('roles_tls', '170043'));
note("roles: $rows");
like($rows, qr/^170041\|true\|200\|/m, '(f) the role with the right password succeeds');
like($rows, qr/^170042\|false\|\|.*HTTP 401/m,
	'(f) the role with a wrong password is refused in the same session');
like($rows, qr/^170043\|true\|200\|/m, '(f) the first role succeeds again');
is(count_matches(proxy_log_text($mark), $connect_re), 2,
	'(f) one tunnel per role; the first role\'s tunnel was reused')
  or diag(proxy_log_text($mark));
ok(!$tls->deleted_set('cec_customers')->{170042},
	'(f) nothing was erased for the wrong password');

my $cec = $CcpTest::CREDENTIALS{cec};
my $sql = "SET log_statement = 'none';\n";
for my $r (@many)
{
	$sql .= qq{CREATE ROLE $r->[0];
		GRANT EXECUTE ON FUNCTION ccpurge_delete_customers(text[], text) TO $r->[0];
		GRANT USAGE ON FOREIGN SERVER roles_tls TO $r->[0];
		CREATE USER MAPPING FOR $r->[0] SERVER roles_tls OPTIONS (
			app_key '$cec->{app_key}', app_secret '$cec->{app_secret}',
			proxy_user '$r->[1]', proxy_password '$r->[2]');
	};
}
$node->safe_psql('postgres', $sql);
$sql = '';
my $n = 0;
for my $r (@many, $many[0])
{
	$n++;
	$sql .= "SET ROLE $r->[0];"
	  . CcpTest::customers_sql('roles_tls', 170100 + $n);
}
$mark = proxy_log_size();
$rows = $node->safe_psql('postgres', $sql);
is(count_matches($rows, qr/^\d+\|true\|200\|/m), 11,
	'(f) ten proxy users in one session: every call succeeds')
  or diag($rows);
is(count_matches(proxy_log_text($mark), $connect_re), 11,
	'(f) each opened its own tunnel, and the first connected again')
  or diag(proxy_log_text($mark));

# (e) Proxy settings in the postmaster's environment are ignored.
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
{
	my $dead = "http://127.0.0.1:$dead_port";
	local $ENV{http_proxy} = $dead;
	local $ENV{HTTP_PROXY} = $dead;
	local $ENV{https_proxy} = $dead;
	local $ENV{HTTPS_PROXY} = $dead;
	local $ENV{ALL_PROXY} = $dead;
	local $ENV{all_proxy} = $dead;
	local $ENV{NO_PROXY} = '127.0.0.1,localhost';
	local $ENV{no_proxy} = '127.0.0.1,localhost';
	$node->restart;
}
my ($pm_pid) = slurp_file($node->data_dir . '/postmaster.pid') =~ /\A(\d+)/;
my $environ = slurp_file("/proc/$pm_pid/environ");
like($environ, qr/(?:^|\0)https_proxy=http:\/\/127\.0\.0\.1:$dead_port\0/,
	'(e) the postmaster runs with the proxy variables set');

CcpTest::create_server($node, 'direct_http', url => $sim->url);
CcpTest::create_server($node, 'direct_tls',
	url => $tls->url,
	options => { ca_file => $ca });
$mark = proxy_log_size();
like(CcpTest::customers($node, 'direct_http', '170051'),
	qr/^170051\|true\|200\|/,
	'(e) plain http without a proxy option goes directly');
like(CcpTest::customers($node, 'direct_tls', '170052'),
	qr/^170052\|true\|200\|/,
	'(e) https without a proxy option goes directly');
is(count_matches(proxy_log_text($mark), $activity_re), 0,
	'(e) the proxy saw neither');
like(CcpTest::customers($node, 'via_http', '170053'),
	qr/^170053\|true\|200\|/,
	'(e) a server with a proxy still succeeds');
like(proxy_log_text($mark), $forward_re,
	'(e) through its proxy, although NO_PROXY lists 127.0.0.1');

# The worker has the same environment.
$mark = proxy_log_size();
my $request = $node->safe_psql('postgres',
	"SELECT ccpurge_enqueue('delete_customers', ARRAY['170061'], '{}', 'via_http')");
is($node->safe_psql('postgres', "SELECT ccpurge_wait($request, '60 s')"),
	't', '(e) the worker finished a queued erasure through the proxy');
is( $node->safe_psql(
		'postgres',
		"SELECT state FROM ccpurge_status WHERE request_id = $request"),
	'done',
	'(e) the queued item is done');
like(proxy_log_text($mark), $forward_re, '(e) the worker went through the proxy');
ok($sim->deleted_set('cec_customers')->{170061},
	'(e) the simulator erased the queued number');

# Nothing leaked the secrets meanwhile.
my $server_log = slurp_file($node->logfile);
for my $secret (@proxy_secrets, (map { $_->[2] } @many), @CcpTest::SECRETS)
{
	ok(index($server_log, $secret) < 0,
		"server log does not contain \"$secret\"");
}

$node->stop;
stop_proxy();
$sim->stop;
$tls->stop;
done_testing();
