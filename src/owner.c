/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Running SQL on ccpurge's tables with the rights of their owner, so
 *	  that callers need no privilege on them and no object of the caller's
 *	  can take part.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/syscache.h"
#include "utils/guc.h"

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

/* ccp_rel_owner returns the owner of relation relid, which must exist. */
Oid
ccp_rel_owner(Oid relid)
{
	HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	return owner;
}
