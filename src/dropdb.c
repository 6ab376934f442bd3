/*-------------------------------------------------------------------------
 *
 * dropdb.c
 *	  DROP DATABASE of a database a worker serves: a utility hook that
 *	  asks the worker to leave first, so that the command does not fail on
 *	  the worker's session.
 *
 * The hook sets the hold_until of the database's slot in shared memory
 * and signals its worker, which exits; the launcher starts no other
 * before then (see launcher.c).  A DROP DATABASE that succeeds frees the
 * slot; one that fails clears the hold, so the worker comes back at once.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"

/* How long the worker stays away from a database being dropped. */
#define CCP_DROPDB_HOLD_MS	30000

static ProcessUtility_hook_type ccp_prev_utility_hook = NULL;

/*
 * ccp_dropdb_allowed tells whether the current user may drop database
 * dbname, so that a DROP DATABASE bound to fail does not disturb the
 * worker.  Runs before the command's own checks.
 */
static bool
ccp_dropdb_allowed(const char *dbname)
{
	Oid			dbid = get_database_oid(dbname, true);

	return OidIsValid(dbid) && pg_database_ownercheck(dbid, GetUserId());
}

/*
 * ccp_dropdb_utility_hook lets DROP DATABASE of the worker's database go
 * through: the worker is asked to leave before the command checks for
 * other sessions, and it waits before it connects again.
 */
static void
ccp_dropdb_utility_hook(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	int			index = -1;
	uint32		generation = 0;

	if (IsA(stmt, DropdbStmt) && ccp_shared != NULL &&
		!IsTransactionBlock() &&
		ccp_dropdb_allowed(((DropdbStmt *) stmt)->dbname))
	{
		Oid			dbid = get_database_oid(((DropdbStmt *) stmt)->dbname, true);
		int			pid;

		pid = ccp_launcher_hold(dbid,
								TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															CCP_DROPDB_HOLD_MS),
								&index, &generation);
		if (pid > 0)
			kill(pid, SIGTERM);
	}

	PG_TRY();
	{
		if (ccp_prev_utility_hook)
			ccp_prev_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		/* a DROP DATABASE that failed must not keep the worker away */
		if (index >= 0)
			ccp_launcher_unhold(index, generation, false);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* the database is gone: its slot is free for another */
	if (index >= 0)
		ccp_launcher_unhold(index, generation, true);
}

/*
 * ccp_dropdb_register installs the utility hook.  Called once from
 * _PG_init when the library is preloaded.
 */
void
ccp_dropdb_register(void)
{
	ccp_prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = ccp_dropdb_utility_hook;
}
