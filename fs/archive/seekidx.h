/* SPDX-License-Identifier: MIT */
/* Seek points into deflated entries, as zlib's zran.c example builds them:
 * while an entry is inflated (with either decoder of inflate.h, asked to
 * stop at the first deflate block boundary a span past the last point),
 * a point is recorded about every span bytes of output: the
 * compressed offset and bit of a block boundary and the 32 KiB window of
 * output before it.  A read at any offset then starts at the nearest point
 * at or before it and inflates at most one span.
 *
 * Memory: a point keeps its window packed (afs_window_pack()) plus 40 bytes; an
 * entry keeps at most one point per span, the span being at least
 * AFS_SEEK_SPAN and growing so that no entry has more than
 * AFS_SEEK_MAX_POINTS points; and all indexes of a registry together stop
 * recording new points at the registry's cap (reads past the last point
 * then inflate further, they do not fail).
 *
 * Thread safety: an index may be shared by any number of decoders on any
 * threads (a mutex guards its points); one decoder serves one thread at a
 * time.
 */
#ifndef AFS_SEEKIDX_H
#define AFS_SEEKIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "pointfile.h"

#define AFS_SEEK_SPAN (512 * 1024)
#define AFS_SEEK_MAX_POINTS 4096

struct afs_archive;
struct afs_decpool;
struct afs_seekidx;
struct afs_seekreg;

/* A registry of the indexes of one archive's nodes (0 <= id < nodes), made
 * as entries are first read and shared by every handle; cap bounds the
 * bytes all their points hold.  It also holds the pool that caps the live
 * decoders of the streams opened with it (decpool.h, AFS_DECPOOL_CAP). */
struct afs_seekreg *afs_seekreg_new(uint32_t nodes, size_t cap);
/* The same, drawing on pool's cap and decoder pool (shared with pool and
 * with every other registry made sharing it), so that the archives of one
 * mount together stay under one cap; pool must outlive it. */
struct afs_seekreg *afs_seekreg_new_shared(uint32_t nodes, struct afs_seekreg *pool);
void afs_seekreg_free(struct afs_seekreg *r);

/* The decoder pool r draws on (its pool's, for a shared one). */
struct afs_decpool *afs_seekreg_decoders(struct afs_seekreg *r);

/* The index of node id (an entry of size uncompressed bytes); NULL when out
 * of memory.  Owned by the registry. */
struct afs_seekidx *afs_seekreg_get(struct afs_seekreg *r, uint32_t id, uint64_t size);

/* Keeping points on disk (pointfile.h), for a pool registry (one made by
 * afs_seekreg_new()) and all registries sharing it: dfd is the directory
 * of the files (the pool closes it when freed), log (may be NULL) gets one
 * line for a file not used or not written.  Without it nothing is kept. */
void afs_seekreg_keep(struct afs_seekreg *pool, int dfd, void (*log)(const char *line));

/* The archive r's entries belong to, for the files' identity; borrowed,
 * and it must outlive r. */
void afs_seekreg_set_archive(struct afs_seekreg *r, struct afs_archive *a);

/* afs_seekreg_get() for a stream of archive entry number entry, counted
 * until afs_seekreg_release().  The first read that seeks past the index's
 * points loads the entry's file, once, when it goes further; the index is
 * written to it when it gained points and its last holder releases it, or
 * when r is freed. */
struct afs_seekidx *afs_seekreg_hold(struct afs_seekreg *r, uint32_t id, uint64_t size, uint64_t entry);
void afs_seekreg_release(struct afs_seekidx *x);

/* The index of node id if one was made, else NULL. */
struct afs_seekidx *afs_seekreg_peek(struct afs_seekreg *r, uint32_t id);

/* Bytes inflated for the index's entry: counted by its decoders and by the
 * streams that hold it (afs_seekidx_count()). */
void afs_seekidx_count(struct afs_seekidx *x, uint64_t bytes);
uint64_t afs_seekidx_inflated(struct afs_seekidx *x);

/* Bytes the points of every index of r hold (of every registry sharing its
 * pool, for a shared one). */
size_t afs_seekreg_memory(struct afs_seekreg *r);

/* An index of its own, for a stream opened without a registry. */
struct afs_seekidx *afs_seekidx_new(uint64_t size);
void afs_seekidx_free(struct afs_seekidx *x);

/* Points recorded so far, and the bytes they hold. */
size_t afs_seekidx_points(struct afs_seekidx *x);
size_t afs_seekidx_memory(struct afs_seekidx *x);

/* Where compressed bytes come from: up to len bytes at compressed offset
 * off into buf (*got == 0 only at the end of the compressed data). */
typedef enum afs_err (*afs_zsource)(void *ctx, uint64_t off, void *buf, size_t len, size_t *got);

/* A raw-deflate decoder (inflate.h's) over an index. */
struct afs_zdec;

enum afs_err afs_zdec_new(struct afs_seekidx *x, afs_zsource src, void *ctx, struct afs_zdec **out);
void afs_zdec_free(struct afs_zdec *d);

/* The uncompressed offset the decoder is at. */
uint64_t afs_zdec_pos(const struct afs_zdec *d);

/* After a read of d failed with AFS_E_CORRUPT: when d had resumed at a
 * point loaded from a file, drops every point of the index (the file is
 * wrong, not the archive: said once through the pool's log) and returns
 * true, for the caller to seek again and retry. */
bool afs_zdec_distrust(struct afs_zdec *d);

/* Bytes it has inflated since it was made (reads and skips alike). */
uint64_t afs_zdec_inflated(const struct afs_zdec *d);

/* Restarts the decoder at the last point at or before off (the start of
 * the entry when there is none). */
enum afs_err afs_zdec_seek(struct afs_zdec *d, uint64_t off);

/* Inflates the next len bytes into out (NULL: discard them), recording
 * points past the index's last one.  AFS_E_CORRUPT for malformed or
 * truncated data. */
enum afs_err afs_zdec_read(struct afs_zdec *d, unsigned char *out, size_t len);

#endif
