/* SPDX-License-Identifier: MIT */
/* Seek points (zran) over zlib: the one place that resumes inflating in
 * the middle of a deflate stream (inflatePrime + inflateSetDictionary). */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "decpool.h"
#include "seekidx.h"

#define WINDOW 32768
#define IN_BUF (64 * 1024)
#define SKIP_BUF (64 * 1024)
#define ZLIB_MEM (48 * 1024) /* zlib's inflate state (7 KiB) and window (32 KiB) */

struct point {
	uint64_t out;        /* uncompressed offset */
	uint64_t in;         /* compressed offset of the first byte not (wholly) consumed */
	uint8_t bits;        /* bits of the byte at in - 1 still to be consumed */
	uint8_t prime;       /* that byte */
	uint32_t wlen;       /* window length (< WINDOW only near the start) */
	uint32_t zlen;       /* its deflated size */
	unsigned char *zwin; /* the window, deflated */
};

struct afs_seekidx {
	pthread_mutex_t mu;
	struct afs_seekreg *reg; /* NULL for a private index */
	uint64_t size, span;
	struct point *pts;
	size_t n, cap;
	size_t bytes;
};

struct afs_seekreg {
	pthread_mutex_t mu;
	struct afs_seekidx **idx;
	uint32_t nodes;
	size_t cap, used;
	struct afs_seekreg *pool; /* whose cap and used bytes this one draws on: itself, or a shared one */
	struct afs_decpool *decoders; /* the live decoders of its streams (a pool's own; NULL in a shared one) */
};

struct afs_zdec {
	struct afs_seekidx *x;
	afs_zsource src;
	void *ctx;
	z_stream strm;
	bool ended;           /* the deflate stream ended */
	bool src_end;         /* the source has no more compressed bytes */
	uint64_t out;         /* uncompressed offset */
	uint64_t in_next;     /* compressed offset of the next byte to read from src */
	uint8_t last_byte;    /* the byte before strm.next_in */
	unsigned char in[IN_BUF];
	unsigned char win[WINDOW];
	unsigned char skip[SKIP_BUF];
	struct afs_decmem_region zmem; /* zlib allocates from zbuf */
	_Alignas(16) unsigned char zbuf[ZLIB_MEM];
};

/* ------------------------------------------------------------ indexes */

static struct afs_seekidx *idx_new(uint64_t size, struct afs_seekreg *reg)
{
	struct afs_seekidx *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	pthread_mutex_init(&x->mu, NULL);
	x->reg = reg;
	x->size = size;
	x->span = AFS_SEEK_SPAN;
	/* span * AFS_SEEK_MAX_POINTS >= size, without computing the product:
	 * it wraps for a size past 2^63 (an archive's claim) and the loop
	 * never ended */
	while (x->span < size / AFS_SEEK_MAX_POINTS + (size % AFS_SEEK_MAX_POINTS != 0))
		x->span *= 2;
	return x;
}

struct afs_seekidx *afs_seekidx_new(uint64_t size)
{
	return idx_new(size, NULL);
}

void afs_seekidx_free(struct afs_seekidx *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++)
		free(x->pts[i].zwin);
	free(x->pts);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

size_t afs_seekidx_points(struct afs_seekidx *x)
{
	size_t n;

	pthread_mutex_lock(&x->mu);
	n = x->n;
	pthread_mutex_unlock(&x->mu);
	return n;
}

size_t afs_seekidx_memory(struct afs_seekidx *x)
{
	size_t b;

	pthread_mutex_lock(&x->mu);
	b = x->bytes + x->cap * sizeof(struct point);
	pthread_mutex_unlock(&x->mu);
	return b;
}

/* A registry drawing on pool, or a pool of its own (with its decoder cap)
 * when pool is NULL. */
static struct afs_seekreg *reg_new(uint32_t nodes, size_t cap, struct afs_seekreg *pool)
{
	struct afs_seekreg *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->idx = calloc(nodes ? nodes : 1, sizeof(*r->idx));
	if (!pool)
		r->decoders = afs_decpool_new(AFS_DECPOOL_CAP);
	if (!r->idx || (!pool && !r->decoders)) {
		free(r->idx);
		afs_decpool_free(r->decoders);
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	r->nodes = nodes;
	r->cap = cap;
	r->pool = pool ? pool->pool : r;
	return r;
}

struct afs_seekreg *afs_seekreg_new_shared(uint32_t nodes, struct afs_seekreg *pool)
{
	return reg_new(nodes, 0, pool);
}

struct afs_seekreg *afs_seekreg_new(uint32_t nodes, size_t cap)
{
	return reg_new(nodes, cap, NULL);
}

struct afs_decpool *afs_seekreg_decoders(struct afs_seekreg *r)
{
	return r->pool->decoders;
}

void afs_seekreg_free(struct afs_seekreg *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nodes; i++)
		afs_seekidx_free(r->idx[i]);
	free(r->idx);
	afs_decpool_free(r->decoders);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

struct afs_seekidx *afs_seekreg_get(struct afs_seekreg *r, uint32_t id, uint64_t size)
{
	struct afs_seekidx *x = NULL;

	if (id >= r->nodes)
		return NULL;
	pthread_mutex_lock(&r->mu);
	if (!r->idx[id])
		r->idx[id] = idx_new(size, r);
	x = r->idx[id];
	pthread_mutex_unlock(&r->mu);
	return x;
}

size_t afs_seekreg_memory(struct afs_seekreg *r)
{
	size_t used;

	r = r->pool;
	pthread_mutex_lock(&r->mu);
	used = r->used;
	pthread_mutex_unlock(&r->mu);
	return used;
}

/* Takes bytes from the registry's budget; false when it is spent. */
static bool budget(struct afs_seekreg *r, size_t bytes)
{
	bool ok;

	if (!r)
		return true;
	r = r->pool;
	pthread_mutex_lock(&r->mu);
	ok = r->used + bytes <= r->cap;
	if (ok)
		r->used += bytes;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

/* Records the decoder's position as a point if it is a span past the
 * index's last one.  A point that cannot be kept is simply not kept. */
static void maybe_add_point(struct afs_zdec *d, uint64_t in_off)
{
	struct afs_seekidx *x = d->x;
	struct point p = { .out = d->out, .in = in_off };
	uint64_t last;
	uLongf zlen;
	uInt wlen = WINDOW;
	unsigned char *z;

	pthread_mutex_lock(&x->mu);
	last = x->n ? x->pts[x->n - 1].out : 0;
	pthread_mutex_unlock(&x->mu);
	if (d->out < last + x->span || d->out >= x->size)
		return;
	p.bits = (uint8_t)(d->strm.data_type & 7);
	p.prime = d->last_byte;
	if (inflateGetDictionary(&d->strm, d->win, &wlen) != Z_OK)
		return;
	p.wlen = wlen;
	zlen = compressBound(wlen);
	z = malloc(zlen);
	if (!z || compress2(z, &zlen, d->win, wlen, 1) != Z_OK) {
		free(z);
		return;
	}
	p.zlen = (uint32_t)zlen;
	p.zwin = z;
	pthread_mutex_lock(&x->mu);
	last = x->n ? x->pts[x->n - 1].out : 0;
	if (d->out >= last + x->span && budget(x->reg, zlen + sizeof(p))) {
		if (x->n == x->cap) {
			size_t cap = x->cap ? x->cap * 2 : 16;
			struct point *grown = realloc(x->pts, cap * sizeof(*grown));

			if (grown) {
				x->pts = grown;
				x->cap = cap;
			}
		}
		if (x->n < x->cap) {
			x->pts[x->n++] = p;
			x->bytes += zlen;
			z = NULL;
		}
	}
	pthread_mutex_unlock(&x->mu);
	free(z);
}

/* ----------------------------------------------------------- decoder */

enum afs_err afs_zdec_new(struct afs_seekidx *x, afs_zsource src, void *ctx, struct afs_zdec **out)
{
	struct afs_zdec *d = afs_decmem_alloc(sizeof(*d)); /* one block, freed whole */

	*out = NULL;
	if (!d)
		return AFS_E_NOMEM;
	memset(d, 0, offsetof(struct afs_zdec, in)); /* the state; the buffers need no zeroes */
	d->zmem = (struct afs_decmem_region){ .base = d->zbuf, .size = sizeof(d->zbuf) };
	d->strm.zalloc = afs_decmem_zalloc;
	d->strm.zfree = afs_decmem_zfree;
	d->strm.opaque = &d->zmem;
	if (inflateInit2(&d->strm, -15) != Z_OK) {
		afs_decmem_free(d, sizeof(*d));
		return AFS_E_NOMEM;
	}
	d->x = x;
	d->src = src;
	d->ctx = ctx;
	*out = d;
	return AFS_OK;
}

void afs_zdec_free(struct afs_zdec *d)
{
	if (!d)
		return;
	inflateEnd(&d->strm);
	afs_decmem_free(d, sizeof(*d));
}

uint64_t afs_zdec_pos(const struct afs_zdec *d)
{
	return d->out;
}

enum afs_err afs_zdec_seek(struct afs_zdec *d, uint64_t off)
{
	struct afs_seekidx *x = d->x;
	struct point p = { 0 };
	uLongf wlen = WINDOW;
	bool have = false;
	int rc = Z_OK;

	pthread_mutex_lock(&x->mu);
	/* the last point at or before off: points are in increasing order */
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (x->pts[mid].out <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		p = x->pts[lo - 1];
		have = uncompress(d->win, &wlen, p.zwin, p.zlen) == Z_OK && wlen == p.wlen;
	}
	pthread_mutex_unlock(&x->mu);
	if (inflateReset(&d->strm) != Z_OK)
		return AFS_E_NOMEM;
	d->strm.avail_in = 0;
	d->ended = false;
	d->src_end = false;
	if (!have) {
		d->out = 0;
		d->in_next = 0;
		return AFS_OK;
	}
	if (p.bits)
		rc = inflatePrime(&d->strm, p.bits, p.prime >> (8 - p.bits));
	if (rc == Z_OK)
		rc = inflateSetDictionary(&d->strm, d->win, (uInt)wlen);
	if (rc != Z_OK)
		return AFS_E_CORRUPT;
	d->out = p.out;
	d->in_next = p.in;
	return AFS_OK;
}

enum afs_err afs_zdec_read(struct afs_zdec *d, unsigned char *out, size_t len)
{
	z_stream *s = &d->strm;

	while (len > 0) {
		size_t chunk = out ? len : (len < SKIP_BUF ? len : SKIP_BUF);
		unsigned char *dst = out ? out : d->skip;

		if (chunk > (1u << 30))
			chunk = 1u << 30;
		s->next_out = dst;
		s->avail_out = (uInt)chunk;
		while (s->avail_out > 0) {
			uInt before = s->avail_out;
			int rc;

			if (d->ended)
				return AFS_E_CORRUPT; /* the stream ends before the entry's size */
			if (s->avail_in == 0 && !d->src_end) {
				size_t got = 0;
				enum afs_err err = d->src(d->ctx, d->in_next, d->in, IN_BUF, &got);

				if (err != AFS_OK)
					return err;
				d->src_end = got == 0;
				s->next_in = d->in;
				s->avail_in = (uInt)got;
				d->in_next += got;
			}
			/* With the source spent, zlib may still owe output from bits
			 * it already holds (the rest of a match): only a call that
			 * makes nothing and stops inside a block means truncation.
			 * At a block boundary (data_type 128) one more call either
			 * moves on or stops inside the next block. */
			rc = inflate(s, Z_BLOCK);
			d->out += before - s->avail_out;
			if (s->next_in > d->in)
				d->last_byte = s->next_in[-1];
			if (rc == Z_STREAM_END) {
				d->ended = true;
			} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
				return AFS_E_CORRUPT;
			} else if (d->src_end && s->avail_in == 0 && before == s->avail_out && !(s->data_type & 128)) {
				return AFS_E_CORRUPT; /* truncated */
			} else if ((s->data_type & 128) && !(s->data_type & 64)) {
				/* at a block boundary: a point may be recorded here */
				maybe_add_point(d, d->in_next - s->avail_in);
			}
		}
		if (out)
			out += chunk;
		len -= chunk;
	}
	return AFS_OK;
}
