/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/db/pgdump.c: headers built byte by byte as pg_dump writes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgdump.h"
#include "testutil.h"

struct buf {
	unsigned char b[512];
	size_t n;
};

static void put(struct buf *w, int byte)
{
	w->b[w->n++] = (unsigned char)byte;
}

/* ReadInt's format with 4-byte integers: sign, then little-endian magnitude. */
static void put_int(struct buf *w, long v)
{
	unsigned long m = (unsigned long)(v < 0 ? -v : v);

	put(w, v < 0);
	for (int i = 0; i < 4; i++)
		put(w, (int)((m >> (8 * i)) & 0xff));
}

static void put_str(struct buf *w, const char *s)
{
	put_int(w, (long)strlen(s));
	memcpy(w->b + w->n, s, strlen(s));
	w->n += strlen(s);
}

/* A header of archive version 1.vmin, format fmt, as pg_dump writes it. */
static struct buf header(int vmaj, int vmin, int fmt)
{
	struct buf w = { .n = 0 };

	memcpy(w.b, "PGDMP", 5);
	w.n = 5;
	put(&w, vmaj);
	put(&w, vmin);
	put(&w, 0);   /* revision */
	put(&w, 4);   /* int size */
	put(&w, 8);   /* offset size */
	put(&w, fmt);
	if (vmin >= 15)
		put(&w, 1); /* compression algorithm: gzip */
	else
		put_int(&w, -1);
	for (int i = 0; i < 7; i++)
		put_int(&w, i == 5 ? 126 : i);
	put_str(&w, "timetracker");
	put_str(&w, "16.4 (Debian 16.4-1.pgdg120+1)"); /* the server's version */
	put_str(&w, "16.6 (Debian 16.6-1.pgdg120+1)"); /* pg_dump's own */
	return w;
}

/* Which pg_restore reads what (PostgreSQL's K_VERS_1_x): 1.13 from 11,
 * 1.14 from 12, 1.15 from 16, 1.16 from 17; 17 and later read every
 * version known here (99).  The version a refusal names reads the dump,
 * and the one before it does not. */
static void versions(void)
{
	static const int max_minor[][2] = { { 10, 12 }, { 11, 13 }, { 12, 14 }, { 13, 14 }, { 14, 14 },
					    { 15, 14 }, { 16, 15 }, { 17, 99 }, { 18, 99 } };
	static const int major_for[][2] = { { 12, 11 }, { 13, 11 }, { 14, 12 }, { 15, 16 }, { 16, 17 } };

	for (size_t i = 0; i < sizeof(max_minor) / sizeof(max_minor[0]); i++)
		if (afs_pgdump_max_minor(max_minor[i][0]) != max_minor[i][1]) {
			fprintf(stderr, "max_minor(%d) = %d, want %d\n", max_minor[i][0],
				afs_pgdump_max_minor(max_minor[i][0]), max_minor[i][1]);
			CHECK(0);
		}
	for (size_t i = 0; i < sizeof(major_for) / sizeof(major_for[0]); i++) {
		int vmin = major_for[i][0], major = afs_pgdump_major_for(vmin);

		if (major != major_for[i][1]) {
			fprintf(stderr, "major_for(%d) = %d, want %d\n", vmin, major, major_for[i][1]);
			CHECK(0);
		}
		CHECK(afs_pgdump_max_minor(major) >= vmin);
		CHECK(vmin == 12 || afs_pgdump_max_minor(major - 1) < vmin); /* 10 reads 1.12 too */
	}
}

int main(void)
{
	struct afs_pgdump_header h;
	char msg[256];
	struct buf w;

	for (int vmin = 14; vmin <= 15; vmin++) {
		w = header(1, vmin, 1);
		CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_OK);
		CHECK(h.vmaj == 1 && h.vmin == vmin && h.vrev == 0);
		CHECK(h.server_version && strcmp(h.server_version, "16.4 (Debian 16.4-1.pgdg120+1)") == 0);
		CHECK(h.pg_dump_version && strcmp(h.pg_dump_version, "16.6 (Debian 16.6-1.pgdg120+1)") == 0);
		afs_pgdump_header_release(&h);
		CHECK(h.server_version == NULL);
		/* every shorter prefix is refused, never read past */
		for (size_t n = 0; n < w.n; n++) {
			unsigned char *copy = malloc(n ? n : 1);

			memcpy(copy, w.b, n);
			msg[0] = '\0';
			CHECK(afs_pgdump_parse_header(copy, n, &h, msg, sizeof(msg)) == AFS_E_CORRUPT);
			CHECK(msg[0] != '\0');
			afs_pgdump_header_release(&h);
			free(copy);
		}
	}
	/* junk after the header is fine: the first 4 KiB of a dump are given */
	w = header(1, 14, 1);
	memset(w.b + w.n, 0xAB, 100);
	CHECK(afs_pgdump_parse_header(w.b, w.n + 100, &h, msg, sizeof(msg)) == AFS_OK);
	afs_pgdump_header_release(&h);

	w = header(1, 14, 3); /* tar format */
	CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_E_CORRUPT && strstr(msg, "format 3"));
	afs_pgdump_header_release(&h);
	w = header(2, 0, 1);
	CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_E_UNSUPPORTED);
	afs_pgdump_header_release(&h);
	w = header(1, 14, 1);
	memcpy(w.b, "SQLite", 6);
	CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_E_CORRUPT && strstr(msg, "PGDMP"));
	afs_pgdump_header_release(&h);
	w = header(1, 14, 1);
	w.b[8] = 200; /* an implausible integer size */
	CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_E_CORRUPT);
	afs_pgdump_header_release(&h);
	w = header(1, 14, 1);
	w.b[w.n - 31] = 0x7f; /* a string length far past the end */
	CHECK(afs_pgdump_parse_header(w.b, w.n, &h, msg, sizeof(msg)) == AFS_E_CORRUPT);
	afs_pgdump_header_release(&h);
	/* an 8-byte integer of magnitude 2^63 with the minus sign (a fuzz find:
	 * negating it was undefined) is refused like any implausible value */
	{
		static const unsigned char minus_2pow63[] = { 'P', 'G', 'D', 'M', 'P', 1, 14, 0, 8, 8, 1,
							      1, 0, 0, 0, 0, 0, 0, 0, 0x80 };
		CHECK(afs_pgdump_parse_header(minus_2pow63, sizeof(minus_2pow63), &h, msg, sizeof(msg)) ==
		      AFS_E_CORRUPT);
		afs_pgdump_header_release(&h);
	}

	versions();
	return tu_done("pgdump");
}
