/* SPDX-License-Identifier: MIT */
/* Unit tests of the seek points fs/archive/seekidx.c records with the
 * build's decoder (ISA-L or zlib, inflate.h): over deflate streams of every
 * kind of block (dynamic, fixed Huffman, stored, tiny ones from flushes,
 * empty ones) a decoder resumed at any point gives the same bytes as a
 * straight inflate, and the points sit where the blocks end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "inflate.h"
#include "seekidx.h"
#include "testutil.h"

#define SIZE (5u * 1024 * 1024 + 777)

struct mem {
	const unsigned char *z;
	size_t len;
	unsigned reads;
};

/* Hands out at most 4093 bytes a call, so that inputs end at odd places. */
static enum afs_err src(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
	struct mem *m = ctx;

	m->reads++;
	if (off > m->len)
		return AFS_E_IO;
	*got = m->len - off < len ? (size_t)(m->len - off) : len;
	if (*got > 4093)
		*got = 4093;
	memcpy(buf, m->z + off, *got);
	return AFS_OK;
}

/* Raw deflate of data at level with strategy; flush every `every` bytes of
 * input with flush (every == 0: never). */
static unsigned char *deflate_with(const unsigned char *data, size_t len, int level, int strategy, size_t every,
				   int flush, size_t *zlen)
{
	z_stream z = { 0 };
	size_t cap = len + len / 8 + (len / (every ? every : len) + 1) * 16 + 4096;
	unsigned char *out = malloc(cap);

	CHECK(deflateInit2(&z, level, Z_DEFLATED, -15, 8, strategy) == Z_OK);
	z.next_out = out;
	z.avail_out = (uInt)cap;
	for (size_t i = 0; i < len;) {
		size_t n = every ? every : len - i;

		if (n > len - i)
			n = len - i;
		z.next_in = (unsigned char *)data + i;
		z.avail_in = (uInt)n;
		i += n;
		CHECK(deflate(&z, i == len ? Z_FINISH : every ? flush : Z_NO_FLUSH) == (i == len ? Z_STREAM_END : Z_OK));
	}
	*zlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* Text with runs of noise: dynamic blocks, and stored ones where the noise is. */
static unsigned char *mixed(size_t len)
{
	unsigned char *d = tu_data(len, 5);

	for (size_t i = 0; i < len; i++)
		if ((i >> 16) % 4 != 3)
			d[i] = "SELECT id FROM time_entries WHERE user_id = 7;\n"[i % 47] + (unsigned char)((i >> 9) & 3);
	return d;
}

static void check_stream(const char *what, const unsigned char *data, const unsigned char *z, size_t zlen,
			 size_t min_points)
{
	struct mem m = { z, zlen, 0 };
	struct afs_seekidx *x = afs_seekidx_new(SIZE);
	struct afs_zdec *d = NULL, *r = NULL;
	unsigned char *buf = malloc(SIZE);
	unsigned seed = 7;

	/* one pass records the points and gives the bytes */
	CHECK(afs_zdec_new(x, src, &m, &d) == AFS_OK);
	CHECK(afs_zdec_read(d, buf, SIZE) == AFS_OK);
	CHECK(memcmp(buf, data, SIZE) == 0);
	size_t n = afs_seekidx_points(x);
	if (n < min_points || n > SIZE / AFS_SEEK_SPAN)
		fprintf(stderr, "%s: %zu points\n", what, n);
	CHECK(n >= min_points && n <= SIZE / AFS_SEEK_SPAN);
	/* a decoder resumed at each point, and at random offsets */
	CHECK(afs_zdec_new(x, src, &m, &r) == AFS_OK);
	for (uint64_t off = AFS_SEEK_SPAN; off < SIZE; off += AFS_SEEK_SPAN) {
		CHECK(afs_zdec_seek(r, off) == AFS_OK);
		CHECK(afs_zdec_pos(r) <= off && off - afs_zdec_pos(r) < 2 * AFS_SEEK_SPAN);
		if (n > 0 && off >= 2 * AFS_SEEK_SPAN) /* a point past the first span is there */
			CHECK(afs_zdec_pos(r) > 0);
		uint64_t at = afs_zdec_pos(r);
		CHECK(afs_zdec_read(r, buf, SIZE - at) == AFS_OK); /* to the end, the final block's last bits too */
		CHECK(memcmp(buf, data + at, SIZE - at) == 0);
	}
	for (int i = 0; i < 40; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t off = (seed >> 4) % SIZE;
		size_t len = 1 + (seed >> 9) % 70000;

		if (len > SIZE - off)
			len = SIZE - off;
		CHECK(afs_zdec_seek(r, off) == AFS_OK);
		CHECK(afs_zdec_read(r, NULL, off - afs_zdec_pos(r)) == AFS_OK);
		CHECK(afs_zdec_read(r, buf, len) == AFS_OK && memcmp(buf, data + off, len) == 0);
	}
	/* nothing new but perhaps one past the last (a decoder asks for a stop
	 * between two of its calls, so where a span ends in a call decides
	 * whether the boundary before the final block is reached) */
	CHECK(afs_seekidx_points(x) <= n + 1);
	afs_zdec_free(d);
	afs_zdec_free(r);
	afs_seekidx_free(x);
	free(buf);
}

/* Windows packed by this build unpack to the same bytes, and only to them. */
static void check_windows(const unsigned char *text, const unsigned char *noise)
{
	struct afs_inflater *d = NULL;
	unsigned char *z = malloc(afs_window_bound(32768)), out[32768 + 1];
	size_t zlen;

	CHECK(afs_inflater_new(&d) == AFS_OK);
	for (int k = 0; k < 3; k++) {
		const unsigned char *w = k == 1 ? noise : text;
		size_t len = k == 2 ? 1000 : 32768;

		zlen = afs_window_pack(w, len, z, afs_window_bound(len));
		CHECK(zlen > 0 && zlen <= afs_window_bound(len));
		CHECK(afs_window_unpack(d, z, zlen, out, len) && memcmp(out, w, len) == 0);
		CHECK(!afs_window_unpack(d, z, zlen, out, len - 1));     /* longer than said */
		CHECK(!afs_window_unpack(d, z, zlen, out, len + 1));     /* shorter than said */
		CHECK(!afs_window_unpack(d, z, zlen / 2, out, len));     /* cut short */
		memset(z, 0xff, zlen);
		CHECK(!afs_window_unpack(d, z, zlen, out, len));         /* not deflate */
	}
	/* a decoder that unpacked a window resumes cleanly */
	CHECK(afs_inflater_resume(d, 0, 0, NULL, 0) == AFS_OK);
	afs_inflater_free(d);
	free(z);
}

int main(void)
{
	unsigned char *text = mixed(SIZE), *noise = tu_data(SIZE, 9);
	size_t zlen;
	unsigned char *z;
	struct {
		const char *what;
		const unsigned char *data;
		int level, strategy;
		size_t every;
		int flush;
		size_t min_points;
	} cases[] = {
		{ "dynamic blocks", text, 6, Z_DEFAULT_STRATEGY, 0, 0, 3 },
		{ "level 1", text, 1, Z_DEFAULT_STRATEGY, 0, 0, 3 },
		{ "fixed Huffman blocks", text, 6, Z_FIXED, 0, 0, 3 },
		{ "Huffman only", text, 6, Z_HUFFMAN_ONLY, 0, 0, 3 },
		{ "stored blocks (level 0)", text, 0, Z_DEFAULT_STRATEGY, 0, 0, 3 },
		{ "incompressible: stored blocks", noise, 6, Z_DEFAULT_STRATEGY, 0, 0, 3 },
		{ "tiny blocks (Z_BLOCK every 100 bytes)", text, 6, Z_DEFAULT_STRATEGY, 100, Z_BLOCK, 3 },
		{ "empty fixed blocks (Z_PARTIAL_FLUSH every 5000 bytes)", text, 6, Z_DEFAULT_STRATEGY, 5000, Z_PARTIAL_FLUSH, 3 },
		{ "empty stored blocks (Z_SYNC_FLUSH every 777 bytes)", text, 6, Z_DEFAULT_STRATEGY, 777, Z_SYNC_FLUSH, 3 },
		{ "one block of a 5 MiB entry", text, 9, Z_FIXED, 0, 0, 0 },
	};

	check_windows(text, noise);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		z = deflate_with(cases[i].data, SIZE, cases[i].level, cases[i].strategy, cases[i].every, cases[i].flush,
				 &zlen);
		check_stream(cases[i].what, cases[i].data, z, zlen, cases[i].min_points);
		free(z);
	}
	/* a truncated stream fails after the last point, from the point as from the start */
	z = deflate_with(text, SIZE, 6, Z_DEFAULT_STRATEGY, 0, 0, &zlen);
	{
		struct mem m = { z, zlen - 100, 0 };
		struct afs_seekidx *x = afs_seekidx_new(SIZE);
		struct afs_zdec *d = NULL;
		unsigned char *buf = malloc(SIZE);

		CHECK(afs_zdec_new(x, src, &m, &d) == AFS_OK);
		CHECK(afs_zdec_read(d, buf, SIZE) == AFS_E_CORRUPT);
		CHECK(afs_seekidx_points(x) > 0);
		CHECK(afs_zdec_seek(d, SIZE - 10) == AFS_OK && afs_zdec_pos(d) > 0);
		CHECK(afs_zdec_read(d, buf, SIZE - afs_zdec_pos(d)) == AFS_E_CORRUPT);
		afs_zdec_free(d);
		afs_seekidx_free(x);
		free(buf);
	}
	free(z);
	free(text);
	free(noise);
	return tu_done("seekpoints");
}
