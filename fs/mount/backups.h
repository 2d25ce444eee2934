/* SPDX-License-Identifier: MIT */
/* A backups directory as a mount shows it (docs/architecture.md, Directory
 * mode): one directory per *.zip archive in it, named without ".zip",
 * archives that appear later shown without a remount, and `latest` naming
 * the newest by the timestamp in its name (..._YYYYMMDD_HHMMSS.zip; those
 * with one outrank those without), else by mtime.  Archives are opened when first used, so listing the directory
 * costs a readdir and a stat per archive, and one bad archive does not
 * keep the others from being mounted.
 *
 * Thread safety: every function but afs_backups_free() may be called from
 * any thread; a mutex guards the list and is held only while the list is
 * read or changed (a scan is such a change).  Opening an archive and
 * building its index run outside it, under that archive's own "opening"
 * mark: callers for the same archive wait for that open and share its
 * view, while listings, stats, `latest` and every other archive are served
 * meanwhile.
 *
 * A view handed out is a reference: it stays valid, even when its archive
 * leaves the directory, until afs_backups_put().  An archive that has left
 * the directory (or whose file was replaced) is closed, freeing its file's
 * space, as soon as it is idle: when its last reference is put, or at the
 * first refresh after its job's running command (a restore) ends.
 */
#ifndef AFS_BACKUPS_H
#define AFS_BACKUPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "err.h"

/* The link to the newest archive, beside the archives' directories. */
#define AFS_BACKUPS_LATEST "latest"

struct afs_backups;
struct afs_seekreg;
struct afs_target;
struct afs_view;

/* Scans dir (an absolute path) once.  Views restore into t, draw on pool's
 * seek-point cap and send job log lines to on_log; t and pool are borrowed.
 * On error (dir unreadable) *out is NULL and msg holds a one-line reason. */
enum afs_err afs_backups_new(const char *dir, const struct afs_target *t, struct afs_seekreg *pool,
			     void (*on_log)(void *ctx, const char *line), struct afs_backups **out, char *msg,
			     size_t msglen);

/* Frees every view (waiting for restores past their commit), references
 * or not; NULL is a no-op.  No other call into b may be running or follow. */
void afs_backups_free(struct afs_backups *b);

/* Scans again when the directory has changed since the last scan, and
 * closes the views of archives gone that are idle now. */
void afs_backups_refresh(struct afs_backups *b);

/* Calls fn for every archive shown, in name order, with its name and the
 * stat of its file, holding the lock: fn must not call into b. */
void afs_backups_each(struct afs_backups *b, int (*fn)(void *ctx, const char *name, const struct stat *st),
		      void *ctx);

/* The name of the newest archive into buf; AFS_E_NOENT when there is none. */
enum afs_err afs_backups_latest(struct afs_backups *b, char *buf, size_t len);

/* The stat of the file of archive name[0..len); AFS_E_NOENT when none. */
enum afs_err afs_backups_stat(struct afs_backups *b, const char *name, size_t len, struct stat *st);

/* The view of archive name[0..len), opened on first use (by the first
 * caller; others asking for it meanwhile wait for that open), with a
 * reference the caller gives back with afs_backups_put().  AFS_E_NOENT
 * when there is no such archive; an archive that cannot be opened gives
 * its error, logged once, until its file changes.  On error *out is NULL
 * and nothing is held. */
enum afs_err afs_backups_view(struct afs_backups *b, const char *name, size_t len, struct afs_view **out);

/* Gives back a reference afs_backups_view() handed out; closes the view
 * when its archive has left the directory and it is idle now.  NULL is a
 * no-op. */
void afs_backups_put(struct afs_backups *b, struct afs_view *v);

/* How many archives are shown and their total size in bytes. */
void afs_backups_totals(struct afs_backups *b, uint64_t *count, uint64_t *bytes);

/* For tests: fn(ctx, name) is called whenever archive name is about to be
 * opened, on the opening thread, with no lock of b held (it may block, and
 * call into b for other archives).  NULL turns it off.  The daemon never
 * sets it. */
void afs_backups_on_open(struct afs_backups *b, void (*fn)(void *ctx, const char *name), void *ctx);

#endif
