/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/pointfile.c and of seek points kept on disk
 * through the registry (seekidx.h): a round trip gives the points back and
 * a second "mount" reads at random without inflating the entry again;
 * damaged, cut short, foreign, other-entry, oversized and lying files are
 * refused or dropped, and reads still give the right bytes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive.h"
#include "index.h"
#include "inflate.h"
#include "pointfile.h"
#include "seekidx.h"
#include "stream.h"
#include "testutil.h"

#define SIZE (6u * 1024 * 1024 + 4321)

static int logged;
static char last_line[400];

static void on_log(const char *line)
{
	logged++;
	snprintf(last_line, sizeof(last_line), "%s", line);
}

static unsigned char *mixed(size_t len)
{
	unsigned char *d = tu_data(len, 3);

	for (size_t i = 0; i < len; i++)
		if ((i >> 15) % 5 != 4)
			d[i] = "INSERT INTO time_entries VALUES (1, 'worked');\n"[i % 47] + (unsigned char)((i >> 11) & 1);
	return d;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

static void spew(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

/* The one points file in dir, into path; false when there is none. */
static int the_file(const char *dir, char *path, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && strstr(e->d_name, ".points"))
			found = snprintf(path, len, "%s/%s", dir, e->d_name) > 0;
	if (d)
		closedir(d);
	return found;
}

/* A "mount": archive, index, a pool registry keeping points in dir. */
struct mnt {
	struct afs_archive *a;
	struct afs_index *ix;
	struct afs_seekreg *pool, *reg;
	uint32_t id;
};

static size_t cap = 64u << 20; /* the next mount's --seek-cache */

static void mount_(struct mnt *m, const char *zip, const char *dir)
{
	char msg[256];

	memset(m, 0, sizeof(*m));
	CHECK(afs_archive_open(zip, &m->a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(m->a, &m->ix, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_lookup(m->ix, "/db.sqlite", &m->id) == AFS_OK);
	m->pool = afs_seekreg_new(0, cap);
	m->reg = afs_seekreg_new_shared(afs_index_count(m->ix), m->pool);
	CHECK(m->pool && m->reg);
	if (dir) {
		int dfd = afs_pointdir_open(dir, msg, sizeof(msg));

		CHECK(dfd >= 0);
		afs_seekreg_keep(m->pool, dfd, on_log);
	}
	afs_seekreg_set_archive(m->reg, m->a);
}

static void umount_(struct mnt *m)
{
	afs_seekreg_free(m->reg); /* writes what is new */
	afs_seekreg_free(m->pool);
	afs_index_free(m->ix);
	afs_archive_free(m->a);
}

/* A read of 4 KiB near the end of the entry, then n at random offsets
 * (seed), through one stream, checked; returns the bytes inflated for the
 * entry by the first read (a fresh mount inflates the whole entry for it). */
static uint64_t reads(struct mnt *m, const unsigned char *data, unsigned seed, int n)
{
	struct afs_stream *s;
	unsigned char buf[4096];
	uint64_t before, after = 0;

	CHECK(afs_stream_open_shared(m->a, m->ix, m->id, m->reg, &s) == AFS_OK);
	struct afs_seekidx *x = afs_seekreg_peek(m->reg, m->id);
	CHECK(x != NULL); /* held from open */
	before = x ? afs_seekidx_inflated(x) : 0;
	for (int i = -1; i < n; i++) {
		size_t got = 0;
		uint64_t off = SIZE - 3 * sizeof(buf);

		if (i == 0)
			after = x ? afs_seekidx_inflated(x) : 0;
		if (i >= 0) {
			seed = seed * 1103515245u + 12345u;
			off = (seed >> 2) % (SIZE - sizeof(buf));
		}
		CHECK(afs_stream_pread(s, buf, sizeof(buf), off, &got) == AFS_OK && got == sizeof(buf));
		CHECK(memcmp(buf, data + off, sizeof(buf)) == 0);
	}
	if (n < 0)
		after = x ? afs_seekidx_inflated(x) : 0;
	afs_stream_close(s); /* the last holder: writes the points */
	return after - before;
}

static struct afs_pointkey key(void)
{
	return (struct afs_pointkey){ .file_size = 1000000, .file_mtime = 1764000000, .cdir_crc = 0x12345678,
				      .entries = 3, .entry = 2, .size = 5000000, .comp_size = 900000, .crc = 0xabcdef01 };
}

/* The pointfile API by itself. */
static void api(const char *dir)
{
	struct afs_pointkey k = key(), other;
	struct afs_seekpoint pts[3], *got = NULL;
	unsigned char win[3][32768], *file, *copy;
	char why[160], path[4096];
	size_t n = 0, len = 0;
	int dfd = afs_pointdir_open(dir, why, sizeof(why));

	CHECK(dfd >= 0);
	for (int i = 0; i < 3; i++) {
		unsigned char *w = tu_data(32768, 20 + i);

		/* 0, 3 and 6 bits, in the prime's top bits */
		pts[i] = (struct afs_seekpoint){ .out = 600000u * (i + 1), .in = 100000u * (i + 1) + 3, .bits = (uint8_t)(i * 3),
						 .prime = (uint8_t[]){ 0, 0xa0, 0xfc }[i], .wlen = 32768 };
		pts[i].zwin = win[i];
		pts[i].zlen = (uint32_t)afs_window_pack(w, 32768, win[i], sizeof(win[i]));
		CHECK(pts[i].zlen > 0);
		free(w);
	}
	/* none yet */
	CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_NOENT);
	/* round trip */
	CHECK(afs_pointfile_save(dfd, &k, pts, 3) == AFS_OK);
	CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_OK && n == 3);
	for (size_t i = 0; got && i < 3 && i < n; i++)
		CHECK(got[i].out == pts[i].out && got[i].in == pts[i].in && got[i].bits == pts[i].bits &&
		      got[i].prime == pts[i].prime && got[i].wlen == pts[i].wlen && got[i].zlen == pts[i].zlen &&
		      memcmp(got[i].zwin, pts[i].zwin, pts[i].zlen) == 0);
	afs_seekpoints_free(got, n);
	CHECK(the_file(dir, path, sizeof(path)));
	{
		struct stat st;

		CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
		CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	}
	/* another archive, another entry: not theirs (a file of the same name
	 * is made to be found: the identity inside is what decides) */
	file = slurp(path, &len);
	CHECK(file && len > 100);
	for (int f = 0; f < 6; f++) {
		other = k;
		if (f == 0)
			other.entries++;
		else if (f == 1)
			other.size++;
		else if (f == 2)
			other.comp_size--;
		else if (f == 3)
			other.crc ^= 1;
		else if (f == 4)
			other.cdir_crc ^= 0x100;
		else
			other.file_size = 999;
		/* same name: entry, file size, mtime and directory CRC are in it,
		 * so only what the name leaves out reaches the check */
		if (f <= 3) {
			CHECK(afs_pointfile_load(dfd, &other, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT);
			CHECK(strstr(why, "another archive or entry") != NULL);
		} else {
			CHECK(afs_pointfile_load(dfd, &other, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_NOENT);
		}
	}
	/* the file of entry 2 under entry 3's name: not entry 3's */
	{
		char moved[8192];
		size_t pl = strlen(path);

		CHECK(pl > 9 && strcmp(path + pl - 9, "-2.points") == 0);
		snprintf(moved, sizeof(moved), "%.*s-3.points", (int)(pl - 9), path);
		spew(moved, file, len);
		other = k;
		other.entry = 3;
		CHECK(afs_pointfile_load(dfd, &other, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT);
		CHECK(strstr(why, "another archive or entry") != NULL);
		unlink(moved);
	}
	/* every truncation */
	for (size_t cut = 0; cut < len; cut += (cut < 200 || len - cut < 200) ? 1 : 997) {
		spew(path, file, cut);
		got = NULL;
		CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT && !got);
	}
	/* a flipped byte anywhere */
	copy = malloc(len);
	for (size_t at = 0; at < len; at += (at < 300 || len - at < 50) ? 1 : 331) {
		memcpy(copy, file, len);
		copy[at] ^= 0x10;
		spew(path, copy, len);
		got = NULL;
		CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT && !got);
	}
	/* lying fields under a right checksum: refused by the point checks */
	{
		size_t p0 = 80, p1 = 80 + 28 + pts[0].zlen;
		struct {
			size_t at;
			unsigned char v;
		} lies[] = {
			{ p0 + 16, 8 },     /* 8 bits */
			{ p0 + 17, 0x01 },  /* prime bits below the used ones (0 bits) */
			{ p1 + 17, 0xf0 },  /* 3 bits, a fourth set */
			{ p0 + 20, 0x01 },  /* window length */
			{ p0 + 26, 0x7f },  /* packed length past the file */
			{ p1 + 7, 0x80 },   /* out past the entry */
			{ p1 + 0, 0x00 },   /* out not increasing (with the next two bytes zeroed: 0) */
			{ p0 + 15, 0x40 },  /* in past the compressed size */
			{ p0 + 18, 0x01 },  /* reserved */
			{ 12, 4 },          /* count */
		};
		for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
			memcpy(copy, file, len);
			copy[lies[i].at] = lies[i].v;
			if (lies[i].at == p1 + 0)
				copy[p1 + 1] = 0, copy[p1 + 2] = 0;
			uint32_t c = afs_crc32(0, copy, len - 4);
			for (int b = 0; b < 4; b++)
				copy[len - 4 + b] = (unsigned char)(c >> (8 * b));
			spew(path, copy, len);
			got = NULL;
			if (afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) != AFS_E_CORRUPT || got)
				fprintf(stderr, "lie %zu accepted\n", i);
			CHECK(!got);
		}
	}
	/* larger than may be: refused before it is read */
	spew(path, file, len);
	CHECK(afs_pointfile_load(dfd, &k, len - 1, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT);
	CHECK(afs_pointfile_load(dfd, &k, len, &got, &n, why, sizeof(why)) == AFS_OK && n == 3);
	afs_seekpoints_free(got, n);
	/* not a regular file */
	unlink(path);
	CHECK(mkdir(path, 0700) == 0);
	CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT);
	rmdir(path);
	/* a symlink is not followed */
	CHECK(symlink("/etc/passwd", path) == 0);
	CHECK(afs_pointfile_load(dfd, &k, 1 << 20, &got, &n, why, sizeof(why)) == AFS_E_CORRUPT);
	unlink(path);
	free(copy);
	free(file);
	close(dfd);
	/* a directory others may write is narrowed to 0700; a symlink is refused */
	{
		char sub[8192], link[8192];
		struct stat st;
		int fd;

		snprintf(sub, sizeof(sub), "%s/wide", dir);
		CHECK(mkdir(sub, 0777) == 0 && chmod(sub, 0777) == 0);
		fd = afs_pointdir_open(sub, why, sizeof(why));
		CHECK(fd >= 0 && stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700);
		close(fd);
		snprintf(link, sizeof(link), "%s/link", dir);
		CHECK(symlink(sub, link) == 0);
		CHECK(afs_pointdir_open(link, why, sizeof(why)) < 0);
		snprintf(sub, sizeof(sub), "%s/made/a/b", dir);
		fd = afs_pointdir_open(sub, why, sizeof(why)); /* parents made too */
		CHECK(fd >= 0 && stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
		close(fd);
	}
}

int main(void)
{
	unsigned char *data = mixed(SIZE);
	struct tu_entry e[] = { { "small.txt", "hello\n", 6, 1, 0100644, 0 }, { "db.sqlite", data, SIZE, 1, 0100644, 0 } };
	char *zip = tu_zip("points.zip", e, 2), dir[4096], apidir[4096], path[4096];
	struct mnt m;
	uint64_t first, second, none;
	unsigned char *file, *copy;
	size_t len;

	snprintf(apidir, sizeof(apidir), "%s/api", tu_tmpdir());
	api(apidir);
	snprintf(dir, sizeof(dir), "%s/cache", tu_tmpdir());

	/* first mount: the reads build the points, the last close writes them */
	mount_(&m, zip, dir);
	first = reads(&m, data, 1, 60);
	CHECK(first > SIZE * 9 / 10); /* the whole entry, recording points on the way */
	CHECK(the_file(dir, path, sizeof(path)));
	size_t pts = afs_seekidx_points(afs_seekreg_peek(m.reg, m.id));
	CHECK(pts >= 4);
	umount_(&m);

	/* second mount: the points come from the file, the reads inflate far less */
	logged = 0;
	mount_(&m, zip, dir);
	second = reads(&m, data, 2, 60);
	CHECK(afs_seekidx_points(afs_seekreg_peek(m.reg, m.id)) == pts);
	CHECK(second < 3 * AFS_SEEK_SPAN); /* from the last point kept (blocks here can be a MiB long) */
	CHECK(logged == 0);
	umount_(&m);

	/* without a directory nothing is kept or read: as the first mount */
	mount_(&m, zip, NULL);
	none = reads(&m, data, 2, 60);
	CHECK(none > SIZE * 9 / 10);
	umount_(&m);

	/* a budget too small for the file: it is not read (one line), the
	 * reads are right, and the points that fit in it replace the file */
	{
		size_t len0;
		unsigned char *before = slurp(path, &len0);

		logged = 0;
		cap = len0 / 2;
		mount_(&m, zip, dir);
		CHECK(reads(&m, data, 5, 10) > SIZE * 9 / 10);
		CHECK(logged == 1 && strstr(last_line, "larger than") != NULL);
		umount_(&m);
		cap = 64u << 20;
		{
			size_t len1;
			unsigned char *after = slurp(path, &len1);

			CHECK(after && len1 <= len0 / 2 + 4096);
			free(after);
		}
		spew(path, before, len0); /* the full one again, for what follows */
		free(before);
	}

	/* a damaged file: ignored with one line, the reads right, and rewritten */
	file = slurp(path, &len);
	copy = malloc(len);
	memcpy(copy, file, len);
	copy[len / 2] ^= 0x55;
	spew(path, copy, len);
	logged = 0;
	mount_(&m, zip, dir);
	CHECK(reads(&m, data, 3, 60) > SIZE * 9 / 10);
	CHECK(logged == 1 && strstr(last_line, "ignored") != NULL);
	umount_(&m);
	CHECK(logged == 1);
	{
		size_t len2;
		unsigned char *again = slurp(path, &len2);

		CHECK(again && len2 > 1000); /* written anew from the points of that mount */
		free(again);
	}

	/* a file that checks out but lies (a point's bit offset moved, its
	 * checksum made right): the reads that use it fail to decode, the
	 * points are dropped with one line, and the bytes are still right */
	spew(path, file, len);
	memcpy(copy, file, len);
	{
		size_t p = 80, k = 0;

		/* the fourth point's compressed offset, one byte on */
		while (k < 3) {
			uint32_t zlen = (uint32_t)copy[p + 24] | (uint32_t)copy[p + 25] << 8 | (uint32_t)copy[p + 26] << 16 |
					(uint32_t)copy[p + 27] << 24;
			p += 28 + zlen;
			k++;
		}
		copy[p + 8]++;
		uint32_t c = afs_crc32(0, copy, len - 4);
		for (int b = 0; b < 4; b++)
			copy[len - 4 + b] = (unsigned char)(c >> (8 * b));
	}
	spew(path, copy, len);
	logged = 0;
	mount_(&m, zip, dir);
	reads(&m, data, 4, 200);
	CHECK(logged == 1 && strstr(last_line, "do not fit") != NULL);
	umount_(&m);

	/* a file of another archive of the same size and mtime is another file
	 * (the directory's CRC-32 is in its name), and never read */
	free(file);
	free(copy);
	free(data);
	return tu_done("pointfile");
}
