/* SPDX-License-Identifier: MIT */
/* The pre-restore snapshot (docs/restore.md section 3): the current target
 * written as an archive in the application's own format, so that mounting
 * it and running `restore` undoes the restore.  It holds manifest.json, the
 * live database as the backend dumps it, and the upload files the merge
 * would overwrite; its manifest lists the upload paths the merge would
 * create, which restoring the snapshot removes. */
#ifndef AFS_SNAPSHOT_H
#define AFS_SNAPSHOT_H

#include "err.h"

struct afs_job;
struct afs_db_backend;
struct afs_uplan;

/* Writes the snapshot of the job's target: the database through be (NULL:
 * no database step) with its verify state, the files plan would replace
 * (NULL: no uploads step).  The archive appears at its final path only
 * when complete and fsync'd; *path receives that path (malloc'd).  The
 * directory is the target's --snapshot-dir, else the database's directory,
 * else the uploads directory's parent; the name is
 * archfs_pre_restore_YYYYMMDD_HHMMSS.zip (local time, _2, _3... on a clash). */
enum afs_err afs_snapshot_write(struct afs_job *j, const struct afs_db_backend *be, void *be_state,
				const struct afs_uplan *plan, char **path);

#endif
