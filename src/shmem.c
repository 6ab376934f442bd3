/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of ccpurge: the token cache slots, the rate limiter
 *	  slots, their locks and condition variables, the database slots of
 *	  the launcher and its workers, and the request-log rows that
 *	  rolled-back transactions hand to the worker.
 *
 * The layout is fixed at postmaster start from ccpurge.max_servers and
 * ccpurge.max_databases.  The users of each part (auth.c, ratelimit.c,
 * reqlog.c, launcher.c, worker.c, dropdb.c)
 * own its semantics; this file only reserves, initialises and hands out
 * the memory.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

CcpShared  *ccp_shared = NULL;

static shmem_request_hook_type ccp_prev_shmem_request_hook = NULL;
static shmem_startup_hook_type ccp_prev_shmem_startup_hook = NULL;

/* ccp_shmem_size computes the bytes needed for the shared state. */
static Size
ccp_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(CcpShared));

	size = add_size(size, mul_size(ccp_max_servers, sizeof(CcpTokenSlot)));
	size = add_size(size, mul_size(ccp_max_servers, sizeof(CcpRateSlot)));
	size = add_size(size, mul_size(ccp_max_databases, sizeof(CcpDbWorker)));
	return size;
}

/* ccp_shmem_request_hook asks the postmaster for memory and locks. */
static void
ccp_shmem_request_hook(void)
{
	if (ccp_prev_shmem_request_hook)
		ccp_prev_shmem_request_hook();

	RequestAddinShmemSpace(ccp_shmem_size());
	RequestNamedLWLockTranche("ccpurge", 4);
}

/*
 * ccp_shmem_startup_hook creates or attaches the shared state.  Runs in the
 * postmaster and, under EXEC_BACKEND, in every backend.
 */
static void
ccp_shmem_startup_hook(void)
{
	bool		found;

	if (ccp_prev_shmem_startup_hook)
		ccp_prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ccp_shared = ShmemInitStruct("ccpurge", ccp_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("ccpurge");
		char	   *p = (char *) ccp_shared;

		memset(ccp_shared, 0, ccp_shmem_size());
		ccp_shared->token_lock = &locks[0].lock;
		ccp_shared->rate_lock = &locks[1].lock;
		ccp_shared->worker_lock = &locks[2].lock;
		ccp_shared->log_lock = &locks[3].lock;
		ConditionVariableInit(&ccp_shared->token_cv);
		ConditionVariableInit(&ccp_shared->rate_cv);
		pg_atomic_init_u64(&ccp_shared->digest_generation, 0);
		ccp_shared->nslots = ccp_max_servers;
		ccp_shared->started_at = GetCurrentTimestamp();
		p += MAXALIGN(sizeof(CcpShared));
		ccp_shared->tokens = (CcpTokenSlot *) p;
		p += mul_size(ccp_max_servers, sizeof(CcpTokenSlot));
		ccp_shared->rates = (CcpRateSlot *) p;
		p += mul_size(ccp_max_servers, sizeof(CcpRateSlot));
		ccp_shared->ndbs = ccp_max_databases;
		ccp_shared->dbs = (CcpDbWorker *) p;
		/* auth.c and ratelimit.c read what survived at their first use */
		ccp_shared->started_at = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ccp_shmem_request installs the hooks; called from _PG_init. */
void
ccp_shmem_request(void)
{
	ccp_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ccp_shmem_request_hook;
	ccp_prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ccp_shmem_startup_hook;
}

/* ccp_shmem_ready tells whether the shared state exists in this process. */
bool
ccp_shmem_ready(void)
{
	return ccp_shared != NULL;
}

/*
 * ccp_shmem_strcpy copies the NUL-terminated src into dst, a buffer of size
 * bytes (size > 0), cutting it if needed at a character boundary of the
 * database encoding, so that a fixed-size shared buffer never holds half a
 * character that would later be stored.  src must be valid in that
 * encoding.  Neither allocates nor raises errors, so it may run in
 * transaction callbacks.
 */
void
ccp_shmem_strcpy(char *dst, const char *src, int size)
{
	int			len = strlen(src);

	if (len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * ccp_state_write replaces the file $PGDATA/pg_ccpurge/name with a header
 * (magic, count) and count records of size bytes from recs, through a
 * temporary file and a rename, synced when durable.  The directory is
 * made mode 0700 and the file 0600: only the server's owner reads them.
 * Returns false, with errno set, when it could not; never raises.
 */
bool
ccp_state_write(const char *name, uint32 magic, const void *recs,
				uint32 count, size_t size, bool durable)
{
	char		path[MAXPGPATH];
	char		tmp[MAXPGPATH];
	uint32		header[2] = {magic, count};
	size_t		len = size * count;
	int			fd;
	bool		ok;

	/* its own directory: intent and spill files share pg_ccpurge */
	(void) mkdir(CCP_SPILL_DIR, S_IRWXU);
	(void) mkdir(CCP_STATE_DIR, S_IRWXU);
	snprintf(path, sizeof(path), "%s/%s", CCP_STATE_DIR, name);
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, MyProcPid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
		return false;
	ok = write(fd, header, sizeof(header)) == sizeof(header) &&
		(len == 0 || write(fd, recs, len) == len) &&
		(!durable || pg_fsync(fd) == 0);
	ok = (close(fd) == 0) && ok;
	if (ok)
		ok = durable ? durable_rename(tmp, path, LOG) == 0 :
			rename(tmp, path) == 0;
	if (!ok)
	{
		int			save_errno = errno;

		(void) unlink(tmp);
		errno = save_errno;
	}
	return ok;
}

/*
 * ccp_state_open opens $PGDATA/pg_ccpurge/name for ccp_state_write's
 * records and returns its descriptor, positioned at the first record, with
 * their number in *count; or -1 when the file is missing (errno ENOENT)
 * or not one with magic.  The caller reads the records and closes it.
 */
int
ccp_state_open(const char *name, uint32 magic, uint32 *count)
{
	char		path[MAXPGPATH];
	uint32		header[2];
	int			fd;

	snprintf(path, sizeof(path), "%s/%s", CCP_STATE_DIR, name);
	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return -1;
	if (read(fd, header, sizeof(header)) != sizeof(header) ||
		header[0] != magic)
	{
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*count = header[1];
	return fd;
}
