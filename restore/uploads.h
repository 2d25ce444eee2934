/* SPDX-License-Identifier: MIT */
/* Merging the archive's uploads/ tree into the live uploads directory,
 * safely (docs/restore.md section 5):
 * - files absent from the archive are kept;
 * - each file is written unnamed (O_TMPFILE) in its directory, fsync'd,
 *   then linked under a temporary name and renamed into place, so no reader
 *   ever sees half a file and a kill -9 leaves no half-written one (file
 *   systems without O_TMPFILE get a named temporary file from the start);
 * - no symlink in the destination is followed: the tree is walked with
 *   openat(O_NOFOLLOW) from the uploads root, and a symlink, device or fifo
 *   where the merge would write is refused at planning time;
 * - modes lose setuid, setgid, sticky and world-write; mtimes come from the
 *   archive; a replaced file keeps its owner, a new file or directory
 *   takes the owner and group of the directory it is made in (when run as
 *   root).
 * Planning only reads; the plan is what verify checks and what the
 * snapshot saves.  The plan remembers which file each replaced path was
 * (device, inode, size) and which directory the root was: the snapshot
 * reads a live file only through afs_uploads_open_replaced(), which walks
 * the same way and refuses a file that is no longer that one, so an upload
 * (or a directory above it) swapped for a symlink between verify and the
 * snapshot cannot bring another file's bytes into the snapshot.
 */
#ifndef AFS_UPLOADS_H
#define AFS_UPLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct afs_archive;
struct afs_index;
struct afs_uplan;

/* Plans the merge of every entry below "uploads/" of ix into the live tree
 * at root (which must exist).  Fails, with the offending path in msg, on a
 * symlink, device or fifo entry in the archive, and on a live path that is
 * a symlink, or a file where a directory is needed or the reverse. */
enum afs_err afs_uploads_plan(struct afs_archive *a, const struct afs_index *ix, const char *root,
			      struct afs_uplan **out, char *msg, size_t msglen);

void afs_uploads_plan_free(struct afs_uplan *p);

/* Bytes the merge writes. */
uint64_t afs_uploads_bytes(const struct afs_uplan *p);

/* The live files the merge would replace, by index i < count: their path
 * below root, and the mode, mtime and size planning saw.  The snapshot
 * saves these. */
size_t afs_uploads_replaced_count(const struct afs_uplan *p);
const char *afs_uploads_replaced(const struct afs_uplan *p, size_t i, uint32_t *mode, int64_t *mtime,
				 uint64_t *size);

/* Opens replaced file i for reading, safely against a tree the
 * application's user may change meanwhile: from the root planning saw,
 * each directory with openat(O_NOFOLLOW), the file with O_RDONLY |
 * O_NOFOLLOW | O_NONBLOCK; fstat must then find the regular file planning
 * saw (same device, inode and size).  *fd gets the descriptor (the caller
 * closes it; -1 on error).  AFS_E_CONFLICT with "uploads/PATH changed since
 * verify: refused (why)" in msg when the path is gone, is or passes
 * through a symlink, or names another file; AFS_E_IO for other errors. */
enum afs_err afs_uploads_open_replaced(const struct afs_uplan *p, size_t i, int *fd, char *msg, size_t msglen);

/* The paths below root the merge would create (directories and files, in
 * lexical order, parents first): what undoing the merge removes. */
size_t afs_uploads_created_count(const struct afs_uplan *p);
const char *afs_uploads_created(const struct afs_uplan *p, size_t i);

/* Carries out the plan with the entries of a/ix.  progress(ctx, bytes) is
 * called as bytes are written.  Stops at the first error (msg says where);
 * files merged until then stay merged, and no temporary file is left.
 * AFS_E_CONFLICT, before anything is written, when the root is no longer
 * the directory planning saw. */
enum afs_err afs_uploads_merge(const struct afs_uplan *p, struct afs_archive *a, const struct afs_index *ix,
			       void (*progress)(void *ctx, uint64_t bytes), void *ctx, char *msg, size_t msglen);

/* Removes paths below root (files, and directories when empty), deepest
 * first, never following a symlink; a path already gone, or a directory
 * that still holds other files, is skipped.  A path that could leave the
 * root (absolute, or with an empty, "." or ".." component; see
 * afs_index_check_name) is not touched and counts as not removed.
 * Returns the number of paths it could not remove in *left. */
enum afs_err afs_uploads_remove(const char *root, const char *const *paths, size_t n, size_t *left);

#endif
