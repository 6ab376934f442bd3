--
-- 01_install_safety: the install and update scripts bind every function
-- and operator to pg_catalog (or the extension itself), so look-alikes that
-- a database owner plants in public before CREATE EXTENSION never run, not
-- even when a superuser later reads ccpurge's views.
--
-- It runs in a database of its own, where the look-alikes are planted
-- first; each one records its call in public.planted_calls.
--
\getenv sim_port CCPURGE_SIM_PORT
\set sim_url 'http://127.0.0.1:' :sim_port
CREATE DATABASE regress_ccpurge_planted;
\c regress_ccpurge_planted

CREATE TABLE public.planted_calls (fn text);
-- exact-type matches beat pg_catalog's polymorphic functions
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text
  LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.planted_calls VALUES ('unnest');
	RETURN QUERY SELECT pg_catalog.unnest($1);
END $$;
CREATE FUNCTION public.cardinality(text[]) RETURNS int
  LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.planted_calls VALUES ('cardinality');
	RETURN pg_catalog.cardinality($1);
END $$;
CREATE FUNCTION public.array_length(text[], int) RETURNS int
  LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.planted_calls VALUES ('array_length');
	RETURN pg_catalog.array_length($1, $2);
END $$;
CREATE FUNCTION public.textanycat(text, text[]) RETURNS text
  LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.planted_calls VALUES ('||');
	RETURN $1 OPERATOR(pg_catalog.||) $2::text;
END $$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text[], FUNCTION = public.textanycat);

-- 1.0 as it was: its view binds to the planted unnest
CREATE EXTENSION ccpurge VERSION '1.0';
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
       pg_describe_object(d.refclassid, d.refobjid, 0) AS depends_on
  FROM pg_depend d
  JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname IN ('unnest', 'cardinality', 'array_length')
 ORDER BY 1, 2;

-- the update rebuilds it on pg_catalog's
ALTER EXTENSION ccpurge UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'ccpurge';
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
       pg_describe_object(d.refclassid, d.refobjid, 0) AS depends_on
  FROM pg_depend d
  JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname IN ('unnest', 'cardinality', 'array_length')
 ORDER BY 1, 2;

-- a fresh install binds nothing outside pg_catalog and the extension
DROP EXTENSION ccpurge;
CREATE EXTENSION ccpurge;
SELECT extversion FROM pg_extension WHERE extname = 'ccpurge';
-- functions and operators every object of the extension (and the rewrite
-- rules, defaults and constraints of its tables) depends on
WITH ext_objects AS (
	SELECT d.classid, d.objid
	  FROM pg_depend d
	 WHERE d.refclassid = 'pg_extension'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ccpurge')
	   AND d.deptype = 'e'
), parts AS (
	SELECT classid, objid FROM ext_objects
	UNION
	SELECT d.classid, d.objid
	  FROM pg_depend d JOIN ext_objects e
	       ON d.refclassid = e.classid AND d.refobjid = e.objid
	 WHERE d.classid IN ('pg_rewrite'::regclass, 'pg_attrdef'::regclass,
						 'pg_constraint'::regclass, 'pg_class'::regclass)
), refs AS (
	SELECT d.refclassid, d.refobjid
	  FROM pg_depend d JOIN parts p ON d.classid = p.classid AND d.objid = p.objid
	 WHERE d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
)
SELECT pg_describe_object(r.refclassid, r.refobjid, 0) AS outside_dependency
  FROM refs r
  LEFT JOIN pg_proc p ON r.refclassid = 'pg_proc'::regclass AND p.oid = r.refobjid
  LEFT JOIN pg_operator o ON r.refclassid = 'pg_operator'::regclass AND o.oid = r.refobjid
 WHERE coalesce(p.pronamespace, o.oprnamespace) <> 'pg_catalog'::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
					WHERE e.classid = r.refclassid AND e.objid = r.refobjid
					  AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e');

-- a queued item, read through the view by a superuser: nothing planted runs
CREATE SERVER cec FOREIGN DATA WRAPPER ccpurge
  OPTIONS (vendor 'cec', url :'sim_url');
CREATE USER MAPPING FOR PUBLIC SERVER cec
  OPTIONS (app_key 'cec-app-key', app_secret 'cec-app-secret');
BEGIN;
SELECT ccpurge_enqueue('delete_customers', ARRAY['planted-1', 'planted-2']) > 0 AS queued;
SELECT item, state FROM ccpurge_status ORDER BY item;
ROLLBACK;
SELECT fn, count(*) FROM public.planted_calls GROUP BY fn ORDER BY fn;

\c contrib_regression
DROP DATABASE regress_ccpurge_planted;
