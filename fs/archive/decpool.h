/* SPDX-License-Identifier: MIT */
/* A cap on the decoders that the streams of one mount keep between reads,
 * by count and by memory.
 *
 * A stream of a compressed entry keeps its decoders from one read to the
 * next, so that a read continues where the last one stopped: for a
 * deflated entry the fast sequential inflater with its input buffer and
 * raw stream, and the zlib decoder that resumes at seek points with its
 * own raw stream (stream.c; at most 210 KiB each); for LZMA, XZ and zstd
 * one decoder whose memory the data sets (a dictionary or window of up to
 * 256 MiB, xdecode.h), for bzip2 libzip's (3.6 MiB).  Thousands of open
 * files would keep thousands of them.  The pool counts them, each with
 * the memory it holds.  When a stream makes a decoder, or one of its
 * decoders grows, and the count would pass the cap or the memory the
 * budget, the least recently used idle streams lose all of their
 * decoders (they are evicted) until both fit; an evicted stream's next
 * read starts again from the nearest seek point, or from the start of
 * the entry.  A stream in the middle of a read is never evicted, so the
 * pool passes its cap and budget only by what the reads in progress hold
 * themselves:
 *
 *     live decoders <= max(cap, 2 x reads in progress)
 *     live bytes    <= max(budget, bytes the reads in progress hold)
 *
 * Deflate's decoders are small (64 of them, 13 MiB, stay far under the
 * budget): the count bounds them.  The budget bounds the big ones.
 *
 * Each stream is a user of the pool: struct afs_decuser, embedded in it.
 * Its calls follow one sequence: join; then for every read enter, take
 * (before making each decoder; drop when making it failed, or when the
 * stream frees a decoder itself), grow (when a decoder's memory grows),
 * exit; then leave, after which the stream frees whatever decoders it
 * still has.
 *
 * Thread safety: the pool has its own mutex; any thread may call.  One user
 * is used by one thread at a time (its stream's caller locks), but its
 * evict callback may run on another thread, between that user's exit and
 * its next enter (or its leave, which waits for it).
 */
#ifndef AFS_DECPOOL_H
#define AFS_DECPOOL_H

#include <stdbool.h>
#include <stddef.h>

/* The cap a pool starts with: 64 decoders (deflate's: at most 13 MiB). */
#define AFS_DECPOOL_CAP 64

/* The memory budget a pool starts with: 256 MiB, the most one LZMA, XZ or
 * zstd decoder may need (AFS_XDEC_MEMLIMIT), so that one such stream read
 * a little at a time keeps its decoder between reads. */
#define AFS_DECPOOL_BUDGET ((size_t)256 << 20)

struct afs_decpool;

/* One stream, as the pool sees it.  The fields are the pool's, under its
 * lock: set evict with afs_decpool_join() and touch nothing else. */
struct afs_decuser {
	struct afs_decuser *prev, *next; /* in the idle list, most recently used first */
	unsigned held;                   /* decoders counted */
	size_t bytes;                    /* their memory counted */
	bool listed;                     /* in the idle list */
	bool evicting;                   /* another thread is freeing its decoders */
	/* Frees every decoder of u, on whatever thread needs the room, without
	 * the pool's lock, while u is neither between enter and exit nor
	 * leaving.  It must not call into the pool. */
	void (*evict)(struct afs_decuser *u);
};

/* A pool holding at most cap idle decoders (cap >= 1) and
 * AFS_DECPOOL_BUDGET bytes of them; NULL when out of memory. */
struct afs_decpool *afs_decpool_new(unsigned cap);

/* Frees the pool; NULL is a no-op.  Every user must have left. */
void afs_decpool_free(struct afs_decpool *p);

/* Changes the cap (at least 1); idle users over it are evicted at the next
 * take. */
void afs_decpool_set_cap(struct afs_decpool *p, unsigned cap);

/* Changes the memory budget (at least 1 byte); idle users over it are
 * evicted at the next take or grow. */
void afs_decpool_set_budget(struct afs_decpool *p, size_t bytes);

/* Decoders counted now, their bytes, and evictions so far. */
unsigned afs_decpool_live(struct afs_decpool *p);
size_t afs_decpool_bytes(struct afs_decpool *p);
unsigned long afs_decpool_evictions(struct afs_decpool *p);

/* Makes u a user holding nothing, evicted through evict. */
void afs_decpool_join(struct afs_decpool *p, struct afs_decuser *u, void (*evict)(struct afs_decuser *u));

/* Before a read: waits while u is being evicted, then keeps it from being
 * evicted until afs_decpool_exit(). */
void afs_decpool_enter(struct afs_decpool *p, struct afs_decuser *u);

/* Between enter and exit, before u makes a decoder of bytes (what it
 * holds when made): counts it, and evicts the least recently used idle
 * users until the count is within the cap and the bytes within the
 * budget, or none is left idle. */
void afs_decpool_take(struct afs_decpool *p, struct afs_decuser *u, size_t bytes);

/* Between enter and exit: one of u's decoders holds bytes more than
 * counted (the data asked for a bigger dictionary); counts them and
 * evicts as afs_decpool_take() does. */
void afs_decpool_grow(struct afs_decpool *p, struct afs_decuser *u, size_t bytes);

/* Between enter and exit: u freed n decoders it had counted, holding
 * bytes in all (one it failed to make, one it dropped itself). */
void afs_decpool_drop(struct afs_decpool *p, struct afs_decuser *u, unsigned n, size_t bytes);

/* After a read: u becomes idle, the most recently used, and may be evicted
 * (only when it holds decoders). */
void afs_decpool_exit(struct afs_decpool *p, struct afs_decuser *u);

/* u goes away: waits for its eviction if one is running, and uncounts what
 * it holds; the caller then frees its decoders. */
void afs_decpool_leave(struct afs_decpool *p, struct afs_decuser *u);

/* Memory for a decoder's large parts, straight from the kernel and handed
 * back whole when freed, whichever thread frees it, but for the last 16
 * blocks freed, kept (at most 3.3 MiB) for the next decoders of their
 * sizes.  From malloc, what an eviction frees would stay in the freeing
 * thread's arena and the next decoder might be made from another's: the
 * process would keep about a cap of decoders per FUSE thread.  Page-
 * aligned, NOT zeroed (a block may be reused): the caller initialises it.
 * NULL when out of memory; afs_decmem_free(NULL, ...) is a no-op. */
void *afs_decmem_alloc(size_t len);
void afs_decmem_free(void *p, size_t len);

/* zlib's allocator over a region of a decoder's memory (zalloc/zfree with
 * opaque pointing to the struct afs_decmem_region): zlib's state and
 * window come from the region, anything past it from malloc. */
struct afs_decmem_region {
	unsigned char *base;
	size_t used, size;
};
void *afs_decmem_zalloc(void *opaque, unsigned items, unsigned size);
void afs_decmem_zfree(void *opaque, void *p);

#endif
