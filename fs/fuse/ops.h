/* SPDX-License-Identifier: MIT */
/* The FUSE skin: the low-level operations over the archfs core, with
 * inode numbers for paths (inodes.h). */
#ifndef AFS_OPS_H
#define AFS_OPS_H

#include <stdbool.h>
#include <fuse_lowlevel.h>
#include "mount.h"

struct afs_ll;

/* The skin's state for mount m; NULL when out of memory. */
struct afs_ll *afs_ll_new(struct afs_mount *m);

/* The session over ll with args (libfuse prints a rejected option); NULL
 * on failure.  threads: the session loop is multi-threaded.  Every operation resolves its inode's path (resolve.h),
 * calls the core and maps its error with afs_errno(). */
struct fuse_session *afs_ll_session(struct afs_ll *ll, struct fuse_args *args, bool threads);

/* Frees ll and the open files its session left; after the session is
 * destroyed. */
void afs_ll_free(struct afs_ll *ll);

#endif
