/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/stream.c: reads at any offset, CRC-32 and corrupt data. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "archive.h"
#include "index.h"
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

/* Reads the whole stream in chunks of step bytes; 0 if it equals want. */
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
	/* Two streams interleaved. */
	struct afs_stream *s1 = open_s(&f, "/stored"), *s2 = open_s(&f, "/deflated");
	for (uint64_t off = 0; off < BIG; off += 250000) {
		CHECK(afs_stream_pread(s1, buf, 100, off, &got) == AFS_OK && memcmp(buf, data + off, got) == 0);
		CHECK(afs_stream_pread(s2, buf, 100, off, &got) == AFS_OK && memcmp(buf, data + off, got) == 0);
	}
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
	afs_index_free(f.ix);
	afs_archive_free(f.a);

	/* A wrong CRC: the pass to the end fails, and stays failed. */
	struct tu_entry c[] = { { "crc", small, 200000, 1, 0, 0 }, { "fine", small, 200000, 1, 0, 0 } };
	char *p = tu_zip("crc.zip", c, 1);
	CHECK(tu_patch_u32(p, (uint32_t)crc32(0, small, 200000), 1) == 2);
	f = open_fx(p);
	s = open_s(&f, "/crc");
	CHECK(read_all(s, small, 200000, 8192, &last) == 0 && last == AFS_E_CORRUPT);
	CHECK(afs_stream_pread(s, buf, 10, 0, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	afs_index_free(f.ix);
	afs_archive_free(f.a);

	/* Damaged deflate bytes in the middle of the entry. */
	p = tu_zip("damaged.zip", c, 2);
	tu_damage(p, 30 + 3 + 2000, 64); /* local header + name "crc", then into the data */
	f = open_fx(p);
	s = open_s(&f, "/crc");
	CHECK(read_all(s, small, 200000, 8192, &last) != 0 || last == AFS_E_CORRUPT);
	CHECK(last == AFS_E_CORRUPT);
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
	return tu_done("stream");
}
