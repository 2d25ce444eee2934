/* SPDX-License-Identifier: MIT */
/* Entry content at any offset: stored entries by seeking the raw bytes,
 * deflated entries by inflating forward (the fast decoder, from offset 0
 * on) or, for a read that jumps, from the nearest seek point (a second decoder, see
 * seekidx.h); LZMA, XZ and zstd entries through liblzma and libzstd
 * (xdecode.h) and entries of the other methods libzip decodes (bzip2, ...)
 * through libzip, forward, one pass from offset 0 at a time; never holding
 * a whole entry.  A stream opened with a registry counts its decoders in
 * the registry's pool (decpool.h), which may free them between reads. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "decpool.h"
#include "index.h"
#include "inflate.h"
#include "seekidx.h"
#include "stream.h"
#include "xdecode.h"

#define IN_BUF (64 * 1024)
#define SKIP_BUF (32 * 1024)
/* What the pool counts for a decoder (decpool.h): deflate's sequential
 * one (its state and the buffer) and the zlib one resumed at seek points,
 * at most this each; bzip2's through libzip (100 KB + 4 x its 900 KB
 * blocks, plus the buffer).  xdecode.h's say what they hold. */
#define DEFLATE_BYTES (210 * 1024)
#define METHOD_BZIP2 12
#define BZIP2_BYTES (3700 * 1000 + IN_BUF + SKIP_BUF)

/* How a stream gets its entry's content. */
enum path {
	PATH_STORE,   /* the raw bytes */
	PATH_DEFLATE, /* inflated here */
	PATH_LIBZIP,  /* decoded by libzip (afs_raw_open_decoded()) */
	PATH_XDEC,    /* LZMA, XZ, zstd when libzip does not decode them: xdecode.h */
	PATH_NONE,    /* encrypted, or a method nothing here decodes: reads fail */
};

struct afs_stream {
	struct afs_archive *a;
	uint32_t entry;
	uint16_t method;
	enum path path;
	uint64_t size;
	uint32_t crc_expected;
	struct afs_raw *raw;   /* opened on first read (PATH_LIBZIP: decoded) */
	uint64_t pos;          /* offset the raw stream / inflater is at */
	uint32_t crc;          /* CRC-32 of [0, crc_pos) */
	uint64_t crc_pos;
	enum afs_err err;      /* sticky: once a read fails, every later read fails alike */
	char why[320];         /* what the first failed read found (PATH_NONE: will find); "" until then */
	bool past_eof;         /* the archive file is too short for the entry's data */
	bool dec_end;            /* the deflate stream has ended */
	bool raw_eof;
	/* the sequential decoder: raw, dec and in, made by the first read of a
	 * deflated entry that starts or continues the pass from offset 0 */
	struct afs_inflater *dec;
	struct afs_xdec *xdec; /* PATH_XDEC: in dec's place */
	size_t seq_bytes;      /* what the pool counts for it (0: nothing) */
	struct afs_inflate_io io;
	unsigned char *in;     /* IN_BUF compressed bytes, then SKIP_BUF scratch */
	/* reads that jump: seek points shared through the registry (or this
	 * stream's own), and a decoder resumed from them */
	struct afs_seekreg *reg;
	uint32_t id;
	struct afs_seekidx *idx;
	bool own_idx;
	bool held;             /* idx is held (afs_seekreg_hold()) until close */
	struct afs_zdec *z;
	struct afs_raw *zraw;  /* its own raw stream of the entry */
	uint64_t zraw_pos;     /* compressed offset zraw is at */
	/* the registry's decoder pool (NULL without a registry): it counts the
	 * two decoders above and may free them between reads (evict()) */
	struct afs_decpool *pool;
	struct afs_decuser user;
};

/* Frees the sequential decoder: the next read that needs it starts the
 * pass again from offset 0 (the CRC-32 goes on from where it was). */
static void seq_free(struct afs_stream *s)
{
	afs_inflater_free(s->dec);
	afs_xdec_free(s->xdec);
	afs_raw_close(s->raw);
	afs_decmem_free(s->in, IN_BUF + SKIP_BUF);
	s->dec = NULL;
	s->xdec = NULL;
	s->raw = NULL;
	s->in = NULL;
	s->raw_eof = false;
	s->seq_bytes = 0;
}

/* Frees the decoder of reads that jump: the next one starts at a seek
 * point again. */
static void jump_free(struct afs_stream *s)
{
	afs_zdec_free(s->z);
	afs_raw_close(s->zraw);
	s->z = NULL;
	s->zraw = NULL;
}

/* The pool needs room: frees the decoders of a deflated entry's stream
 * between two of its reads.  Stored entries count none, so are never
 * evicted (their raw stream is all they keep). */
static void evict(struct afs_decuser *u)
{
	struct afs_stream *s = (struct afs_stream *)(void *)((char *)u - offsetof(struct afs_stream, user));

	seq_free(s);
	jump_free(s);
}

/* Counts a decoder of bytes s is about to make (it may evict other
 * streams'). */
static void take(struct afs_stream *s, size_t bytes)
{
	if (s->pool)
		afs_decpool_take(s->pool, &s->user, bytes);
}

/* Uncounts a decoder of bytes s failed to make. */
static void drop(struct afs_stream *s, size_t bytes)
{
	if (s->pool)
		afs_decpool_drop(s->pool, &s->user, 1, bytes);
}

/* Frees the sequential decoder and uncounts it. */
static void seq_drop(struct afs_stream *s)
{
	size_t bytes = s->seq_bytes;

	seq_free(s);
	drop(s, bytes);
}

/* Counts what xdecode.h's decoder has grown to since last counted (its
 * dictionary or window is made when the data's header says how big). */
static void seq_grow(struct afs_stream *s)
{
	size_t now = IN_BUF + SKIP_BUF + afs_xdec_memusage(s->xdec);

	if (now > s->seq_bytes) {
		if (s->pool)
			afs_decpool_grow(s->pool, &s->user, now - s->seq_bytes);
		s->seq_bytes = now;
	}
}

/* What the pool counts for libzip's decoder of method m (and the buffer):
 * bzip2's at its size; for LZMA, XZ and zstd, with a libzip that decodes
 * them (its memory unknown here, libzip sets no limit), the most
 * xdecode.h's may take, which the budget holds one of. */
static size_t libzip_bytes(uint16_t m)
{
	return m == METHOD_BZIP2 ? BZIP2_BYTES : AFS_XDEC_MEMLIMIT;
}

enum afs_err afs_stream_open(struct afs_archive *a, const struct afs_index *ix, uint32_t id, struct afs_stream **out)
{
	return afs_stream_open_shared(a, ix, id, NULL, out);
}

enum afs_err afs_stream_open_shared(struct afs_archive *a, const struct afs_index *ix, uint32_t id,
				    struct afs_seekreg *reg, struct afs_stream **out)
{
	const struct afs_node *n = afs_index_node(ix, id);
	struct afs_stream *s;

	*out = NULL;
	if (S_ISDIR(n->mode))
		return AFS_E_ISDIR;
	s = calloc(1, sizeof(*s));
	if (!s)
		return AFS_E_NOMEM;
	s->a = a;
	s->entry = n->entry;
	s->method = n->method;
	if (!afs_stream_decodable(n, s->why, sizeof(s->why))) /* why: for its reads */
		s->path = PATH_NONE;
	else if (n->method == AFS_METHOD_STORE || n->method == AFS_METHOD_DEFLATE)
		s->path = n->method == AFS_METHOD_STORE ? PATH_STORE : PATH_DEFLATE;
	else if (afs_method_libzip(n->method)) /* a newer libzip decodes LZMA, XZ, zstd itself */
		s->path = PATH_LIBZIP;
	else
		s->path = PATH_XDEC;
	s->size = n->size;
	s->crc_expected = n->crc;
	s->reg = reg;
	s->id = id;
	s->past_eof = afs_archive_entry_past_eof(a, n->entry);
	if (reg) {
		s->pool = afs_seekreg_decoders(reg);
		afs_decpool_join(s->pool, &s->user, evict);
		/* an entry that can have points: held from open to close, so that
		 * its points are written when its last stream closes */
		if (s->path == PATH_DEFLATE && s->size > AFS_SEEK_SPAN) {
			s->idx = afs_seekreg_hold(reg, id, s->size, n->entry);
			s->held = s->idx != NULL;
		}
	}
	*out = s;
	return AFS_OK;
}

void afs_stream_close(struct afs_stream *s)
{
	if (!s)
		return;
	if (s->pool)
		afs_decpool_leave(s->pool, &s->user);
	seq_free(s);
	jump_free(s);
	if (s->own_idx)
		afs_seekidx_free(s->idx);
	if (s->held)
		afs_seekreg_release(s->idx);
	free(s);
}

/* afs_raw_read() of r for s: a failed transfer (a remote archive's, or
 * the disk's) says why in s->why, for afs_stream_error(). */
static enum afs_err raw_read(struct afs_stream *s, struct afs_raw *r, void *buf, size_t len, size_t *got)
{
	enum afs_err err = afs_raw_read(r, buf, len, got);

	if (err == AFS_E_IO && afs_raw_why(r)[0])
		snprintf(s->why, sizeof(s->why), "%s", afs_raw_why(r));
	return err;
}

static enum afs_err corrupt(struct afs_stream *s, const char *why)
{
	snprintf(s->why, sizeof(s->why), "%s", why);
	return AFS_E_CORRUPT;
}

/* Folds the bytes buf[0..n) produced at off into the running CRC-32, and
 * checks it when the pass from offset 0 reaches the end of the entry. */
static enum afs_err account(struct afs_stream *s, const unsigned char *buf, size_t n, uint64_t off)
{
	if (off <= s->crc_pos && s->crc_pos < off + n) {
		size_t skip = (size_t)(s->crc_pos - off);
		s->crc = afs_crc32(s->crc, buf + skip, n - skip);
		s->crc_pos = off + n;
		if (s->crc_pos == s->size && s->crc != s->crc_expected) {
			snprintf(s->why, sizeof(s->why), "CRC-32 mismatch (archive says %08x, data gives %08x)",
				 s->crc_expected, s->crc);
			return AFS_E_CORRUPT;
		}
	}
	return AFS_OK;
}

/* Positions the raw stream at compressed byte off, opening it if needed. */
static enum afs_err raw_at(struct afs_stream *s, uint64_t off)
{
	enum afs_err err;

	s->raw_eof = false;
	if (!s->raw) {
		err = afs_raw_open(s->a, s->entry, &s->raw);
		if (err != AFS_OK)
			return err;
		if (off == 0)
			return AFS_OK;
	}
	return afs_raw_seek(s->raw, off);
}

static enum afs_err stored_read(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err = AFS_OK;
	size_t done = 0;

	if (!s->raw || off != s->pos) {
		err = raw_at(s, off);
		if (err != AFS_OK)
			return err;
		s->pos = off;
	}
	while (done < len) {
		size_t n;
		err = raw_read(s, s->raw, buf + done, len - done, &n);
		if (err != AFS_OK)
			return err;
		if (n == 0)
			return corrupt(s, "stored data ends before the size the archive states");
		done += n;
	}
	s->pos = off + done;
	*got = done;
	return account(s, buf, done, off);
}

/* What s's sequential decoder decodes, for its reasons. */
static const char *dname(const struct afs_stream *s)
{
	return s->path == PATH_XDEC ? afs_method_name(s->method) : "deflate";
}

/* Makes the sequential decoder (s has none), at the start of the entry:
 * its buffer, raw stream and inflater (PATH_XDEC: xdecode.h's decoder),
 * or none of them on error. */
static enum afs_err inflate_start(struct afs_stream *s)
{
	enum afs_err err = AFS_OK;

	s->seq_bytes = s->path == PATH_XDEC ? IN_BUF + SKIP_BUF : DEFLATE_BYTES;
	take(s, s->seq_bytes);
	s->in = afs_decmem_alloc(IN_BUF + SKIP_BUF);
	if (!s->in)
		err = AFS_E_NOMEM;
	if (err == AFS_OK)
		err = raw_at(s, 0);
	if (err == AFS_OK && s->path == PATH_XDEC)
		err = afs_xdec_new(s->method, s->size, &s->xdec);
	else if (err == AFS_OK)
		err = afs_inflater_new(&s->dec);
	if (err != AFS_OK) {
		seq_drop(s);
		return err;
	}
	if (s->xdec)
		seq_grow(s);
	s->io.avail_in = 0;
	s->dec_end = false;
	s->pos = 0;
	return AFS_OK;
}

/* Gives the inflater more compressed bytes when it has used up what it had. */
static enum afs_err refill(struct afs_stream *s)
{
	size_t n;
	enum afs_err err;

	if (s->io.avail_in > 0 || s->raw_eof)
		return AFS_OK;
	err = raw_read(s, s->raw, s->in, IN_BUF, &n);
	if (err != AFS_OK)
		return err;
	s->raw_eof = (n == 0);
	s->io.next_in = s->in;
	s->io.avail_in = n;
	return AFS_OK;
}

/* One xdecode.h decoder call, its memory counted after it.  A decoder
 * that ran out of memory is dropped: the next read starts a new pass. */
static enum afs_err xdec_step(struct afs_stream *s)
{
	enum afs_err err = afs_xdec_run(s->xdec, &s->io, s->raw_eof, &s->dec_end);

	if (err == AFS_E_NOMEM) {
		seq_drop(s);
	} else if (err != AFS_OK) {
		snprintf(s->why, sizeof(s->why), "%s", afs_xdec_why(s->xdec));
	}
	return err;
}

/* One decoder call, with input refilled first; notes the end of the stream.
 * All input given, the stream not ended and no output: the data is truncated. */
static enum afs_err step(struct afs_stream *s)
{
	enum afs_err err = refill(s);
	size_t out = s->io.avail_out;
	enum afs_inflate_rc rc;
	bool starved;

	if (err != AFS_OK)
		return err;
	starved = s->io.avail_in == 0 && s->raw_eof;
	if (s->xdec) {
		err = xdec_step(s);
		if (err != AFS_OK)
			return err;
		seq_grow(s);
		if (s->dec_end)
			return err;
		if (starved && out == s->io.avail_out) {
			snprintf(s->why, sizeof(s->why), "%s data is truncated", dname(s));
			return AFS_E_CORRUPT;
		}
		return AFS_OK;
	}
	rc = afs_inflater_run(s->dec, &s->io);
	if (s->idx && out > s->io.avail_out)
		afs_seekidx_count(s->idx, out - s->io.avail_out);
	switch (rc) {
	case AFS_INFLATE_END:
		s->dec_end = true;
		return AFS_OK;
	case AFS_INFLATE_BAD:
		return corrupt(s, "malformed deflate data");
	case AFS_INFLATE_OK:
	case AFS_INFLATE_BLOCK: /* never asked for here */
		break;
	}
	if (starved && out == s->io.avail_out)
		return corrupt(s, "deflate data is truncated");
	return AFS_OK;
}

/* Inflates exactly len bytes of output at s->pos into out (len may not pass
 * the entry's end).  When the output reaches the end of the entry, also
 * checks that the deflate stream ends there. */
static enum afs_err inflate_to(struct afs_stream *s, unsigned char *out, size_t len)
{
	uint64_t start = s->pos;
	unsigned char extra;
	enum afs_err err;

	s->io.next_out = out;
	s->io.avail_out = len;
	while (s->io.avail_out > 0) {
		if (s->dec_end) {
			snprintf(s->why, sizeof(s->why), "%s stream ends before the size the archive states", dname(s));
			return AFS_E_CORRUPT;
		}
		if ((err = step(s)) != AFS_OK)
			return err;
	}
	s->pos = start + len;
	if (s->pos == s->size) {
		/* The stream must end exactly here: one more byte is an error. */
		s->io.next_out = &extra;
		s->io.avail_out = 1;
		while (!s->dec_end && s->io.avail_out == 1)
			if ((err = step(s)) != AFS_OK)
				return err;
		if (s->io.avail_out == 0) {
			snprintf(s->why, sizeof(s->why), "%s data runs past the size the archive states", dname(s));
			return AFS_E_CORRUPT;
		}
	}
	return account(s, out, len, start);
}

/* The jump decoder's source: compressed bytes at off, from a raw stream
 * of its own (the sequential decoder keeps its place in the other). */
static enum afs_err zsource(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
	struct afs_stream *s = ctx;
	enum afs_err err;

	if (!s->zraw) {
		err = afs_raw_open(s->a, s->entry, &s->zraw);
		if (err != AFS_OK)
			return err;
		s->zraw_pos = 0;
	}
	if (off != s->zraw_pos) {
		err = afs_raw_seek(s->zraw, off);
		if (err != AFS_OK)
			return err;
		s->zraw_pos = off;
	}
	err = raw_read(s, s->zraw, buf, len, got);
	if (err == AFS_OK)
		s->zraw_pos += *got;
	return err;
}

/* A read that jumps: from the seek point at or before off (or from where
 * the jump decoder already is, when that is nearer), at most a span. */
static enum afs_err jump_read(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off)
{
	enum afs_err err;

	if (!s->idx) {
		s->idx = s->reg ? afs_seekreg_get(s->reg, s->id, s->size) : afs_seekidx_new(s->size);
		s->own_idx = !s->reg;
		if (!s->idx)
			return AFS_E_NOMEM;
	}
	if (!s->z) {
		take(s, DEFLATE_BYTES);
		err = afs_zdec_new(s->idx, zsource, s, &s->z);
		if (err != AFS_OK) {
			drop(s, DEFLATE_BYTES);
			return err;
		}
	}
	for (int tries = 0;; tries++) {
		if (tries > 0 || off < afs_zdec_pos(s->z) || off - afs_zdec_pos(s->z) > AFS_SEEK_SPAN)
			err = afs_zdec_seek(s->z, off);
		else
			err = AFS_OK;
		if (err == AFS_OK)
			err = afs_zdec_read(s->z, NULL, off - afs_zdec_pos(s->z));
		if (err == AFS_OK)
			err = afs_zdec_read(s->z, buf, len);
		/* points kept on disk that do not fit: dropped, and the read again without them */
		if (err != AFS_E_CORRUPT || tries > 0 || !afs_zdec_distrust(s->z))
			break;
	}
	if (err == AFS_E_CORRUPT)
		return corrupt(s, "malformed or truncated deflate data");
	if (err != AFS_OK)
		return err;
	/* A pass whose sequential decoder was evicted goes on here: its
	 * CRC-32 too. */
	return account(s, buf, len, off);
}

/* The sequential pass from s->pos (at or before off) on: skips forward to
 * off, the CRC still seeing every byte, then reads len bytes into buf. */
static enum afs_err pass_to(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;

	while (s->pos < off) {
		uint64_t gap = off - s->pos;

		err = inflate_to(s, s->in + IN_BUF, gap < SKIP_BUF ? (size_t)gap : SKIP_BUF);
		if (err != AFS_OK)
			return err;
	}
	err = inflate_to(s, buf, len);
	if (err != AFS_OK)
		return err;
	*got = len;
	return AFS_OK;
}

/* The sequential decoder serves reads that continue its pass (or start
 * one at the beginning); a read that jumps back, or more than a span
 * ahead, goes to the seek points, and the sequential pass stays where it
 * was for when the reads come back to it. */
static enum afs_err deflate_read(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;
	uint64_t from = s->dec ? s->pos : 0;

	if (off < from || off - from > AFS_SEEK_SPAN) {
		err = jump_read(s, buf, len, off);
		if (err == AFS_OK)
			*got = len;
		return err;
	}
	if (!s->dec) {
		err = inflate_start(s);
		if (err != AFS_OK)
			return err;
	}
	return pass_to(s, buf, len, off, got);
}

/* LZMA, XZ and zstd entries that libzip does not decode: one pass from
 * offset 0 with xdecode.h's decoder, skipping forward to off; a read
 * behind the pass starts a new one (the decoders cannot seek), as
 * libzip_read() does.  The pass counts as one decoder in the pool, with
 * the memory its decoder holds. */
static enum afs_err xdec_read(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;

	if (s->xdec && off < s->pos)
		seq_drop(s);
	if (!s->xdec) { /* none yet, evicted, dropped for going back, or out of memory */
		err = inflate_start(s);
		if (err != AFS_OK)
			return err;
	}
	return pass_to(s, buf, len, off, got);
}

/* Reads exactly len bytes of the libzip pass at s->pos into out (len may
 * not pass the entry's end).  At the entry's end, reads on to libzip's end
 * of the data, where libzip checks its size and CRC-32. */
static enum afs_err libzip_fill(struct afs_stream *s, unsigned char *out, size_t len)
{
	const char *name = afs_method_name(s->method) ? afs_method_name(s->method) : "compressed";
	unsigned char extra;
	enum afs_err err = AFS_OK;
	size_t done = 0, n = 0;

	while (done < len && err == AFS_OK) {
		err = raw_read(s, s->raw, out + done, len - done, &n);
		if (err == AFS_OK && n == 0) {
			snprintf(s->why, sizeof(s->why), "%s data ends before the size the archive states", name);
			return AFS_E_CORRUPT;
		}
		done += n;
	}
	if (err == AFS_OK && (s->pos += len) == s->size) {
		err = raw_read(s, s->raw, &extra, 1, &n);
		if (err == AFS_OK && n > 0) {
			snprintf(s->why, sizeof(s->why), "%s data runs past the size the archive states", name);
			return AFS_E_CORRUPT;
		}
	}
	if (err != AFS_OK && err != AFS_E_NOMEM)
		snprintf(s->why, sizeof(s->why), "%s (%s data, decoded by libzip)", afs_raw_why(s->raw), name);
	return err;
}

/* Entries only libzip decodes: one pass from offset 0, skipping forward to
 * off; a read behind the pass starts a new one (libzip's decoders cannot
 * seek).  The pass counts as one decoder in the pool, at its known size
 * (libzip_bytes()). */
static enum afs_err libzip_read(struct afs_stream *s, unsigned char *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;

	if (s->raw && off < s->pos) {
		afs_raw_close(s->raw);
		s->raw = NULL;
	}
	if (!s->in) { /* no decoder held: none yet, or evicted */
		s->seq_bytes = libzip_bytes(s->method);
		take(s, s->seq_bytes);
		s->in = afs_decmem_alloc(IN_BUF + SKIP_BUF);
		if (!s->in) {
			seq_drop(s);
			return AFS_E_NOMEM;
		}
	}
	if (!s->raw) {
		err = afs_raw_open_decoded(s->a, s->entry, &s->raw);
		if (err != AFS_OK)
			return err;
		s->pos = 0;
	}
	for (err = AFS_OK; s->pos < off && err == AFS_OK;) { /* skip forward */
		uint64_t gap = off - s->pos;
		err = libzip_fill(s, s->in, gap < IN_BUF + SKIP_BUF ? (size_t)gap : IN_BUF + SKIP_BUF);
	}
	if (err == AFS_OK)
		err = libzip_fill(s, buf, len);
	if (err == AFS_OK) {
		*got = len;
	} else { /* where libzip stands is unknown: a retry (after AFS_E_NOMEM) starts a new pass */
		afs_raw_close(s->raw);
		s->raw = NULL;
	}
	return err;
}

/* afs_stream_pread() with s safe from eviction. */
static enum afs_err pread_entered(struct afs_stream *s, void *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;

	if (s->err != AFS_OK)
		return s->err;
	if (off >= s->size || len == 0)
		return AFS_OK;
	if (s->past_eof) {
		s->err = corrupt(s, "its data would lie past the end of the archive file");
		return s->err;
	}
	if (s->path == PATH_NONE) /* s->why says why since the open */
		return s->err = AFS_E_UNSUPPORTED;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	if (s->path == PATH_STORE)
		err = stored_read(s, buf, len, off, got);
	else if (s->path == PATH_DEFLATE)
		err = deflate_read(s, buf, len, off, got);
	else if (s->path == PATH_XDEC)
		err = xdec_read(s, buf, len, off, got);
	else
		err = libzip_read(s, buf, len, off, got);
	if (err != AFS_OK) {
		*got = 0;
		if (err != AFS_E_NOMEM) /* a decoder or raw stream left mid-way is not reused */
			s->err = err;
	}
	return err;
}

enum afs_err afs_stream_pread(struct afs_stream *s, void *buf, size_t len, uint64_t off, size_t *got)
{
	enum afs_err err;

	*got = 0;
	if (s->pool)
		afs_decpool_enter(s->pool, &s->user);
	err = pread_entered(s, buf, len, off, got);
	if (s->pool)
		afs_decpool_exit(s->pool, &s->user);
	return err;
}

const char *afs_stream_error(const struct afs_stream *s, enum afs_err err)
{
	return s && err != AFS_OK && err == s->err && s->why[0] ? s->why : afs_strerror(err);
}

bool afs_stream_decodable(const struct afs_node *n, char *why, size_t whylen)
{
	const char *name = afs_method_name(n->method);

	if (n->encryption != 0) {
		if (why)
			snprintf(why, whylen, "encrypted (%s), and archfs has no password", afs_encryption_name(n->encryption));
		return false;
	}
	if (!afs_method_decodable(n->method)) {
		if (why && name)
			snprintf(why, whylen, "compressed with %s (method %u), which archfs cannot decode", name, n->method);
		else if (why)
			snprintf(why, whylen, "compressed with method %u, which archfs does not know", n->method);
		return false;
	}
	return true;
}
