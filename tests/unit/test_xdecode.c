/* SPDX-License-Identifier: MIT */
/* Unit tests of LZMA, XZ and zstd entries (fs/archive/xdecode.c, through
 * stream.c): bytes equal to the source at any offset, forward and back
 * (each backward read starts a new pass); corrupt, truncated and
 * wrongly sized data and a wrong CRC-32 fail with AFS_E_CORRUPT and a
 * reason, never a crash; data asking more memory than archfs allows fails
 * with AFS_E_UNSUPPORTED; a pass counts one decoder in the pool.  The
 * compressed bytes come from liblzma and libzstd themselves. */
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "archive.h"
#include "decpool.h"
#include "index.h"
#include "seekidx.h"
#include "stream.h"
#include "testutil.h"
#include "xdecode.h"

#define LEN (700 * 1000 + 123)
#define M_LZMA 14
#define M_ZSTD 93
#define M_XZ 95

struct comp {
	unsigned char *b;
	size_t len;
	uint16_t flags;
};

/* ZIP's LZMA: version 9.20, properties size 5, properties, raw LZMA1;
 * with an end marker (general-purpose bit 1) or without (liblzma's
 * LZMA1EXT encoder, the size known from the archive, as 7-Zip writes). */
static struct comp lzma_zip_marker(const unsigned char *data, size_t len, bool marker)
{
	lzma_options_lzma opt;
	lzma_filter f[2] = { { .id = LZMA_FILTER_LZMA1, .options = &opt }, { .id = LZMA_VLI_UNKNOWN } };
	lzma_stream z = LZMA_STREAM_INIT;
	struct comp c = { malloc(len + len / 2 + 4096), 0, marker ? 2 : 0 };
	uint32_t psize = 0;

	lzma_lzma_preset(&opt, 1);
	c.b[0] = 9;
	c.b[1] = 20;
	c.b[2] = 5;
	c.b[3] = 0;
	CHECK(lzma_properties_size(&psize, f) == LZMA_OK && psize == 5);
	CHECK(lzma_properties_encode(f, c.b + 4) == LZMA_OK);
	if (!marker) {
		f[0].id = LZMA_FILTER_LZMA1EXT;
		opt.ext_flags = 0;
		lzma_set_ext_size(opt, len);
	}
	CHECK(lzma_raw_encoder(&z, f) == LZMA_OK);
	z.next_in = data;
	z.avail_in = len;
	z.next_out = c.b + 9;
	z.avail_out = len + len / 2 + 4096 - 9;
	CHECK(lzma_code(&z, LZMA_FINISH) == LZMA_STREAM_END);
	c.len = 9 + z.total_out;
	lzma_end(&z);
	return c;
}

static struct comp lzma_zip(const unsigned char *data, size_t len)
{
	return lzma_zip_marker(data, len, true);
}

static struct comp xz_of(const unsigned char *data, size_t len)
{
	struct comp c = { malloc(len + len / 2 + 4096), 0, 0 };

	CHECK(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, data, len, c.b, &c.len, len + len / 2 + 4096) == LZMA_OK);
	return c;
}

/* Two frames (the first half, then the rest) with a skippable frame
 * between them. */
static struct comp zstd_of(const unsigned char *data, size_t len)
{
	size_t cap = ZSTD_compressBound(len) + 64, half = len / 2, n;
	struct comp c = { malloc(cap), 0, 0 };
	static const unsigned char skip[] = { 0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c' };

	n = ZSTD_compress(c.b, cap, data, half, 3);
	CHECK(!ZSTD_isError(n));
	c.len = n;
	memcpy(c.b + c.len, skip, sizeof(skip));
	c.len += sizeof(skip);
	n = ZSTD_compress(c.b + c.len, cap - c.len, data + half, len - half, 3);
	CHECK(!ZSTD_isError(n));
	c.len += n;
	return c;
}

static struct comp compress_with(uint16_t m, const unsigned char *data, size_t len)
{
	return m == M_LZMA ? lzma_zip(data, len) : m == M_XZ ? xz_of(data, len) : zstd_of(data, len);
}

struct fx {
	struct afs_archive *a;
	struct afs_index *ix;
};

static struct fx open_fx(const char *path)
{
	struct fx f = { 0 };
	char msg[256] = "";

	CHECK(afs_archive_open(path, &f.a, msg, sizeof(msg)) == AFS_OK);
	CHECK(f.a && afs_index_build(f.a, &f.ix, msg, sizeof(msg)) == AFS_OK);
	if (!f.ix) {
		fprintf(stderr, "index: %s\n", msg);
		exit(1);
	}
	return f;
}

static void close_fx(struct fx *f)
{
	afs_index_free(f->ix);
	afs_archive_free(f->a);
}

static struct afs_stream *open_s(struct fx *f, const char *path, struct afs_seekreg *reg)
{
	struct afs_stream *s = NULL;
	uint32_t id = 0;

	CHECK(afs_index_lookup(f->ix, path, &id) == AFS_OK);
	CHECK(afs_stream_open_shared(f->a, f->ix, id, reg, &s) == AFS_OK);
	return s;
}

/* One entry "e" of method m: comp (the compressed bytes as given), stated
 * crc and size. */
static struct fx one(const char *file, uint16_t m, uint16_t flags, const struct comp *c, uint32_t crc, uint32_t size)
{
	struct tu_raw_entry e = { "e", m, flags, crc, size, c->b, c->len };

	return open_fx(tu_zip_raw(file, &e, 1));
}

static bool read_ok(struct afs_stream *s, const unsigned char *data, uint64_t len, uint64_t off, size_t n)
{
	unsigned char *buf = malloc(n ? n : 1);
	size_t got = 0, want = off >= len ? 0 : off + n > len ? (size_t)(len - off) : n;
	enum afs_err err = afs_stream_pread(s, buf, n, off, &got);
	bool ok = err == AFS_OK && got == want && memcmp(buf, data + off, want) == 0;

	if (!ok)
		fprintf(stderr, "read %zu at %llu: %s, got %zu of %zu\n", n, (unsigned long long)off,
			afs_stream_error(s, err), got, want);
	free(buf);
	return ok;
}

/* Reads the whole entry in pieces of step bytes; the last error. */
static enum afs_err read_all(struct afs_stream *s, const unsigned char *data, uint64_t len, size_t step, bool *same)
{
	unsigned char *buf = malloc(step);
	uint64_t off = 0;
	enum afs_err err;
	size_t got;

	*same = true;
	while ((err = afs_stream_pread(s, buf, step, off, &got)) == AFS_OK && got > 0) {
		*same = *same && off + got <= len && memcmp(buf, data + off, got) == 0;
		off += got;
	}
	*same = *same && (err != AFS_OK || off == len);
	free(buf);
	return err;
}

/* Byte-exact reads of method m's entry: whole, in pieces, at random
 * offsets forward and backward, to the end, the last byte alone. */
static void reads(uint16_t m, const unsigned char *data)
{
	struct comp c = compress_with(m, data, LEN);
	struct fx f = one("r.zip", m, c.flags, &c, (uint32_t)crc32(0, data, LEN), LEN);
	struct afs_stream *s;
	unsigned seed = 7 + m;
	unsigned char buf[16];
	size_t got;
	bool same;

	CHECK(afs_method_decodable(m) && !afs_method_libzip(m) == afs_xdec_handles(m));
	s = open_s(&f, "/e", NULL);
	CHECK(read_all(s, data, LEN, LEN + 100, &same) == AFS_OK && same);
	afs_stream_close(s);
	s = open_s(&f, "/e", NULL);
	CHECK(read_all(s, data, LEN, 4096, &same) == AFS_OK && same);
	for (int i = 0; i < 16; i++) {
		seed = seed * 1103515245u + 12345u;
		CHECK(read_ok(s, data, LEN, (seed >> 4) % LEN, 1 + (seed >> 9) % 70000));
	}
	CHECK(read_ok(s, data, LEN, LEN - 10, 10));
	CHECK(read_ok(s, data, LEN, 0, 10)); /* back to the start */
	CHECK(read_ok(s, data, LEN, 1, 10));
	CHECK(read_ok(s, data, LEN, LEN - 1, 4096));
	CHECK(afs_stream_pread(s, buf, sizeof(buf), LEN, &got) == AFS_OK && got == 0);
	afs_stream_close(s);
	s = open_s(&f, "/e", NULL); /* a first read at the end */
	CHECK(read_ok(s, data, LEN, LEN - 5000, 5000));
	afs_stream_close(s);
	close_fx(&f);
	free(c.b);
}

/* Fails with AFS_E_CORRUPT, sticky, the reason containing what. */
static void check_corrupt(struct fx *f, const unsigned char *data, uint64_t len, const char *what)
{
	struct afs_stream *s = open_s(f, "/e", NULL);
	unsigned char buf[64];
	size_t got = 1;
	bool same;

	CHECK(read_all(s, data, len, 65536, &same) == AFS_E_CORRUPT);
	if (!strstr(afs_stream_error(s, AFS_E_CORRUPT), what)) {
		fprintf(stderr, "reason '%s', want '%s'\n", afs_stream_error(s, AFS_E_CORRUPT), what);
		CHECK(0);
	}
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	s = open_s(f, "/e", NULL); /* a read that jumps to the end finds it too */
	CHECK(afs_stream_pread(s, buf, 64, len - 64, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
}

/* Damage: a wrong CRC-32, malformed data, data cut short, a size the data
 * does not have (both ways), an empty stream. */
static void damage(uint16_t m, const unsigned char *data)
{
	const char *name = afs_method_name(m);
	struct comp c = compress_with(m, data, LEN), bad;
	uint32_t crc = (uint32_t)crc32(0, data, LEN);
	char what[64];
	struct fx f;

	f = one("crc.zip", m, c.flags, &c, crc ^ 1, LEN);
	check_corrupt(&f, data, LEN, "CRC-32 mismatch");
	close_fx(&f);

	bad = (struct comp){ malloc(c.len), c.len, c.flags };
	memcpy(bad.b, c.b, c.len);
	for (size_t i = 0; i < 64; i++)
		bad.b[c.len / 2 + i] ^= 0x5a;
	f = one("bad.zip", m, bad.flags, &bad, crc, LEN);
	check_corrupt(&f, data, LEN, name);
	close_fx(&f);

	bad.len = c.len * 2 / 3; /* truncated */
	memcpy(bad.b, c.b, c.len);
	f = one("cut.zip", m, bad.flags, &bad, crc, LEN);
	check_corrupt(&f, data, LEN, name);
	close_fx(&f);
	bad.len = 5; /* inside the header */
	f = one("cut5.zip", m, bad.flags, &bad, crc, LEN);
	check_corrupt(&f, data, LEN, "truncated");
	close_fx(&f);
	bad.len = 0;
	f = one("empty.zip", m, bad.flags, &bad, crc, LEN);
	check_corrupt(&f, data, LEN, name);
	close_fx(&f);

	f = one("short.zip", m, c.flags, &c, (uint32_t)crc32(0, data, LEN - 1000), LEN - 1000);
	snprintf(what, sizeof(what), "%s", m == M_LZMA ? "lzma" : "runs past the size");
	check_corrupt(&f, data, LEN - 1000, what);
	close_fx(&f);
	f = one("long.zip", m, c.flags, &c, crc, LEN + 1000); /* lzma: an end marker before the size */
	check_corrupt(&f, data, LEN + 1000, m == M_LZMA ? "malformed lzma data" : "ends before the size");
	close_fx(&f);
	free(bad.b);
	free(c.b);
}

/* LZMA with and without an end marker, bit 1 saying so or not: the data
 * ends at the size either way.  A properties size other than 5 is
 * malformed. */
static void lzma_marker(const unsigned char *data)
{
	struct comp with = lzma_zip_marker(data, LEN, true), without = lzma_zip_marker(data, LEN, false);
	uint32_t crc = (uint32_t)crc32(0, data, LEN);
	struct afs_stream *s;
	struct fx f;
	bool same;

	CHECK(without.len < with.len); /* no marker indeed */
	for (int i = 0; i < 4; i++) {
		f = one("marker.zip", M_LZMA, i & 1 ? 2 : 0, i & 2 ? &with : &without, crc, LEN);
		s = open_s(&f, "/e", NULL);
		CHECK(read_all(s, data, LEN, 65536, &same) == AFS_OK && same);
		CHECK(read_ok(s, data, LEN, 100, 100) && read_ok(s, data, LEN, LEN - 1, 1));
		afs_stream_close(s);
		close_fx(&f);
	}
	f = one("cutmarker.zip", M_LZMA, 0, &without, crc, LEN - 1000); /* data goes on past the size */
	check_corrupt(&f, data, LEN - 1000, "malformed lzma data");
	close_fx(&f);
	with.b[2] = 6;
	f = one("props.zip", M_LZMA, 2, &with, crc, LEN);
	check_corrupt(&f, data, LEN, "properties size");
	close_fx(&f);
	free(with.b);
	free(without.b);
}

/* Data whose dictionary or window needs more than AFS_XDEC_MEMLIMIT: the
 * read fails with AFS_E_UNSUPPORTED and a reason, nothing is allocated. */
static void memlimit(const unsigned char *data)
{
	struct comp c;
	struct afs_stream *s;
	unsigned char buf[64];
	size_t got;
	struct fx f;

	/* LZMA: a 1 GiB dictionary in the properties */
	c = lzma_zip(data, 10000);
	c.b[5] = 0, c.b[6] = 0, c.b[7] = 0, c.b[8] = 0x40;
	f = one("biglzma.zip", M_LZMA, 2, &c, (uint32_t)crc32(0, data, 10000), 10000);
	s = open_s(&f, "/e", NULL);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_E_UNSUPPORTED && got == 0);
	CHECK(strstr(afs_stream_error(s, AFS_E_UNSUPPORTED), "more than archfs allows (256 MiB)"));
	afs_stream_close(s);
	close_fx(&f);
	free(c.b);

	/* XZ: the block header's LZMA2 dictionary byte set to 4 GiB, its CRC-32 fixed */
	c = xz_of(data, 10000);
	size_t hlen = ((size_t)c.b[12] + 1) * 4;
	unsigned char *h = c.b + 12;
	for (size_t i = 1; i + 2 < hlen - 4; i++)
		if (h[i] == 0x21 && h[i + 1] == 1)
			h[i + 2] = 40;
	uint32_t hc = (uint32_t)crc32(0, h, hlen - 4);
	for (int i = 0; i < 4; i++)
		h[hlen - 4 + i] = (unsigned char)(hc >> (8 * i));
	f = one("bigxz.zip", M_XZ, 0, &c, (uint32_t)crc32(0, data, 10000), 10000);
	s = open_s(&f, "/e", NULL);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_E_UNSUPPORTED && got == 0);
	CHECK(strstr(afs_stream_error(s, AFS_E_UNSUPPORTED), "more than archfs allows (256 MiB)"));
	afs_stream_close(s);
	close_fx(&f);
	free(c.b);

	/* zstd: a frame stating a 1 GiB window, then one raw block of 3 bytes */
	static const unsigned char big[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 1 | 3 << 3, 0, 0, 'a', 'b', 'c' };
	c = (struct comp){ (unsigned char *)big, sizeof(big), 0 };
	f = one("bigzstd.zip", M_ZSTD, 0, &c, (uint32_t)crc32(0, (const unsigned char *)"abc", 3), 3);
	s = open_s(&f, "/e", NULL);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_E_UNSUPPORTED && got == 0);
	CHECK(strstr(afs_stream_error(s, AFS_E_UNSUPPORTED), "more memory than archfs allows (256 MiB)"));
	afs_stream_close(s);
	close_fx(&f);
	/* the same frame with a 1 KiB window reads */
	unsigned char small[sizeof(big)];
	memcpy(small, big, sizeof(big));
	small[5] = 0;
	c.b = small;
	f = one("smallzstd.zip", M_ZSTD, 0, &c, (uint32_t)crc32(0, (const unsigned char *)"abc", 3), 3);
	s = open_s(&f, "/e", NULL);
	CHECK(read_ok(s, (const unsigned char *)"abc", 3, 0, 64));
	afs_stream_close(s);
	close_fx(&f);
}

/* Each pass counts one decoder in the mount's pool; evicted, a stream's
 * next read starts a new pass, bytes still right; closed, nothing left. */
static void pool(const unsigned char *data)
{
	struct comp c1 = compress_with(M_LZMA, data, LEN), c2 = compress_with(M_ZSTD, data, LEN), c3 = compress_with(M_XZ, data, LEN);
	uint32_t crc = (uint32_t)crc32(0, data, LEN);
	struct tu_raw_entry e[] = { { "l", M_LZMA, c1.flags, crc, LEN, c1.b, c1.len },
				    { "z", M_ZSTD, 0, crc, LEN, c2.b, c2.len },
				    { "x", M_XZ, 0, crc, LEN, c3.b, c3.len } };
	struct fx f = open_fx(tu_zip_raw("pool.zip", e, 3));
	struct afs_seekreg *reg = afs_seekreg_new(afs_index_count(f.ix), 64u << 20);
	struct afs_decpool *p = afs_seekreg_decoders(reg);
	struct afs_stream *s1, *s2, *s3;

	afs_decpool_set_cap(p, 1);
	s1 = open_s(&f, "/l", reg);
	s2 = open_s(&f, "/z", reg);
	s3 = open_s(&f, "/x", reg);
	CHECK(read_ok(s1, data, LEN, 1000, 5000) && afs_decpool_live(p) == 1);
	CHECK(read_ok(s1, data, LEN, 500, 5000) && afs_decpool_live(p) == 1); /* back: a new pass, one decoder */
	CHECK(read_ok(s2, data, LEN, 2000, 5000) && afs_decpool_live(p) == 1 && afs_decpool_evictions(p) == 1);
	CHECK(read_ok(s3, data, LEN, 3000, 5000) && afs_decpool_live(p) == 1 && afs_decpool_evictions(p) == 2);
	CHECK(read_ok(s1, data, LEN, 6000, 5000) && afs_decpool_live(p) == 1); /* s1 again, from the start */
	CHECK(read_ok(s1, data, LEN, LEN - 100, 100));
	afs_stream_close(s1);
	afs_stream_close(s2);
	afs_stream_close(s3);
	CHECK(afs_decpool_live(p) == 0);
	afs_seekreg_free(reg);
	close_fx(&f);
	free(c1.b);
	free(c2.b);
	free(c3.b);
}

/* c (lzma_zip() or xz_of() data) with its dictionary size made dict: the
 * decoder makes a dictionary that big, whatever the data uses (the
 * encoder's memory for such a dictionary is avoided). */
static void big_dict(uint16_t m, struct comp *c, uint32_t dict)
{
	if (m == M_LZMA) {
		for (int i = 0; i < 4; i++)
			c->b[5 + i] = (unsigned char)(dict >> (8 * i));
		return;
	}
	/* XZ: the first block's header, after the 12-byte stream header */
	lzma_filter f[LZMA_FILTERS_MAX + 1];
	lzma_block b = { .version = 1, .check = LZMA_CHECK_CRC64, .filters = f };
	uint32_t size;

	b.header_size = lzma_block_header_size_decode(c->b[12]);
	size = b.header_size;
	CHECK(lzma_block_header_decode(&b, NULL, c->b + 12) == LZMA_OK && f[0].id == LZMA_FILTER_LZMA2);
	((lzma_options_lzma *)f[0].options)->dict_size = dict;
	CHECK(lzma_block_header_size(&b) == LZMA_OK && b.header_size == size);
	CHECK(lzma_block_header_encode(&b, c->b + 12) == LZMA_OK);
	for (size_t i = 0; f[i].id != LZMA_VLI_UNKNOWN; i++)
		free(f[i].options);
}

/* The pool counts LZMA and XZ decoders by the dictionary they hold: many
 * streams of big dictionaries read a little at a time keep the idle ones
 * within the byte budget (not 64 of them), and a stream whose decoder
 * was evicted reads the right bytes again from a new pass. */
static void pool_budget(const unsigned char *data)
{
	enum { N = 8, DICT = 32u << 20 };
	struct comp c[2] = { compress_with(M_LZMA, data, LEN), compress_with(M_XZ, data, LEN) };
	uint32_t crc = (uint32_t)crc32(0, data, LEN);
	struct tu_raw_entry e[N];
	char names[N][4];
	struct afs_stream *s[N];
	struct fx f;
	struct afs_seekreg *reg;
	struct afs_decpool *p;
	size_t budget = 100u << 20, most = 0;

	big_dict(M_LZMA, &c[0], DICT);
	big_dict(M_XZ, &c[1], DICT);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "b%d", i);
		e[i] = (struct tu_raw_entry){ names[i], i % 2 ? M_XZ : M_LZMA, c[i % 2].flags, crc, LEN, c[i % 2].b,
					      c[i % 2].len };
	}
	f = open_fx(tu_zip_raw("budget.zip", e, N));
	reg = afs_seekreg_new(afs_index_count(f.ix), 64u << 20);
	p = afs_seekreg_decoders(reg);
	afs_decpool_set_budget(p, budget);
	for (int i = 0; i < N; i++) {
		char path[8];

		snprintf(path, sizeof(path), "/b%d", i);
		s[i] = open_s(&f, path, reg);
	}
	CHECK(read_ok(s[0], data, LEN, 0, 1000));
	CHECK(afs_decpool_live(p) == 1 && afs_decpool_bytes(p) > DICT); /* the dictionary counted */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			CHECK(read_ok(s[i], data, LEN, (uint64_t)round * 100000 + 1000, 4000));
			most = afs_decpool_bytes(p) > most ? afs_decpool_bytes(p) : most;
		}
	}
	CHECK(most <= budget && afs_decpool_live(p) == 3); /* 3 dictionaries of 32 MiB fit in 100 MiB */
	CHECK(afs_decpool_evictions(p) >= 3 * N - 3);
	CHECK(read_ok(s[0], data, LEN, LEN - 5000, 5000)); /* evicted: a new pass, the bytes right */
	CHECK(read_ok(s[N - 1], data, LEN, LEN - 5000, 5000)); /* kept: goes on */
	for (int i = 0; i < N; i++)
		afs_stream_close(s[i]);
	CHECK(afs_decpool_live(p) == 0 && afs_decpool_bytes(p) == 0);
	afs_seekreg_free(reg);
	close_fx(&f);
	free(c[0].b);
	free(c[1].b);
}

int main(void)
{
	unsigned char *data = tu_data(LEN, 23);
	static const uint16_t methods[] = { M_LZMA, M_XZ, M_ZSTD };

	CHECK(afs_xdec_handles(M_LZMA) && afs_xdec_handles(M_XZ) && afs_xdec_handles(M_ZSTD));
	CHECK(!afs_xdec_handles(12) && !afs_xdec_handles(9) && !afs_xdec_handles(8));
	for (size_t i = 0; i < 3; i++) {
		reads(methods[i], data);
		damage(methods[i], data);
	}
	lzma_marker(data);
	memlimit(data);
	pool(data);
	pool_budget(data);
	free(data);
	return tu_done("xdecode");
}
