/* SPDX-License-Identifier: MIT */
/* Test harness helpers: fixture archives written with the libzip writer. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include "testutil.h"

int tu_failures;
static char tmpdir[64];
static char *paths[256]; /* returned by tu_file(), freed by tu_done() */
static size_t npaths;

const char *tu_tmpdir(void)
{
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/afs-unit-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(2);
		}
	}
	return tmpdir;
}

char *tu_file(const char *name, const void *data, size_t len)
{
	char *path = malloc(strlen(tu_tmpdir()) + strlen(name) + 2);
	FILE *f;

	sprintf(path, "%s/%s", tu_tmpdir(), name);
	if (npaths == sizeof(paths) / sizeof(paths[0]))
		exit(2);
	paths[npaths++] = path;
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
	return path;
}

char *tu_zip(const char *name, const struct tu_entry *e, size_t n)
{
	return tu_zip_with(name, e, n, NULL, NULL);
}

char *tu_zip_with(const char *name, const struct tu_entry *e, size_t n, const int *method, const int *encrypt)
{
	char *path = tu_file(name, "", 0);
	int err = 0;
	zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);

	if (!z) {
		fprintf(stderr, "zip_open %s: %d\n", path, err);
		exit(2);
	}
	for (size_t i = 0; i < n; i++) {
		zip_source_t *s = NULL;
		zip_int64_t idx;
		size_t l = strlen(e[i].name);
		if (l && e[i].name[l - 1] == '/') {
			idx = zip_dir_add(z, e[i].name, ZIP_FL_ENC_UTF_8);
		} else {
			s = zip_source_buffer(z, e[i].data, e[i].len, 0);
			idx = zip_file_add(z, e[i].name, s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
		}
		if (idx < 0) {
			zip_source_free(s);
			fprintf(stderr, "zip_file_add %s: %s\n", e[i].name, zip_strerror(z));
			exit(2);
		}
		zip_set_file_compression(z, (zip_uint64_t)idx,
					 method ? method[i] : e[i].deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
		if (encrypt && encrypt[i] && zip_file_set_encryption(z, (zip_uint64_t)idx, (zip_uint16_t)encrypt[i], "secret") != 0) {
			fprintf(stderr, "zip_file_set_encryption %s: %s\n", e[i].name, zip_strerror(z));
			exit(2);
		}
		zip_file_set_external_attributes(z, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX, e[i].mode << 16);
		if (e[i].mtime)
			zip_file_set_mtime(z, (zip_uint64_t)idx, (time_t)e[i].mtime, 0);
	}
	if (zip_close(z) != 0) {
		fprintf(stderr, "zip_close: %s\n", zip_strerror(z));
		exit(2);
	}
	return path;
}

static unsigned char *slurp(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;

	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	rewind(f);
	b = malloc((size_t)*len + 1);
	if (fread(b, 1, (size_t)*len, f) != (size_t)*len)
		exit(2);
	fclose(f);
	return b;
}

static void spit(const char *path, const unsigned char *b, long len)
{
	FILE *f = fopen(path, "wb");
	if (fwrite(b, 1, (size_t)len, f) != (size_t)len)
		exit(2);
	fclose(f);
}

int tu_patch_u32(const char *path, uint32_t v, uint32_t mask)
{
	long len;
	unsigned char *b = slurp(path, &len);
	int hits = 0;

	for (long i = 0; i + 4 <= len; i++) {
		uint32_t x = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24;
		if (x == v) {
			x ^= mask;
			for (int k = 0; k < 4; k++)
				b[i + k] = (unsigned char)(x >> (8 * k));
			hits++;
		}
	}
	spit(path, b, len);
	free(b);
	return hits;
}

static uint32_t le(const unsigned char *p, int bytes)
{
	uint32_t v = 0;

	for (int k = bytes - 1; k >= 0; k--)
		v = v << 8 | p[k];
	return v;
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

char *tu_zip_raw(const char *name, const struct tu_raw_entry *e, size_t n)
{
	size_t cap = 22, len = 0, cdir;
	unsigned char *b, *h;
	uint32_t *local = calloc(n ? n : 1, sizeof(*local));
	char *path;

	for (size_t i = 0; i < n; i++)
		cap += 30 + 46 + 2 * strlen(e[i].name) + e[i].comp_len;
	b = calloc(1, cap);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		local[i] = (uint32_t)len;
		h = b + len;
		put32(h, 0x04034b50);
		put16(h + 4, 63);
		put16(h + 6, e[i].flags);
		put16(h + 8, e[i].method);
		put32(h + 14, e[i].crc);
		put32(h + 18, (uint32_t)e[i].comp_len);
		put32(h + 22, e[i].size);
		put16(h + 26, (uint16_t)nl);
		memcpy(h + 30, e[i].name, nl);
		memcpy(h + 30 + nl, e[i].comp, e[i].comp_len);
		len += 30 + nl + e[i].comp_len;
	}
	cdir = len;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		h = b + len;
		put32(h, 0x02014b50);
		put16(h + 4, 3 << 8 | 63); /* made by Unix */
		put16(h + 6, 63);
		put16(h + 8, e[i].flags);
		put16(h + 10, e[i].method);
		put32(h + 16, e[i].crc);
		put32(h + 20, (uint32_t)e[i].comp_len);
		put32(h + 24, e[i].size);
		put16(h + 28, (uint16_t)nl);
		put32(h + 38, 0100644u << 16);
		put32(h + 42, local[i]);
		memcpy(h + 46, e[i].name, nl);
		len += 46 + nl;
	}
	h = b + len;
	put32(h, 0x06054b50);
	put16(h + 8, (uint16_t)n);
	put16(h + 10, (uint16_t)n);
	put32(h + 12, (uint32_t)(len - cdir));
	put32(h + 16, (uint32_t)cdir);
	len += 22;
	path = tu_file(name, b, len);
	free(b);
	free(local);
	return path;
}

int tu_set_method(const char *path, const char *entry, uint16_t method, uint16_t flags)
{
	long len;
	unsigned char *b = slurp(path, &len);
	size_t nlen = strlen(entry);
	int hits = 0;

	for (long i = 0; i + 46 <= len; i++) {
		if (le(b + i, 4) != 0x02014b50 || le(b + i + 28, 2) != nlen || i + 46 + (long)nlen > len ||
		    memcmp(b + i + 46, entry, nlen) != 0)
			continue;
		long local = (long)le(b + i + 42, 4);
		put16(b + i + 10, method);
		put16(b + i + 8, (uint16_t)(le(b + i + 8, 2) | flags));
		hits++;
		if (local + 30 <= len && le(b + local, 4) == 0x04034b50) {
			put16(b + local + 8, method);
			put16(b + local + 6, (uint16_t)(le(b + local + 6, 2) | flags));
			hits++;
		}
	}
	spit(path, b, len);
	free(b);
	return hits;
}

void tu_damage(const char *path, long off, size_t len)
{
	long flen;
	unsigned char *b = slurp(path, &flen);

	for (size_t i = 0; i < len && off + (long)i < flen; i++)
		b[off + (long)i] ^= 0x5a;
	spit(path, b, flen);
	free(b);
}

unsigned char *tu_data(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (x >> 16) % 7 == 0 ? (unsigned char)(x >> 8) : (unsigned char)("abcdefgh \n"[(x >> 20) % 10]);
	}
	return b;
}

int tu_done(const char *what)
{
	char cmd[128];

	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", tmpdir);
	}
	while (npaths)
		free(paths[--npaths]);
	printf("%s: %s (%d failed checks)\n", what, tu_failures ? "FAIL" : "ok", tu_failures);
	return tu_failures ? 1 : 0;
}

int tu_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}
