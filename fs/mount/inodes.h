/* SPDX-License-Identifier: MIT */
/* Inode numbers for a mount's paths, the way the kernel counts them: a
 * path gets a number when a lookup (or a directory listing with
 * attributes) first names it, keeps it while the kernel holds lookups of
 * it, and loses it when the kernel forgets them all.  The number is the
 * address of the path's record (never reused while the kernel may use
 * it), 1 is always "/".  Paths are as resolve.h takes them.  No FUSE.
 *
 * Thread safety: every function may be called from any thread. */
#ifndef AFS_INODES_H
#define AFS_INODES_H

#include <stddef.h>
#include <stdint.h>

#define AFS_ROOT_INO 1

struct afs_inodes;

/* free_data (may be NULL) frees the data of a record when its number goes
 * (afs_inodes_ref_data()); it is called under the table's lock and must
 * not call into the table. */
struct afs_inodes *afs_inodes_new(void (*free_data)(void *data));
void afs_inodes_free(struct afs_inodes *t);

/* The number of path[0..len), made now if it has none, with one more
 * lookup counted; 0 when out of memory.  "/" is AFS_ROOT_INO, never
 * counted. */
uint64_t afs_inodes_ref(struct afs_inodes *t, const char *path, size_t len);

/* afs_inodes_ref() of key[0..len) (a path, possibly followed by a NUL and
 * more bytes, which make another number for the same path), attaching
 * data to a number made now; *fresh says whether it was: otherwise the
 * caller keeps data (the number has its own). */
uint64_t afs_inodes_ref_data(struct afs_inodes *t, const char *key, size_t len, void *data, int *fresh);

/* The data attached to ino, NULL when none. */
void *afs_inodes_data(struct afs_inodes *t, uint64_t ino);

/* The kernel forgot n lookups of ino: at none left, the number is gone. */
void afs_inodes_forget(struct afs_inodes *t, uint64_t ino, uint64_t n);

/* A copy of ino's path (free() it), or of parent's path joined with name
 * when name is not NULL; NULL when out of memory or name is empty, ".",
 * ".." or holds a '/'.  ino must be a number the kernel holds. */
char *afs_inodes_path(struct afs_inodes *t, uint64_t ino, const char *name);

/* The number of path[0..len) if it has one, held (pinned) so that it
 * stays valid, even forgotten, until afs_inodes_unpin(); 0 when it has
 * none.  Not a lookup: the kernel's counts do not change. */
uint64_t afs_inodes_pin(struct afs_inodes *t, const char *path, size_t len);
void afs_inodes_unpin(struct afs_inodes *t, uint64_t ino);

/* Sets ino's mark to on (the FUSE skin's: its content was given to the
 * kernel) and returns the mark it had; a number made anew is unmarked. */
int afs_inodes_mark(struct afs_inodes *t, uint64_t ino, int on);

/* The numbers of path[0..len) and of every path under it, at most max,
 * into inos, their marks cleared (the caller drops the kernel's pages of
 * them); returns how many there are (which may exceed max). */
size_t afs_inodes_under(struct afs_inodes *t, const char *path, size_t len, uint64_t *inos, size_t max);

/* How many paths have numbers (the root not counted). */
size_t afs_inodes_count(struct afs_inodes *t);

#endif
