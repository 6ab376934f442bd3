/* src/update/1.1--1.2.sql: what 1.2 changes in a 1.1 installation */

\echo Use "ALTER EXTENSION ccpurge UPDATE TO '1.2'" to load this file. \quit

