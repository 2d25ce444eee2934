/* SPDX-License-Identifier: MIT */
/* Seek points (as zlib's zran.c makes them) over either decoder of
 * inflate.h: the one place that resumes inflating in the middle of a
 * deflate stream.  Windows are kept deflated (inflate.h's afs_window_pack());
 * points go to and come from files through pointfile.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "archive.h"
#include "decpool.h"
#include "inflate.h"
#include "pointfile.h"
#include "seekidx.h"

#define WINDOW 32768
#define IN_BUF (48 * 1024)
#define SKIP_BUF (32 * 1024)

#define point afs_seekpoint /* pointfile.h */


struct afs_seekidx {
	pthread_mutex_t mu;
	struct afs_seekreg *reg; /* NULL for a private index */
	uint64_t size, span;
	struct point *pts;
	size_t n, cap;
	size_t bytes;
	bool full; /* the registry's budget turned a point down: record no more */
	/* kept on disk (pointfile.h), through the registry's pool */
	bool keyed;        /* entry is known: the index may be loaded and saved */
	uint64_t entry;    /* its number in the archive */
	unsigned users;    /* streams holding it (afs_seekreg_hold()) */
	bool dirty;        /* points recorded since it was loaded or saved */
	bool tried;        /* its file was looked for */
	bool loaded;       /* its points came from its file (and those recorded past them) */
	_Atomic uint64_t inflated; /* bytes inflated for it (afs_seekidx_inflated()) */
};

struct afs_seekreg {
	pthread_mutex_t mu;
	struct afs_seekidx **idx;
	uint32_t nodes;
	size_t cap, used;
	struct afs_seekreg *pool; /* whose cap and used bytes this one draws on: itself, or a shared one */
	struct afs_decpool *decoders; /* the live decoders of its streams (a pool's own; NULL in a shared one) */
	struct afs_archive *archive; /* whose entries these are (afs_seekreg_set_archive()); NULL: none */
	int dfd;                     /* a pool's: the directory of points files (-1: none) */
	void (*log)(const char *line); /* a pool's: says why a file was not used or written */
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
	bool from_file;       /* it resumed at a point loaded from a file */
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
	r->dfd = -1;
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

static void unbudget(struct afs_seekreg *r, size_t bytes);
static void save_locked(struct afs_seekidx *x);

void afs_seekreg_free(struct afs_seekreg *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nodes; i++) {
		struct afs_seekidx *x = r->idx[i];

		if (!x)
			continue;
		pthread_mutex_lock(&x->mu);
		save_locked(x); /* at unmount, or when a backups directory closes the archive */
		pthread_mutex_unlock(&x->mu);
		if (r->pool != r) /* its points' bytes go back to the pool's budget */
			unbudget(r, x->bytes + x->n * sizeof(struct point));
		afs_seekidx_free(x);
	}
	free(r->idx);
	afs_decpool_free(r->decoders);
	if (r->dfd >= 0)
		close(r->dfd);
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

/* Gives bytes back to the registry's budget. */
static void unbudget(struct afs_seekreg *r, size_t bytes)
{
	if (!r)
		return;
	r = r->pool;
	pthread_mutex_lock(&r->mu);
	r->used -= bytes < r->used ? bytes : r->used;
	pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------- points kept on disk */

#define FILE_MAX ((size_t)AFS_SEEK_MAX_POINTS * (afs_window_bound(WINDOW) + 64) + 4096)

/* The largest points file worth reading: one whose points all fit in what
 * is left of the registry's budget (a point takes more memory than file). */
static size_t budget_left(struct afs_seekreg *r)
{
	size_t left;

	r = r->pool;
	pthread_mutex_lock(&r->mu);
	left = r->cap > r->used ? r->cap - r->used : 0;
	pthread_mutex_unlock(&r->mu);
	return left < FILE_MAX ? left : FILE_MAX;
}


static void note(struct afs_seekreg *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct afs_seekreg *r, const char *fmt, ...)
{
	char line[400];
	va_list ap;

	if (!r->pool->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->pool->log(line);
}

/* The key of x's file; false when x cannot have one (no directory, no
 * archive, its entry unknown or not of its size). */
static bool key_of(struct afs_seekidx *x, struct afs_pointkey *k)
{
	struct afs_seekreg *r = x->reg;
	struct afs_entry_info e;

	if (!r || !x->keyed || !r->archive || r->pool->dfd < 0 || afs_archive_entry(r->archive, x->entry, &e) != AFS_OK ||
	    e.size != x->size)
		return false;
	*k = (struct afs_pointkey){
		.file_size = afs_archive_file_size(r->archive),
		.file_mtime = afs_archive_file_mtime(r->archive),
		.cdir_crc = afs_archive_cdir_crc(r->archive),
		.entries = afs_archive_count(r->archive),
		.entry = x->entry,
		.size = e.size,
		.comp_size = e.comp_size,
		.crc = e.crc,
	};
	return true;
}

/* Writes x's points when it recorded new ones; x->mu held. */
static void save_locked(struct afs_seekidx *x)
{
	struct afs_pointkey k;
	enum afs_err err;

	if (!x->dirty || !key_of(x, &k))
		return;
	x->dirty = false; /* written or not, once: a failure is said once */
	err = afs_pointfile_save(x->reg->pool->dfd, &k, x->pts, x->n);
	if (err != AFS_OK)
		note(x->reg, "seek points of entry %" PRIu64 " not kept: %s", x->entry, afs_strerror(err));
}

/* Takes x's file's points, once, when they go further than x's own. */
static void load(struct afs_seekidx *x)
{
	struct afs_pointkey k;
	struct point *pts = NULL;
	size_t n = 0, old = 0, keep = 0;
	enum afs_err err;
	char why[160] = "";

	if (!key_of(x, &k))
		return;
	err = afs_pointfile_load(x->reg->pool->dfd, &k, budget_left(x->reg), &pts, &n, why, sizeof(why));
	if (err == AFS_E_NOENT)
		return;
	if (err != AFS_OK) {
		note(x->reg, "seek points kept for entry %" PRIu64 " ignored: %s", x->entry, why[0] ? why : afs_strerror(err));
		return;
	}
	pthread_mutex_lock(&x->mu);
	if (n > 0 && (x->n == 0 || pts[n - 1].out > x->pts[x->n - 1].out)) {
		for (size_t i = 0; i < x->n; i++) {
			old += x->pts[i].zlen + sizeof(struct point);
			free(x->pts[i].zwin);
		}
		free(x->pts);
		unbudget(x->reg, old);
		x->bytes = 0;
		while (keep < n && budget(x->reg, pts[keep].zlen + sizeof(struct point)))
			x->bytes += pts[keep++].zlen;
		for (size_t i = keep; i < n; i++)
			free(pts[i].zwin);
		x->full = keep < n;
		x->loaded = true;
		x->pts = pts;
		x->n = keep;
		x->cap = n;
		x->dirty = false;
		pts = NULL;
	}
	pthread_mutex_unlock(&x->mu);
	afs_seekpoints_free(pts, n);
}

void afs_seekreg_keep(struct afs_seekreg *pool, int dfd, void (*log)(const char *line))
{
	pool->dfd = dfd;
	pool->log = log;
}

void afs_seekreg_set_archive(struct afs_seekreg *r, struct afs_archive *a)
{
	r->archive = a;
}

struct afs_seekidx *afs_seekreg_hold(struct afs_seekreg *r, uint32_t id, uint64_t size, uint64_t entry)
{
	struct afs_seekidx *x = afs_seekreg_get(r, id, size);

	if (!x)
		return NULL;
	pthread_mutex_lock(&x->mu);
	if (!x->keyed) {
		x->keyed = true;
		x->entry = entry;
	}
	x->users++;
	pthread_mutex_unlock(&x->mu);
	return x;
}

void afs_seekreg_release(struct afs_seekidx *x)
{
	pthread_mutex_lock(&x->mu);
	if (x->users > 0 && --x->users == 0)
		save_locked(x);
	pthread_mutex_unlock(&x->mu);
}

struct afs_seekidx *afs_seekreg_peek(struct afs_seekreg *r, uint32_t id)
{
	struct afs_seekidx *x;

	if (id >= r->nodes)
		return NULL;
	pthread_mutex_lock(&r->mu);
	x = r->idx[id];
	pthread_mutex_unlock(&r->mu);
	return x;
}

void afs_seekidx_count(struct afs_seekidx *x, uint64_t bytes)
{
	atomic_fetch_add(&x->inflated, bytes);
}

uint64_t afs_seekidx_inflated(struct afs_seekidx *x)
{
	return atomic_load(&x->inflated);
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
				x->dirty = true;
				z = NULL;
			} else {
				unbudget(x->reg, zlen + sizeof(p));
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

bool afs_zdec_distrust(struct afs_zdec *d)
{
	struct afs_seekidx *x = d->x;
	size_t bytes = 0;
	bool drop;

	pthread_mutex_lock(&x->mu);
	drop = d->from_file && x->loaded;
	if (drop) {
		for (size_t i = 0; i < x->n; i++) {
			bytes += x->pts[i].zlen + sizeof(struct point);
			free(x->pts[i].zwin);
		}
		unbudget(x->reg, bytes);
		x->n = 0;
		x->bytes = 0;
		x->full = false;
		x->loaded = false;
		x->dirty = true; /* the file is wrong: the points recorded from now on replace it */
	}
	d->from_file = false;
	pthread_mutex_unlock(&x->mu);
	if (drop)
		note(x->reg, "seek points kept for entry %" PRIu64 " do not fit its data: dropped", x->entry);
	return drop;
}

uint64_t afs_zdec_inflated(const struct afs_zdec *d)
{
	return d->inflated;
}

enum afs_err afs_zdec_seek(struct afs_zdec *d, uint64_t off)
{
	struct afs_seekidx *x = d->x;
	struct point p = { 0 };
	bool have = false, fetch;
	enum afs_err err;

	pthread_mutex_lock(&x->mu);
	/* past the known points: the ones kept on disk, the first time */
	fetch = x->reg && x->keyed && !x->tried && off >= (x->n ? x->pts[x->n - 1].out : 0) + x->span;
	if (fetch)
		x->tried = true;
	pthread_mutex_unlock(&x->mu);
	if (fetch)
		load(x);
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
	d->from_file = lo > 0 && x->loaded;
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
			if (made)
				afs_seekidx_count(d->x, made);
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
