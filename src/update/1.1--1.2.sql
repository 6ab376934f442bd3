/* src/update/1.1--1.2.sql: what 1.2 changes in a 1.1 installation */

\echo Use "ALTER EXTENSION ccpurge UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.1 dumped only queued and sending rows, so a dump and restore lost the
 * failed ones, which are exactly those that still need action.
 */
SELECT pg_catalog.pg_extension_config_dump('ccpurge.queue',
	'WHERE state IN (''queued'', ''sending'', ''failed'')');

