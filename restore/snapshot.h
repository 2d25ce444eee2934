/* SPDX-License-Identifier: MIT */
/* The pre-restore snapshot (docs/restore.md section 3): the current target
 * written as an archive in the application's own format, so that mounting
 * it and running `restore` undoes the restore.  It holds manifest.json, the
 * live database as the backend dumps it, and the upload files the merge
 * would overwrite; its manifest lists the upload paths the merge would
 * create, which restoring the snapshot removes. */
#ifndef AFS_SNAPSHOT_H
#define AFS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

struct afs_archive;
struct afs_job;
struct afs_manifest;
struct afs_target;
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

/* Whether the archive at path (a: that file, as opened; m: its manifest)
 * is a snapshot archfs wrote for target t, which alone makes a restore of
 * it remove the upload paths of m->created.  Any archive can carry
 * "archfs": {"created": [...]}, so it must be all of:
 * - a regular file named archfs_pre_restore_*.zip in t's snapshot
 *   directory (the one afs_snapshot_write() uses), still the size and
 *   mtime it had when opened;
 * - writable by its owner only, that owner being root, archfs's effective
 *   user or the owner of t's database file (a snapshot takes the database
 *   file's owner);
 * - with a manifest whose "archfs": {"uploads"} is t's uploads root.
 * Who can place such a file is root, or the database file's owner where
 * the snapshot directory is theirs: the application's user, who may
 * change that uploads tree anyway; the paths themselves stay below the
 * root (afs_uploads_remove()).  When false, why holds the first reason. */
bool afs_snapshot_is_own(const struct afs_target *t, const char *path, const struct afs_archive *a,
			 const struct afs_manifest *m, char *why, size_t whylen);

#endif
