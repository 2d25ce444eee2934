/* SPDX-License-Identifier: MIT */
/* Tiny test harness for the unit tests: CHECK, temp dirs, ZIP fixtures. */
#ifndef AFS_TESTUTIL_H
#define AFS_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

extern int tu_failures;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			tu_failures++;                                                  \
		}                                                                       \
	} while (0)

/* One entry to write into a fixture archive. */
struct tu_entry {
	const char *name;
	const void *data;
	size_t len;
	int deflate;      /* 1: deflate, 0: store */
	uint32_t mode;    /* Unix st_mode for the external attributes; 0 = none given */
	int64_t mtime;    /* 0 = leave libzip's default */
};

/* The number of entries of dir other than . and .. (0 when it cannot be read). */
int tu_entries(const char *dir);

/* A fresh directory under /tmp, removed by tu_cleanup(). */
const char *tu_tmpdir(void);

/* Writes a ZIP at dir/name with the given entries; returns its path (static buffer per call). */
char *tu_zip(const char *name, const struct tu_entry *e, size_t n);

/* tu_zip() with entry i compressed with libzip's method[i] (ZIP_CM_*, one
 * libzip can write) and, when encrypt[i] is not 0, encrypted with libzip's
 * encryption method encrypt[i] (ZIP_EM_*) under the password "secret".
 * Either array may be NULL (each entry as tu_zip() writes it). */
char *tu_zip_with(const char *name, const struct tu_entry *e, size_t n, const int *method, const int *encrypt);

/* One entry of tu_zip_raw(): its compressed bytes as they are, with the
 * method, general-purpose flags, CRC-32 and uncompressed size to state. */
struct tu_raw_entry {
	const char *name;
	uint16_t method;
	uint16_t flags;
	uint32_t crc;
	uint32_t size;
	const void *comp;
	size_t comp_len;
};

/* Writes a ZIP at dir/name whose entries hold the given compressed bytes
 * (mode 0644, no extra fields), for methods no writer here has; returns
 * its path. */
char *tu_zip_raw(const char *name, const struct tu_raw_entry *e, size_t n);

/* Rewrites the compression method of the entry named entry, in its
 * central-directory record and its local header, to method, and ORs flags
 * into their general-purpose bit flags (bit 0: encrypted), for methods no
 * writer here has.  Returns the number of records patched (2). */
int tu_set_method(const char *path, const char *entry, uint16_t method, uint16_t flags);

/* Flips bit mask in every occurrence of the 4-byte little-endian value v in the file. Returns occurrences. */
int tu_patch_u32(const char *path, uint32_t v, uint32_t mask);

/* XORs len bytes at offset off of the file with 0x5a. */
void tu_damage(const char *path, long off, size_t len);

/* Pseudo-random, compressible bytes. */
unsigned char *tu_data(size_t len, unsigned seed);

/* Writes raw bytes to dir/name; returns the path. */
char *tu_file(const char *name, const void *data, size_t len);

/* Prints the result; returns main's exit status. */
int tu_done(const char *what);

#endif
