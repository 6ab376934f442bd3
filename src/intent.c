/*-------------------------------------------------------------------------
 *
 * intent.c
 *	  The intent file: a durable record of each synchronous request before
 *	  it leaves, one file per backend in $PGDATA/pg_ccpurge.
 *
 * A synchronous call's log rows are written in the caller's transaction
 * when its statement ends (reqlog.c), which a kill -9 or a crash in the
 * middle of the call never reaches.  So before a request leaves, its row
 * as it would read if no answer came (ok NULL, code "outcome_unknown"),
 * with a log_id reserved from the log's sequence, is appended to this
 * backend's intent file and synced.  The row written later carries the
 * same log_id, so the worker, which adopts the files of backends that are
 * gone (reqlog.c), inserts a file's rows with ON CONFLICT (log_id) DO
 * NOTHING: a request whose row was committed keeps its row, one whose row
 * was lost gets its "outcome unknown" row, and none gets two.
 *
 * When the answer comes, its row is appended too, without a sync (see
 * ccp_intent_end); of the records of one log_id the worker takes the
 * last.  Records are written by reqlog.c, in its file format (a record
 * and its receipts).  The file's records are settled when the transaction that made them
 * ends: committed, or handed to the worker in a synced spill file.  They
 * are then removed lazily, at the next append or when the backend exits,
 * after the WAL of the commit that holds their rows has been flushed, so
 * that a commit under synchronous_commit = off still never loses a
 * record.  File names carry the backend's PID and start time; a file whose
 * owner is no longer running, or was started before shared memory was
 * last made (a crash), is an orphan.
 *
 * Appending raises errors (nothing has been sent yet); everything that
 * runs at transaction end or process exit does not.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/procarray.h"

static int	ccp_intent_fd = -1;
static char ccp_intent_path[MAXPGPATH];
static off_t ccp_intent_size = 0;	/* bytes in the file */
static bool ccp_intent_unsettled = false;	/* records of an open transaction */
static bool ccp_intent_broken = false;	/* ends in a part of a record */
static XLogRecPtr ccp_intent_settle_lsn = InvalidXLogRecPtr;	/* flush
																 * before
																 * removing */

/*
 * ccp_intent_clear empties the file once its records are settled: the WAL
 * up to the commit that holds their rows is flushed first.  Returns false,
 * raising nothing, when the file could not be emptied.
 */
static bool
ccp_intent_clear(void)
{
	if (ccp_intent_fd < 0 || ccp_intent_size == 0 || ccp_intent_unsettled)
		return ccp_intent_size == 0;
	if (!XLogRecPtrIsInvalid(ccp_intent_settle_lsn))
		XLogFlush(ccp_intent_settle_lsn);
	ccp_intent_settle_lsn = InvalidXLogRecPtr;
	if (ftruncate(ccp_intent_fd, 0) != 0)
		return false;
	ccp_intent_size = 0;
	return true;
}

/*
 * ccp_intent_exit removes the file when the backend exits, if its records
 * are settled; otherwise it stays for the worker, which is woken.  Runs
 * after the transaction's abort: on_shmem_exit callbacks run after every
 * before_shmem_exit one, ShutdownPostgres' abort among them.
 */
static void
ccp_intent_exit(int code, Datum arg)
{
	if (ccp_intent_fd < 0)
		return;
	if (!ccp_intent_unsettled && ccp_intent_clear())
	{
		(void) close(ccp_intent_fd);
		(void) unlink(ccp_intent_path);
	}
	else
	{
		(void) close(ccp_intent_fd);
		ccp_wake_worker();
	}
	ccp_intent_fd = -1;
}

/*
 * ccp_intent_open creates this backend's file on first use, and syncs its
 * directory so that the file's name survives a crash too.
 */
static void
ccp_intent_open(void)
{
	char		dir[MAXPGPATH];
	int			dirfd;

	if (ccp_intent_fd >= 0)
		return;
	snprintf(dir, sizeof(dir), "%s/%s", DataDir, CCP_SPILL_DIR);
	(void) mkdir(dir, pg_dir_create_mode);
	snprintf(ccp_intent_path, sizeof(ccp_intent_path),
			 "%s/" CCP_INTENT_PREFIX "%u-%d-" INT64_FORMAT ".rec", dir,
			 MyDatabaseId, MyProcPid, (int64) MyStartTimestamp);
	ccp_intent_fd = open(ccp_intent_path, O_RDWR | O_CREAT | O_TRUNC | PG_BINARY,
						 pg_file_create_mode);
	if (ccp_intent_fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", ccp_intent_path)));
	ccp_intent_size = 0;
	dirfd = open(dir, O_RDONLY | PG_BINARY, 0);
	if (dirfd < 0 || pg_fsync(dirfd) != 0)
	{
		int			save_errno = errno;

		if (dirfd >= 0)
			(void) close(dirfd);
		(void) close(ccp_intent_fd);
		(void) unlink(ccp_intent_path);
		ccp_intent_fd = -1;
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync directory \"%s\": %m", dir)));
	}
	(void) close(dirfd);
	on_shmem_exit(ccp_intent_exit, (Datum) 0);
}

/*
 * ccp_intent_begin readies this backend's file for appending records
 * (creating it, or emptying it first if everything in it is settled) and
 * returns its descriptor, positioned at the end.  The caller writes its
 * records and then calls ccp_intent_end.  With sync (intents, before their
 * requests are sent) errors are raised; without (an answer, appended
 * while its intent is unsettled), nothing is raised and -1, which the
 * writes fail on, may be returned.
 */
int
ccp_intent_begin(bool sync)
{
	if (!sync && (ccp_intent_fd < 0 || !ccp_intent_unsettled))
		return -1;
	ccp_intent_open();
	if (ccp_intent_broken)
	{
		if (!sync)
			return -1;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not truncate file \"%s\"", ccp_intent_path),
				 errdetail("A record of a request sent earlier could not be completed or removed.")));
	}
	if (sync)
		(void) ccp_intent_clear();
	if (lseek(ccp_intent_fd, ccp_intent_size, SEEK_SET) != ccp_intent_size)
	{
		if (!sync)
			return -1;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in file \"%s\": %m", ccp_intent_path)));
	}
	return ccp_intent_fd;
}

/*
 * ccp_intent_end finishes what ccp_intent_begin started: written tells
 * whether every write succeeded.  With sync, the records are made durable
 * (synced, as the server's fsync setting says) or an error is raised, and
 * then nothing may be sent.  Without (an answer), nothing is synced: after
 * a crash of PostgreSQL alone the worker then writes the answer rather
 * than "outcome unknown"; after a crash of the machine the intent alone
 * may remain, which is still true.  An answer not written whole is cut off
 * again, leaving its intent.
 */
void
ccp_intent_end(bool written, bool sync)
{
	off_t		end;

	if (ccp_intent_fd < 0)
		return;
	end = written ? lseek(ccp_intent_fd, 0, SEEK_CUR) : -1;
	if (end < 0)
	{
		int			save_errno = errno;

		/* a part of a record would spoil the records after it */
		if (ftruncate(ccp_intent_fd, ccp_intent_size) != 0)
			ccp_intent_broken = true;
		if (!sync)
			return;
		errno = save_errno ? save_errno : ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", ccp_intent_path)));
	}
	ccp_intent_size = end;
	if (!sync)
		return;
	ccp_intent_unsettled = true;
	if (pg_fdatasync(ccp_intent_fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", ccp_intent_path)));
}

/*
 * ccp_intent_settle says that every record in the file is settled, once
 * the WAL up to lsn (the commit holding their rows; invalid when they went
 * to synced spill files) is flushed.  Called at the end of a top-level
 * transaction; raises nothing.
 */
void
ccp_intent_settle(XLogRecPtr lsn)
{
	if (!ccp_intent_unsettled)
		return;
	ccp_intent_unsettled = false;
	if (lsn > ccp_intent_settle_lsn)
		ccp_intent_settle_lsn = lsn;
}

/* ccp_intent_active tells whether the open transaction appended records. */
bool
ccp_intent_active(void)
{
	return ccp_intent_unsettled;
}

/*
 * ccp_intent_orphaned tells whether file name (in pg_ccpurge) is an intent
 * file of database dbid whose backend is gone: not running, or started
 * before shared memory was last made.  The caller holds no ProcArrayLock.
 */
bool
ccp_intent_orphaned(const char *name, Oid dbid)
{
	unsigned int fdb;
	int			pid;
	int64		started;
	int			used = 0;

	if (sscanf(name, CCP_INTENT_PREFIX "%u-%d-" INT64_FORMAT ".rec%n",
			   &fdb, &pid, &started, &used) != 3 ||
		used != (int) strlen(name) || fdb != dbid)
		return false;
	if (started < (int64) ccp_shared->started_at)
		return true;
	return BackendPidGetProc(pid) == NULL;
}
