/* src/update/1.1--1.2.sql: what 1.2 changes in a 1.1 installation */

\echo Use "ALTER EXTENSION ccpurge UPDATE TO '1.2'" to load this file. \quit


/*
 * The key of a queued batch's attempt generation (the webhook's
 * Idempotency-Key) and its number of items, kept while the batch is
 * retried automatically.  Rows queued by 1.1 have none: their next claim
 * gives them one.
 */
ALTER TABLE ccpurge.queue ADD COLUMN batch_key text, ADD COLUMN batch_nitems integer;
CREATE INDEX queue_batch_key_idx ON ccpurge.queue (batch_key)
	WHERE state OPERATOR(pg_catalog.=) 'queued' AND batch_key IS NOT NULL;
