/* SPDX-License-Identifier: MIT */
/* A cache of fixed-size blocks of a remote object (remote.c): each block is
 * a heap buffer keyed by its number, the least recently used ones evicted
 * once the blocks held exceed a bound in bytes.
 *
 * Thread safety: none of its own; the caller serialises every call (the
 * remote object's mutex).  A pointer from afs_bcache_get() stays valid only
 * until the next afs_bcache_put() or afs_bcache_free().
 */
#ifndef AFS_BCACHE_H
#define AFS_BCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct afs_bcache;

/* A cache holding at most cap bytes of blocks (at least one block is kept
 * whatever cap says).  NULL when out of memory. */
struct afs_bcache *afs_bcache_new(size_t cap);

/* Block key's bytes and their count in *len, and the block becomes the most
 * recently used; NULL when it is not held. */
const void *afs_bcache_get(struct afs_bcache *c, uint64_t key, size_t *len);

/* True when block key is held (its place in the LRU order unchanged). */
bool afs_bcache_has(const struct afs_bcache *c, uint64_t key);

/* Adds block key (replacing a block of that key), taking ownership of data
 * (malloc'd, len bytes; freed here on error too), as the most recently
 * used, then evicts the least recently used others while more than cap
 * bytes are held. */
enum afs_err afs_bcache_put(struct afs_bcache *c, uint64_t key, void *data, size_t len);

/* Bytes and blocks held. */
size_t afs_bcache_bytes(const struct afs_bcache *c);
size_t afs_bcache_count(const struct afs_bcache *c);

/* Frees every block and the cache; NULL is a no-op. */
void afs_bcache_free(struct afs_bcache *c);

#endif
