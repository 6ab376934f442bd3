--
-- 00_setup: install ccpurge and point one server per vendor at the simulator
--
-- The test harness starts the vendor simulator on 127.0.0.1 and passes its
-- port in CCPURGE_SIM_PORT.  Later tests use the servers cec, isales and
-- ozonetel made here.
--
\getenv sim_port CCPURGE_SIM_PORT
\set sim_url 'http://127.0.0.1:' :sim_port

CREATE EXTENSION ccpurge;

-- what the extension installs
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ccpurge')
 ORDER BY 1, 2;

-- nobody but the owner may call the erasure functions by default
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ccpurge')
 ORDER BY 1;

CREATE SERVER cec FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER cec
  OPTIONS (app_key 'cec-app-key', app_secret 'cec-app-secret');
CREATE SERVER isales FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'isales', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER isales
  OPTIONS (ak 'isales-ak', sk 'isales-sk');
CREATE SERVER ozonetel FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'ozonetel', url :'sim_url', rate_limit '100/second');
CREATE USER MAPPING FOR PUBLIC SERVER ozonetel
  OPTIONS (username 'acme', api_key 'oz-api-key');

-- a fresh simulator for this run
\! test/bin/simctl reset
