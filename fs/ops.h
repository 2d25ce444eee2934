/* SPDX-License-Identifier: MIT */
/* The FUSE skin: struct fuse_operations over the archfs core. */
#ifndef AFS_OPS_H
#define AFS_OPS_H

#include <fuse.h>
#include <sys/types.h>

struct afs_backups;
struct afs_view;

/* What one mount serves; passed to fuse_new() as private data.  Read-only
 * after the mount starts, so every FUSE thread may use it without locks. */
struct afs_mount {
	struct afs_view *view;       /* the archive of a single-archive mount */
	struct afs_backups *backups; /* or, in directory mode, the archives of a backups directory */
	time_t mounted_at;           /* mtime of the control files */
	uid_t uid;              /* the mounting user owns every file */
	gid_t gid;
};

/* The operations table; every callback resolves the path, calls the core
 * and maps its error with afs_errno(). */
extern const struct fuse_operations afs_fuse_ops;

#endif
