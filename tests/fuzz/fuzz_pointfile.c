/* SPDX-License-Identifier: MIT */
/* Fuzz target: a seek points file (pointfile.h) as a hostile cache
 * directory could hold it.  The input is the file without its trailing
 * CRC-32, which the target appends, so that mutations reach the checks past
 * the checksum.  Checks: a refusal says why and gives no points; accepted
 * points keep the invariants pointfile.h promises; and a decoder resumed at
 * each (window unpacked, bits primed) over a real deflate stream of the
 * entry fails or inflates cleanly, never out of bounds (the sanitizers). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "fuzzutil.h"
#include "inflate.h"
#include "pointfile.h"
#include "seekidx.h"

#define SIZE (1u << 20)
#define WINDOW 32768

static struct afs_pointkey key = { .file_size = 4096, .file_mtime = 1764000000, .cdir_crc = 0x1234abcd,
				   .entries = 2, .entry = 1, .size = SIZE };
static unsigned char *z; /* the entry's deflate stream */
static int dfd = -1;
static char path[4096];
static struct afs_inflater *dec;

static void init(void)
{
	static char dir[] = "/tmp/fuzz-pointfile-XXXXXX";
	unsigned char *data = malloc(SIZE);
	z_stream s = { 0 };
	char name[128];

	for (size_t i = 0; i < SIZE; i++)
		data[i] = "SELECT id FROM time_entries WHERE user_id = 7;\n"[i % 47] ^ (unsigned char)((i * 2654435761u) >> 29);
	z = malloc(SIZE + SIZE / 8 + 4096);
	if (!data || !z || !mkdtemp(dir) || deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	s.next_in = data;
	s.avail_in = SIZE;
	s.next_out = z;
	s.avail_out = SIZE + SIZE / 8 + 4096;
	if (deflate(&s, Z_FINISH) != Z_STREAM_END)
		abort();
	key.comp_size = s.total_out;
	key.crc = afs_crc32(0, data, SIZE);
	deflateEnd(&s);
	free(data);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	afs_pointfile_name(&key, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (dfd < 0 || afs_inflater_new(&dec) != AFS_OK)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char win[WINDOW], out[64 * 1024];
	struct afs_seekpoint *pts = (struct afs_seekpoint *)1;
	size_t n = 99;
	uint32_t crc;
	unsigned char tail[4];
	char why[160] = "";
	enum afs_err err;
	int fd;

	if (dfd < 0)
		init();
	crc = afs_crc32(0, data, size);
	for (int i = 0; i < 4; i++)
		tail[i] = (unsigned char)(crc >> (8 * i));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || write(fd, tail, 4) != 4)
		abort();
	close(fd);
	err = afs_pointfile_load(dfd, &key, 1u << 24, &pts, &n, why, sizeof(why));
	if (err != AFS_OK) {
		FZ_ASSERT(err == AFS_E_NOMEM || why[0] != '\0', "a refusal without a reason");
		FZ_ASSERT(pts == NULL && n == 0, "a refusal gives points");
		return 0;
	}
	FZ_ASSERT(n <= AFS_SEEK_MAX_POINTS, "%zu points", n);
	for (size_t i = 0; i < n; i++) {
		const struct afs_seekpoint *p = &pts[i];

		FZ_ASSERT(p->out > 0 && p->out < key.size && (i == 0 || p->out > p[-1].out), "point %zu out", i);
		FZ_ASSERT(p->in <= key.comp_size && (i == 0 || p->in >= p[-1].in), "point %zu in", i);
		FZ_ASSERT(p->bits <= 7 && p->wlen == (p->out < WINDOW ? p->out : WINDOW), "point %zu bits/window", i);
		FZ_ASSERT(p->zlen > 0 && p->zlen <= afs_window_bound(p->wlen), "point %zu packed length", i);
		if (i >= 4)
			continue;
		/* resumed over the entry's stream: whatever comes out, cleanly */
		if (!afs_window_unpack(dec, p->zwin, p->zlen, win, p->wlen))
			continue;
		if (afs_inflater_resume(dec, p->bits, p->bits ? p->prime >> (8 - p->bits) : 0, win, p->wlen) != AFS_OK)
			continue;
		struct afs_inflate_io io = { z + p->in, key.comp_size - p->in, out, sizeof(out) };
		for (int k = 0; k < 4 && io.avail_out > 0; k++)
			if (afs_inflater_run(dec, &io) != AFS_INFLATE_OK)
				break;
	}
	afs_seekpoints_free(pts, n);
	return 0;
}
