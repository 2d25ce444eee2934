/* SPDX-License-Identifier: MIT */
/* One archive as a mount shows it: the open archive, its index, the seek
 * points of its deflated entries and the restore job behind its control
 * files.  A single-archive mount has one; a backups directory has one per
 * archive, opened when first used.
 *
 * Thread safety: read-only after afs_view_open() returns (the job and the
 * seek registry lock themselves), so any thread may use a view; but refs,
 * which the backups directory that made it counts under its own lock.
 */
#ifndef AFS_VIEW_H
#define AFS_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

struct afs_archive;
struct afs_index;
struct afs_job;
struct afs_seekreg;
struct afs_target;

struct afs_view {
	struct afs_archive *archive;
	struct afs_index *index;
	struct afs_seekreg *seek; /* draws on the mount's seek-point budget */
	struct afs_job *job;      /* the restore job of .control and the status files */
	/* a backups directory's bookkeeping (backups.c, under its lock) */
	unsigned refs;            /* its users: lookups under way, open files */
	bool gone;                /* no longer reachable by name: closed once unused */
	struct afs_view *next;    /* in the directory's list of views gone */
};

/* Opens the archive at path (absolute: the daemon leaves the current
 * directory), builds its index and its job restoring into t, with a
 * warning in the job for each entry a control file shadows or nothing
 * here can decode (vfiles.h).  The seek
 * registry shares pool's cap; the job's log lines also go to on_log (may
 * be NULL).  t and pool are borrowed and must outlive the view.  On error
 * *out is NULL and msg holds a one-line reason without the path. */
enum afs_err afs_view_open(const char *path, const struct afs_target *t, struct afs_seekreg *pool,
			   void (*on_log)(void *ctx, const char *line), struct afs_view **out, char *msg,
			   size_t msglen);

/* Waits for a restore past its commit to end and frees everything; NULL is
 * a no-op.  No stream of the view may remain open. */
void afs_view_free(struct afs_view *v);

#endif
