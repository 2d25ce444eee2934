/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/stream.c: reads at any offset, CRC-32 and corrupt
 * data, and the pool that caps the decoders open streams keep (decpool.c). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "archive.h"
#include "decpool.h"
#include "index.h"
#include "seekidx.h"
#include "stream.h"
#include "testutil.h"

#define BIG (3 * 1000 * 1000 + 17)

struct fx {
	struct afs_archive *a;
	struct afs_index *ix;
};

static struct fx open_fx(const char *path)
{
	struct fx f = { 0 };
	char msg[256];

	CHECK(afs_archive_open(path, &f.a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(f.a, &f.ix, msg, sizeof(msg)) == AFS_OK);
	return f;
}

static struct afs_stream *open_s(struct fx *f, const char *path)
{
	struct afs_stream *s = NULL;
	uint32_t id;

	CHECK(afs_index_lookup(f->ix, path, &id) == AFS_OK);
	CHECK(afs_stream_open(f->a, f->ix, id, &s) == AFS_OK);
	return s;
}

/* The offset the last read_all() reached: the bytes before it were given. */
static uint64_t reached;

/* Reads the whole stream in chunks of step bytes; 0 if it equals want.
 * *last is the result of the last read, which failed or gave nothing. */
static int read_all(struct afs_stream *s, const unsigned char *want, size_t len, size_t step, enum afs_err *last)
{
	unsigned char *buf = malloc(step);
	uint64_t off = 0;
	size_t got;
	int diff = 0;

	*last = AFS_OK;
	while ((*last = afs_stream_pread(s, buf, step, off, &got)) == AFS_OK && got > 0) {
		if (off + got > len || memcmp(buf, want + off, got) != 0)
			diff = 1;
		off += got;
	}
	reached = off;
	free(buf);
	return diff || (*last == AFS_OK && off != len);
}

static void check_random(struct afs_stream *s, const unsigned char *data)
{
	unsigned char buf[70000];
	size_t got;
	unsigned seed = 5;

	for (int i = 0; i < 60; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t off = (seed >> 4) % BIG;
		size_t len = 1 + (seed >> 8) % sizeof(buf);
		size_t want = off + len > BIG ? BIG - off : len;
		CHECK(afs_stream_pread(s, buf, len, off, &got) == AFS_OK);
		CHECK(got == want && memcmp(buf, data + off, got) == 0);
	}
}

/* Points the central-directory record of entry name at local header
 * offset off (a hostile archive: the index still builds). */
static void set_cdir_offset(const char *path, const char *name, uint32_t off)
{
	FILE *fp = fopen(path, "r+b");
	unsigned char b[1 << 16];
	size_t n = fp ? fread(b, 1, sizeof(b), fp) : 0, len = strlen(name);
	int found = 0;

	for (size_t i = 0; i + 46 + len <= n; i++) {
		if (memcmp(b + i, "PK\1\2", 4) != 0 || (size_t)(b[i + 28] | b[i + 29] << 8) != len ||
		    memcmp(b + i + 46, name, len) != 0)
			continue;
		for (int k = 0; k < 4; k++)
			b[i + 42 + k] = (unsigned char)(off >> (8 * k));
		found = 1;
	}
	CHECK(found && fp && fseek(fp, 0, SEEK_SET) == 0 && fwrite(b, 1, n, fp) == n);
	if (fp)
		fclose(fp);
}

/* Fuzz find: a deflated entry whose local header lies past the end of the
 * file (the daemon died on the second read), or at an offset holding no
 * local header.  Every read fails, the same way each time; the others read. */
static void hostile_offsets(void)
{
	unsigned char *text = tu_data(240, 11), buf[300];
	struct tu_entry e[] = { { "manifest.json", "{}", 2, 1, 0, 0 }, { "uploads/a.txt", text, 240, 1, 0, 0 } };
	const uint32_t offsets[] = { 13762560, 1 };
	size_t got;

	for (int k = 0; k < 2; k++) {
		char *p = tu_zip(k ? "nolocal.zip" : "pasteof.zip", e, 2);
		set_cdir_offset(p, "uploads/a.txt", offsets[k]);
		struct fx f = open_fx(p);
		struct afs_stream *s = open_s(&f, "/uploads/a.txt");
		uint32_t id;
		enum afs_err first;

		CHECK(afs_index_lookup(f.ix, "/uploads/a.txt", &id) == AFS_OK);
		CHECK(afs_archive_entry_past_eof(f.a, afs_index_node(f.ix, id)->entry) == (k == 0));
		first = afs_stream_pread(s, buf, 240, 0, &got);
		CHECK(first != AFS_OK && got == 0);
		CHECK(k == 1 || first == AFS_E_CORRUPT);
		CHECK(afs_stream_pread(s, buf, 240, 0, &got) == first && got == 0);
		CHECK(afs_stream_pread(s, buf, 10, 200, &got) == first && got == 0);
		afs_stream_close(s);
		s = open_s(&f, "/manifest.json");
		CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_OK && got == 2 && memcmp(buf, "{}", 2) == 0);
		afs_stream_close(s);
		afs_index_free(f.ix);
		afs_archive_free(f.a);
	}
	free(text);
}

/* A deflated entry whose ZIP64 size claims more than 2^63 bytes (its data
 * is 12,000): a read that jumps (at 2 MiB) made its seek index, whose span
 * computation wrapped and never ended, holding the registry's lock.  The
 * index refuses such an entry now, naming it; the seek index and the
 * stream keep their own guards (a read of such a size must fail at once:
 * SIGALRM kills the test if it hangs). */
static void huge_size(void)
{
	static const char zip[] =
	"\x50\x4b\x03\x04\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\x3b\x90\x27\xaa\xff\xff\xff\xff\xff\xff"
	"\xff\xff\x07\x00\x14\x00\x62\x69\x67\x2e\x74\x78\x74\x01\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00"
	"\x80\x38\x00\x00\x00\x00\x00\x00\x00\xed\xc6\xb1\x09\x00\x20\x10\x04\xb0\xde\x29\x1c\x4e\xe1\x8b"
	"\x83\x07\x1b\xd7\x77\x0c\x9b\xa4\x4a\xed\xa4\xe7\xed\x93\x35\xca\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd"
	"\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xdd\xfd\xd3\x1f\x50\x4b\x01\x02\x1e\x03\x2d"
	"\x00\x00\x00\x08\x00\x00\x00\x21\x00\x3b\x90\x27\xaa\xff\xff\xff\xff\xff\xff\xff\xff\x07\x00\x14"
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\xa4\x81\x00\x00\x00\x00\x62\x69\x67\x2e\x74\x78\x74\x01\x00"
	"\x10\x00\x01\x00\x00\x00\x00\x00\x00\x80\x38\x00\x00\x00\x00\x00\x00\x00\x50\x4b\x05\x06\x00\x00"
	"\x00\x00\x01\x00\x01\x00\x49\x00\x00\x00\x71\x00\x00\x00\x00\x00";
	const char *path = tu_file("huge.zip", zip, sizeof(zip) - 1);
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_seekidx *idx;
	char msg[256] = "";

	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_E_RANGE && ix == NULL);
	CHECK(strstr(msg, "entry 'big.txt'") && strstr(msg, "unsafe size"));
	if (!strstr(msg, "unsafe size"))
		fprintf(stderr, "huge_size: '%s'\n", msg);
	afs_archive_free(a);
	/* the same with the ZIP64 sizes swapped: the compressed size is the huge one */
	char swapped[sizeof(zip)];
	memcpy(swapped, zip, sizeof(zip));
	for (size_t i = 0; i + 20 <= sizeof(zip) - 1; i++) {
		if (memcmp(swapped + i, "\x01\x00\x10\x00", 4) == 0) {
			char t[8];
			memcpy(t, swapped + i + 4, 8);
			memcpy(swapped + i + 4, swapped + i + 12, 8);
			memcpy(swapped + i + 12, t, 8);
		}
	}
	path = tu_file("huge-comp.zip", swapped, sizeof(zip) - 1);
	msg[0] = '\0';
	if (afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK) {
		CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_E_RANGE && ix == NULL);
		CHECK(strstr(msg, "entry 'big.txt'") && strstr(msg, "unsafe compressed size"));
		afs_archive_free(a);
	} else {
		fprintf(stderr, "huge_size: libzip refuses the archive itself: %s\n", msg);
	}
	/* the seek index's own guard: a size past INT64_MAX makes none */
	alarm(20);
	idx = afs_seekidx_new(0x8000000000000001ull);
	alarm(0);
	afs_seekidx_free(idx);
}

/* Reads (off, len) in turn on one stream of entry name, each checked
 * against data. */
static void reads_match(struct fx *f, const char *name, const unsigned char *data, const size_t (*r)[2], size_t n)
{
	struct afs_stream *s = open_s(f, name);
	unsigned char buf[512];
	size_t got;

	for (size_t i = 0; i < n; i++) {
		CHECK(afs_stream_pread(s, buf, r[i][1], r[i][0], &got) == AFS_OK && got == r[i][1] &&
		      memcmp(buf, data + r[i][0], got) == 0);
	}
	afs_stream_close(s);
}

/* Fuzz finds: valid data reported as corrupt when the compressed bytes end
 * before zlib has written the rest of the final match, and the error stuck.
 * Then the fuzz target's byte check over small repetitive entries: after a
 * verified pass from 0, every read at any offset gives the same bytes. */
static void final_match_split(void)
{
	static const char line2[] = "line 2\nline 2\nline 2\n"; /* 21 bytes, 11 deflated */
	static const unsigned char line2_deflated[] = { 0xcb, 0xc9, 0xcc, 0x4b, 0x55, 0x30, 0xe2, 0xca, 0x41, 0xa1, 0x00 };
	static const size_t r21[][2] = { { 0, 21 }, { 0, 8 }, { 8, 13 } };
	static const size_t r300[][2] = { { 0, 300 }, { 0, 300 }, { 269, 31 } };
	char zip64[301] = "", names[40][16], *texts[40];
	struct tu_entry e[42] = { { "f2.txt", line2, 21, 1, 0, 0 }, { "u.txt", zip64, 300, 1, 0, 0 } };
	unsigned char raw[64], all[512], buf[512];
	struct afs_raw *r;
	size_t got;
	uint32_t id;

	for (int i = 0; i < 50; i++)
		strcat(zip64, "zip64 ");
	for (int i = 0; i < 40; i++) {
		size_t len = 0;

		texts[i] = malloc(400);
		texts[i][0] = '\0';
		for (int k = 0; k <= i % 13; k++)
			len += (size_t)sprintf(texts[i] + len, "line %d\n", i % 7);
		snprintf(names[i], sizeof(names[i]), "r%02d.txt", i);
		e[2 + i] = (struct tu_entry){ names[i], texts[i], len, 1, 0, 0 };
	}
	struct fx f = open_fx(tu_zip("split.zip", e, 42));
	/* the fixture holds exactly the deflate stream the fuzzer found */
	CHECK(afs_index_lookup(f.ix, "/f2.txt", &id) == AFS_OK && afs_index_node(f.ix, id)->comp_size == 11);
	CHECK(afs_raw_open(f.a, afs_index_node(f.ix, id)->entry, &r) == AFS_OK);
	CHECK(afs_raw_read(r, raw, sizeof(raw), &got) == AFS_OK && got == 11 && memcmp(raw, line2_deflated, 11) == 0);
	afs_raw_close(r);
	reads_match(&f, "/f2.txt", (const unsigned char *)line2, r21, 3);
	reads_match(&f, "/u.txt", (const unsigned char *)zip64, r300, 3);
	for (int i = 0; i < 40; i++) {
		char path[20];
		struct afs_stream *s;
		size_t len = e[2 + i].len;

		snprintf(path, sizeof(path), "/r%02d.txt", i);
		s = open_s(&f, path);
		CHECK(afs_stream_pread(s, all, len, 0, &got) == AFS_OK && got == len && memcmp(all, texts[i], len) == 0);
		for (size_t off = 0; off < len; off++)
			for (size_t n = 1; off + n <= len; n++)
				if (afs_stream_pread(s, buf, n, off, &got) != AFS_OK || got != n ||
				    memcmp(buf, all + off, n) != 0) {
					CHECK(!"a read after a verified pass differs");
					fprintf(stderr, "  %s: read %zu+%zu\n", path, off, n);
					off = len;
					break;
				}
		afs_stream_close(s);
		free(texts[i]);
	}
	afs_index_free(f.ix);
	afs_archive_free(f.a);
}

/* ---------------------------------------------------- the decoder pool */

/* A pool user standing for a stream: counts its evictions. */
struct fake {
	struct afs_decuser u; /* first: the callback casts back */
	int evicted;
	int order;
};

static int evict_seq;

static void fake_evict(struct afs_decuser *u)
{
	struct fake *f = (struct fake *)(void *)u;

	f->evicted++;
	f->order = ++evict_seq;
}

/* One read of f that makes n decoders. */
static void fake_read(struct afs_decpool *p, struct fake *f, int n)
{
	afs_decpool_enter(p, &f->u);
	for (int i = 0; i < n; i++)
		afs_decpool_take(p, &f->u, 0);
	afs_decpool_exit(p, &f->u);
}

/* The pool alone: least recently used first, never a user in a read, the
 * count within the cap but for what reads in progress hold. */
static void pool_logic(void)
{
	struct afs_decpool *p = afs_decpool_new(2);
	struct fake a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

	afs_decpool_join(p, &a.u, fake_evict);
	afs_decpool_join(p, &b.u, fake_evict);
	afs_decpool_join(p, &c.u, fake_evict);
	afs_decpool_join(p, &d.u, fake_evict);
	fake_read(p, &a, 1);
	fake_read(p, &b, 1);
	CHECK(afs_decpool_live(p) == 2 && !a.evicted && !b.evicted);
	fake_read(p, &c, 1); /* a is the least recently used */
	CHECK(a.evicted == 1 && !b.evicted && afs_decpool_live(p) == 2 && afs_decpool_evictions(p) == 1);
	fake_read(p, &b, 0); /* a read that makes nothing still counts as a use: c is the oldest now */
	fake_read(p, &a, 1);
	CHECK(c.evicted == 1 && !b.evicted && afs_decpool_live(p) == 2);
	/* a user holding two decoders goes whole */
	fake_read(p, &d, 2);
	CHECK(b.evicted == 1 && a.evicted == 2 && afs_decpool_live(p) == 2 && b.order < a.order);
	/* in a read, d cannot be evicted: the count passes the cap instead */
	afs_decpool_enter(p, &d.u);
	fake_read(p, &c, 1);
	CHECK(!d.evicted && afs_decpool_live(p) == 3);
	afs_decpool_take(p, &d.u, 0); /* evicts c, the only idle one */
	CHECK(c.evicted == 2 && afs_decpool_live(p) == 3);
	afs_decpool_drop(p, &d.u, 1, 0); /* a decoder it failed to make */
	CHECK(afs_decpool_live(p) == 2);
	afs_decpool_exit(p, &d.u);
	/* leaving uncounts; a lower cap takes effect at the next take */
	afs_decpool_leave(p, &d.u);
	CHECK(afs_decpool_live(p) == 0 && !d.evicted);
	fake_read(p, &a, 1);
	fake_read(p, &b, 1);
	afs_decpool_set_cap(p, 1);
	fake_read(p, &c, 1);
	CHECK(afs_decpool_live(p) == 1 && a.evicted == 3 && b.evicted == 2);
	afs_decpool_leave(p, &a.u);
	afs_decpool_leave(p, &b.u);
	afs_decpool_leave(p, &c.u);
	CHECK(afs_decpool_live(p) == 0);
	afs_decpool_free(p);
}

static struct afs_stream *open_reg(struct fx *f, const char *path, struct afs_seekreg *reg)
{
	struct afs_stream *s = NULL;
	uint32_t id;

	CHECK(afs_index_lookup(f->ix, path, &id) == AFS_OK);
	CHECK(afs_stream_open_shared(f->a, f->ix, id, reg, &s) == AFS_OK);
	return s;
}

static int read_ok(struct afs_stream *s, const unsigned char *data, uint64_t off, size_t len)
{
	unsigned char buf[8192];
	size_t got;

	return afs_stream_pread(s, buf, len, off, &got) == AFS_OK && got == len && memcmp(buf, data + off, len) == 0;
}

/* Many streams of one deflated entry, a pool of 2: each jump read gives
 * the right bytes, at most 2 decoders stay, and an evicted stream reads on
 * (from a seek point) with the right bytes again. */
static void pool_streams(struct fx *f, const unsigned char *data)
{
	struct afs_seekreg *reg = afs_seekreg_new(afs_index_count(f->ix), 64u << 20);
	struct afs_decpool *p = afs_seekreg_decoders(reg);
	struct afs_stream *s[12];

	afs_decpool_set_cap(p, 2);
	for (int i = 0; i < 12; i++) {
		uint64_t off = BIG / 2 + (uint64_t)i * 70001;

		s[i] = open_reg(f, "/deflated", reg);
		CHECK(read_ok(s[i], data, off, 4096));
		CHECK(afs_decpool_live(p) <= 2);
	}
	CHECK(afs_decpool_evictions(p) >= 10);
	for (int i = 0; i < 12; i++) { /* back to each: restarted at a seek point */
		CHECK(read_ok(s[i], data, BIG - 5000 - (uint64_t)i * 3001, 4096));
		CHECK(afs_decpool_live(p) <= 2);
	}
	/* a sequential pass evicted half-way goes on to the end, bytes right */
	for (uint64_t off = 0; off + 8192 <= BIG; off += 8192) {
		CHECK(read_ok(s[0], data, off, 8192));
		if (off == BIG / 3)
			CHECK(read_ok(s[1], data, 100, 10) && read_ok(s[2], data, 200, 10)); /* evicts s[0] */
	}
	for (int i = 0; i < 12; i++)
		afs_stream_close(s[i]);
	CHECK(afs_decpool_live(p) == 0);
	afs_seekreg_free(reg);
}

/* A wrong CRC-32 is still found by a pass whose decoder was evicted on the
 * way: past a span from the start, the rest of it comes through the seek
 * points, which carry the checksum on. */
static void pool_crc(const unsigned char *data)
{
	struct tu_entry c[] = { { "crc", data, BIG, 1, 0, 0 }, { "other", data, 1000, 1, 0, 0 } };
	char *path = tu_zip("poolcrc.zip", c, 2);
	struct afs_seekreg *reg;
	struct afs_stream *s, *o;
	unsigned char buf[8192];
	enum afs_err err = AFS_OK;
	bool evicted = false;
	uint64_t off = 0;
	size_t got = 0;

	CHECK(tu_patch_u32(path, (uint32_t)crc32(0, data, BIG), 1) == 2);
	struct fx f = open_fx(path);
	reg = afs_seekreg_new(afs_index_count(f.ix), 64u << 20);
	afs_decpool_set_cap(afs_seekreg_decoders(reg), 1);
	s = open_reg(&f, "/crc", reg);
	o = open_reg(&f, "/other", reg);
	for (; off < BIG && (err = afs_stream_pread(s, buf, sizeof(buf), off, &got)) == AFS_OK; off += got) {
		CHECK(memcmp(buf, data + off, got) == 0);
		if (!evicted && off >= 2 * 1024 * 1024) {
			CHECK(read_ok(o, data, 0, 100)); /* evicts s */
			evicted = true;
		}
	}
	CHECK(evicted && afs_decpool_evictions(afs_seekreg_decoders(reg)) >= 1);
	CHECK(err == AFS_E_CORRUPT && off + got >= BIG - sizeof(buf) && strstr(afs_stream_error(s, err), "CRC-32"));
	afs_stream_close(s);
	afs_stream_close(o);
	afs_seekreg_free(reg);
	afs_index_free(f.ix);
	afs_archive_free(f.a);
}

/* Threads reading their own streams through a pool of one: each evicts
 * the others' decoders between their reads; every byte stays right. */
struct reader {
	struct fx *f;
	struct afs_seekreg *reg;
	const unsigned char *data;
	int bad;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	struct afs_stream *s = open_reg(r->f, "/deflated", r->reg);
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < 40; i++) {
		seed = seed * 1103515245u + 12345u;
		if (!read_ok(s, r->data, (seed >> 4) % (BIG - 8192), 1 + (seed >> 9) % 8192))
			r->bad++;
	}
	afs_stream_close(s);
	return NULL;
}

static void pool_threads(struct fx *f, const unsigned char *data)
{
	struct afs_seekreg *reg = afs_seekreg_new(afs_index_count(f->ix), 64u << 20);
	struct reader r[4];
	pthread_t t[4];

	afs_decpool_set_cap(afs_seekreg_decoders(reg), 1);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){ f, reg, data, 0 };
		CHECK(pthread_create(&t[i], NULL, reader_run, &r[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].bad == 0);
	}
	CHECK(afs_decpool_live(afs_seekreg_decoders(reg)) == 0);
	afs_seekreg_free(reg);
}

int main(void)
{
	unsigned char *data = tu_data(BIG, 9);
	unsigned char *small = tu_data(200000, 3);
	struct tu_entry e[] = {
		{ "stored", data, BIG, 0, 0, 0 },
		{ "deflated", data, BIG, 1, 0, 0 },
		{ "empty", "", 0, 1, 0, 0 },
		{ "dir/x", "x", 1, 0, 0, 0 },
	};
	struct fx f = open_fx(tu_zip("s.zip", e, 4));
	enum afs_err last;
	unsigned char buf[100];
	size_t got;

	for (int k = 0; k < 2; k++) {
		const char *name = k ? "/deflated" : "/stored";
		struct afs_stream *s = open_s(&f, name);
		CHECK(read_all(s, data, BIG, BIG, &last) == 0 && last == AFS_OK); /* one go */
		afs_stream_close(s);
		s = open_s(&f, name);
		CHECK(read_all(s, data, BIG, 4096, &last) == 0 && last == AFS_OK); /* 4 KiB pieces */
		check_random(s, data);                                            /* backward and forward */
		CHECK(afs_stream_pread(s, buf, 10, BIG, &got) == AFS_OK && got == 0);
		CHECK(afs_stream_pread(s, buf, 100, BIG - 30, &got) == AFS_OK && got == 30 &&
		      memcmp(buf, data + BIG - 30, 30) == 0);
		afs_stream_close(s);
	}
	/* Two streams interleaved: each read gives all 100 bytes asked for,
	 * but the last (at 3,000,000: 17 bytes before the end). */
	struct afs_stream *s1 = open_s(&f, "/stored"), *s2 = open_s(&f, "/deflated");
	int reads = 0;
	for (uint64_t off = 0; off < BIG; off += 250000) {
		size_t want = BIG - off < 100 ? (size_t)(BIG - off) : 100;

		CHECK(afs_stream_pread(s1, buf, 100, off, &got) == AFS_OK && got == want &&
		      memcmp(buf, data + off, want) == 0);
		CHECK(afs_stream_pread(s2, buf, 100, off, &got) == AFS_OK && got == want &&
		      memcmp(buf, data + off, want) == 0);
		reads++;
	}
	CHECK(reads == 13);
	afs_stream_close(s1);
	afs_stream_close(s2);
	struct afs_stream *s = open_s(&f, "/empty");
	CHECK(afs_stream_pread(s, buf, 10, 0, &got) == AFS_OK && got == 0);
	afs_stream_close(s);
	uint32_t id;
	CHECK(afs_index_lookup(f.ix, "/dir", &id) == AFS_OK);
	s = (void *)1;
	CHECK(afs_stream_open(f.a, f.ix, id, &s) == AFS_E_ISDIR && s == NULL);
	afs_stream_close(NULL);
	huge_size();
	pool_logic();
	pool_streams(&f, data);
	pool_threads(&f, data);
	afs_index_free(f.ix);
	afs_archive_free(f.a);
	pool_crc(data);

	/* A wrong CRC: the pass to the end fails, and stays failed. */
	struct tu_entry c[] = { { "crc", small, 200000, 1, 0, 0 }, { "fine", small, 200000, 1, 0, 0 } };
	char *p = tu_zip("crc.zip", c, 1);
	CHECK(tu_patch_u32(p, (uint32_t)crc32(0, small, 200000), 1) == 2);
	f = open_fx(p);
	s = open_s(&f, "/crc");
	CHECK(read_all(s, small, 200000, 8192, &last) == 0 && last == AFS_E_CORRUPT);
	CHECK(reached == 24 * 8192); /* only the read that completes the pass fails */
	CHECK(afs_stream_pread(s, buf, 10, 0, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	afs_index_free(f.ix);
	afs_archive_free(f.a);

	/* Damaged deflate bytes in the middle of the entry. */
	p = tu_zip("damaged.zip", c, 2);
	tu_damage(p, 30 + 3 + 2000, 64); /* local header + name "crc", then into the data */
	f = open_fx(p);
	/* The damage decodes to output near offset 3,000: the first read
	 * (8 KiB) fails with AFS_E_CORRUPT, no damaged byte is ever given,
	 * and the stream stays failed.  (The check here was "bytes differ, or
	 * AFS_E_CORRUPT": true of a stream that hands out damaged bytes.) */
	s = open_s(&f, "/crc");
	CHECK(read_all(s, small, 200000, 8192, &last) == 0 && last == AFS_E_CORRUPT && reached == 0);
	CHECK(strcmp(afs_stream_error(s, last), "malformed deflate data") == 0);
	CHECK(afs_stream_pread(s, buf, 10, 0, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	s = open_s(&f, "/fine"); /* the other entry still reads */
	CHECK(read_all(s, small, 200000, 65536, &last) == 0 && last == AFS_OK);
	afs_stream_close(s);
	afs_index_free(f.ix);
	afs_archive_free(f.a);
	/* The archive states a size one byte short of, or past, the real data. */
	const uint32_t masks[] = { 0x7f /* 200000 -> 199999 */, 0x01 /* -> 200001 */ };
	for (int k = 0; k < 2; k++) {
		p = tu_zip(k ? "long.zip" : "short.zip", c, 1);
		CHECK(tu_patch_u32(p, 200000, masks[k]) == 2);
		f = open_fx(p);
		s = open_s(&f, "/crc");
		CHECK(read_all(s, small, 200000, 8192, &last) == 0 && last == AFS_E_CORRUPT);
		CHECK(reached == 24 * 8192); /* the read that reaches the stated end fails */
		afs_stream_close(s);
		afs_index_free(f.ix);
		afs_archive_free(f.a);
	}
	/* Compressed data cut short: the stated compressed size loses its lowest set bit. */
	p = tu_zip("cut.zip", c, 1);
	f = open_fx(p);
	uint64_t csize = afs_index_node(f.ix, 1)->comp_size;
	afs_index_free(f.ix);
	afs_archive_free(f.a);
	CHECK(csize > 0 && csize < UINT32_MAX);
	CHECK(tu_patch_u32(p, (uint32_t)csize, (uint32_t)(csize & -csize)) == 2);
	f = open_fx(p);
	s = open_s(&f, "/crc");
	CHECK(read_all(s, small, 200000, 8192, &last) == 0 && last == AFS_E_CORRUPT);
	afs_stream_close(s);
	afs_index_free(f.ix);
	afs_archive_free(f.a);
	free(data);
	free(small);
	hostile_offsets();
	final_match_split();
	return tu_done("stream");
}
