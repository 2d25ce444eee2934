/* SPDX-License-Identifier: MIT */
/* The raw-deflate decoder over zlib: the fallback where ISA-L is missing.
 * It stops at block boundaries as zlib's zran.c does: inflate(Z_BLOCK). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "decpool.h"
#include "inflate.h"

/* One block of decoder memory (decpool.h) holding zlib's state and window. */
struct afs_inflater {
	z_stream z;
	bool stop;               /* asked to stop at the next block boundary */
	unsigned char last;      /* the last byte of input zlib took */
	struct afs_decmem_region mem;
	_Alignas(16) unsigned char buf[48 * 1024];
};

enum afs_err afs_inflater_new(struct afs_inflater **out)
{
	struct afs_inflater *d = afs_decmem_alloc(sizeof(*d));

	*out = NULL;
	if (!d)
		return AFS_E_NOMEM;
	memset(&d->z, 0, sizeof(d->z));
	d->stop = false;
	d->last = 0;
	d->mem = (struct afs_decmem_region){ .base = d->buf, .size = sizeof(d->buf) };
	d->z.zalloc = afs_decmem_zalloc;
	d->z.zfree = afs_decmem_zfree;
	d->z.opaque = &d->mem;
	if (inflateInit2(&d->z, -MAX_WBITS) != Z_OK) {
		afs_decmem_free(d, sizeof(*d));
		return AFS_E_NOMEM;
	}
	*out = d;
	return AFS_OK;
}

enum afs_inflate_rc afs_inflater_run(struct afs_inflater *d, struct afs_inflate_io *io)
{
	/* zlib counts in uInt: feed at most 1 GiB per call. */
	uInt in = io->avail_in > (1u << 30) ? 1u << 30 : (uInt)io->avail_in;
	uInt out = io->avail_out > (1u << 30) ? 1u << 30 : (uInt)io->avail_out;
	int zr;

	d->z.next_in = (unsigned char *)io->next_in;
	d->z.avail_in = in;
	d->z.next_out = io->next_out;
	d->z.avail_out = out;
	zr = inflate(&d->z, d->stop ? Z_BLOCK : Z_NO_FLUSH);
	if (d->z.next_in > io->next_in)
		d->last = d->z.next_in[-1];
	io->next_in += in - d->z.avail_in;
	io->avail_in -= in - d->z.avail_in;
	io->next_out += out - d->z.avail_out;
	io->avail_out -= out - d->z.avail_out;
	if (zr == Z_STREAM_END)
		return AFS_INFLATE_END;
	if (zr == Z_OK && d->stop && (d->z.data_type & 128) && !(d->z.data_type & 64) && d->z.total_out > 0) {
		d->stop = false; /* at the end of a block (not the last one) */
		return AFS_INFLATE_BLOCK;
	}
	if (zr == Z_OK || zr == Z_BUF_ERROR)
		return AFS_INFLATE_OK;
	return AFS_INFLATE_BAD; /* Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR */
}

void afs_inflater_stop_at_block(struct afs_inflater *d)
{
	d->stop = true;
}

unsigned afs_inflater_pending(const struct afs_inflater *d, uint64_t *bits)
{
	unsigned n = (unsigned)d->z.data_type & 7; /* bits of the last byte taken not used yet */

	*bits = n ? (uint64_t)(d->last >> (8 - n)) : 0;
	return n;
}

enum afs_err afs_inflater_continue(struct afs_inflater *d, const unsigned char *win, size_t wlen)
{
	(void)win; /* zlib keeps its own window */
	(void)wlen;
	d->stop = false;
	return AFS_OK;
}

enum afs_err afs_inflater_resume(struct afs_inflater *d, unsigned nbits, unsigned bits, const unsigned char *win,
				 size_t wlen)
{
	int rc = inflateReset(&d->z);

	d->stop = false;
	if (nbits > 7)
		return AFS_E_INVAL;
	if (rc == Z_OK && nbits)
		rc = inflatePrime(&d->z, (int)nbits, (int)(bits & ((1u << nbits) - 1)));
	if (wlen > 32768)
		win += wlen - 32768, wlen = 32768;
	if (rc == Z_OK && wlen)
		rc = inflateSetDictionary(&d->z, win, (uInt)wlen);
	return rc == Z_OK ? AFS_OK : AFS_E_INVAL;
}

size_t afs_window_bound(size_t len)
{
	return len + len / 8 + 1024;
}

size_t afs_window_pack(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	z_stream z;
	size_t n = 0;

	memset(&z, 0, sizeof(z));
	if (len > 32768 || cap > UINT32_MAX || deflateInit2(&z, 1, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) == Z_STREAM_END)
		n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

bool afs_window_unpack(struct afs_inflater *d, const unsigned char *z, size_t zlen, unsigned char *out, size_t len)
{
	unsigned char extra;
	int zr;

	if (zlen > UINT32_MAX || len > UINT32_MAX || inflateReset(&d->z) != Z_OK)
		return false;
	d->stop = false;
	d->z.next_in = (unsigned char *)z;
	d->z.avail_in = (uInt)zlen;
	d->z.next_out = out;
	d->z.avail_out = (uInt)len;
	zr = inflate(&d->z, Z_FINISH);
	if (zr == Z_BUF_ERROR && d->z.avail_out == 0) { /* full: the stream must end right here */
		d->z.next_out = &extra;
		d->z.avail_out = 1;
		zr = inflate(&d->z, Z_FINISH);
		return zr == Z_STREAM_END && d->z.avail_out == 1;
	}
	return zr == Z_STREAM_END && d->z.avail_out == 0;
}

void afs_inflater_free(struct afs_inflater *d)
{
	if (!d)
		return;
	inflateEnd(&d->z);
	afs_decmem_free(d, sizeof(*d));
}

uint32_t afs_crc32(uint32_t crc, const void *buf, size_t len)
{
	return (uint32_t)crc32_z(crc, buf, len);
}

const char *afs_inflate_backend(void)
{
	return "zlib";
}
