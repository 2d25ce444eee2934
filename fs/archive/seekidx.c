/* SPDX-License-Identifier: MIT */
/* Seek points (as zlib's zran.c makes them) over either decoder of
 * inflate.h: the one place that resumes inflating in the middle of a
 * deflate stream.  Windows are kept deflated (inflate.h's afs_window_pack()). */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "decpool.h"
#include "inflate.h"
#include "seekidx.h"

#define WINDOW 32768
#define IN_BUF (48 * 1024)
#define SKIP_BUF (32 * 1024)

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
	bool full; /* the registry's budget turned a point down: record no more */
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
	struct afs_inflater *dec;
	struct afs_inflate_io io;
	bool ended;           /* the deflate stream ended */
	bool src_end;         /* the source has no more compressed bytes */
	bool armed;           /* the decoder is to stop at the next block boundary */
	uint64_t out;         /* uncompressed offset */
	uint64_t in_next;     /* compressed offset of the next byte to read from src */
	uint64_t inflated;    /* bytes inflated since it was made */
	size_t wlen;          /* win holds the wlen bytes of output before out */
	unsigned char in[IN_BUF];
	unsigned char win[WINDOW];
	unsigned char skip[SKIP_BUF];
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

/* True when a point past the index's last one is due at the decoder's
 * position (so at the next block boundary). */
static bool point_due(struct afs_zdec *d)
{
	struct afs_seekidx *x = d->x;
	bool due;

	pthread_mutex_lock(&x->mu);
	due = !x->full && d->out >= (x->n ? x->pts[x->n - 1].out : 0) + x->span && d->out < x->size;
	pthread_mutex_unlock(&x->mu);
	return due;
}

/* Keeps the last WINDOW bytes of output in d->win: p[0..n) came out just now. */
static void track(struct afs_zdec *d, const unsigned char *p, size_t n)
{
	if (n >= WINDOW) {
		memcpy(d->win, p + n - WINDOW, WINDOW);
		d->wlen = WINDOW;
	} else if (d->wlen + n <= WINDOW) {
		memcpy(d->win + d->wlen, p, n);
		d->wlen += n;
	} else {
		size_t keep = WINDOW - n;

		memmove(d->win, d->win + d->wlen - keep, keep);
		memcpy(d->win + keep, p, n);
		d->wlen = WINDOW;
	}
}

/* The decoder stopped at a block boundary: records it as a point if it is
 * a span past the index's last one.  A point that cannot be kept is simply
 * not kept. */
static void add_point(struct afs_zdec *d)
{
	struct afs_seekidx *x = d->x;
	struct point p = { .out = d->out };
	uint64_t bits, last, next_in = d->in_next - d->io.avail_in;
	unsigned pending = afs_inflater_pending(d->dec, &bits);
	size_t zlen;
	unsigned char *z, *shrunk;

	if (d->out >= x->size || pending / 8 > next_in || d->wlen < (d->out < WINDOW ? d->out : WINDOW))
		return;
	p.in = next_in - pending / 8;
	p.bits = (uint8_t)(pending % 8);
	p.prime = p.bits ? (uint8_t)((bits & ((1u << p.bits) - 1)) << (8 - p.bits)) : 0;
	p.wlen = (uint32_t)d->wlen;
	z = malloc(afs_window_bound(p.wlen));
	zlen = z ? afs_window_pack(d->win, p.wlen, z, afs_window_bound(p.wlen)) : 0;
	if (!zlen) {
		free(z);
		return;
	}
	shrunk = realloc(z, zlen); /* give back what packing did not take */
	if (shrunk)
		z = shrunk;
	p.zlen = (uint32_t)zlen;
	p.zwin = z;
	pthread_mutex_lock(&x->mu);
	last = x->n ? x->pts[x->n - 1].out : 0;
	if (d->out >= last + x->span) {
		if (!budget(x->reg, zlen + sizeof(p))) {
			x->full = true;
		} else {
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
	}
	pthread_mutex_unlock(&x->mu);
	free(z);
}

/* ----------------------------------------------------------- decoder */

enum afs_err afs_zdec_new(struct afs_seekidx *x, afs_zsource src, void *ctx, struct afs_zdec **out)
{
	struct afs_zdec *d = afs_decmem_alloc(sizeof(*d)); /* one block, freed whole */
	enum afs_err err;

	*out = NULL;
	if (!d)
		return AFS_E_NOMEM;
	memset(d, 0, offsetof(struct afs_zdec, in)); /* the state; the buffers need no zeroes */
	err = afs_inflater_new(&d->dec);
	if (err != AFS_OK) {
		afs_decmem_free(d, sizeof(*d));
		return err;
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
	afs_inflater_free(d->dec);
	afs_decmem_free(d, sizeof(*d));
}

uint64_t afs_zdec_pos(const struct afs_zdec *d)
{
	return d->out;
}

uint64_t afs_zdec_inflated(const struct afs_zdec *d)
{
	return d->inflated;
}

enum afs_err afs_zdec_seek(struct afs_zdec *d, uint64_t off)
{
	struct afs_seekidx *x = d->x;
	struct point p = { 0 };
	bool have = false;
	enum afs_err err;

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
		have = p.wlen <= WINDOW && afs_window_unpack(d->dec, p.zwin, p.zlen, d->win, p.wlen);
	}
	pthread_mutex_unlock(&x->mu);
	d->io.avail_in = 0;
	d->ended = false;
	d->src_end = false;
	d->armed = false;
	if (!have) {
		d->out = 0;
		d->in_next = 0;
		d->wlen = 0;
		return afs_inflater_resume(d->dec, 0, 0, NULL, 0) == AFS_OK ? AFS_OK : AFS_E_NOMEM;
	}
	err = afs_inflater_resume(d->dec, p.bits, p.bits ? p.prime >> (8 - p.bits) : 0, d->win, p.wlen);
	if (err != AFS_OK)
		return AFS_E_CORRUPT;
	d->out = p.out;
	d->in_next = p.in;
	d->wlen = p.wlen;
	return AFS_OK;
}

enum afs_err afs_zdec_read(struct afs_zdec *d, unsigned char *out, size_t len)
{
	struct afs_inflate_io *io = &d->io;

	while (len > 0) {
		size_t chunk = out ? len : (len < SKIP_BUF ? len : SKIP_BUF);
		unsigned char *dst = out ? out : d->skip;

		if (chunk > (1u << 30))
			chunk = 1u << 30;
		io->next_out = dst;
		io->avail_out = chunk;
		while (io->avail_out > 0) {
			unsigned char *from = io->next_out;
			size_t before = io->avail_out, made;
			enum afs_inflate_rc rc;
			bool starved;

			if (d->ended)
				return AFS_E_CORRUPT; /* the stream ends before the entry's size */
			if (io->avail_in == 0 && !d->src_end) {
				size_t got = 0;
				enum afs_err err = d->src(d->ctx, d->in_next, d->in, IN_BUF, &got);

				if (err != AFS_OK)
					return err;
				d->src_end = got == 0;
				io->next_in = d->in;
				io->avail_in = got;
				d->in_next += got;
			}
			starved = io->avail_in == 0 && d->src_end;
			if (!d->armed && point_due(d)) {
				afs_inflater_stop_at_block(d->dec);
				d->armed = true;
			}
			rc = afs_inflater_run(d->dec, io);
			made = before - io->avail_out;
			track(d, from, made);
			d->out += made;
			d->inflated += made;
			if (rc == AFS_INFLATE_END) {
				d->ended = true;
			} else if (rc == AFS_INFLATE_BAD) {
				return AFS_E_CORRUPT;
			} else if (rc == AFS_INFLATE_BLOCK) {
				/* at the block boundary asked for: a point may be recorded here */
				d->armed = false;
				add_point(d);
				if (afs_inflater_continue(d->dec, d->win, d->wlen) != AFS_OK)
					return AFS_E_CORRUPT;
			} else if (starved && made == 0) {
				return AFS_E_CORRUPT; /* truncated */
			}
		}
		if (out)
			out += chunk;
		len -= chunk;
	}
	return AFS_OK;
}
