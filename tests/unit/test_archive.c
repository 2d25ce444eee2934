/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/archive.c: entry values, raw streams, refused files. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "archive.h"
#include "testutil.h"

#define BIG (300 * 1000)

static struct afs_archive *open_ok(const char *path)
{
	struct afs_archive *a = NULL;
	char msg[256];

	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	return a;
}

/* Inflates the raw deflate bytes of entry i and compares them with want. */
static void check_deflated(struct afs_archive *a, uint64_t i, const unsigned char *want, size_t len)
{
	struct afs_raw *r = NULL;
	unsigned char in[4096], *out = malloc(len + 16);
	z_stream z = { 0 };
	size_t got;
	int zr = Z_OK;

	CHECK(afs_raw_open(a, i, &r) == AFS_OK);
	inflateInit2(&z, -MAX_WBITS);
	z.next_out = out;
	z.avail_out = (uInt)len + 16;
	while (zr == Z_OK && afs_raw_read(r, in, sizeof(in), &got) == AFS_OK && got > 0) {
		z.next_in = in;
		z.avail_in = (uInt)got;
		zr = inflate(&z, Z_NO_FLUSH);
	}
	CHECK(zr == Z_STREAM_END);
	CHECK(z.total_out == len && memcmp(out, want, len) == 0);
	inflateEnd(&z);
	afs_raw_close(r);
	free(out);
}

/* Open descriptors of the process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* The sources of an afs_zipw_add_opener() test: paths[i] is opened when
 * the writer asks; fail_at names an index whose open fails. */
struct opener_ctx {
	const char *paths[3];
	size_t fail_at;
	int calls;
	int fds_min, fds_max; /* descriptors open at each call */
};

static enum afs_err test_open(const void *ctx, size_t i, int *fd, char *msg, size_t msglen)
{
	struct opener_ctx *c = (struct opener_ctx *)ctx;
	int n = count_fds();

	c->calls++;
	c->fds_min = c->calls == 1 || n < c->fds_min ? n : c->fds_min;
	c->fds_max = c->calls == 1 || n > c->fds_max ? n : c->fds_max;
	if (i == c->fail_at) {
		snprintf(msg, msglen, "uploads/x changed since verify: refused");
		return AFS_E_CONFLICT;
	}
	*fd = open(c->paths[i], O_RDONLY | O_CLOEXEC);
	return *fd >= 0 ? AFS_OK : AFS_E_IO;
}

/* The writer's entries from openers: opened one at a time, when the
 * archive is written; their bytes exactly; an opener's failure and a
 * content shorter than announced fail the archive and leave nothing. */
static void opener_entries(void)
{
	static unsigned char big[BIG];
	char snap[4096], msg[256];
	struct opener_ctx c = { .fail_at = 99 };
	struct afs_zipw *w = NULL;
	struct afs_archive *a;
	struct stat sb;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 / 3);
	c.paths[0] = strdup(tu_file("one.txt", "first file\n", 11));
	c.paths[1] = strdup(tu_file("big.bin", big, sizeof(big)));
	c.paths[2] = strdup(tu_file("long.txt", "0123456789", 10));
	snprintf(snap, sizeof(snap), "%s/lazy.zip", tu_tmpdir());
	CHECK(afs_zipw_open(snap, &w, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_zipw_add_opener(w, "uploads/one.txt", 11, 0100644, 1700000000, test_open, &c, 0) == AFS_OK);
	CHECK(afs_zipw_add_opener(w, "uploads/big.bin", sizeof(big), 0100600, 1700000000, test_open, &c, 1) == AFS_OK);
	CHECK(afs_zipw_add_opener(w, "uploads/long.txt", 4, 0100644, 1700000000, test_open, &c, 2) == AFS_OK);
	CHECK(c.calls == 0); /* nothing opened before the archive is written */
	CHECK(afs_zipw_close(w, msg, sizeof(msg)) == AFS_OK);
	CHECK(c.calls == 3 && c.fds_min == c.fds_max); /* each closed before the next opens */
	a = open_ok(snap);
	CHECK(a && afs_archive_count(a) == 3);
	if (a && afs_archive_count(a) == 3) {
		struct afs_entry_info e;

		check_deflated(a, 0, (const unsigned char *)"first file\n", 11);
		check_deflated(a, 1, big, sizeof(big));
		CHECK(afs_archive_entry(a, 2, &e) == AFS_OK && e.size == 4); /* bytes past size not read */
		check_deflated(a, 2, (const unsigned char *)"0123", 4);
		CHECK(afs_archive_entry(a, 1, &e) == AFS_OK && e.mode == 0100600 && e.mtime == 1700000000);
	}
	afs_archive_free(a);
	CHECK(unlink(snap) == 0);

	/* an opener refuses: its reason is the archive's, nothing is left */
	c = (struct opener_ctx){ .paths = { c.paths[0], c.paths[1], c.paths[2] }, .fail_at = 1 };
	CHECK(afs_zipw_open(snap, &w, msg, sizeof(msg)) == AFS_OK);
	for (size_t i = 0; i < 3; i++)
		CHECK(afs_zipw_add_opener(w, c.paths[i], 4, 0100644, 0, test_open, &c, i) == AFS_OK);
	CHECK(afs_zipw_close(w, msg, sizeof(msg)) == AFS_E_CONFLICT);
	CHECK(strcmp(msg, "uploads/x changed since verify: refused") == 0);
	CHECK(stat(snap, &sb) != 0);

	/* a content that ends before its announced size: it changed */
	c.fail_at = 99;
	CHECK(afs_zipw_open(snap, &w, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_zipw_add_opener(w, "uploads/one.txt", 12, 0100644, 0, test_open, &c, 0) == AFS_OK);
	CHECK(afs_zipw_close(w, msg, sizeof(msg)) == AFS_E_CONFLICT && strstr(msg, "changed while read"));
	CHECK(stat(snap, &sb) != 0);
	for (size_t i = 0; i < 3; i++)
		free((char *)c.paths[i]);
}

/* The bytes of the file at path, in *len (malloc'd). */
static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = malloc(1 << 20);

	*len = f ? fread(b, 1, 1 << 20, f) : 0;
	if (f)
		fclose(f);
	return b;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A self-extracting archive: stub bytes, then the archive z (len bytes,
 * no comment, no ZIP64); with adjust, its offsets moved past the stub as
 * `zip -A` does.  Returns the path of the new file. */
static char *sfx(const char *name, const unsigned char *stub, size_t slen, const unsigned char *z, size_t len,
		 bool adjust)
{
	unsigned char *b = malloc(slen + len), *eocd = b + slen + len - 22;
	char *path;

	memcpy(b, stub, slen);
	memcpy(b + slen, z, len);
	if (adjust) {
		uint32_t off = get_le32(eocd + 16), size = get_le32(eocd + 12);

		for (unsigned char *r = b + slen + off; r < b + slen + off + size;
		     r += 46 + (r[28] | r[29] << 8) + (r[30] | r[31] << 8) + (r[32] | r[33] << 8))
			put_le32(r + 42, get_le32(r + 42) + (uint32_t)slen);
		put_le32(eocd + 16, off + (uint32_t)slen);
	}
	path = tu_file(name, b, slen + len);
	free(b);
	return path;
}

/* Archives after a self-extracting stub: read whether or not their
 * offsets were adjusted (libzip reads only the adjusted one by itself);
 * a stub before data that is no archive is still refused. */
static void leading_data(void)
{
	unsigned char *body = tu_data(70000, 5), *stub = tu_data(5000, 6), *z;
	struct tu_entry e[] = {
		{ "uploads/a.txt", body, 70000, 1, S_IFREG | 0644, 1700000000 },
		{ "uploads/b.bin", body, 1000, 0, S_IFREG | 0600, 1700000000 },
	};
	struct afs_archive *a = NULL;
	struct afs_entry_info info;
	char msg[256] = "";
	int fds = count_fds();
	size_t len;

	z = read_all(tu_zip("inner.zip", e, 2), &len);
	for (int adjust = 0; adjust < 2; adjust++) {
		char *p = sfx(adjust ? "sfx-adjusted.zip" : "sfx-raw.zip", stub, 5000, z, len, adjust);

		CHECK(afs_archive_open(p, &a, msg, sizeof(msg)) == AFS_OK);
		if (!a)
			continue;
		CHECK(afs_archive_prefix(a) == (adjust ? 0 : 5000) && afs_archive_count(a) == 2);
		CHECK(afs_archive_file_size(a) == 5000 + len);
		CHECK(afs_archive_entry(a, 1, &info) == AFS_OK && strcmp(info.name, "uploads/b.bin") == 0);
		CHECK(!afs_archive_entry_past_eof(a, 0) && !afs_archive_entry_past_eof(a, 1));
		check_deflated(a, 0, body, 70000);
		afs_archive_free(a);
		a = NULL;
	}
	/* the stub alone, and the stub before a directory cut short */
	CHECK(afs_archive_open(sfx("stub-only.zip", stub, 5000, stub, 1000, false), &a, msg, sizeof(msg)) ==
	      AFS_E_NOTZIP);
	CHECK(afs_archive_open(sfx("stub-cut.zip", stub, 5000, z, len - 30, false), &a, msg, sizeof(msg)) ==
	      AFS_E_NOTZIP && a == NULL);
	CHECK(count_fds() == fds); /* every descriptor closed, on errors too */
	free(z);
	free(body);
	free(stub);
}

/* Names that hold a NUL byte are told (libzip's C string stops there);
 * an end record inside the archive comment does not mislead the check of
 * the central directory. */
static void nul_names_and_comments(void)
{
	struct tu_entry e[] = {
		{ "uploads/ok.txt", "fine\n", 5, 1, S_IFREG | 0644, 0 },
		{ "uploads/ok.txtZevil", "evil\n", 5, 1, S_IFREG | 0644, 0 },
	};
	struct afs_archive *a = NULL;
	struct afs_entry_info info;
	unsigned char *b;
	char msg[256] = "", *p = tu_zip("nul.zip", e, 2);
	size_t len;

	CHECK(tu_patch_u32(p, 0x76655a74 /* "tZev" */, 0x00005a00 /* Z -> NUL */) == 2);
	CHECK(afs_archive_open(p, &a, msg, sizeof(msg)) == AFS_OK);
	if (a) {
		CHECK(afs_archive_entry(a, 0, &info) == AFS_OK && !info.name_nul);
		/* libzip up to 1.11 shows the NUL as a space, later ones end the name there */
		CHECK(afs_archive_entry(a, 1, &info) == AFS_OK && info.name_nul &&
		      (strcmp(info.name, "uploads/ok.txt") == 0 || strcmp(info.name, "uploads/ok.txt evil") == 0));
		afs_archive_free(a);
	}
	/* a comment that holds a copy of the end record, its directory moved */
	b = read_all(tu_zip("comment.zip", e, 1), &len);
	b[len - 2] = 22;
	memcpy(b + len, b + len - 22, 22);
	put_le32(b + len + 16, 0);
	b[len + 20] = b[len + 21] = 0;
	CHECK(afs_archive_open(tu_file("comment2.zip", b, len + 22), &a, msg, sizeof(msg)) == AFS_OK &&
	      afs_archive_count(a) == 1);
	afs_archive_free(a);
	free(b);
}

int main(void)
{
	unsigned char *big = tu_data(BIG, 1);
	struct tu_entry e[] = {
		{ "stored.bin", big, BIG, 0, S_IFREG | 0640, 1700000000 },
		{ "dir/deflated.bin", big, BIG, 1, S_IFREG | 04755, 1700000100 },
		{ "bare", "x", 1, 1, 0600, 0 },
		{ "noattr", "", 0, 0, 0, 0 },
	};
	char *path = tu_zip("a.zip", e, 4);
	struct afs_archive *a = open_ok(path);
	struct afs_entry_info info;
	struct afs_raw *r;
	unsigned char buf[1000];
	size_t got;
	struct stat st;

	stat(path, &st);
	CHECK(a && afs_archive_count(a) == 4);
	CHECK(afs_archive_file_size(a) == (uint64_t)st.st_size);
	CHECK(afs_archive_file_mtime(a) == st.st_mtim.tv_sec);

	CHECK(afs_archive_entry(a, 0, &info) == AFS_OK);
	CHECK(strcmp(info.name, "stored.bin") == 0 && info.size == BIG && info.comp_size == BIG);
	CHECK(info.crc == (uint32_t)crc32(0, big, BIG) && info.method == AFS_METHOD_STORE && !info.encrypted);
	CHECK(info.mode == (S_IFREG | 0640) && info.mtime == 1700000000);
	CHECK(afs_archive_entry(a, 1, &info) == AFS_OK);
	CHECK(strcmp(info.name, "dir/deflated.bin") == 0 && info.method == AFS_METHOD_DEFLATE);
	CHECK(info.comp_size < info.size && info.mode == (S_IFREG | 04755) && info.mtime == 1700000100);
	CHECK(afs_archive_entry(a, 2, &info) == AFS_OK && info.mode == 0600);
	CHECK(afs_archive_entry(a, 4, &info) == AFS_E_INVAL);

	/* Raw streams: stored bytes are the data; seeks land where asked. */
	CHECK(afs_raw_open(a, 0, &r) == AFS_OK);
	CHECK(afs_raw_read(r, buf, sizeof(buf), &got) == AFS_OK && got == sizeof(buf) && memcmp(buf, big, got) == 0);
	CHECK(afs_raw_seek(r, 123456) == AFS_OK);
	CHECK(afs_raw_read(r, buf, 100, &got) == AFS_OK && got == 100 && memcmp(buf, big + 123456, 100) == 0);
	CHECK(afs_raw_seek(r, 7) == AFS_OK);
	CHECK(afs_raw_read(r, buf, 10, &got) == AFS_OK && got == 10 && memcmp(buf, big + 7, 10) == 0);
	CHECK(afs_raw_seek(r, BIG) == AFS_OK);
	CHECK(afs_raw_read(r, buf, 10, &got) == AFS_OK && got == 0);
	afs_raw_close(r);
	afs_raw_close(NULL);
	check_deflated(a, 1, big, BIG);
	CHECK(afs_raw_open(a, 9, &r) == AFS_E_INVAL && r == NULL);
	afs_archive_free(a);
	afs_archive_free(NULL);

	/* Files that are not archives are refused with a reason. */
	struct afs_archive *b = (void *)1;
	char msg[256] = "";
	CHECK(afs_archive_open("/nonexistent/x.zip", &b, msg, sizeof(msg)) == AFS_E_IO && b == NULL && msg[0]);
	CHECK(afs_archive_open(tu_file("empty.zip", "", 0), &b, msg, sizeof(msg)) == AFS_E_NOTZIP && b == NULL);
	CHECK(afs_archive_open(tu_file("junk.zip", big, 5000), &b, msg, sizeof(msg)) == AFS_E_NOTZIP);
	CHECK(afs_archive_open(tu_tmpdir(), &b, msg, sizeof(msg)) == AFS_E_NOTZIP && strstr(msg, "directory"));
	/* A central directory cut short. */
	FILE *f = fopen(path, "rb");
	static unsigned char whole[2 * BIG];
	size_t n = fread(whole, 1, sizeof(whole), f);
	fclose(f);
	CHECK(afs_archive_open(tu_file("cut.zip", whole, n - 40), &b, msg, sizeof(msg)) == AFS_E_NOTZIP);
	free(big);

	/* The writer: 0600 from the moment the file exists, whatever the umask;
	 * an existing path refused; a discarded archive leaves nothing. */
	{
		char snap[4096], other[4096];
		struct afs_zipw *w = NULL;
		struct stat sb;
		mode_t old_mask = umask(022);

		snprintf(snap, sizeof(snap), "%s/snap.zip", tu_tmpdir());
		snprintf(other, sizeof(other), "%s/discarded.zip", tu_tmpdir());
		CHECK(afs_zipw_open(snap, &w, msg, sizeof(msg)) == AFS_OK);
		CHECK(stat(snap, &sb) == 0 && (sb.st_mode & 07777) == 0600);
		CHECK(afs_zipw_add_buffer(w, "db.sqlite", "secret", 6, 0100644, 0) == AFS_OK);
		CHECK(afs_zipw_close(w, msg, sizeof(msg)) == AFS_OK);
		CHECK(stat(snap, &sb) == 0 && (sb.st_mode & 07777) == 0600 && sb.st_size > 6);
		CHECK(afs_archive_open(snap, &b, msg, sizeof(msg)) == AFS_OK && afs_archive_count(b) == 1);
		afs_archive_free(b);
		CHECK(afs_zipw_open(snap, &w, msg, sizeof(msg)) == AFS_E_CONFLICT && w == NULL);
		CHECK(afs_zipw_open(other, &w, msg, sizeof(msg)) == AFS_OK);
		afs_zipw_discard(w);
		CHECK(stat(other, &sb) != 0);
		umask(old_mask);
	}
	opener_entries();
	leading_data();
	nul_names_and_comments();
	return tu_done("archive");
}
