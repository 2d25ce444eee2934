/* SPDX-License-Identifier: MIT */
/* `archfs diff`: what changed between two backups, read from their central
 * directories alone (sizes, CRC-32s, types and modes as the mount shows
 * them); no entry's data is read or decompressed.  docs/restore.md, "What
 * changed between two backups".
 */
#ifndef AFS_DIFF_H
#define AFS_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum afs_diff_change {
	AFS_DIFF_ADDED,    /* A: only in the new archive */
	AFS_DIFF_REMOVED,  /* D: only in the old one */
	AFS_DIFF_MODIFIED, /* M: size, CRC-32 or permission bits differ */
	AFS_DIFF_TYPE,     /* T: a file, symlink or directory became another type */
};

/* One path of an archive's tree, as the mount shows it. */
struct afs_diff_entry {
	const char *path;  /* without a leading slash; never "" (the root is left out) */
	uint64_t size;     /* 0 for a directory */
	uint32_t crc;      /* the CRC-32 the archive states; 0 for a directory */
	uint32_t mode;     /* st_mode: type and permission bits */
	bool has_children; /* a directory with something below it */
};

/* Sorts n entries by path (bytes, as strcmp), the order afs_diff_compare()
 * takes and gives. */
void afs_diff_sort(struct afs_diff_entry *e, size_t n);

/* True when path is prefix or below it; every path is in the scope of "".
 * prefix has no leading or trailing '/'. */
bool afs_diff_in_scope(const char *path, const char *prefix);

/* Called for each change; a non-zero return stops the walk. */
typedef int (*afs_diff_fn)(void *ctx, enum afs_diff_change c, const struct afs_diff_entry *old,
			   const struct afs_diff_entry *new_);

/* Walks old[0..nold) and new_[0..nnew) (each sorted by afs_diff_sort(),
 * no path twice) and calls fn, in path order, for every change within
 * prefix's scope: ADDED (old NULL) or REMOVED (new_ NULL) for a file,
 * symlink or other non-directory, or an empty directory (one stated by a
 * directory entry of the archive), found on one side only (a directory
 * with something below it is implied by its paths, which are listed);
 * TYPE for a path whose type differs; MODIFIED for a non-directory of the
 * same type whose size, CRC-32 or permission bits differ.  A directory on
 * both sides is never listed.  Returns 0, or fn's value when it stopped
 * the walk. */
int afs_diff_compare(const struct afs_diff_entry *old, size_t nold, const struct afs_diff_entry *new_, size_t nnew,
		     const char *prefix, afs_diff_fn fn, void *ctx);

/* archfs diff's main, argv[0] being "diff": `[--json] OLD.zip NEW.zip
 * [PATH]` or `[--json] BACKUP_DIR OLD NEW [PATH]`.  Writes the changes to
 * stdout and any error, one line, to stderr.  Returns the exit status, as
 * diff(1): 0 no differences, 1 differences, 2 a usage error, 3 an archive
 * that cannot be read (missing, not a ZIP, refused as unsafe) or output
 * that cannot be written. */
int afs_diff_main(int argc, char *argv[]);

#endif
