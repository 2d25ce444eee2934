/* SPDX-License-Identifier: MIT */
/* The raw-deflate decoder over ISA-L's igzip, about 2.5x zlib's speed here.
 *
 * Stopping at a block boundary: igzip decodes block after block with no
 * way to ask it to stop between two, but it stops where the final block
 * ends.  So afs_inflater_stop_at_block() marks the block under way as the
 * final one (bfinal, which igzip reads only when the block ends); igzip
 * stops right after that block's end code, with the bits past it in
 * read_in/read_in_length and next_in, and afs_inflater_continue() clears
 * the mark and gives it back its history (igzip keeps none past a final
 * block) through isal_inflate_set_dict(). */
#include <stdbool.h>
#include <stdlib.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include "decpool.h"
#include "inflate.h"

struct afs_inflater {
	struct inflate_state st; /* about 85 KiB: never on the stack, and decoder memory (decpool.h) */
	bool stop;   /* asked to stop at the next block boundary */
	bool marked; /* the block under way is marked final for that */
};

enum afs_err afs_inflater_new(struct afs_inflater **out)
{
	struct afs_inflater *d = afs_decmem_alloc(sizeof(*d));

	*out = NULL;
	if (!d)
		return AFS_E_NOMEM;
	isal_inflate_init(&d->st);
	d->st.crc_flag = ISAL_DEFLATE; /* raw deflate, no wrapper; we check CRC-32 ourselves */
	d->stop = d->marked = false;
	*out = d;
	return AFS_OK;
}

enum afs_inflate_rc afs_inflater_run(struct afs_inflater *d, struct afs_inflate_io *io)
{
	/* ISA-L counts in uint32_t: feed at most 1 GiB per call. */
	uint32_t in = io->avail_in > (1u << 30) ? 1u << 30 : (uint32_t)io->avail_in;
	uint32_t out = io->avail_out > (1u << 30) ? 1u << 30 : (uint32_t)io->avail_out;
	int rc;

	if (d->stop && !d->marked && (d->st.block_state == ISAL_BLOCK_CODED || d->st.block_state == ISAL_BLOCK_TYPE0)) {
		if (d->st.bfinal)
			d->stop = false; /* the last block: it ends the stream */
		else
			d->st.bfinal = 1, d->marked = true;
	}
	d->st.next_in = (uint8_t *)io->next_in;
	d->st.avail_in = in;
	d->st.next_out = io->next_out;
	d->st.avail_out = out;
	rc = isal_inflate(&d->st);
	io->next_in += in - d->st.avail_in;
	io->avail_in -= in - d->st.avail_in;
	io->next_out += out - d->st.avail_out;
	io->avail_out -= out - d->st.avail_out;
	if (rc < 0 || rc == ISAL_NEED_DICT)
		return AFS_INFLATE_BAD;
	if (d->st.block_state == ISAL_BLOCK_FINISH)
		return d->marked ? AFS_INFLATE_BLOCK : AFS_INFLATE_END;
	return AFS_INFLATE_OK;
}

void afs_inflater_stop_at_block(struct afs_inflater *d)
{
	d->stop = true;
}

unsigned afs_inflater_pending(const struct afs_inflater *d, uint64_t *bits)
{
	*bits = d->st.read_in_length > 0 ? d->st.read_in : 0;
	if (d->st.read_in_length > 0 && d->st.read_in_length < 64)
		*bits &= ((uint64_t)1 << d->st.read_in_length) - 1;
	return d->st.read_in_length > 0 ? (unsigned)d->st.read_in_length : 0;
}

enum afs_err afs_inflater_continue(struct afs_inflater *d, const unsigned char *win, size_t wlen)
{
	if (!d->marked || d->st.block_state != ISAL_BLOCK_FINISH)
		return AFS_E_INVAL;
	d->marked = d->stop = false;
	d->st.bfinal = 0;
	d->st.block_state = ISAL_BLOCK_NEW_HDR;
	d->st.tmp_out_valid = d->st.tmp_out_processed = 0;
	if (wlen > 32768)
		win += wlen - 32768, wlen = 32768;
	if (wlen && isal_inflate_set_dict(&d->st, (uint8_t *)win, (uint32_t)wlen) != COMP_OK)
		return AFS_E_INVAL;
	return AFS_OK;
}

enum afs_err afs_inflater_resume(struct afs_inflater *d, unsigned nbits, unsigned bits, const unsigned char *win,
				 size_t wlen)
{
	if (nbits > 7)
		return AFS_E_INVAL;
	isal_inflate_reset(&d->st);
	d->st.crc_flag = ISAL_DEFLATE;
	d->stop = d->marked = false;
	if (wlen > 32768)
		win += wlen - 32768, wlen = 32768;
	if (wlen && isal_inflate_set_dict(&d->st, (uint8_t *)win, (uint32_t)wlen) != COMP_OK)
		return AFS_E_INVAL;
	d->st.read_in = bits & ((1u << nbits) - 1);
	d->st.read_in_length = (int32_t)nbits;
	return AFS_OK;
}

size_t afs_window_bound(size_t len)
{
	return len + len / 8 + 1024;
}

size_t afs_window_pack(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	/* igzip's level 1: a third smaller than level 0 here, about as fast */
	struct pack {
		struct isal_zstream z;
		uint8_t level_buf[ISAL_DEF_LVL1_SMALL];
	} *p = malloc(sizeof(*p)); /* 166 KiB: not on the stack */
	size_t n = 0;

	if (!p || len > 32768 || cap > UINT32_MAX)
		goto out;
	isal_deflate_stateless_init(&p->z);
	p->z.level = 1;
	p->z.level_buf = p->level_buf;
	p->z.level_buf_size = sizeof(p->level_buf);
	p->z.gzip_flag = IGZIP_DEFLATE;
	p->z.end_of_stream = 1;
	p->z.flush = NO_FLUSH;
	p->z.next_in = (uint8_t *)in;
	p->z.avail_in = (uint32_t)len;
	p->z.next_out = out;
	p->z.avail_out = (uint32_t)cap;
	if (isal_deflate_stateless(&p->z) == COMP_OK && p->z.avail_in == 0)
		n = cap - p->z.avail_out;
out:
	free(p);
	return n;
}

bool afs_window_unpack(struct afs_inflater *d, const unsigned char *z, size_t zlen, unsigned char *out, size_t len)
{
	if (zlen > UINT32_MAX || len > UINT32_MAX)
		return false;
	d->stop = d->marked = false;
	isal_inflate_init(&d->st);
	d->st.crc_flag = ISAL_DEFLATE;
	d->st.next_in = (uint8_t *)z;
	d->st.avail_in = (uint32_t)zlen;
	d->st.next_out = out;
	d->st.avail_out = (uint32_t)len;
	return isal_inflate_stateless(&d->st) == ISAL_DECOMP_OK && d->st.avail_out == 0;
}

void afs_inflater_free(struct afs_inflater *d)
{
	afs_decmem_free(d, sizeof(*d));
}

uint32_t afs_crc32(uint32_t crc, const void *buf, size_t len)
{
	return crc32_gzip_refl(crc, buf, len);
}

const char *afs_inflate_backend(void)
{
	return "isa-l";
}
