# test/t/019_ddl_secrets.pl: a refused CREATE or ALTER of a server or user
# mapping never puts a password into the server log.
#
# PostgreSQL logs the statement of a failed command (STATEMENT:, by
# log_min_error_statement) and, inside a function or DO block, the
# statement's text in the CONTEXT line.  Server and mapping options can hold
# passwords, so every error the ccpurge option validator raises keeps both
# out of the log, and a url or proxy with user info is refused before any
# other check of that value, so the error names the real problem.
# Covers, each with a password of its own:
#   - a proxy with user info and a scheme ccpurge does not take (socks5);
#   - a url with user info and a query, and one with user info and the ftp
#     scheme, and one libcurl cannot parse;
#   - an unknown server option, an unknown vendor and a bad integer next to
#     a proxy or url holding a password, on CREATE and on ALTER SERVER;
#   - a user mapping whose proxy_user is refused, next to its password;
#   - a proxy with user info refused inside a DO block (the CONTEXT line);
# and then that the server log holds every error message but none of the
# passwords.

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

my $node = CcpTest::new_node('main',
	conf => [ "log_min_error_statement = 'error'", "log_statement = 'none'" ]);
$node->safe_psql('postgres', q{
	CREATE EXTENSION ccpurge;
	CREATE SERVER known FOREIGN DATA WRAPPER ccpurge
	  OPTIONS (vendor 'cec', url 'https://api.example.com');
});

my $userinfo_url = qr/ERROR:  URL must not contain a user name or password/;
my $userinfo_proxy =
  qr/ERROR:  proxy URL must not contain a user name or password/;

# Each case: a name, the DDL, the password it holds and the error expected.
# The client sees the statement it sent in the CONTEXT line of an error
# inside a DO block, so for that case only the log is checked.
my @cases = (
	[
		'proxy with user info and scheme socks5',
		q{CREATE SERVER bad FOREIGN DATA WRAPPER ccpurge
		  OPTIONS (vendor 'cec', url 'https://api.example.com',
		           proxy 'socks5://svc:ddl-pw-socks-1@proxy.example.com:1080')},
		'ddl-pw-socks-1',
		$userinfo_proxy
	],
	[
		'proxy with user info and a path',
		q{ALTER SERVER known
		  OPTIONS (ADD proxy 'ftp://svc:ddl-pw-ftp-proxy-2@proxy.example.com/x')},
		'ddl-pw-ftp-proxy-2',
		$userinfo_proxy
	],
	[
		'url with user info and a query',
		q{CREATE SERVER bad FOREIGN DATA WRAPPER ccpurge
		  OPTIONS (vendor 'cec', url 'https://svc:ddl-pw-query-3@api.example.com/?a=1')},
		'ddl-pw-query-3',
		$userinfo_url
	],
	[
		'url with user info and scheme ftp',
		q{ALTER SERVER known
		  OPTIONS (SET url 'ftp://svc:ddl-pw-ftp-4@api.example.com')},
		'ddl-pw-ftp-4',
		$userinfo_url
	],
	[
		'url with user info that libcurl cannot parse',
		q{CREATE SERVER bad FOREIGN DATA WRAPPER ccpurge
		  OPTIONS (vendor 'cec', url 'https://svc:ddl-pw-parse-5@api example.com')},
		'ddl-pw-parse-5',
		$userinfo_url
	],
	[
		'unknown server option next to a proxy password',
		q{CREATE SERVER bad FOREIGN DATA WRAPPER ccpurge
		  OPTIONS (vendor 'cec', url 'https://api.example.com',
		           proxy 'http://svc:ddl-pw-unknown-6@proxy.example.com:3128',
		           colour 'red')},
		'ddl-pw-unknown-6',
		qr/ERROR:  invalid option "colour"/
	],
	[
		'unknown vendor next to a url password',
		q{CREATE SERVER bad FOREIGN DATA WRAPPER ccpurge
		  OPTIONS (vendor 'nosuch', url 'https://svc:ddl-pw-vendor-7@api.example.com')},
		'ddl-pw-vendor-7',
		qr/ERROR:  invalid value for option "vendor": "nosuch"/
	],
	[
		'bad integer before a proxy password on ALTER',
		q{ALTER SERVER known
		  OPTIONS (ADD timeout_ms 'soon',
		           ADD proxy 'http://svc:ddl-pw-alter-8@proxy.example.com')},
		'ddl-pw-alter-8',
		qr/ERROR:  invalid value for option "timeout_ms": "soon"/
	],
	[
		'user mapping with a refused proxy_user',
		q{CREATE USER MAPPING FOR PUBLIC SERVER known
		  OPTIONS (app_key 'k', app_secret 'ddl-pw-mapping-9',
		           proxy_user 'svc:x', proxy_password 'ddl-pw-mapping-10')},
		'ddl-pw-mapping-9',
		qr/ERROR:  invalid value for option "proxy_user"/
	],
	[
		'proxy with user info inside a DO block',
		q{DO $$
		BEGIN
			ALTER SERVER known
			  OPTIONS (ADD proxy 'socks5h://svc:ddl-pw-do-11@proxy.example.com');
		END
		$$},
		'ddl-pw-do-11',
		$userinfo_proxy
	],);

for my $case (@cases)
{
	my ($name, $sql, $password, $error) = @$case;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);

	isnt($ret, 0, "$name: refused");
	like($stderr, $error, "$name: the error names the problem");
	unlike($stderr, qr/\Q$password\E/,
		"$name: the error does not show the password")
	  unless $sql =~ /^DO /;
}

# The log holds what happened, and no password.  (ok rather than like and
# unlike, whose failure would print the whole log.)
my $log = slurp_file($node->logfile);
for my $case (@cases)
{
	my ($name, $sql, $password, $error) = @$case;

	ok($log =~ $error, "$name: the error is in the server log");
	ok(index($log, $password) < 0,
		"$name: the password is not in the server log");
}
ok(index($log, 'ddl-pw-mapping-10') < 0,
	'the other password of the user mapping is not in the server log');
ok(index($log, 'ddl-pw-') < 0,
	'no password of this test is in the server log')
  or diag(join("\n", grep { /ddl-pw-/ } split /\n/, $log));

# The catalog is as before: nothing was created or changed.
is( $node->safe_psql(
		'postgres', q{
		SELECT string_agg(srvname || ' ' || array_to_string(srvoptions, ','), ';')
		  FROM pg_foreign_server}),
	'known vendor=cec,url=https://api.example.com',
	'no server was created or altered');

$node->stop;
done_testing();
