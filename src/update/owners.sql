/* src/update/owners.sql: the end of every update script */

/*
 * Objects made by an update belong to whoever ran it, while a fresh install
 * gives every object to the extension's owner.  1.0 --> 1.1 left
 * ccpurge_erase owned by the updating role.  This file ends every update
 * script from 1.1 --> 1.2 on (see the Makefile), after the comments: it
 * gives each member object back to the extension's owner, so that an
 * updated installation is the same as a fresh one, owners included.  Tables go first: their sequences follow them.
 */
DO $$
DECLARE
	ext_oid oid;
	ext_owner oid;
	r record;
BEGIN
	SELECT e.oid, e.extowner INTO ext_oid, ext_owner
	  FROM pg_catalog.pg_extension AS e
	 WHERE e.extname OPERATOR(pg_catalog.=) 'ccpurge';

	FOR r IN
		SELECT c.oid::pg_catalog.regclass AS rel, c.relkind
		  FROM pg_catalog.pg_depend AS d
		  JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) d.objid
		 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND d.refobjid OPERATOR(pg_catalog.=) ext_oid
		   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'S']::"char"[])
		 ORDER BY c.relkind OPERATOR(pg_catalog.=) 'S', c.oid
	LOOP
		/* a sequence owned by a table changed owner with it */
		IF (SELECT c.relowner FROM pg_catalog.pg_class AS c
			 WHERE c.oid OPERATOR(pg_catalog.=) r.rel) OPERATOR(pg_catalog.<>) ext_owner THEN
			EXECUTE pg_catalog.format('ALTER %s %s OWNER TO %I',
				CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
					WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
				r.rel, pg_catalog.pg_get_userbyid(ext_owner));
		END IF;
	END LOOP;

	FOR r IN
		SELECT p.oid::pg_catalog.regprocedure AS fn
		  FROM pg_catalog.pg_depend AS d
		  JOIN pg_catalog.pg_proc AS p ON p.oid OPERATOR(pg_catalog.=) d.objid
		 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND d.refobjid OPERATOR(pg_catalog.=) ext_oid
		   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND p.proowner OPERATOR(pg_catalog.<>) ext_owner
	LOOP
		EXECUTE pg_catalog.format('ALTER ROUTINE %s OWNER TO %I',
			r.fn, pg_catalog.pg_get_userbyid(ext_owner));
	END LOOP;

	FOR r IN
		SELECT n.nspname
		  FROM pg_catalog.pg_depend AS d
		  JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) d.objid
		 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND d.refobjid OPERATOR(pg_catalog.=) ext_oid
		   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND n.nspowner OPERATOR(pg_catalog.<>) ext_owner
	LOOP
		EXECUTE pg_catalog.format('ALTER SCHEMA %I OWNER TO %I',
			r.nspname, pg_catalog.pg_get_userbyid(ext_owner));
	END LOOP;

	FOR r IN
		SELECT w.fdwname
		  FROM pg_catalog.pg_depend AS d
		  JOIN pg_catalog.pg_foreign_data_wrapper AS w ON w.oid OPERATOR(pg_catalog.=) d.objid
		 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND d.refobjid OPERATOR(pg_catalog.=) ext_oid
		   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND w.fdwowner OPERATOR(pg_catalog.<>) ext_owner
	LOOP
		EXECUTE pg_catalog.format('ALTER FOREIGN DATA WRAPPER %I OWNER TO %I',
			r.fdwname, pg_catalog.pg_get_userbyid(ext_owner));
	END LOOP;

	FOR r IN
		SELECT t.evtname
		  FROM pg_catalog.pg_depend AS d
		  JOIN pg_catalog.pg_event_trigger AS t ON t.oid OPERATOR(pg_catalog.=) d.objid
		 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND d.refobjid OPERATOR(pg_catalog.=) ext_oid
		   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND t.evtowner OPERATOR(pg_catalog.<>) ext_owner
	LOOP
		EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I OWNER TO %I',
			r.evtname, pg_catalog.pg_get_userbyid(ext_owner));
	END LOOP;
END
$$;
