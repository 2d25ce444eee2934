/* SPDX-License-Identifier: MIT */
/* The FUSE skin: struct fuse_operations over the archfs core. */
#ifndef AFS_OPS_H
#define AFS_OPS_H

#include <fuse.h>
#include "mount.h"

/* The operations table; its private data is a struct afs_mount.  Every
 * callback resolves the path (resolve.h), calls the core and maps its
 * error with afs_errno(). */
extern const struct fuse_operations afs_fuse_ops;

#endif
