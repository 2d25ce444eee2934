/* SPDX-License-Identifier: MIT */
/* What one mount serves: a single archive or a backups directory, and who
 * owns its files.  No FUSE here: the resolver and the unit tests use it. */
#ifndef AFS_MOUNT_H
#define AFS_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

struct afs_backups;
struct afs_view;

/* Passed to fuse_new() as private data.  Read-only after the mount starts
 * (open locks itself), so every FUSE thread may use it without locks. */
struct afs_mount {
	struct afs_view *view;       /* the archive of a single-archive mount */
	struct afs_backups *backups; /* or, in directory mode, the archives of a backups directory */
	time_t mounted_at;           /* mtime of the control files, the top and `latest` */
	uid_t uid;                   /* the mounting user owns every file */
	gid_t gid;
	bool others;                 /* -o allow_other: other users may enter, the kernel checks modes
				      * (default_permissions), and .status and .log are the owner's only */
};

#endif
