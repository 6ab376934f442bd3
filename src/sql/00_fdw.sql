/* src/sql/00_fdw.sql: the foreign-data wrapper that holds ccpurge's configuration */

\echo Use "CREATE EXTENSION ccpurge" to load this file. \quit

CREATE FUNCTION ccpurge_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER ccpurge
  VALIDATOR ccpurge_fdw_validator;

/* Internal tables live in their own schema; functions go to @extschema@. */
CREATE SCHEMA ccpurge;
REVOKE ALL ON SCHEMA ccpurge FROM PUBLIC;
