/* SPDX-License-Identifier: MIT */
/* Reads of files nobody opened through archfs: when the kernel opens files
 * itself (FUSE no-open), each read names only the file, so the streams
 * (stream.h) that continue a sequential pass or keep a decoder are kept
 * here between reads, a bounded number of them, the least recently used
 * closed first.  Two reads of one file at once use two streams.  No FUSE.
 *
 * The views the streams read must outlive the readers: a single-archive
 * mount's view, which lives as long as the mount.
 *
 * Thread safety: every function may be called from any thread. */
#ifndef AFS_READERS_H
#define AFS_READERS_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "view.h"

struct afs_readers;

/* Keeps up to max idle streams; NULL when out of memory. */
struct afs_readers *afs_readers_new(size_t max);
void afs_readers_free(struct afs_readers *r);

/* Reads up to len bytes of node of v at off, as afs_stream_pread() does.
 * A stream whose read failed is closed (the next read tries afresh), and
 * why (afs_stream_error()) goes into why[whylen] for the caller's log. */
enum afs_err afs_readers_pread(struct afs_readers *r, struct afs_view *v, uint32_t node, void *buf, size_t len,
			       uint64_t off, size_t *got, char *why, size_t whylen);

/* How many streams are kept now (for tests). */
size_t afs_readers_count(struct afs_readers *r);

#endif
