/* SPDX-License-Identifier: MIT */
/* Private directories for the files a restore stages (a copy of the
 * archive's database, its page-size rewrite, their journals, the database
 * dump of the snapshot).
 *
 * A staged file must never be opened by name in a directory others may
 * write to: between creating a name and opening it again (SQLite, libzip
 * and pg_dump all open by path, and follow symlinks), another user could
 * plant a symlink there and make root write or read any file.  So every
 * staged file lives in a directory made by mkdtemp beside the target (one
 * file system, so renames stay atomic), owned by this process's user and
 * mode 0700: no one else can create, replace or read anything in it.
 *
 * The calling sequence:
 *
 *   struct afs_privdir d = AFS_PRIVDIR_INIT;
 *   afs_privdir_make(&d, "/srv/app", ".app.db.archfs-", msg, len);
 *   afs_privdir_create(&d, "stage.db", &fd);   empty, 0600, O_EXCL
 *   path = afs_privdir_file(&d, "stage.db");   hand it to a library
 *   afs_privdir_remove(&d);                    everything in it, and it
 *
 * A struct afs_privdir is not shared between threads.
 */
#ifndef AFS_PRIVDIR_H
#define AFS_PRIVDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "err.h"

struct afs_privdir {
	char *path;   /* the directory's path, NULL when none */
	int fd;       /* the directory, open (O_DIRECTORY) */
	int parent;   /* the directory it is in, open */
	char *name;   /* its name there */
	dev_t dev;    /* its identity, checked before removing it */
	ino_t ino;
};

#define AFS_PRIVDIR_INIT { NULL, -1, -1, NULL, 0, 0 }

/* Makes a new private directory parent/PREFIXxxxxxx (mkdtemp) and checks
 * that what is open under that name is a directory of this user with mode
 * 0700.  On error d holds nothing and msg says why: AFS_E_NOSPC,
 * AFS_E_NOMEM, AFS_E_IO (errno kept), AFS_E_ACCES (the check failed). */
enum afs_err afs_privdir_make(struct afs_privdir *d, const char *parent, const char *prefix, char *msg,
			      size_t msglen);

/* Creates the file name (one path component) in d: new (O_EXCL), never
 * through a symlink, empty, mode 0600.  With fd, *fd is the file open for
 * reading and writing (the caller closes it); with NULL it is closed.
 * AFS_E_IO with errno kept (EEXIST when name exists). */
enum afs_err afs_privdir_create(const struct afs_privdir *d, const char *name, int *fd);

/* "PATH/name", malloc'd (NULL when out of memory). */
char *afs_privdir_file(const struct afs_privdir *d, const char *name);

/* Removes every entry of d (files only: nothing is followed) and d itself,
 * then resets d; a no-op on a d that holds nothing.  Returns false when
 * something could not be removed. */
bool afs_privdir_remove(struct afs_privdir *d);

/* Removes the directory name in the directory open at dfd when it is a
 * directory (not a symlink) owned by this process's user, after removing
 * its entries: what a killed run left behind.  False when it is something
 * else, or could not be removed. */
bool afs_privdir_remove_at(int dfd, const char *name);

#endif
