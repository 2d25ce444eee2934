/* SPDX-License-Identifier: MIT */
/* Reading an entry's content at any offset: stored entries by seeking the
 * raw stream; deflated entries by inflating forward from offset 0 with the
 * fast decoder while reads continue one pass, and from the nearest seek
 * point (seekidx.h: about one span to inflate) for a read that jumps back
 * or more than a span ahead.  Nothing is loaded whole into memory.
 *
 * Other methods: LZMA, XZ and zstd entries are decoded with liblzma and
 * libzstd (xdecode.h), an entry of another method that libzip decodes
 * (afs_method_libzip(): bzip2 with Debian 12's libzip; LZMA, XZ and zstd
 * too with a libzip built with them, which is then preferred) through
 * libzip's decoder; either in one forward pass: a read ahead of the pass
 * decodes and drops the bytes between, a read behind it starts a new pass
 * from offset 0 (these decoders keep no seek points: random access costs
 * up to a whole pass).  The CRC-32 and size are checked when a pass
 * reaches the end of the entry (by libzip for its decoders).  An
 * encrypted entry, or one of a method nothing here decodes (Deflate64,
 * ...), opens, but every read of its content fails with
 * AFS_E_UNSUPPORTED (EOPNOTSUPP), afs_stream_error() saying why; so does
 * a read of LZMA, XZ or zstd data that needs more memory than
 * AFS_XDEC_MEMLIMIT (256 MiB).
 *
 * CRC-32: the stream tracks the checksum of the bytes its sequential pass
 * has produced in order from offset 0.  When that pass reaches the end of
 * the entry and the checksum differs from the archive's, the read returns
 * AFS_E_CORRUPT (EIO)
 * and logs one line; so does a deflate stream that is malformed, ends early
 * or runs long.  A pass whose decoder was evicted (below) goes on through
 * the seek points, and still checks the CRC-32 at its end.
 *
 * Memory: a stream keeps at most two decoders between reads (the
 * sequential one and the one resumed at seek points, at most 210 KiB each;
 * libzip's or xdecode.h's, one: bzip2's takes up to 3.6 MiB, LZMA's and
 * XZ's their dictionary, zstd's its window, each at most 256 MiB), and a
 * stream opened with a registry counts them, with their memory, in the
 * registry's decoder pool (decpool.h): past the pool's cap (64 decoders)
 * or its budget (256 MiB), the least recently used idle streams'
 * decoders are freed, and their next read starts again from the nearest
 * seek point (or the start of the entry).  So the streams of a mount keep
 * at most max(cap, 2 x reads in progress) decoders and max(budget, what
 * the reads in progress hold) bytes of them, however many files are open.
 *
 * Thread safety: one afs_stream serves one thread at a time (the caller
 * locks); different streams are independent (the pool may free one's
 * decoders from another's thread, never during a read).
 */
#ifndef AFS_STREAM_H
#define AFS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct afs_archive;
struct afs_index;
struct afs_node;
struct afs_seekreg;

struct afs_stream;

/* Opens the content of node id of ix (a file or symlink) in archive a.
 * Seek points for reads that jump are the stream's own. */
enum afs_err afs_stream_open(struct afs_archive *a, const struct afs_index *ix, uint32_t id,
			     struct afs_stream **out);

/* The same, with seek points shared through reg by every stream of the
 * entry (the mount's registry; see seekidx.h), and its decoders counted in
 * reg's decoder pool. */
enum afs_err afs_stream_open_shared(struct afs_archive *a, const struct afs_index *ix, uint32_t id,
				    struct afs_seekreg *reg, struct afs_stream **out);

/* Reads up to len bytes at off into buf; *got < len only at the end of the
 * entry.  On error *got is 0.  Every error but AFS_E_NOMEM is sticky: a
 * stream whose read failed (corrupt data, a checksum mismatch, an entry
 * whose data lies past the end of the file, a failed read of the archive,
 * an entry it cannot decode)
 * returns the same error from then on, at any offset; open a new stream to
 * try again. */
enum afs_err afs_stream_pread(struct afs_stream *s, void *buf, size_t len, uint64_t off, size_t *got);

/* Why a read of s returned err, for the caller's log line or message: what
 * the stream found ("CRC-32 mismatch (archive says ..., data gives ...)",
 * "malformed deflate data") when err is its sticky error, else
 * afs_strerror(err); s may be NULL (an open that failed).  Valid until
 * afs_stream_close().  The stream itself logs nothing. */
const char *afs_stream_error(const struct afs_stream *s, enum afs_err err);

/* Closes the stream; NULL is a no-op. */
void afs_stream_close(struct afs_stream *s);

/* True when the content of node n (a file or symlink) can be read: false
 * for an encrypted entry or a compression method nothing here decodes,
 * whose reads fail with AFS_E_UNSUPPORTED.  Then, when why is not NULL, it
 * receives the reason, naming the method or the encryption ("compressed
 * with deflate64 (method 9), which archfs cannot decode"). */
bool afs_stream_decodable(const struct afs_node *n, char *why, size_t whylen);

#endif
