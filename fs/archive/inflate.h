/* SPDX-License-Identifier: MIT */
/* A raw-deflate decoder and CRC-32, behind one interface with two builds:
 * ISA-L's igzip (fast) or zlib (the fallback), chosen by meson's
 * -Dinflate option.  Only inflate_isal.c / inflate_zlib.c include their
 * library's headers. */
#ifndef AFS_INFLATE_H
#define AFS_INFLATE_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

enum afs_inflate_rc {
	AFS_INFLATE_OK,  /* progress made, or more input needed */
	AFS_INFLATE_END, /* the deflate stream ended */
	AFS_INFLATE_BAD, /* malformed deflate data */
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

/* Frees the decoder; NULL is a no-op. */
void afs_inflater_free(struct afs_inflater *d);

/* CRC-32 (the ZIP/gzip polynomial) of buf continued from crc (0 to start). */
uint32_t afs_crc32(uint32_t crc, const void *buf, size_t len);

/* "isa-l" or "zlib". */
const char *afs_inflate_backend(void);

#endif
