/* SPDX-License-Identifier: MIT */
/* LZMA and XZ entries through liblzma, zstd entries through libzstd: the
 * formats' reference decoders, behind one forward-only interface. */
#include <inttypes.h>
#include <stdarg.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>
#include "xdecode.h"

#define METHOD_LZMA 14
#define METHOD_ZSTD 93
#define METHOD_XZ 95
#define LZMA_HDR 9 /* SDK version (2), properties size (2), properties (5) */

struct afs_xdec {
	uint16_t method;
	uint64_t size;
	bool started;       /* lzma: the raw decoder exists (the header is read) */
	bool ended;
	lzma_stream lz;
	unsigned char hdr[LZMA_HDR];
	size_t hdr_len;
	uint64_t raw_mem;   /* lzma: what the raw decoder needs (liblzma does not count it) */
	ZSTD_DStream *zs;
	bool frame_done;    /* zstd: the last call ended a frame (or none began) */
	char why[128];
};

bool afs_xdec_handles(uint16_t method)
{
	return method == METHOD_LZMA || method == METHOD_XZ || method == METHOD_ZSTD;
}

static const char *name_of(uint16_t m)
{
	return m == METHOD_LZMA ? "lzma" : m == METHOD_XZ ? "xz" : "zstd";
}

enum afs_err afs_xdec_new(uint16_t m, uint64_t size, struct afs_xdec **out)
{
	struct afs_xdec *d;
	lzma_stream init = LZMA_STREAM_INIT;

	*out = NULL;
	if (!afs_xdec_handles(m))
		return AFS_E_UNSUPPORTED;
	d = calloc(1, sizeof(*d));
	if (!d)
		return AFS_E_NOMEM;
	d->method = m;
	d->size = size;
	d->lz = init;
	d->frame_done = true;
	if (m == METHOD_XZ) {
		if (lzma_stream_decoder(&d->lz, AFS_XDEC_MEMLIMIT, 0) != LZMA_OK)
			goto nomem;
		d->started = true;
	} else if (m == METHOD_ZSTD) {
		d->zs = ZSTD_createDStream();
		/* a window of 2^28 bytes is AFS_XDEC_MEMLIMIT */
		if (!d->zs || ZSTD_isError(ZSTD_initDStream(d->zs)) ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax, 28)))
			goto nomem;
	}
	*out = d;
	return AFS_OK;
nomem:
	afs_xdec_free(d);
	return AFS_E_NOMEM;
}

static enum afs_err fail(struct afs_xdec *d, enum afs_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum afs_err fail(struct afs_xdec *d, enum afs_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	return err;
}

/* liblzma's verdict on d's data as an error with a reason. */
static enum afs_err lzma_failed(struct afs_xdec *d, lzma_ret rc)
{
	const char *name = name_of(d->method);

	switch (rc) {
	case LZMA_MEM_ERROR:
		return fail(d, AFS_E_NOMEM, "out of memory decoding %s data", name);
	case LZMA_MEMLIMIT_ERROR:
		return fail(d, AFS_E_UNSUPPORTED, "%s data that needs %" PRIu64 " MiB to decode, more than archfs allows (%u MiB)",
			    name, lzma_memusage(&d->lz) >> 20, AFS_XDEC_MEMLIMIT >> 20);
	case LZMA_OPTIONS_ERROR:
		return fail(d, AFS_E_UNSUPPORTED, "%s data with options liblzma cannot decode", name);
	case LZMA_FORMAT_ERROR:
		return fail(d, AFS_E_CORRUPT, "malformed %s data (not an .xz stream)", name);
	default:
		return fail(d, AFS_E_CORRUPT, "malformed %s data", name);
	}
}

/* ZIP's LZMA header, gathered from io (it may come in pieces), then the raw
 * LZMA1 decoder for its properties: the size known, an end marker after
 * it allowed (general-purpose bit 1 says whether there is one). */
static enum afs_err lzma_begin(struct afs_xdec *d, struct afs_inflate_io *io)
{
	lzma_filter filters[2] = { { .id = LZMA_FILTER_LZMA1, .options = NULL }, { .id = LZMA_VLI_UNKNOWN } };
	lzma_options_lzma *opt;
	uint64_t need;
	lzma_ret rc;
	size_t n = LZMA_HDR - d->hdr_len;

	if (n > io->avail_in)
		n = io->avail_in;
	memcpy(d->hdr + d->hdr_len, io->next_in, n);
	d->hdr_len += n;
	io->next_in += n;
	io->avail_in -= n;
	if (d->hdr_len < LZMA_HDR)
		return AFS_OK;
	if ((d->hdr[2] | d->hdr[3] << 8) != 5)
		return fail(d, AFS_E_CORRUPT, "malformed lzma data (a properties size of %u, not 5)", d->hdr[2] | d->hdr[3] << 8);
	rc = lzma_properties_decode(&filters[0], NULL, d->hdr + 4, 5);
	if (rc != LZMA_OK)
		return rc == LZMA_MEM_ERROR ? lzma_failed(d, rc) : fail(d, AFS_E_CORRUPT, "malformed lzma data (bad properties)");
	opt = filters[0].options;
	filters[0].id = LZMA_FILTER_LZMA1EXT;
	lzma_set_ext_size(*opt, d->size);
	opt->ext_flags = LZMA_LZMA1EXT_ALLOW_EOPM;
	need = lzma_raw_decoder_memusage(filters);
	if (need > AFS_XDEC_MEMLIMIT) {
		free(opt);
		return fail(d, AFS_E_UNSUPPORTED, "lzma data that needs %" PRIu64 " MiB to decode, more than archfs allows (%u MiB)",
			    need >> 20, AFS_XDEC_MEMLIMIT >> 20);
	}
	rc = lzma_raw_decoder(&d->lz, filters);
	free(opt);
	if (rc != LZMA_OK)
		return lzma_failed(d, rc);
	d->raw_mem = need;
	d->started = true;
	return AFS_OK;
}

static enum afs_err lzma_run(struct afs_xdec *d, struct afs_inflate_io *io, bool in_end)
{
	lzma_ret rc;
	enum afs_err err;

	if (!d->started && (err = lzma_begin(d, io)) != AFS_OK)
		return err;
	if (!d->started)
		return AFS_OK;
	d->lz.next_in = io->next_in;
	d->lz.avail_in = io->avail_in;
	d->lz.next_out = io->next_out;
	d->lz.avail_out = io->avail_out;
	rc = lzma_code(&d->lz, in_end ? LZMA_FINISH : LZMA_RUN);
	io->next_in = d->lz.next_in;
	io->avail_in = d->lz.avail_in;
	io->next_out = d->lz.next_out;
	io->avail_out = d->lz.avail_out;
	if (rc == LZMA_STREAM_END)
		d->ended = true;
	else if (rc != LZMA_OK && rc != LZMA_BUF_ERROR) /* BUF_ERROR: no progress, the caller sees it */
		return lzma_failed(d, rc);
	return AFS_OK;
}

static enum afs_err zstd_run(struct afs_xdec *d, struct afs_inflate_io *io, bool in_end)
{
	ZSTD_inBuffer in = { io->next_in, io->avail_in, 0 };
	ZSTD_outBuffer out = { io->next_out, io->avail_out, 0 };
	size_t rc;

	if (io->avail_in == 0 && in_end && d->frame_done) {
		d->ended = true; /* the data ends between frames */
		return AFS_OK;
	}
	rc = ZSTD_decompressStream(d->zs, &out, &in);
	io->next_in += in.pos;
	io->avail_in -= in.pos;
	io->next_out += out.pos;
	io->avail_out -= out.pos;
	if (ZSTD_isError(rc)) {
		switch (ZSTD_getErrorCode(rc)) {
		case ZSTD_error_memory_allocation:
			return fail(d, AFS_E_NOMEM, "out of memory decoding zstd data");
		case ZSTD_error_frameParameter_windowTooLarge:
			return fail(d, AFS_E_UNSUPPORTED, "zstd data whose window needs more memory than archfs allows (%u MiB)",
				    AFS_XDEC_MEMLIMIT >> 20);
		default:
			return fail(d, AFS_E_CORRUPT, "malformed zstd data (%s)", ZSTD_getErrorName(rc));
		}
	}
	/* 0: a frame ended and its output is all out; a new one may follow */
	d->frame_done = rc == 0;
	if (d->frame_done && io->avail_in == 0 && in_end)
		d->ended = true;
	return AFS_OK;
}

enum afs_err afs_xdec_run(struct afs_xdec *d, struct afs_inflate_io *io, bool in_end, bool *end)
{
	enum afs_err err = AFS_OK;

	if (!d->ended)
		err = d->method == METHOD_ZSTD ? zstd_run(d, io, in_end) : lzma_run(d, io, in_end);
	*end = d->ended;
	return err;
}

const char *afs_xdec_why(const struct afs_xdec *d)
{
	return d->why;
}

size_t afs_xdec_memusage(const struct afs_xdec *d)
{
	size_t n = sizeof(*d);

	if (d->zs)
		n += ZSTD_sizeof_DStream(d->zs);
	else if (d->method == METHOD_LZMA)
		n += (size_t)d->raw_mem; /* lzma_memusage() knows only XZ's stream decoder */
	else
		n += (size_t)lzma_memusage(&d->lz);
	return n;
}

void afs_xdec_free(struct afs_xdec *d)
{
	if (!d)
		return;
	lzma_end(&d->lz);
	ZSTD_freeDStream(d->zs);
	free(d);
}
