/* src/sql/90_comments.sql: a COMMENT ON for every object (also run by the 1.0--1.1 update) */

COMMENT ON VIEW ccpurge_status IS
  'one row per queued item, visible to members of the role that queued it';
