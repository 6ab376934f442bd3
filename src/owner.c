/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Running SQL on ccpurge's tables: finding a table of schema "ccpurge"
 *	  and its owner, statements whose plans are prepared once per process
 *	  and kept (CcpStmt), and running them with the rights of the tables'
 *	  owner, so that callers need no privilege on them and no object of the
 *	  caller's can take part.
 *
 * Every statement ccpurge runs is a CcpStmt, declared static by the file
 * that runs it: queue_store.c (the queue), reqlog.c (the request log) and
 * report.c (its NOTIFY).  A kept plan is analysed again by the plan cache
 * when a table changes, as when the extension is dropped and created anew,
 * or when the search path differs from the one it was prepared with.  The
 * worker runs as a superuser with search_path pinned to pg_catalog and
 * needs no change of identity (ccp_stmt_exec); a backend runs a statement
 * as the owner (ccp_stmt_exec_as).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

/*
 * ccp_owner_begin makes the current user owner, as a restricted operation,
 * with search_path pinned to pg_catalog so that no function or operator
 * the caller created can be picked up by SQL that runs with the owner's
 * rights.  Pair it with ccp_owner_end() on success; on an error,
 * ccp_owner_restore_user() in PG_FINALLY gives the identity back and the
 * (sub)transaction abort undoes the setting.
 */
void
ccp_owner_begin(Oid owner, CcpOwnerState *state)
{
	GetUserIdAndSecContext(&state->save_userid, &state->save_sec);
	SetUserIdAndSecContext(owner, state->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	state->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/* ccp_owner_restore_user gives back the identity saved by ccp_owner_begin. */
void
ccp_owner_restore_user(const CcpOwnerState *state)
{
	SetUserIdAndSecContext(state->save_userid, state->save_sec);
}

/* ccp_owner_end undoes ccp_owner_begin after a successful statement. */
void
ccp_owner_end(const CcpOwnerState *state)
{
	AtEOXact_GUC(false, state->guc_level);
	ccp_owner_restore_user(state);
}

/*
 * ccp_ccpurge_table finds table relname of schema "ccpurge" and sets *relid
 * to it and, when owner is not NULL, *owner to its owner.  Returns false,
 * setting nothing, when the schema or the table does not exist (the
 * extension is not installed, or is being dropped); the caller says what
 * that means.
 */
bool
ccp_ccpurge_table(const char *relname, Oid *relid, Oid *owner)
{
	Oid			nsp = get_namespace_oid("ccpurge", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(rel))
		return false;
	if (owner != NULL)
	{
		HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for relation %u", rel);
		*owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
		ReleaseSysCache(tp);
	}
	*relid = rel;
	return true;
}

/*
 * ccp_stmt_plan returns stmt's plan, prepared and kept on first use.  The
 * caller is connected to SPI.
 */
static SPIPlanPtr
ccp_stmt_plan(CcpStmt *stmt)
{
	Assert(stmt->nargs <= CCP_STMT_MAX_ARGS);
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->types,
											  stmt->generic ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (plan == NULL)
			elog(ERROR, "could not prepare a ccpurge statement: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the plan of a ccpurge statement");
		stmt->plan = plan;
	}
	return stmt->plan;
}

/*
 * ccp_stmt_open opens a cursor on stmt, a query, with values and nulls as
 * ccp_stmt_exec takes them, for a query of which the caller takes only as
 * many rows as it needs: a FOR UPDATE locks each row as it is fetched.
 * The caller fetches with SPI_cursor_fetch and closes the portal; it is
 * connected to SPI, in a transaction with an active snapshot.
 */
Portal
ccp_stmt_open(CcpStmt *stmt, Datum *values, const char *nulls)
{
	Portal		portal = SPI_cursor_open(NULL, ccp_stmt_plan(stmt), values,
										 nulls, false);

	if (portal == NULL)
		elog(ERROR, "could not open a cursor for ccpurge statement \"%s\": %s",
			 stmt->sql, SPI_result_code_string(SPI_result));
	return portal;
}

/*
 * ccp_stmt_exec runs stmt with values and nulls (SPI's conventions: nulls
 * NULL for none, else ' ' or 'n' per argument) and returns the number of
 * rows it processed; its rows are in SPI_tuptable.  The plan is prepared
 * and kept on first use, and run with a new snapshot, as any statement
 * that is not read-only.  An answer other than expect (SPI_OK_SELECT, ...)
 * is an ERROR.  The caller is connected to SPI, in a transaction with an
 * active snapshot, with the rights stmt needs.
 */
uint64
ccp_stmt_exec(CcpStmt *stmt, Datum *values, const char *nulls, int expect)
{
	int			ret;

	ret = SPI_execute_plan(ccp_stmt_plan(stmt), values, nulls, false, 0);
	if (ret != expect)
		elog(ERROR, "unexpected SPI result %s for ccpurge statement \"%s\"",
			 SPI_result_code_string(ret), stmt->sql);
	return SPI_processed;
}

/*
 * ccp_owner_call runs fn(arg) with the rights of owner, the owner of
 * ccpurge's tables (see ccp_owner_begin), for work of several statements
 * (a cursor, a read and a write) by a backend whose user has no privilege
 * on them.  The caller's identity is back when it returns or raises an
 * error; SPI is the caller's business.
 */
void
ccp_owner_call(Oid owner, void (*fn) (void *arg), void *arg)
{
	CcpOwnerState state;

	ccp_owner_begin(owner, &state);
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		ccp_owner_restore_user(&state);
	}
	PG_END_TRY();
	ccp_owner_end(&state);
}

/* The arguments of one ccp_stmt_exec, for ccp_owner_call. */
typedef struct CcpStmtCall
{
	CcpStmt    *stmt;
	Datum	   *values;
	const char *nulls;
	int			expect;
	uint64		processed;
} CcpStmtCall;

/* ccp_stmt_call runs a CcpStmtCall; see ccp_stmt_exec_as. */
static void
ccp_stmt_call(void *arg)
{
	CcpStmtCall *call = arg;

	call->processed = ccp_stmt_exec(call->stmt, call->values, call->nulls,
									call->expect);
}

/*
 * ccp_stmt_exec_as is ccp_stmt_exec with the rights of owner, the owner of
 * ccpurge's tables (see ccp_owner_call).
 */
uint64
ccp_stmt_exec_as(Oid owner, CcpStmt *stmt, Datum *values, const char *nulls,
				 int expect)
{
	CcpStmtCall call = {stmt, values, nulls, expect, 0};

	ccp_owner_call(owner, ccp_stmt_call, &call);
	return call.processed;
}

/*
 * ccp_stmt_columns_alloc allocates, in the current memory context, the
 * value and null vectors of n rows for each argument of stmt, a statement
 * that takes its rows as parallel arrays (unnest); nulls start false.
 */
void
ccp_stmt_columns_alloc(const CcpStmt *stmt, int n, Datum **cols,
					   bool **colnulls)
{
	for (int c = 0; c < stmt->nargs; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		colnulls[c] = palloc0(sizeof(bool) * n);
	}
}

/*
 * ccp_stmt_columns_args makes the column vectors of n rows into the
 * one-dimensional array arguments of stmt, one per argument, each of the
 * element type of the argument's array type.
 */
void
ccp_stmt_columns_args(const CcpStmt *stmt, int n, Datum **cols,
					  bool **colnulls, Datum *args)
{
	for (int c = 0; c < stmt->nargs; c++)
	{
		int			dims[1] = {n};
		int			lbs[1] = {1};
		Oid			elemtype = get_element_type(stmt->types[c]);
		int16		typlen;
		bool		typbyval;
		char		typalign;

		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		args[c] = PointerGetDatum(construct_md_array(cols[c], colnulls[c], 1,
													 dims, lbs, elemtype,
													 typlen, typbyval, typalign));
	}
}

/*
 * ccp_subxact_call runs fn(arg) in a subtransaction of the current
 * transaction, for work whose failure its caller reports its own way.
 * Returns true when fn ends without an error; otherwise the
 * subtransaction is rolled back, *message (when message is not NULL) is
 * set to the error's message, allocated in the caller's memory context,
 * and it returns false.  The caller's memory context and resource owner
 * are current again either way.
 */
bool
ccp_subxact_call(void (*fn) (void *arg), void *arg, char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (message != NULL)
			*message = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
