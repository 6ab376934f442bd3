/*-------------------------------------------------------------------------
 *
 * module.c
 *	  Module load: the one file that knows every part.  _PG_init defines
 *	  the settings and, when preloaded, reserves shared memory, registers
 *	  the launcher (which starts a worker per database), the utility hooks
 *	  and the transaction callbacks.
 *
 * ccpurge must be loaded through shared_preload_libraries, because its token
 * cache, rate limiter and background worker live in shared memory.  When it
 * is loaded any other way the settings that can change at run time are
 * still defined (so that SET and SHOW work), but every SQL function refuses
 * to run; see ccp_require_preload().
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "miscadmin.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init defines the settings and, when preloaded, reserves shared
 * memory and registers the background worker, the utility hook and the
 * callbacks.
 */
void
_PG_init(void)
{
	ccp_define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;

	ccp_shmem_request();
	ccp_progress_register();
	ccp_breaker_register();
	ccp_launcher_register();
	ccp_launcher_register_hooks();
	ccp_dropdb_register();
	ccp_store_register_callbacks();
	ccp_trigger_register_callbacks();
	ccp_reqlog_register_callbacks();
}
