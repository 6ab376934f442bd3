/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The checks every SQL entry point makes before it acts: the library is
 *	  preloaded, and the requests it would send can be recorded.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/xact.h"
#include "access/xlog.h"

/*
 * ccp_require_preload raises an error unless the library was loaded through
 * shared_preload_libraries.  Every SQL entry point calls it first.
 */
void
ccp_require_preload(void)
{
	if (!ccp_shmem_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ccpurge must be loaded via \"shared_preload_libraries\""),
				 errdetail("The shared token cache, rate limiter and queue worker live in shared memory."),
				 errhint("Add ccpurge to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

/*
 * ccp_require_writable raises an error, before anything is sent, when the
 * requests of the calling function could not be recorded: on a hot standby
 * and in a read-only transaction.  Otherwise a vendor would erase first and
 * the call would fail after, on the request log's INSERT, leaving no
 * record (and on a standby an Ozonetel token request would kill the
 * primary's token).
 */
void
ccp_require_writable(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot erase or queue erasures during recovery"),
				 errdetail("Every request ccpurge sends must be recorded, and a hot standby cannot write."),
				 errhint("Run it on the primary.")));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot erase or queue erasures in a read-only transaction"),
				 errdetail("Every request ccpurge sends must be recorded, and a read-only transaction cannot write.")));
}
