/* SPDX-License-Identifier: MIT */
/* The names of a backups directory: which of its files are archives, the
 * name each is shown by (without ".zip"), and which is the newest, the one
 * `latest` names.  Pure rules, no I/O: the mount's backups directory
 * (fs/mount/backups.c) and `archfs diff` (fs/cli/diff.c) both follow them.
 */
#ifndef AFS_BACKUPNAME_H
#define AFS_BACKUPNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The name that stands for the newest archive, beside the archives' names. */
#define AFS_BACKUPS_LATEST "latest"

enum afs_backupname_kind {
	AFS_BACKUPNAME_NONE,    /* not an archive: hidden (a leading '.') or not NAME.zip */
	AFS_BACKUPNAME_ARCHIVE, /* an archive shown as NAME */
	AFS_BACKUPNAME_LATEST,  /* latest.zip: not shown, `latest` names the newest */
};

/* What the file named file (a directory entry's name, no '/') is in a
 * backups directory; for an archive, *len is the length of the name it is
 * shown by (file without ".zip").  The caller also requires a regular
 * file. */
enum afs_backupname_kind afs_backupname_kind(const char *file, size_t *len);

/* When an archive was made, for `latest`. */
struct afs_backup_age {
	time_t at;  /* the _YYYYMMDD_HHMMSS in its name (local time), else mtime */
	bool named; /* at comes from the name */
};

/* The age of the archive shown as name whose file has mtime. */
struct afs_backup_age afs_backupname_age(const char *name, time_t mtime);

/* True when an archive of age a replaces best as the newest so far, the
 * archives being taken in name order: those named with a timestamp
 * outrank those without (another file copied in later is not the newest
 * backup), then the later time, and on a tie the later name. */
bool afs_backupname_newer(struct afs_backup_age a, struct afs_backup_age best);

#endif
