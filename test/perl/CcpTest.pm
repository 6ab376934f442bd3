# test/perl/CcpTest.pm: helpers shared by ccpurge's TAP tests.
#
# It owns three things: starting and driving the vendor simulator
# (CcpTest::Sim), starting a PostgreSQL node with ccpurge preloaded
# (new_node), and creating the extension with one server per vendor
# pointing at the simulator (setup_servers).  Smaller helpers run sessions
# together (run_together), read reports from the server log (log_reports)
# and listen for notifications (CcpTest::Listener).  A section of shared
# building blocks creates single servers (create_server), queues and waits
# for requests (enqueue_sql, wait_done, wait_finished, ...), changes
# settings (set_setting) and waits on observable state instead of sleeping
# (wait_worker_idle, wait_for_log_count, poll_until, ...).
#
#   use CcpTest;
#   my $sim  = CcpTest::Sim->start;
#   my $node = CcpTest::new_node('main');
#   CcpTest::setup_servers($node, $sim);
#   $sim->fault(kind => 'status', status => 503, count => 1);
#   my $state = $sim->state;           # GET /_sim/state, decoded
#   is($state->{deleted}{cec_customers}, 3);
#
# The simulator binary is test/sim/ccpurge-sim, found relative to this file
# (override with $ENV{CCPURGE_SIM}).  Every simulator gets its own directory
# under the test's tmp_check, holding its port file, pid file and log.
#
# An HTTPS simulator:
#   my $sim = CcpTest::Sim->start(tls_cert => $crt, tls_key => $key);
#   $sim->url;                         # https://127.0.0.1:PORT
#   $sim->state;                       # still works, see below
# HTTP::Tiny needs IO::Socket::SSL for https, which may be missing, so such
# a simulator also serves its control interface on a second, plain-HTTP
# port (--control-port-file); every control call (state, config, fault,
# request, ...) goes there.

package CcpTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

# Repository root: this file is test/perl/CcpTest.pm.
our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../..');

# The simulator's credentials, as setup_servers puts them in user mappings.
our %CREDENTIALS = (
	cec => { app_key => 'cec-app-key', app_secret => 'cec-app-secret' },
	isales => { ak => 'isales-ak', sk => 'isales-sk' },
	ozonetel => { username => 'acme', api_key => 'oz-api-key' },
	webhook => { signing_secret => 'webhook-signing-secret-0123' },);

# Every secret above, for tests that check logs and tables for leaks.
our @SECRETS = ('cec-app-secret', 'isales-sk', 'oz-api-key',
	'webhook-signing-secret-0123');

# root returns the repository root (the directory holding the Makefile).
sub root { return $ROOT; }

# sim_binary returns the path of the simulator executable.
sub sim_binary
{
	return $ENV{CCPURGE_SIM} // "$ROOT/test/sim/ccpurge-sim";
}

# pg_config_value returns one line of "pg_config --NAME", using the
# pg_config found in PATH (the one the test clusters come from).
sub pg_config_value
{
	my ($name) = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'pg_config', "--$name" ], '>', \$stdout,
		'2>', \$stderr);
	die "pg_config --$name failed: $stderr" unless $ok;
	chomp $stdout;
	return $stdout;
}

# extension_installed tells whether the ccpurge library and control file are
# installed where the pg_config in PATH looks for them.
sub extension_installed
{
	my $lib = pg_config_value('pkglibdir') . '/ccpurge.so';
	my $control = pg_config_value('sharedir') . '/extension/ccpurge.control';
	return (-f $lib && -f $control) ? 1 : 0;
}

# quote_literal quotes a string as an SQL literal.
sub quote_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# quote_ident quotes a string as an SQL identifier.
sub quote_ident
{
	my ($s) = @_;
	$s =~ s/"/""/g;
	return "\"$s\"";
}

# new_node creates, initialises and starts a PostgreSQL::Test::Cluster with
# ccpurge preloaded: a worker serves every database where the extension is
# installed.
#
# Options:
#   conf          => extra postgresql.conf lines (string or array ref);
#                    "extra_conf" is accepted too
#   preload       => 0 leaves ccpurge out of shared_preload_libraries
#   init          => hash ref of options for $node->init
#   start         => 0 returns the node initialised but not started
# The environment's CCP_BENCH_FSYNC (on or off) sets fsync, for benchmarks.
sub new_node
{
	my ($name, %opts) = @_;

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} // {} });

	my @conf;
	if ($opts{preload} // 1)
	{
		push @conf, "shared_preload_libraries = 'ccpurge'";
	}
	die "new_node: ccpurge.database_name is gone" if exists $opts{database_name};

	for my $extra ($opts{conf}, $opts{extra_conf})
	{
		next unless defined $extra;
		push @conf, ref $extra eq 'ARRAY' ? @$extra : ($extra);
	}
	# benchmarks measure durable commits with CCP_BENCH_FSYNC=on (test
	# clusters run with fsync = off)
	push @conf, 'fsync = ' . ($ENV{CCP_BENCH_FSYNC} eq 'on' ? 'on' : 'off')
	  if defined $ENV{CCP_BENCH_FSYNC};
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n");

	$node->start if $opts{start} // 1;
	return $node;
}

# setup_servers runs CREATE EXTENSION ccpurge in a database of $node and
# creates the servers cec, isales and ozonetel (vendors of the same names)
# pointing at $sim, each with a PUBLIC user mapping holding the simulator's
# credentials.  The session turns log_statement off first so that the
# secrets never reach the server log.
#
# Options:
#   dbname         => database (default 'postgres')
#   servers        => array ref: the servers to create, by name; a server
#                     is of the vendor of its name unless vendors says
#                     otherwise
#   vendors        => { slow => 'webhook', ... }: the vendor of servers
#                     not named after theirs
#   server_options => { cec => { rate_limit => '10/second' }, ... }:
#                     extra server options, by server name
#   url            => base URL instead of $sim->url
#   extension      => 0 skips CREATE EXTENSION
sub setup_servers
{
	my ($node, $sim, %opts) = @_;
	my $dbname = $opts{dbname} // 'postgres';
	my $url = $opts{url} // $sim->url;
	my @servers = @{ $opts{servers} // [qw(cec isales ozonetel)] };

	my $sql = "SET log_statement = 'none';\n";
	$sql .= "CREATE EXTENSION IF NOT EXISTS ccpurge;\n"
	  if $opts{extension} // 1;

	for my $name (@servers)
	{
		$sql .= server_sql(
			$name,
			vendor => $opts{vendors}{$name} // $name,
			url => $url,
			options => $opts{server_options}{$name});
	}

	$node->safe_psql($dbname, $sql);
	return;
}

# The simulators still running in this process, so that END can stop them
# whatever the order of global destruction.
our %LIVE_SIMS;

END
{
	# Reaping a simulator sets $?, which END must leave as the test's status.
	local $?;
	for my $sim (values %LIVE_SIMS)
	{
		$sim->stop if defined $sim;
	}
}


# run_together starts one psql per statement, lets them all block on an
# advisory lock (key $lock) held by this function, releases it once every
# one is waiting, and returns a list of [stdout, stderr, success] in the
# same order.  It asserts (one ok) that all of them reached the barrier.
# A statement given as [dbname, sql] runs in that database, any other in
# postgres (advisory locks belong to a database: one is held in each).
sub run_together
{
	my ($node, $lock, @sqls) = @_;
	my @stmts = map { ref $_ eq 'ARRAY' ? $_ : [ 'postgres', $_ ] } @sqls;
	my %holders;
	for my $dbname (map { $_->[0] } @stmts)
	{
		next if $holders{$dbname};
		$holders{$dbname} = $node->background_psql($dbname);
		$holders{$dbname}->query_safe("SELECT pg_advisory_lock($lock)");
	}

	my @runs;
	for my $stmt (@stmts)
	{
		my ($dbname, $sql) = @$stmt;
		my %r = (out => '', err => '');
		$r{h} = IPC::Run::start(
			[
				'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
				'-d', $node->connstr($dbname),
				'-c', "SELECT pg_advisory_lock_shared($lock)",
				'-c', $sql
			],
			'>', \$r{out}, '2>', \$r{err});
		push @runs, \%r;
	}

	my $n = scalar @sqls;
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT count(*) = $n FROM pg_locks
		WHERE locktype = 'advisory' AND objid = $lock AND NOT granted}),
		"$n sessions wait at the barrier");
	for my $holder (values %holders)
	{
		$holder->query_safe("SELECT pg_advisory_unlock($lock)");
		$holder->quit;
	}

	my @res;
	for my $r (@runs)
	{
		my $success = $r->{h}->finish;
		$r->{out} =~ s/^\s*\n//;
		push @res, [ $r->{out}, $r->{err}, $success ];
	}
	return @res;
}

# wait_request waits for ccpurge_wait($id) on $node (database postgres) to
# say every item of queue request $id is finished, as one test named after
# $what.
sub wait_request
{
	my ($node, $id, $what) = @_;
	is($node->safe_psql('postgres', "SELECT ccpurge_wait($id, '90 s')"),
		't', "$what: request $id finished");
	return;
}

# write_file writes $text to $path.
sub write_file
{
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "could not write $path: $!";
	print $fh $text;
	close $fh or die "could not write $path: $!";
	return;
}

# _openssl runs the openssl command with @args, bailing out if it fails.
sub _openssl
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'openssl', @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or BAIL_OUT("openssl @args failed: $err");
	return;
}

# test_ca makes a throwaway CA in directory $dir: ca.key and a self-signed
# ca.crt allowed to sign certificates.  Returns the path of ca.crt.
sub test_ca
{
	my ($dir) = @_;
	write_file(
		"$dir/ca.cnf", <<'EOF');
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ccpurge throwaway test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
	_openssl('req', '-x509', '-config', "$dir/ca.cnf", '-extensions', 'v3_ca',
		'-newkey', 'rsa:2048', '-nodes', '-days', '2',
		'-keyout', "$dir/ca.key", '-out', "$dir/ca.crt");
	return "$dir/ca.crt";
}

# server_cert makes $dir/$name.key and $dir/$name.crt, signed by the CA
# test_ca made in $dir, for the subject name $cn, the subjectAltName $san
# (e.g. "IP:127.0.0.1") and serial number $serial.
sub server_cert
{
	my ($dir, $name, $cn, $san, $serial) = @_;
	write_file(
		"$dir/$name.cnf", <<"EOF");
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
EOF
	_openssl('req', '-new', '-config', "$dir/$name.cnf",
		'-newkey', 'rsa:2048', '-nodes',
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
	_openssl('x509', '-req', '-in', "$dir/$name.csr",
		'-CA', "$dir/ca.crt", '-CAkey', "$dir/ca.key",
		'-set_serial', $serial, '-days', '2',
		'-extfile', "$dir/$name.cnf", '-extensions', 'server',
		'-out', "$dir/$name.crt");
	return;
}

# worker_pid returns the pid of the ccpurge worker (connected to $db, if
# given), or an empty string when none runs.
sub worker_pid
{
	my ($node, $db) = @_;
	my $where = defined $db ? " AND datname = '$db'" : '';
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'ccpurge worker'$where"
	);
}

# log_reports returns the LOG messages of $node's server log after byte
# $offset (default 0) whose text starts with a match of $re, each with its
# DETAIL and HINT lines, without the line prefixes: "message\nDETAIL:
# ...\nHINT:  ...".  A message and its lines are written at once, so no
# other process's lines come between them.
sub log_reports
{
	my ($node, $re, $offset) = @_;
	my @reports;
	my $current;

	for my $line (split /\n/,
		PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset // 0))
	{
		if (defined $current && $line =~ /^.*?\] .*?((?:DETAIL|HINT):  .*)$/)
		{
			$current .= "\n$1";
			next;
		}
		push @reports, $current if defined $current;
		undef $current;
		$current = $1 if $line =~ /^.*?\] .*?LOG:  ((?=$re).*)$/;
	}
	push @reports, $current if defined $current;
	return @reports;
}

# ---------------------------------------------------------------------
# Shared building blocks of the TAP files: servers, queued requests, and
# waits on observable state.  A test never sleeps for a fixed time: it
# waits for the state it needs (a queue state, a log line, the worker's
# activity, a simulator counter) with one of these, $node->poll_query_until,
# $node->wait_for_log or $sim->wait_for.
# ---------------------------------------------------------------------

# server_sql returns the statements that create server $name and a PUBLIC
# user mapping for it.  Options:
#   vendor  => vendor of the server (default 'cec')
#   url     => its url option
#   options => { name => value }: more server options (they win over url)
#   mapping => { name => value }: mapping options, added to (or replacing)
#              the simulator's credentials for the vendor
# The statements hold secrets: run them with log_statement off, as
# create_server and setup_servers do.
sub server_sql
{
	my ($name, %opts) = @_;
	my $vendor = $opts{vendor} // 'cec';
	die "unknown vendor \"$vendor\"" unless $CREDENTIALS{$vendor};

	my %srv = (vendor => $vendor, url => $opts{url}, %{ $opts{options} // {} });
	my %um = (%{ $CREDENTIALS{$vendor} }, %{ $opts{mapping} // {} });
	my $srvopts = join(', ',
		map { "$_ " . quote_literal($srv{$_}) }
		  ('vendor', 'url', sort grep { !/^(vendor|url)$/ } keys %srv));
	my $umopts = join(', ',
		map { "$_ " . quote_literal($um{$_}) } sort keys %um);
	return
	    'CREATE SERVER '
	  . quote_ident($name)
	  . " FOREIGN DATA WRAPPER ccpurge OPTIONS ($srvopts);\n"
	  . 'CREATE USER MAPPING FOR PUBLIC SERVER '
	  . quote_ident($name)
	  . " OPTIONS ($umopts);\n";
}

# create_server creates server $name and its PUBLIC mapping (server_sql,
# same options) in database $opts{dbname} (default 'postgres') of $node,
# with log_statement off so that no secret reaches the server log.
sub create_server
{
	my ($node, $name, %opts) = @_;
	my $dbname = delete $opts{dbname} // 'postgres';
	$node->safe_psql($dbname,
		"SET log_statement = 'none';\n" . server_sql($name, %opts));
	return;
}

# customers_sql returns a query that erases the customer numbers @numbers
# through server $server with ccpurge_delete_customers and gives one line
# "item|ok|http_status|message" per row, ordered by item.
sub customers_sql
{
	my ($server, @numbers) = @_;
	my $array = 'ARRAY[' . join(',', map { quote_literal($_) } @numbers) . ']';
	return qq{
		SELECT item || '|' || ok || '|' || coalesce(http_status::text, '')
			|| '|' || message
		FROM ccpurge_delete_customers($array, } . quote_literal($server) . q{)
		ORDER BY item;};
}

# customers runs customers_sql in a new session of $node (database
# postgres) and returns its lines.
sub customers
{
	my ($node, $server, @numbers) = @_;
	return $node->safe_psql('postgres', customers_sql($server, @numbers));
}

# enqueue_sql returns a statement that queues the CEC customer numbers
# "$prefix<first>" .. "$prefix<first + n - 1>" in one request and returns
# the request's id; $opts{first} defaults to 1.
sub enqueue_sql
{
	my ($prefix, $n, %opts) = @_;
	my $first = $opts{first} // 1;
	my $last = $first + $n - 1;
	return qq{SELECT ccpurge_enqueue('delete_customers',
		ARRAY(SELECT '$prefix' || g FROM generate_series($first, $last) g))};
}

# shown_item_sql returns an SQL expression of ccpurge_status.item (or of
# the SQL expression $expr) in which the digest that a done or canceled
# item keeps instead of its text reads "digest", for comparisons.
sub shown_item_sql
{
	my ($expr) = @_;
	$expr //= 'item';
	return "regexp_replace($expr, '^hmac:[0-9]+:[0-9a-f]{64}\$', 'digest')";
}

# prefix_sql returns an SQL condition on ccpurge_status.item that holds
# for the items "$prefix1" .. "$prefix$max": in clear text while they are
# queued, sending or failed, and as the digests that done and canceled
# items keep instead (ccpurge.forget_items, under the current key).
sub prefix_sql
{
	my ($prefix, $max) = @_;
	my $p = quote_literal($prefix);
	return "(starts_with(item, $p) OR item IN (SELECT pg_catalog.unnest(ccpurge.forget_items("
	  . "ARRAY(SELECT $p || g FROM generate_series(1, $max) g)))))";
}

# ccpurge_wait runs ccpurge_wait($id, $opts{timeout}) (default '90 s') in
# database $opts{dbname} (default 'postgres') of $node, as the role that
# $opts{extra_params} names (e.g. ['-U', 'alice']) if given, and returns its
# answer: 't' once request $id is finished, 'f' if the timeout came first.
sub ccpurge_wait
{
	my ($node, $id, %opts) = @_;
	return $node->safe_psql(
		$opts{dbname} // 'postgres',
		"SELECT ccpurge_wait($id, " . quote_literal($opts{timeout} // '90 s') . ')',
		$opts{extra_params} ? (extra_params => $opts{extra_params}) : ());
}

# done_counts returns "items|done": how many ccpurge_status rows satisfy the
# SQL condition $filter in database $opts{dbname} (default 'postgres'), and
# how many of them are done.
sub done_counts
{
	my ($node, $filter, %opts) = @_;
	return $node->safe_psql(
		$opts{dbname} // 'postgres', qq{
		SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'done')
		FROM ccpurge_status WHERE $filter});
}

# wait_done waits for request $id with ccpurge_wait (same options) and
# returns done_counts of its rows as the test's superuser sees them.
sub wait_done
{
	my ($node, $id, %opts) = @_;
	ccpurge_wait($node, $id, %opts);
	return done_counts($node, "request_id = $id", dbname => $opts{dbname});
}

# wait_finished waits until no ccpurge_status row satisfying the SQL
# condition $filter (in database $opts{dbname}, default 'postgres') is
# queued or sending, and tells whether that happened within the harness's
# timeout.  Unlike ccpurge_wait it needs no request id, and it survives a
# server restart under it.
sub wait_finished
{
	my ($node, $filter, %opts) = @_;
	return $node->poll_query_until(
		$opts{dbname} // 'postgres', qq{
		SELECT count(*) FILTER (WHERE state IN ('queued', 'sending')) = 0
		FROM ccpurge_status WHERE $filter});
}

# wait_progress waits until at least $n items of the ccpurge_status rows
# satisfying $filter (in database $opts{dbname}, default 'postgres') are
# done; dies when they do not get there within the harness's timeout.
sub wait_progress
{
	my ($node, $filter, $n, %opts) = @_;
	$node->poll_query_until(
		$opts{dbname} // 'postgres', qq{
		SELECT count(*) >= $n FROM ccpurge_status
		WHERE ($filter) AND state = 'done'})
	  or die "the items where $filter did not progress to $n done";
	return;
}

# wait_age waits until the queue rows of request $id were queued more than
# $seconds ago by the server's clock, the measure ccpurge.batch_linger is
# compared with; dies when that does not happen within the harness's
# timeout.  Database $opts{dbname}, default 'postgres'.
sub wait_age
{
	my ($node, $id, $seconds, %opts) = @_;
	$node->poll_query_until(
		$opts{dbname} // 'postgres', qq{
		SELECT now() - min(enqueued_at) > interval '$seconds s'
		FROM ccpurge.queue WHERE request_id = $id})
	  or die "request $id did not age";
	return;
}

# wait_worker_connected waits until one ccpurge worker is connected to
# database $dbname, and tells whether that happened within the harness's
# timeout.
sub wait_worker_connected
{
	my ($node, $dbname) = @_;
	return $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'ccpurge worker' AND datname = }
		  . quote_literal($dbname));
}

# wait_worker_idle waits until the ccpurge worker connected to database
# $dbname has run a claim whose transaction started after $since (an SQL
# timestamptz expression, evaluated in $dbname) and is back in its wait for
# work: its last activity is that claim, it is idle, and it waits on its
# latch.  A claim that started after a commit saw what that commit wrote.
# Tells whether that happened within the harness's timeout.
sub wait_worker_idle
{
	my ($node, $dbname, $since) = @_;
	return $node->poll_query_until(
		$dbname, qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'ccpurge worker' AND datname = current_database()
		  AND query = 'ccpurge worker: claiming batches'
		  AND state = 'idle' AND wait_event = 'Extension'
		  AND query_start > ($since)});
}

# set_setting changes setting $name with ALTER SYSTEM (RESET when $value is
# undef), reloads, and returns once a new session shows $shown: the
# postmaster has then reloaded and signaled every process, and the worker
# rereads the file before it next looks at the queue.  Dies when the value
# does not show within the harness's timeout.
sub set_setting
{
	my ($node, $name, $value, $shown) = @_;
	$node->safe_psql('postgres',
		defined $value
		? "ALTER SYSTEM SET $name = " . quote_literal($value)
		: "ALTER SYSTEM RESET $name");
	$node->reload;
	$node->poll_query_until('postgres',
		"SELECT current_setting('$name') = " . quote_literal($shown))
	  or die "$name did not become $shown";
	return;
}

# wal_syncs returns how many times $node's WAL was synced to disk, and how
# many ms that took (with track_wal_io_timing), by every process so far
# (pg_stat_wal; counted only with fsync on, and reported by each process
# at most once a second: sleep first for a figure that includes the last
# second's work).
sub wal_syncs
{
	my ($node) = @_;
	return split /\|/,
	  $node->safe_psql('postgres', 'SELECT wal_sync, wal_sync_time FROM pg_stat_wal');
}

# poll_until calls $cond until it returns true, every 100 ms, for at most
# $seconds; returns 1 when it did, 0 when time ran out.  For waits whose
# deadline is part of what a test asserts, or that must retry an action;
# otherwise $node->poll_query_until, with the harness's deadline, serves.
sub poll_until
{
	my ($seconds, $cond) = @_;
	my $deadline = Time::HiRes::time() + $seconds;
	for (;;)
	{
		return 1 if $cond->();
		return 0 if Time::HiRes::time() >= $deadline;
		Time::HiRes::usleep(100_000);
	}
}

# poll_sql runs $sql in database $dbname of $node until it returns true,
# for at most $seconds (poll_until); returns 1 when it did, 0 otherwise.
sub poll_sql
{
	my ($node, $dbname, $sql, $seconds) = @_;
	return poll_until($seconds,
		sub { $node->safe_psql($dbname, $sql) eq 't' });
}

# wait_for_log_count waits until $node's server log after byte $offset
# (default 0) holds at least $n matches of $re, and tells whether that
# happened within the harness's timeout.
sub wait_for_log_count
{
	my ($node, $re, $n, $offset) = @_;
	return poll_until(
		$PostgreSQL::Test::Utils::timeout_default,
		sub {
			my $count = () =
			  PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset // 0)
			  =~ /$re/g;
			return $count >= $n;
		});
}

# start_call starts $sql (a synchronous call, say) in a new background
# session of $node (database postgres) without waiting for it, and returns
# the session and its backend pid.  Stop the statement with cancel_call;
# close the session with $bg->quit.
sub start_call
{
	my ($node, $sql) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0,
		timeout => $PostgreSQL::Test::Utils::timeout_default);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/started/, "\\echo started\n$sql;\n");
	return ($bg, $pid);
}

# cancel_call cancels the statement of backend $pid of $node (a session of
# start_call) and waits until the backend is idle again, its session still
# open; tells whether the statement ended within the harness's timeout.
sub cancel_call
{
	my ($node, $pid) = @_;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	return $node->poll_query_until('postgres',
		"SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $pid");
}

# stop_process ends child process $pid of this test: SIGTERM, then SIGKILL
# after $grace seconds (default 5), and reaps it.
sub stop_process
{
	my ($pid, $grace) = @_;
	kill 'TERM', $pid;
	my $deadline = Time::HiRes::time() + ($grace // 5);
	while (Time::HiRes::time() < $deadline)
	{
		my $r = waitpid($pid, POSIX::WNOHANG());
		last if $r == $pid || $r == -1;
		Time::HiRes::usleep(20_000);
	}
	if (kill(0, $pid) && waitpid($pid, POSIX::WNOHANG()) == 0)
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	return;
}

# CcpTest::Sim::deleted_set is a method of the simulator (the package is
# further down): it returns deleted set $set (see deleted) as a hash
# reference, item => 1, for membership tests.
sub CcpTest::Sim::deleted_set
{
	my ($self, $set) = @_;
	return { map { $_ => 1 } @{ $self->deleted($set) } };
}

package CcpTest::Listener;

# CcpTest::Listener: a psql session that LISTENs on a channel, so that a
# test sees the notifications a role receives, payload by payload.
#
#   my $l = CcpTest::Listener->new($node, 'ccpurge_failed', user => 'nobody');
#   ... work that notifies ...
#   my @payloads = $l->collect;    # what arrived since the last collect
#   $l->quit;
#
# collect is exact, with no timing guess: it sends a sentinel notification
# on the channel from another session and reads until the sentinel
# arrives.  Notifications reach a listener in commit order, so every one
# committed before collect was called comes before the sentinel.

use strict;
use warnings;

use Carp qw(croak);
use Time::HiRes qw(usleep time);

# new starts the session on $node and LISTENs on $channel.
#
# Options:
#   user   => role to connect as (default: the test's superuser)
#   dbname => database (default 'postgres')
sub new
{
	my ($class, $node, $channel, %opts) = @_;
	my $dbname = $opts{dbname} // 'postgres';
	my @extra = defined $opts{user} ? ('-U', $opts{user}) : ();
	my $self = bless {
		node => $node,
		dbname => $dbname,
		channel => $channel,
		session => $node->background_psql($dbname, extra_params => \@extra),
		sentinels => 0,
		pending => [],
	}, $class;
	$self->{session}->query_safe('LISTEN ' . CcpTest::quote_ident($channel));
	return $self;
}

# _read runs an empty statement in the session, so that psql prints the
# notifications that arrived, and queues their payloads.
sub _read
{
	my ($self) = @_;
	my $out = $self->{session}->query_safe('SELECT 1');
	my $channel = quotemeta $self->{channel};
	while ($out =~
		/^Asynchronous notification "$channel" with payload "(.*)" received from server process with PID \d+\.$/mg
	  )
	{
		push @{ $self->{pending} }, $1;
	}
	return;
}

# collect returns the payloads that arrived on the channel since the last
# collect, in the order they were sent; dies when the sentinel does not
# arrive within $timeout seconds (default 180).
sub collect
{
	my ($self, $timeout) = @_;
	my $sentinel = 'CcpTest::Listener sentinel ' . ++$self->{sentinels};
	my $deadline = time + ($timeout // 180);

	$self->{node}->safe_psql($self->{dbname},
		'SELECT pg_catalog.pg_notify('
		  . CcpTest::quote_literal($self->{channel}) . ', '
		  . CcpTest::quote_literal($sentinel) . ')');
	for (;;)
	{
		$self->_read;
		my $pending = $self->{pending};
		for my $i (0 .. $#$pending)
		{
			next unless $pending->[$i] eq $sentinel;
			my @got = splice(@$pending, 0, $i + 1);
			pop @got;
			return @got;
		}
		croak "the sentinel notification on \"$self->{channel}\" did not arrive"
		  if time >= $deadline;
		usleep(50_000);
	}
}

# quit ends the session.
sub quit
{
	my ($self) = @_;
	$self->{session}->quit;
	return;
}

package CcpTest::Sim;

use strict;
use warnings;

use Carp qw(croak);
use File::Basename ();
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(usleep time);

# _test_name returns the running test's file name without directory and
# ".pl", as PostgreSQL::Test::Utils names its logs.
sub _test_name
{
	my $name = File::Basename::basename($0);
	$name =~ s/\.[^.]+$//;
	return $name;
}

# start launches the simulator on a free port and waits until it answers
# GET /_sim/state.
#
# Options:
#   port    => fixed port (default 0: the simulator picks a free one and
#              writes it to its port file)
#   dir     => directory for the port file, pid file and log (default: a
#              new directory TESTNAME_sim_XXXX under the test's tmp_check)
#   args    => array ref of extra command-line arguments
#   config  => hash ref posted to /_sim/config once it is up
#   timeout => seconds to wait for it to answer (default 30)
#   tls_cert, tls_key => PEM files: serve HTTPS with this certificate and
#              key (both or neither); the control calls then use a second,
#              plain-HTTP port, see control_url
sub start
{
	my ($class, %opts) = @_;

	croak "tls_cert and tls_key go together"
	  if (defined $opts{tls_cert} xor defined $opts{tls_key});

	my $self = bless {
		want_port => $opts{port} // 0,
		port => $opts{port} // 0,
		dir => $opts{dir} // PostgreSQL::Test::Utils::tempdir(_test_name() . '_sim'),
		args => [ @{ $opts{args} // [] } ],
		timeout => $opts{timeout} // 30,
		http => HTTP::Tiny->new(timeout => 30, keep_alive => 0),
		json => JSON::PP->new->utf8->canonical,
		owner => $$,
		tls => defined $opts{tls_cert} ? 1 : 0,
	}, $class;
	$self->{port_file} = "$self->{dir}/port";
	$self->{pid_file} = "$self->{dir}/ccpurge-sim.pid";
	$self->{log} = "$self->{dir}/sim.log";
	if ($self->{tls})
	{
		$self->{control_port_file} = "$self->{dir}/control_port";
		unshift @{ $self->{args} },
		  '--tls-cert', $opts{tls_cert},
		  '--tls-key', $opts{tls_key},
		  '--control-port-file', $self->{control_port_file};
	}

	$self->_launch;
	$self->config(%{ $opts{config} }) if $opts{config};
	return $self;
}

# _launch starts the binary on the wanted port (0: any free one) and
# waits for its port file and its answer.  Retries a few times when a fixed
# port is not free yet (a restart right after a stop).
sub _launch
{
	my ($self) = @_;
	my $bin = CcpTest::sim_binary();

	croak "simulator binary $bin is missing or not executable "
	  . "(build it with \"make -C test/sim\")"
	  unless -x $bin;

	my $deadline = time + $self->{timeout};
	for (;;)
	{
		unlink $self->{port_file};
		unlink $self->{control_port_file} if $self->{control_port_file};

		$self->{port} = $self->{want_port};
		delete $self->{control_port};
		my @cmd = ($bin, '--port', $self->{want_port}, '--port-file',
			$self->{port_file}, @{ $self->{args} });

		my $pid = fork();
		croak "could not fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			# Child: no END blocks or destructors may run here.
			open(STDIN, '<', '/dev/null');
			open(STDOUT, '>>', $self->{log}) or POSIX::_exit(126);
			open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
			exec { $cmd[0] } @cmd or POSIX::_exit(127);
		}

		$self->{pid} = $pid;
		$CcpTest::LIVE_SIMS{"$self"} = $self;
		weaken($CcpTest::LIVE_SIMS{"$self"});
		if (open my $fh, '>', $self->{pid_file})
		{
			print $fh "$pid\n";
			close $fh;
		}

		my $err = $self->_wait_ready($deadline);
		if (!defined $err)
		{
			Test::More::note("simulator pid $pid listening on port "
				  . $self->{port}
				  . ($self->{tls} ? " (https, control port $self->{control_port})" : ''));
			return;
		}

		# The process is gone or never answered: try again while time
		# remains (the port of a restart may still be held briefly).
		$self->_kill;
		if (time >= $deadline)
		{
			croak "simulator did not start: $err\n" . $self->log_tail(30);
		}
		usleep(200_000);
	}
}

# _wait_ready polls until the child wrote its port file (and control port
# file) and answers GET /_sim/state; returns undef when it does, else the
# reason it gave up.
sub _wait_ready
{
	my ($self, $deadline) = @_;

	while (time < $deadline)
	{
		my $r = waitpid($self->{pid}, WNOHANG);
		if ($r == $self->{pid})
		{
			my $status = $?;
			delete $self->{pid};
			delete $CcpTest::LIVE_SIMS{"$self"};
			return "simulator exited with status $status";
		}

		my $port = _read_port($self->{port_file});
		my $control = $self->{tls} ? _read_port($self->{control_port_file}) : 0;
		if ($port && (!$self->{tls} || $control))
		{
			$self->{port} = $port;
			$self->{control_port} = $control if $self->{tls};
			my $res = $self->{http}->request('GET',
				$self->control_url . '/_sim/state');
			return undef if $res->{success};
		}
		usleep(50_000);
	}
	return "no answer from the simulator within $self->{timeout} seconds";
}

# _read_port returns the port written in $file, or 0 while it is not there.
sub _read_port
{
	my ($file) = @_;
	open my $fh, '<', $file or return 0;
	my $line = <$fh>;
	close $fh;
	return (defined $line && $line =~ /^\s*(\d+)\s*$/ && $1 > 0) ? $1 : 0;
}

# _kill stops the child with SIGTERM, then SIGKILL after 5 seconds, and
# reaps it.  Does nothing in a forked copy of the test process.
sub _kill
{
	my ($self) = @_;
	my $pid = $self->{pid};
	return unless $pid && $self->{owner} == $$;

	CcpTest::stop_process($pid);
	delete $self->{pid};
	delete $CcpTest::LIVE_SIMS{"$self"};
	unlink $self->{pid_file};
	return;
}

# port returns the TCP port the simulator listens on.
sub port { return $_[0]->{port}; }

# url returns the base URL of the simulator, for server options:
# https://... for a simulator started with tls_cert and tls_key.
sub url
{
	my ($self) = @_;
	return ($self->{tls} ? 'https' : 'http') . '://127.0.0.1:' . $self->{port};
}

# tls tells whether the simulator serves HTTPS.
sub tls { return $_[0]->{tls}; }

# control_port returns the plain-HTTP control port of an HTTPS simulator,
# undef for a plain one.
sub control_port { return $_[0]->{control_port}; }

# control_url returns the base URL the control calls use: url for a plain
# simulator, http://127.0.0.1:CONTROL_PORT for an HTTPS one.
sub control_url
{
	my ($self) = @_;
	return $self->url unless $self->{tls};
	return 'http://127.0.0.1:' . $self->{control_port};
}

# pid returns the simulator's process id, undef once stopped.
sub pid { return $_[0]->{pid}; }

# log_file returns the path of the simulator's stdout/stderr log.
sub log_file { return $_[0]->{log}; }

# log_tail returns the last $n lines of the simulator's log.
sub log_tail
{
	my ($self, $n) = @_;
	$n //= 20;
	open my $fh, '<', $self->{log} or return '';
	my @lines = <$fh>;
	close $fh;
	splice(@lines, 0, @lines - $n) if @lines > $n;
	return join('', @lines);
}

# request sends one HTTP request to the simulator, at control_url.  $body
# may be a reference (encoded as JSON) or a string sent as it is.  On an
# HTTPS simulator only /_sim/ paths can be reached this way: the control
# port answers 404 to vendor paths, without counting them.  Returns
# ($status, $decoded, $raw): $decoded is the JSON-decoded body, or undef when
# the body is empty or not JSON.  $status is 599 for transport errors.
sub request
{
	my ($self, $method, $path, $body, %headers) = @_;
	my %req = (headers => { %headers });

	if (defined $body)
	{
		$req{content} = ref $body ? $self->{json}->encode($body) : $body;
		$req{headers}{'Content-Type'} //= 'application/json';
	}
	my $res = $self->{http}->request($method, $self->control_url . $path, \%req);
	my $raw = $res->{content} // '';
	my $decoded;
	$decoded = eval { $self->{json}->decode($raw) } if length $raw;
	return ($res->{status}, $decoded, $raw);
}

# _call does a control request, dies unless the answer is 2xx, and returns
# the decoded body (or the raw text when it is not JSON).
sub _call
{
	my ($self, $method, $path, $body) = @_;
	my ($status, $decoded, $raw) = $self->request($method, $path, $body);
	croak "simulator $method $path answered $status: $raw"
	  unless $status >= 200 && $status < 300;
	return defined $decoded ? $decoded : $raw;
}

# get does GET $path and returns the decoded JSON answer.
sub get
{
	my ($self, $path) = @_;
	return $self->_call('GET', $path);
}

# post does POST $path with a hash/array ref (sent as JSON) or a JSON
# string, and returns the decoded JSON answer.
sub post
{
	my ($self, $path, $body) = @_;
	return $self->_call('POST', $path, $body // {});
}

# state returns GET /_sim/state, decoded.
sub state
{
	my ($self) = @_;
	return $self->get('/_sim/state');
}

# reset forgets every fault, configuration change, token and counter.
sub reset
{
	my ($self) = @_;
	return $self->_call('POST', '/_sim/reset');
}

# fault posts %args as JSON to /_sim/fault.
sub fault
{
	my ($self, %args) = @_;
	return $self->post('/_sim/fault', \%args);
}

# config posts %args as JSON to /_sim/config.
sub config
{
	my ($self, %args) = @_;
	return $self->post('/_sim/config', \%args);
}

# wait_for polls GET /_sim/state until $cond->($state) returns true and
# returns that state; returns undef after $timeout seconds (default 60).
sub wait_for
{
	my ($self, $cond, $timeout) = @_;
	my $deadline = time + ($timeout // 60);
	for (;;)
	{
		my ($status, $state) = $self->request('GET', '/_sim/state');
		return $state
		  if $status == 200 && defined $state && $cond->($state);
		return undef if time >= $deadline;
		usleep(100_000);
	}
}

# deleted returns GET /_sim/deleted/$set: the items the simulator erased in
# one set (cec_customers, cec_routes, isales_caller_numbers,
# isales_calldata, ozonetel).
sub deleted
{
	my ($self, $set) = @_;
	return $self->get("/_sim/deleted/$set");
}

# deleted_with_prefix returns how many members of deleted set $set
# (default cec_customers) start with $prefix.
sub deleted_with_prefix
{
	my ($self, $prefix, $set) = @_;
	return scalar grep { index($_, $prefix) == 0 }
	  @{ $self->deleted($set // 'cec_customers') };
}

# request_log returns GET /_sim/log: the simulator's last $n requests.
sub request_log
{
	my ($self, $n) = @_;
	return $self->get('/_sim/log' . (defined $n ? "?n=$n" : ''));
}

# stop terminates the simulator (SIGTERM, then SIGKILL) and reaps it.
sub stop
{
	my ($self) = @_;
	$self->_kill;
	return;
}

# restart stops the simulator and starts it again on the same port; its
# state starts afresh.  The control port of an HTTPS simulator may change.
sub restart
{
	my ($self) = @_;
	$self->_kill;
	$self->{want_port} = $self->{port};
	$self->_launch;
	return $self;
}

sub DESTROY
{
	my ($self) = @_;
	local ($., $@, $!, $^E, $?);
	$self->_kill;
}

1;
