/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/seekidx.c through fs/archive/stream.c: reads that jump land on
 * seek points, give the right bytes, share points across streams, and stay
 * within the memory cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "archive.h"
#include "index.h"
#include "seekidx.h"
#include "stream.h"
#include "testutil.h"

#define SIZE (24u * 1024 * 1024 + 123)

/* Text-like runs (deflate codes them in bits, so block boundaries fall
 * inside bytes) and random runs (stored blocks), alternating. */
static unsigned char *mixed(size_t len)
{
	unsigned char *d = malloc(len), *rnd = tu_data(len, 11);
	size_t i = 0;

	for (unsigned k = 0; i < len; k++) {
		size_t run = 3000 + (k * 7919) % 60000;

		if (run > len - i)
			run = len - i;
		if (k % 3 == 2) {
			memcpy(d + i, rnd + i, run);
		} else {
			for (size_t j = 0; j < run; j++)
				d[i + j] = "time entry notes: user%d logged in\n"[(j + k) % 35] ^ (unsigned char)((j / 97) & 1);
		}
		i += run;
	}
	free(rnd);
	return d;
}

static int read_at(struct afs_stream *s, const unsigned char *data, uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	size_t got = 0, want = off + len > SIZE ? SIZE - off : len;
	int ok = afs_stream_pread(s, buf, len, off, &got) == AFS_OK && got == want && memcmp(buf, data + off, got) == 0;

	free(buf);
	return ok;
}

int main(void)
{
	unsigned char *data = mixed(SIZE);
	struct tu_entry e[] = { { "db.sqlite", data, SIZE, 1, 0100644, 0 } };
	char msg[256], *path = tu_zip("seek.zip", e, 1);
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_stream *s1, *s2;
	struct afs_seekreg *reg;
	uint32_t id;
	unsigned seed = 1;

	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_lookup(ix, "/db.sqlite", &id) == AFS_OK);
	reg = afs_seekreg_new(afs_index_count(ix), 64u << 20);
	CHECK(reg != NULL);

	/* a read near the end first: the index is built on the way there */
	CHECK(afs_stream_open_shared(a, ix, id, reg, &s1) == AFS_OK);
	CHECK(read_at(s1, data, SIZE - 5000, 4096));
	struct afs_seekidx *x = afs_seekreg_get(reg, id, SIZE);
	size_t pts = afs_seekidx_points(x);
	CHECK(pts >= 20 && pts <= SIZE / AFS_SEEK_SPAN);
	size_t full = afs_seekreg_memory(reg); /* what this entry's points take */
	CHECK(full > 0 && full <= 64u << 20);
	/* random 4 KiB reads, backwards and forwards, from two streams sharing the points */
	CHECK(afs_stream_open_shared(a, ix, id, reg, &s2) == AFS_OK);
	for (int i = 0; i < 300; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t off = (seed >> 3) % SIZE;
		CHECK(read_at(i % 2 ? s1 : s2, data, off, 1 + (seed >> 7) % 9000));
	}
	CHECK(afs_seekidx_points(x) == pts); /* nothing new past the end */
	/* a sequential pass from 0 on a stream that jumped still works and checks the CRC */
	for (uint64_t off = 0; off < SIZE; off += 1 << 20)
		CHECK(read_at(s2, data, off, 1 << 20));
	afs_stream_close(s1);
	afs_stream_close(s2);
	afs_seekreg_free(reg);

	/* a spent budget records no points: reads are slower, never wrong */
	reg = afs_seekreg_new(afs_index_count(ix), 1000);
	CHECK(afs_stream_open_shared(a, ix, id, reg, &s1) == AFS_OK);
	CHECK(read_at(s1, data, SIZE / 2, 4096) && read_at(s1, data, 100, 4096) && read_at(s1, data, SIZE - 1, 10));
	CHECK(afs_seekidx_points(afs_seekreg_get(reg, id, SIZE)) == 0 && afs_seekreg_memory(reg) == 0);
	afs_stream_close(s1);
	afs_seekreg_free(reg);

	/* registries sharing a pool share its cap: what one holds, the other cannot take */
	struct afs_seekreg *pool = afs_seekreg_new(0, full + full / 2), *r1, *r2;
	r1 = afs_seekreg_new_shared(afs_index_count(ix), pool);
	r2 = afs_seekreg_new_shared(afs_index_count(ix), pool);
	CHECK(pool && r1 && r2);
	CHECK(afs_stream_open_shared(a, ix, id, r1, &s1) == AFS_OK && read_at(s1, data, SIZE - 4096, 4096));
	size_t held = afs_seekreg_memory(pool);
	CHECK(held >= full * 9 / 10 && afs_seekreg_memory(r1) == held && afs_seekreg_memory(r2) == held);
	CHECK(afs_stream_open_shared(a, ix, id, r2, &s2) == AFS_OK && read_at(s2, data, SIZE - 4096, 4096));
	CHECK(afs_seekreg_memory(pool) <= full + full / 2);
	CHECK(afs_seekidx_points(afs_seekreg_get(r2, id, SIZE)) < afs_seekidx_points(afs_seekreg_get(r1, id, SIZE)));
	afs_stream_close(s1);
	afs_stream_close(s2);
	afs_seekreg_free(r1);
	afs_seekreg_free(r2);
	afs_seekreg_free(pool);

	/* without a registry the stream keeps points of its own */
	CHECK(afs_stream_open(a, ix, id, &s1) == AFS_OK);
	CHECK(read_at(s1, data, SIZE - 100, 100) && read_at(s1, data, 12345, 4096) && read_at(s1, data, SIZE / 3, 4096));
	afs_stream_close(s1);
	afs_index_free(ix);
	afs_archive_free(a);

	/* damaged compressed data: a read that jumps past it may not notice (a
	 * flipped byte in a stored block is still valid deflate), but the
	 * sequential pass checks the CRC-32 and fails with AFS_E_CORRUPT */
	tu_damage(path, 4u << 20, 64);
	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK && afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_lookup(ix, "/db.sqlite", &id) == AFS_OK && afs_stream_open(a, ix, id, &s1) == AFS_OK);
	{
		unsigned char *buf = malloc(1 << 20);
		enum afs_err err = AFS_OK;
		size_t got = 1;

		for (uint64_t off = 0; err == AFS_OK && got; off += got)
			err = afs_stream_pread(s1, buf, 1 << 20, off, &got);
		CHECK(err == AFS_E_CORRUPT);
		free(buf);
	}
	afs_stream_close(s1);
	afs_index_free(ix);
	afs_archive_free(a);
	free(data);
	return tu_done("seekidx");
}
