/* SPDX-License-Identifier: MIT */
/* Unit tests of the entries archfs does not inflate itself: methods that
 * libzip decodes (bzip2 here; LZMA, XZ and zstd when the libzip linked
 * supports them, test_xdecode.c otherwise), read through stream.c at any offset with the CRC-32 and
 * size checked by libzip; and entries nothing here decodes (encrypted,
 * Deflate64, unknown methods), which the index lists and whose reads fail
 * with AFS_E_UNSUPPORTED and a reason naming the method, noted in the
 * job's warnings at mount (vfiles.c). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>
#include <zlib.h>
#include "archive.h"
#include "decpool.h"
#include "index.h"
#include "job.h"
#include "seekidx.h"
#include "stream.h"
#include "target.h"
#include "testutil.h"
#include "vfiles.h"

#define LEN (1000 * 1000 + 77) /* two bzip2 blocks */

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

static const struct afs_node *node(struct fx *f, const char *path, uint32_t *id)
{
	uint32_t i = 0;

	CHECK(afs_index_lookup(f->ix, path, &i) == AFS_OK);
	if (id)
		*id = i;
	return afs_index_node(f->ix, i);
}

static struct afs_stream *open_s(struct fx *f, const char *path, struct afs_seekreg *reg)
{
	struct afs_stream *s = NULL;
	uint32_t id;

	node(f, path, &id);
	CHECK(afs_stream_open_shared(f->a, f->ix, id, reg, &s) == AFS_OK);
	return s;
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

/* A bzip2 entry, byte-exact: in one go, in pieces, at random offsets
 * forward and backward (each backward read starts a new pass), reads that
 * end exactly at the end of the entry (where libzip checks the CRC-32),
 * and beside a deflated entry of the same archive. */
static void bzip2_reads(const unsigned char *data)
{
	struct tu_entry e[] = { { "b.bin", data, LEN, 0, 0100644, 0 }, { "d.bin", data, LEN, 1, 0100644, 0 },
				{ "empty", "", 0, 0, 0100644, 0 } };
	int methods[] = { ZIP_CM_BZIP2, ZIP_CM_DEFLATE, ZIP_CM_BZIP2 };
	struct fx f = open_fx(tu_zip_with("bz.zip", e, 3, methods, NULL));
	struct afs_stream *s;
	unsigned seed = 11;
	unsigned char buf[16];
	size_t got;
	bool same;

	CHECK(node(&f, "/b.bin", NULL)->method == ZIP_CM_BZIP2 && node(&f, "/b.bin", NULL)->size == LEN);
	CHECK(afs_stream_decodable(node(&f, "/b.bin", NULL), NULL, 0));
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_all(s, data, LEN, LEN + 100, &same) == AFS_OK && same);
	afs_stream_close(s);
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_all(s, data, LEN, 4096, &same) == AFS_OK && same);
	for (int i = 0; i < 12; i++) {
		seed = seed * 1103515245u + 12345u;
		CHECK(read_ok(s, data, LEN, (seed >> 4) % LEN, 1 + (seed >> 9) % 70000));
	}
	CHECK(read_ok(s, data, LEN, LEN - 10, 10));  /* to the end */
	CHECK(read_ok(s, data, LEN, 0, 10));         /* back to the start */
	CHECK(read_ok(s, data, LEN, LEN - 1, 4096)); /* the last byte alone */
	CHECK(afs_stream_pread(s, buf, sizeof(buf), LEN, &got) == AFS_OK && got == 0);
	afs_stream_close(s);
	/* a first read at the end, and one that skips a whole chunk */
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_ok(s, data, LEN, LEN - 5000, 5000));
	afs_stream_close(s);
	/* interleaved with a deflated entry */
	struct afs_stream *d = open_s(&f, "/d.bin", NULL);
	s = open_s(&f, "/b.bin", NULL);
	for (uint64_t off = 0; off < LEN; off += 100003) {
		CHECK(read_ok(s, data, LEN, off, 1000));
		CHECK(read_ok(d, data, LEN, off, 1000));
	}
	afs_stream_close(s);
	afs_stream_close(d);
	s = open_s(&f, "/empty", NULL);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_OK && got == 0);
	afs_stream_close(s);
	close_fx(&f);
}

/* The libzip stream itself: forward only, chunks of at most
 * AFS_RAW_DECODED_CHUNK per call (the archive's mutex is held for one). */
static void decoded_raw(const unsigned char *data)
{
	struct tu_entry e[] = { { "b.bin", data, LEN, 0, 0100644, 0 } };
	int methods[] = { ZIP_CM_BZIP2 };
	struct fx f = open_fx(tu_zip_with("raw.zip", e, 1, methods, NULL));
	struct afs_raw *r = NULL;
	unsigned char *buf = malloc(LEN);
	size_t got = 0, total = 0;

	CHECK(afs_raw_open_decoded(f.a, 0, &r) == AFS_OK);
	CHECK(afs_raw_seek(r, 10) == AFS_E_INVAL);
	CHECK(afs_raw_read(r, buf, LEN, &got) == AFS_OK && got == AFS_RAW_DECODED_CHUNK);
	total = got;
	while (afs_raw_read(r, buf + total, LEN - total, &got) == AFS_OK && got > 0)
		total += got;
	CHECK(total == LEN && memcmp(buf, data, LEN) == 0);
	CHECK(afs_raw_read(r, buf, 1, &got) == AFS_OK && got == 0);
	afs_raw_close(r);
	free(buf);
	close_fx(&f);
}

/* Damage that libzip finds: a wrong CRC-32 (at the end of a pass, however
 * it got there), a size the data does not have, malformed bzip2 data.
 * Each is AFS_E_CORRUPT, sticky, with a reason. */
static void bzip2_damage(const unsigned char *data)
{
	struct tu_entry e[] = { { "b.bin", data, LEN, 0, 0100644, 0 } };
	int methods[] = { ZIP_CM_BZIP2 };
	unsigned char buf[4096];
	struct afs_stream *s;
	char *path;
	size_t got;
	bool same;
	struct fx f;

	path = tu_zip_with("crc.zip", e, 1, methods, NULL);
	CHECK(tu_patch_u32(path, (uint32_t)crc32(0, data, LEN), 1) == 2);
	f = open_fx(path);
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_all(s, data, LEN, 65536, &same) == AFS_E_CORRUPT && same);
	CHECK(strstr(afs_stream_error(s, AFS_E_CORRUPT), "CRC-32") && strstr(afs_stream_error(s, AFS_E_CORRUPT), "bzip2"));
	CHECK(afs_stream_pread(s, buf, 10, 0, &got) == AFS_E_CORRUPT && got == 0); /* sticky */
	afs_stream_close(s);
	s = open_s(&f, "/b.bin", NULL); /* a read that jumps to the end finds it too */
	CHECK(afs_stream_pread(s, buf, 100, LEN - 100, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	close_fx(&f);

	/* the archive states fewer bytes than the data holds */
	path = tu_zip_with("short.zip", e, 1, methods, NULL);
	CHECK(tu_patch_u32(path, LEN, LEN ^ (LEN - 1000)) == 2);
	f = open_fx(path);
	CHECK(node(&f, "/b.bin", NULL)->size == LEN - 1000);
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_all(s, data, LEN - 1000, 65536, &same) == AFS_E_CORRUPT && same);
	afs_stream_close(s);
	close_fx(&f);

	/* ... more than it holds */
	path = tu_zip_with("long.zip", e, 1, methods, NULL);
	CHECK(tu_patch_u32(path, LEN, LEN ^ (LEN + 1000)) == 2);
	f = open_fx(path);
	s = open_s(&f, "/b.bin", NULL);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), LEN - 10, &got) == AFS_E_CORRUPT && got == 0);
	afs_stream_close(s);
	close_fx(&f);

	/* malformed compressed data, in the middle of the entry */
	path = tu_zip_with("bad.zip", e, 1, methods, NULL);
	f = open_fx(path);
	uint64_t comp = node(&f, "/b.bin", NULL)->comp_size;
	close_fx(&f);
	tu_damage(path, 30 + 5 + (long)comp / 2, 64);
	f = open_fx(path);
	s = open_s(&f, "/b.bin", NULL);
	CHECK(read_all(s, data, LEN, 65536, &same) == AFS_E_CORRUPT);
	CHECK(strstr(afs_stream_error(s, AFS_E_CORRUPT), "bzip2"));
	afs_stream_close(s);
	close_fx(&f);
}

/* A bzip2 stream counts one decoder in the mount's pool; evicted, its
 * next read starts a new pass, bytes still right; closed, nothing left. */
static void bzip2_pool(const unsigned char *data)
{
	struct tu_entry e[] = { { "b1", data, LEN, 0, 0100644, 0 }, { "b2", data, LEN, 0, 0100644, 0 } };
	int methods[] = { ZIP_CM_BZIP2, ZIP_CM_BZIP2 };
	struct fx f = open_fx(tu_zip_with("pool.zip", e, 2, methods, NULL));
	struct afs_seekreg *reg = afs_seekreg_new(afs_index_count(f.ix), 64u << 20);
	struct afs_decpool *p = afs_seekreg_decoders(reg);
	struct afs_stream *s1, *s2;

	afs_decpool_set_cap(p, 1);
	s1 = open_s(&f, "/b1", reg);
	s2 = open_s(&f, "/b2", reg);
	CHECK(read_ok(s1, data, LEN, 1000, 5000) && afs_decpool_live(p) == 1);
	CHECK(read_ok(s2, data, LEN, 2000, 5000) && afs_decpool_live(p) == 1 && afs_decpool_evictions(p) == 1);
	CHECK(read_ok(s1, data, LEN, 6000, 5000) && afs_decpool_live(p) == 1); /* s1 again, from the start */
	CHECK(read_ok(s1, data, LEN, LEN - 100, 100));
	afs_stream_close(s1);
	afs_stream_close(s2);
	CHECK(afs_decpool_live(p) == 0);
	afs_seekreg_free(reg);
	close_fx(&f);
}

struct reader {
	struct fx *f;
	const char *path;
	const unsigned char *data;
	int bad;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	struct afs_stream *s = open_s(r->f, r->path, NULL);
	unsigned seed = (unsigned)(uintptr_t)arg;
	bool same;

	for (int i = 0; i < 3; i++) {
		seed = seed * 1103515245u + 12345u;
		if (!read_ok(s, r->data, LEN, (seed >> 4) % LEN, 1 + (seed >> 9) % 100000))
			r->bad++;
	}
	afs_stream_close(s);
	s = open_s(r->f, r->path, NULL);
	if (read_all(s, r->data, LEN, 8192, &same) != AFS_OK || !same)
		r->bad++;
	afs_stream_close(s);
	return NULL;
}

/* Threads reading bzip2 and deflated entries of one archive at once: the
 * archive's mutex keeps libzip's state whole; every byte right. */
static void bzip2_threads(const unsigned char *data)
{
	struct tu_entry e[] = { { "b1", data, LEN, 0, 0100644, 0 }, { "b2", data, LEN, 0, 0100644, 0 },
				{ "d", data, LEN, 1, 0100644, 0 } };
	int methods[] = { ZIP_CM_BZIP2, ZIP_CM_BZIP2, ZIP_CM_DEFLATE };
	struct fx f = open_fx(tu_zip_with("threads.zip", e, 3, methods, NULL));
	const char *paths[] = { "/b1", "/b2", "/d", "/b1" };
	struct reader r[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){ &f, paths[i], data, 0 };
		CHECK(pthread_create(&t[i], NULL, reader_run, &r[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].bad == 0);
	}
	close_fx(&f);
}

/* Checks that path's entry is listed with size len and that its reads
 * fail with AFS_E_UNSUPPORTED, the reason containing what. */
static void check_unsupported(struct fx *f, const char *path, uint64_t len, const char *what)
{
	const struct afs_node *n = node(f, path, NULL);
	struct afs_stream *s = open_s(f, path, NULL);
	char why[160] = "";
	unsigned char buf[64];
	size_t got = 1;

	CHECK(S_ISREG(n->mode) && n->size == len);
	CHECK(!afs_stream_decodable(n, why, sizeof(why)) && strstr(why, what));
	CHECK(afs_stream_pread(s, buf, sizeof(buf), 0, &got) == AFS_E_UNSUPPORTED && got == 0);
	CHECK(strstr(afs_stream_error(s, AFS_E_UNSUPPORTED), what));
	CHECK(afs_stream_pread(s, buf, sizeof(buf), len / 2, &got) == AFS_E_UNSUPPORTED && got == 0);
	CHECK(afs_stream_pread(s, buf, sizeof(buf), len, &got) == AFS_E_UNSUPPORTED || got == 0);
	if (strcmp(afs_stream_error(s, AFS_E_UNSUPPORTED), why) != 0)
		fprintf(stderr, "%s: '%s' vs '%s'\n", path, afs_stream_error(s, AFS_E_UNSUPPORTED), why);
	afs_stream_close(s);
}

/* Entries nothing here decodes no longer refuse the mount: encrypted ones
 * (ZipCrypto and AES through libzip's writer; a bare encrypted flag),
 * Deflate64 and a method number nobody knows.  The others of the archive
 * read fine; zstd, XZ and LZMA entries are decodable (xdecode.c, or
 * libzip), and these, whose data is not of their method, fail as corrupt. */
static void undecodable(const unsigned char *data)
{
	struct tu_entry e[] = {
		{ "zipcrypto.txt", data, 5000, 1, 0100644, 0 }, { "aes.txt", data, 6000, 1, 0100644, 0 },
		{ "flagged.txt", data, 7000, 0, 0100644, 0 },  { "deflate64.bin", data, 8000, 0, 0100644, 0 },
		{ "zstd.bin", data, 9000, 0, 0100644, 0 },      { "xz.bin", data, 9100, 0, 0100644, 0 },
		{ "lzma.bin", data, 9200, 0, 0100644, 0 },      { "m77.bin", data, 9300, 0, 0100644, 0 },
		{ "plain.txt", data, 10000, 1, 0100644, 0 },
	};
	int methods[] = { ZIP_CM_DEFLATE, ZIP_CM_DEFLATE, ZIP_CM_STORE, ZIP_CM_STORE, ZIP_CM_STORE,
			  ZIP_CM_STORE,   ZIP_CM_STORE,   ZIP_CM_STORE, ZIP_CM_DEFLATE };
	int enc[] = { ZIP_EM_TRAD_PKWARE, ZIP_EM_AES_256, 0, 0, 0, 0, 0, 0, 0 };
	char *path = tu_zip_with("odd.zip", e, 9, methods, enc);
	struct afs_stream *s;
	struct fx f;

	CHECK(tu_set_method(path, "flagged.txt", ZIP_CM_STORE, 1) == 2);
	CHECK(tu_set_method(path, "deflate64.bin", ZIP_CM_DEFLATE64, 0) == 2);
	CHECK(tu_set_method(path, "zstd.bin", 93, 0) == 2);
	CHECK(tu_set_method(path, "xz.bin", ZIP_CM_XZ, 0) == 2);
	CHECK(tu_set_method(path, "lzma.bin", ZIP_CM_LZMA, 0) == 2);
	CHECK(tu_set_method(path, "m77.bin", 77, 0) == 2);
	f = open_fx(path);
	CHECK(afs_index_count(f.ix) == 10);
	check_unsupported(&f, "/zipcrypto.txt", 5000, "ZipCrypto");
	check_unsupported(&f, "/aes.txt", 6000, "AES-256");
	check_unsupported(&f, "/flagged.txt", 7000, "encrypted");
	check_unsupported(&f, "/deflate64.bin", 8000, "deflate64 (method 9)");
	for (int i = 0; i < 3; i++) {
		const char *p = (const char *[]){ "/zstd.bin", "/xz.bin", "/lzma.bin" }[i];
		unsigned char b[64];
		size_t got = 1;

		CHECK(afs_stream_decodable(node(&f, p, NULL), NULL, 0));
		s = open_s(&f, p, NULL);
		CHECK(afs_stream_pread(s, b, sizeof(b), 0, &got) == AFS_E_CORRUPT && got == 0);
		afs_stream_close(s);
	}
	check_unsupported(&f, "/m77.bin", 9300, "method 77");
	s = open_s(&f, "/plain.txt", NULL);
	CHECK(read_ok(s, data, 10000, 0, 10000));
	afs_stream_close(s);

	/* at mount: one warning each, naming the entry and why */
	struct afs_target t = { 0 };
	struct afs_job *j = NULL;
	char *status;

	CHECK(afs_job_new(path, f.a, f.ix, &t, &j) == AFS_OK);
	afs_vfile_note_undecodable(j, f.ix);
	status = afs_job_status_json(j);
	CHECK(status && strstr(status, "zipcrypto.txt is encrypted (ZipCrypto), and archfs has no password"));
	CHECK(status && strstr(status, "deflate64.bin is compressed with deflate64 (method 9), which archfs cannot decode"));
	CHECK(status && strstr(status, "m77.bin is compressed with method 77, which archfs does not know"));
	CHECK(status && !strstr(status, "plain.txt"));
	free(status);
	afs_job_free(j);
	close_fx(&f);
}

/* Many undecodable entries: AFS_VFILE_UNDECODABLE_NAMED warnings name
 * them, one more counts the rest (the job keeps at most 64 warnings). */
static void many_undecodable(const unsigned char *data)
{
	enum { N = 30 };
	struct tu_entry e[N];
	int enc[N];
	char names[N][16];
	struct afs_target t = { 0 };
	struct afs_job *j = NULL;
	char *path, *status, *p;
	int named = 0;
	struct fx f;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "s%02d.txt", i);
		e[i] = (struct tu_entry){ names[i], data, 100, 1, 0100644, 0 };
		enc[i] = ZIP_EM_TRAD_PKWARE;
	}
	path = tu_zip_with("many.zip", e, N, NULL, enc);
	f = open_fx(path);
	CHECK(afs_job_new(path, f.a, f.ix, &t, &j) == AFS_OK);
	afs_vfile_note_undecodable(j, f.ix);
	status = afs_job_status_json(j);
	for (p = status; p && (p = strstr(p, "and archfs has no password: its reads fail")); p++)
		named++;
	CHECK(named == AFS_VFILE_UNDECODABLE_NAMED);
	CHECK(status && strstr(status, "22 more entries are encrypted or compressed with a method archfs cannot decode"));
	free(status);
	afs_job_free(j);
	close_fx(&f);
}

static void names(void)
{
	CHECK(strcmp(afs_method_name(0), "store") == 0 && strcmp(afs_method_name(8), "deflate") == 0);
	CHECK(strcmp(afs_method_name(12), "bzip2") == 0 && strcmp(afs_method_name(9), "deflate64") == 0);
	CHECK(strcmp(afs_method_name(93), "zstd") == 0 && strcmp(afs_method_name(95), "xz") == 0);
	CHECK(afs_method_name(77) == NULL);
	CHECK(afs_method_decodable(0) && afs_method_decodable(8) && afs_method_decodable(12));
	CHECK(afs_method_decodable(14) && afs_method_decodable(93) && afs_method_decodable(95));
	CHECK(!afs_method_decodable(9) && !afs_method_decodable(77));
	CHECK(strcmp(afs_encryption_name(ZIP_EM_TRAD_PKWARE), "ZipCrypto") == 0);
	CHECK(strcmp(afs_encryption_name(ZIP_EM_AES_128), "AES-128") == 0);
}

int main(void)
{
	unsigned char *data = tu_data(LEN, 17);

	names();
	bzip2_reads(data);
	decoded_raw(data);
	bzip2_damage(data);
	bzip2_pool(data);
	bzip2_threads(data);
	undecodable(data);
	many_undecodable(data);
	free(data);
	return tu_done("zdecode");
}
