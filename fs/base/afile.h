/* SPDX-License-Identifier: MIT */
/* Files published atomically, on the model of git's lockfile API, and the
 * one loop that writes a whole buffer.
 *
 * The calling sequence:
 *
 *   struct afs_afile f;
 *   afs_afile_hold(&f, dfd, "name");      a temporary file in dfd, mode 0600
 *   afs_write_all(f.fd, buf, len) ...     write; fchmod/fchown/futimens f.fd
 *   afs_afile_commit(&f);                 fsync, rename over "name", fsync dfd
 *   (or afs_afile_rollback(&f): nothing is left behind)
 *
 * The temporary file is unnamed (O_TMPFILE) until commit, so a process
 * killed while writing leaves nothing; on a file system without O_TMPFILE
 * it is ".name.archfs-PID-N" beside the target, removed on rollback.  It is
 * 0600 from the moment it exists: a caller wanting another mode sets it on
 * f.fd before committing.  Commit and rollback close f.fd and whatever
 * directory hold_path opened; after either, f holds nothing.  A failed
 * commit has rolled back, errno saved.  f is not shared between threads.
 */
#ifndef AFS_AFILE_H
#define AFS_AFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include "err.h"

struct afs_afile {
	int fd;                   /* the temporary file, open for writing */
	int dfd;                  /* the directory it goes into */
	bool own_dfd;             /* dfd was opened by afs_afile_hold_path() */
	bool named;               /* tmp exists in dfd (no O_TMPFILE, or after commit's link) */
	char tmp[NAME_MAX + 1];
	char name[NAME_MAX + 1];  /* the target's name in dfd */
};

/* Creates the temporary file for name (a single path component) in the
 * directory open at dfd, which must stay open until commit or rollback.
 * AFS_E_NOSPC, AFS_E_IO (errno kept) or AFS_E_INVAL (name too long). */
enum afs_err afs_afile_hold(struct afs_afile *f, int dfd, const char *name);

/* The same for a path: its directory is opened here (and closed by commit
 * or rollback); the last component is the name. */
enum afs_err afs_afile_hold_path(struct afs_afile *f, const char *path);

/* fsyncs the file, renames it over the target and fsyncs the directory. */
enum afs_err afs_afile_commit(struct afs_afile *f);

/* Closes and removes the temporary file; a no-op on a file not held. */
void afs_afile_rollback(struct afs_afile *f);

/* Writes all len bytes, retrying short writes and EINTR.  AFS_E_NOSPC or
 * AFS_E_IO with errno kept. */
enum afs_err afs_write_all(int fd, const void *buf, size_t len);

/* fsyncs the file at path and its directory: for a file that another
 * library has already renamed into place (libzip's writer). */
enum afs_err afs_fsync_path(const char *path);

#endif
