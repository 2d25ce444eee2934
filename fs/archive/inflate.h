/* SPDX-License-Identifier: MIT */
/* A raw-deflate decoder and CRC-32, behind one interface with two builds:
 * ISA-L's igzip (fast) or zlib (the fallback), chosen by meson's
 * -Dinflate option.  Only inflate_isal.c / inflate_zlib.c include their
 * library's headers. */
#ifndef AFS_INFLATE_H
#define AFS_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

enum afs_inflate_rc {
	AFS_INFLATE_OK,  /* progress made, or more input needed */
	AFS_INFLATE_END, /* the deflate stream ended */
	AFS_INFLATE_BAD, /* malformed deflate data */
	AFS_INFLATE_BLOCK, /* stopped at a block boundary, as asked (afs_inflater_stop_at_block()) */
};

/* The caller's buffers: run() advances next_in/next_out and shrinks the
 * avail counts by what it consumed and produced. */
struct afs_inflate_io {
	const unsigned char *next_in;
	size_t avail_in;
	unsigned char *next_out;
	size_t avail_out;
};

struct afs_inflater;

/* A decoder positioned at the start of a raw deflate stream. */
enum afs_err afs_inflater_new(struct afs_inflater **out);

/* Decodes as much as the buffers allow. */
enum afs_inflate_rc afs_inflater_run(struct afs_inflater *d, struct afs_inflate_io *io);

/* Seek points (seekidx.h).  Asks the decoder to stop at the end of the
 * deflate block it is decoding (or of the next one, between two blocks):
 * run() then returns AFS_INFLATE_BLOCK once it has produced every byte
 * before that boundary, and no byte after it.  A stream whose last block
 * is under way ends as usual (AFS_INFLATE_END), with no stop. */
void afs_inflater_stop_at_block(struct afs_inflater *d);

/* After AFS_INFLATE_BLOCK: the number of bits of the input given so far
 * that the decoder holds unconsumed (at most 64; zlib: at most 7), and
 * their value in *bits (the first bit in the lowest one).  The boundary
 * lies that many bits before the next byte of input. */
unsigned afs_inflater_pending(const struct afs_inflater *d, uint64_t *bits);

/* After AFS_INFLATE_BLOCK: goes on with the next block.  win is the last
 * wlen (at most 32 KiB) bytes of output, all of it when less came out. */
enum afs_err afs_inflater_continue(struct afs_inflater *d, const unsigned char *win, size_t wlen);

/* Starts over at a block boundary in the middle of a deflate stream: its
 * first nbits (0..7) bits are the lowest of bits, and the input given next
 * goes on from the following byte; win is the output's last wlen (at most
 * 32 KiB) bytes before the boundary. */
enum afs_err afs_inflater_resume(struct afs_inflater *d, unsigned nbits, unsigned bits, const unsigned char *win,
				 size_t wlen);

/* Seek point windows, kept in raw deflate at a fast level of the build's
 * (either build reads what the other wrote).  afs_window_pack() packs len
 * (at most 32 KiB) bytes of in into out, which has room for
 * afs_window_bound(len) bytes; it returns the packed size, 0 on failure. */
size_t afs_window_bound(size_t len);
size_t afs_window_pack(const unsigned char *in, size_t len, unsigned char *out, size_t cap);

/* Unpacks a window with d, which must be resumed (afs_inflater_resume())
 * before it runs again: true when z is a whole raw deflate stream of
 * exactly len bytes. */
bool afs_window_unpack(struct afs_inflater *d, const unsigned char *z, size_t zlen, unsigned char *out, size_t len);

/* Frees the decoder; NULL is a no-op. */
void afs_inflater_free(struct afs_inflater *d);

/* CRC-32 (the ZIP/gzip polynomial) of buf continued from crc (0 to start). */
uint32_t afs_crc32(uint32_t crc, const void *buf, size_t len);

/* "isa-l" or "zlib". */
const char *afs_inflate_backend(void);

#endif
