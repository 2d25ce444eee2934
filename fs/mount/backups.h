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
 *
 * Open archives are bounded (afs_backups_limit()): each holds a file
 * descriptor, libzip's copy of its central directory and its index.  Past
 * the bound the least recently looked up archives are closed, those that
 * are idle and whose job has never run or refused a command (a restore
 * running or finished keeps its archive open, its outcome readable), and
 * opened again, their index built anew, when next looked up.
 */
#ifndef AFS_BACKUPS_H
#define AFS_BACKUPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "backupname.h" /* AFS_BACKUPS_LATEST, and the rules of names and `latest` */
#include "err.h"

/* How many archives stay open at most by default (--max-open-archives). */
#define AFS_BACKUPS_MAX_OPEN 64

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
 * its error, logged once, until its file changes.  AFS_E_MFILE or
 * AFS_E_NFILE when no descriptor can be had for it (afs_backups_limit(),
 * or open(2) says so even after an idle archive was closed): for this call
 * only, logged once until an open succeeds.  The file opened is the one
 * the archive's entry then shows (afs_backups_stat(), `latest`): a file
 * replaced since the last scan is shown anew, its index built from it.
 * On error *out is NULL and nothing is held. */
enum afs_err afs_backups_view(struct afs_backups *b, const char *name, size_t len, struct afs_view **out);

/* Bounds the archives open at once: past max_open, the least recently
 * looked up idle ones are closed (now, and whenever one more is opened);
 * while max_fds are open (those in use, gone or being opened count) and
 * none can be closed, afs_backups_view() of an archive not open answers
 * AFS_E_MFILE.  0 counts as 1; max_open is cut to max_fds.  Until called:
 * AFS_BACKUPS_MAX_OPEN, and no max_fds. */
void afs_backups_limit(struct afs_backups *b, size_t max_open, size_t max_fds);

/* How many archives are open now (those gone but still used included). */
size_t afs_backups_open_count(struct afs_backups *b);

/* Gives back a reference afs_backups_view() handed out; closes the view
 * when its archive has left the directory and it is idle now.  NULL is a
 * no-op. */
void afs_backups_put(struct afs_backups *b, struct afs_view *v);

/* fn(ctx, name, len, v) is called when a lookup has opened archive
 * name[0..len) from another file than the one it was last opened from
 * (replaced under the same name), with v, the new file's view, held for
 * the call; and with v NULL when a scan (afs_backups_refresh()) finds
 * the archive gone from the directory or its file replaced.  No lock of b
 * is held: the FUSE layer drops what the kernel cached of the old file's
 * paths.  NULL turns it off. */
void afs_backups_on_replaced(struct afs_backups *b,
			     void (*fn)(void *ctx, const char *name, size_t len, struct afs_view *v), void *ctx);

/* How many archives are shown and their total size in bytes. */
void afs_backups_totals(struct afs_backups *b, uint64_t *count, uint64_t *bytes);

/* For tests: fn(ctx, name) is called whenever archive name is about to be
 * opened, on the opening thread, with no lock of b held (it may block, and
 * call into b for other archives).  NULL turns it off.  The daemon never
 * sets it. */
void afs_backups_on_open(struct afs_backups *b, void (*fn)(void *ctx, const char *name), void *ctx);

#endif
