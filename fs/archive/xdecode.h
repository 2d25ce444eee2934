/* SPDX-License-Identifier: MIT */
/* Decoders of the ZIP methods archfs decodes with their reference
 * libraries rather than through libzip: LZMA (method 14) and XZ (95) with
 * liblzma, zstd (93) with libzstd.  Debian 12's libzip is built without
 * either library, so without these such entries could not be read there;
 * stream.c prefers libzip's decoder when the libzip it runs with has one
 * (afs_method_libzip()).  Only xdecode.c includes <lzma.h> and <zstd.h>.
 *
 * A decoder turns an entry's raw compressed bytes (afs_raw_open()) into
 * its content, forward only, like the deflate decoders of inflate.h; it
 * keeps no seek points: the caller starts a new one to go back.
 *
 * ZIP's LZMA data: a 2-byte LZMA SDK version, a 2-byte properties size
 * (5), the 5 properties bytes, then a raw LZMA1 stream.  General-purpose
 * bit 1 says it ends with an end marker; without one it ends at the
 * uncompressed size.  The size is always known (the central directory
 * states it), so the decoder stops there and takes an end marker that
 * follows, whatever bit 1 says (liblzma's LZMA1EXT with
 * LZMA_LZMA1EXT_ALLOW_EOPM, as for .7z files).  XZ: one whole .xz stream.  zstd: one or more zstd
 * frames (skippable frames allowed), to the end of the compressed data.
 *
 * Memory: a decoder needs what the data asks for (an LZMA or XZ
 * dictionary, a zstd window), at most AFS_XDEC_MEMLIMIT: data that asks
 * more is refused with AFS_E_UNSUPPORTED and a reason.  It makes its
 * dictionary or window when the data's header says how big (the first
 * afs_xdec_run() calls); afs_xdec_memusage() says what it holds, which
 * the pool of a mount counts (decpool.h).
 *
 * Thread safety: one decoder serves one thread at a time; decoders are
 * independent. */
#ifndef AFS_XDECODE_H
#define AFS_XDECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "inflate.h"

#define AFS_XDEC_MEMLIMIT (256u << 20)

/* True for the methods a decoder here can decode: LZMA, XZ, zstd. */
bool afs_xdec_handles(uint16_t method);

struct afs_xdec;

/* A decoder of method m (afs_xdec_handles(m)) positioned at the start of
 * an entry's compressed data; size is the entry's uncompressed size (the
 * end of an LZMA stream).  AFS_E_NOMEM, or AFS_E_UNSUPPORTED for another method; *out is
 * NULL on error. */
enum afs_err afs_xdec_new(uint16_t m, uint64_t size, struct afs_xdec **out);

/* Decodes as much as io's buffers allow (io as for afs_inflater_run()).
 * in_end: io holds the last compressed bytes there are.  Sets *end when
 * the data has ended (more calls then produce nothing).  No progress with
 * in_end set and no end: the data is truncated (the caller says so).
 * Errors: AFS_E_CORRUPT (malformed data), AFS_E_UNSUPPORTED (data that
 * needs more memory than AFS_XDEC_MEMLIMIT, or options the library cannot
 * decode), AFS_E_NOMEM; afs_xdec_why() then says what, and d may not be
 * run again. */
enum afs_err afs_xdec_run(struct afs_xdec *d, struct afs_inflate_io *io, bool in_end, bool *end);

/* What the failed afs_xdec_run() found ("malformed xz data (...)"); ""
 * before any failure. */
const char *afs_xdec_why(const struct afs_xdec *d);

/* The memory d holds now, in bytes, by its library's count
 * (lzma_memusage(), lzma_raw_decoder_memusage() for LZMA,
 * ZSTD_sizeof_DStream()). */
size_t afs_xdec_memusage(const struct afs_xdec *d);

/* Frees the decoder; NULL is a no-op. */
void afs_xdec_free(struct afs_xdec *d);

#endif
