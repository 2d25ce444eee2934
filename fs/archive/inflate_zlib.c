/* SPDX-License-Identifier: MIT */
/* The raw-deflate decoder over zlib: the fallback where ISA-L is missing. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "decpool.h"
#include "inflate.h"

/* One block of decoder memory (decpool.h) holding zlib's state and window. */
struct afs_inflater {
	z_stream z;
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
	zr = inflate(&d->z, Z_NO_FLUSH);
	io->next_in += in - d->z.avail_in;
	io->avail_in -= in - d->z.avail_in;
	io->next_out += out - d->z.avail_out;
	io->avail_out -= out - d->z.avail_out;
	if (zr == Z_STREAM_END)
		return AFS_INFLATE_END;
	if (zr == Z_OK || zr == Z_BUF_ERROR)
		return AFS_INFLATE_OK;
	return AFS_INFLATE_BAD; /* Z_DATA_ERROR, Z_NEED_DICT, Z_MEM_ERROR */
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
