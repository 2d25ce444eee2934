/* SPDX-License-Identifier: MIT */
/* The immutable path tree of one archive: built once at mount from the
 * central directory, then only read (safe from any number of threads).
 *
 * Every entry name is validated here and nowhere else (afs_index_check_name).
 * Directories that the archive only implies by path prefixes are synthesised.
 * Node 0 is the root directory, whose path is "".
 */
#ifndef AFS_INDEX_H
#define AFS_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct afs_archive;

#define AFS_NONE UINT32_MAX /* "no node" / "no archive entry" */

/* One file, symlink or directory of the tree.  Plain data, read-only. */
struct afs_node {
	uint64_t size;         /* bytes of content (0 for directories) */
	uint64_t comp_size;    /* compressed bytes in the archive */
	int64_t mtime;         /* seconds since the epoch */
	uint32_t entry;        /* archive entry index, AFS_NONE for a synthesised directory */
	uint32_t crc;          /* CRC-32 the archive states */
	uint32_t parent;       /* parent node (the root is its own parent) */
	uint32_t first_child;  /* AFS_NONE when empty or not a directory */
	uint32_t next_sibling; /* AFS_NONE for the last child */
	uint32_t path;         /* offset of the NUL-terminated path in the name pool */
	uint16_t base;         /* offset of the last component within the path */
	uint16_t mode;         /* st_mode: type and permission bits, as archfs shows them */
	uint16_t method;       /* compression method of the entry */
	uint16_t encryption;   /* its encryption method, 0 when none (archfs has no password) */
};

struct afs_index;

/* Builds the tree of every entry of a.  Fails, leaving *out NULL, on the
 * first unsafe name (AFS_E_BADNAME: afs_index_check_name(), or a name that
 * holds a NUL byte), clashing names (AFS_E_CONFLICT) or an entry that
 * states a size or compressed size past INT64_MAX (AFS_E_RANGE: no offset
 * of a file reaches it); msg then names the entry.  Encrypted entries and entries of any compression method are
 * listed (stream.h says which can be read).  The index does not keep a
 * reference to a. */
enum afs_err afs_index_build(struct afs_archive *a, struct afs_index **out, char *msg, size_t msglen);

/* Frees the index; NULL is a no-op. */
void afs_index_free(struct afs_index *ix);

/* Validates one entry name as stored in the archive (a trailing '/' marks a
 * directory entry and is allowed).  AFS_OK or AFS_E_BADNAME. */
enum afs_err afs_index_check_name(const char *name);

/* Finds a path as FUSE gives it ("/" or "/a/b", no trailing slash).
 * AFS_E_NOENT, or AFS_E_NOTDIR when a component is not a directory. */
enum afs_err afs_index_lookup(const struct afs_index *ix, const char *path, uint32_t *id);

/* The node with that id (id < afs_index_count()). */
const struct afs_node *afs_index_node(const struct afs_index *ix, uint32_t id);

/* Number of nodes, the root and synthesised directories included. */
uint32_t afs_index_count(const struct afs_index *ix);

/* Full path of a node, without a leading slash ("" for the root). */
const char *afs_index_path(const struct afs_index *ix, uint32_t id);

/* Last component of a node's path ("" for the root). */
const char *afs_index_name(const struct afs_index *ix, uint32_t id);

/* Bytes of memory the index holds (for statistics and benchmarks). */
size_t afs_index_memory(const struct afs_index *ix);

#endif
