/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/mount/readers.c: reads without a handle give the
 * entry's bytes at any offset, keep at most max streams, and a failed
 * stream is not kept. */
#include <stdlib.h>
#include <string.h>
#include "index.h"
#include "readers.h"
#include "seekidx.h"
#include "target.h"
#include "testutil.h"
#include "view.h"

#define BIG (3u << 20)

static uint32_t node_of(struct afs_view *v, const char *path)
{
	uint32_t id = 0;

	CHECK(afs_index_lookup(v->index, path, &id) == AFS_OK);
	return id;
}

int main(void)
{
	unsigned char *big = tu_data(BIG, 7), *buf = malloc(1 << 20);
	struct tu_entry e[40];
	char names[40][32], why[256], msg[256];
	struct afs_target target = { 0 };
	struct afs_seekreg *pool = afs_seekreg_new(0, 8u << 20);
	struct afs_readers *r = afs_readers_new(4);
	struct afs_view *v = NULL;
	size_t got;
	uint32_t bn;

	CHECK(big && buf && pool && r);
	e[0] = (struct tu_entry){ "big.bin", big, BIG, 1, 0100644, 0 };
	for (int i = 1; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]), "small/f%02d.txt", i);
		e[i] = (struct tu_entry){ names[i], big + i * 1000, 500 + (size_t)i, i % 2, 0100644, 0 };
	}
	CHECK(afs_view_open(tu_zip("readers.zip", e, 40), &target, pool, NULL, &v, msg, sizeof(msg)) == AFS_OK);
	bn = node_of(v, "big.bin");
	/* forward, backward, far ahead, past the end */
	static const uint64_t offs[] = { 0, 65536, 131072, 4096, 2u << 20, 100, (3u << 20) - 10, 3u << 20 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		size_t want = offs[i] >= BIG ? 0 : (BIG - offs[i] < 65536 ? BIG - offs[i] : 65536);

		CHECK(afs_readers_pread(r, v, bn, buf, 65536, offs[i], &got, why, sizeof(why)) == AFS_OK);
		CHECK(got == want && memcmp(buf, big + (offs[i] < BIG ? offs[i] : 0), got) == 0);
	}
	CHECK(afs_readers_count(r) == 1); /* one stream served them all */
	/* many files: whole reads right, at most max streams kept */
	for (int i = 1; i < 40; i++) {
		CHECK(afs_readers_pread(r, v, node_of(v, names[i]), buf, 65536, 0, &got, why, sizeof(why)) == AFS_OK);
		CHECK(got == e[i].len && memcmp(buf, e[i].data, got) == 0);
		CHECK(afs_readers_count(r) <= 4);
	}
	CHECK(afs_readers_count(r) == 4);
	/* the big file again, after its stream was dropped: still right */
	CHECK(afs_readers_pread(r, v, bn, buf, 4096, 1000000, &got, why, sizeof(why)) == AFS_OK);
	CHECK(got == 4096 && memcmp(buf, big + 1000000, 4096) == 0);
	afs_readers_free(r);
	afs_view_free(v);

	/* a damaged entry: the error and why, and the stream not kept */
	r = afs_readers_new(4);
	{
		char *zip = tu_zip("damaged.zip", e, 1);

		tu_damage(zip, 100000, 64);
		CHECK(afs_view_open(zip, &target, pool, NULL, &v, msg, sizeof(msg)) == AFS_OK);
	}
	bn = node_of(v, "big.bin");
	enum afs_err err = AFS_OK;
	for (uint64_t off = 0; off < BIG && err == AFS_OK; off += 1 << 20)
		err = afs_readers_pread(r, v, bn, buf, 1 << 20, off, &got, why, sizeof(why));
	CHECK(err == AFS_E_CORRUPT && strlen(why) > 5);
	CHECK(afs_readers_count(r) == 0);
	afs_readers_free(r);
	afs_view_free(v);
	afs_seekreg_free(pool);
	free(big);
	free(buf);
	return tu_done("readers");
}
