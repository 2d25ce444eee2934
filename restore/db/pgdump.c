/* SPDX-License-Identifier: MIT */
/* pg_dump custom-format headers, as pg_backup_archiver.c ReadHead() reads them. */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgdump.h"

static enum afs_err fail(char *msg, size_t msglen, enum afs_err err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum afs_err fail(char *msg, size_t msglen, enum afs_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return err;
}

int afs_pgdump_max_minor(int major)
{
	return major >= 17 ? 99 : major == 16 ? 15 : major >= 12 ? 14 : major == 11 ? 13 : 12;
}

int afs_pgdump_major_for(int vmin)
{
	return vmin >= 15 ? vmin + 1 : vmin == 14 ? 12 : 11;
}

void afs_pgdump_header_release(struct afs_pgdump_header *h)
{
	free(h->server_version);
	free(h->pg_dump_version);
	memset(h, 0, sizeof(*h));
}

/* Custom-format integers: a sign byte, then intsize bytes little-endian. */
static bool read_int(const unsigned char *b, size_t len, size_t *pos, int intsize, long long *out)
{
	unsigned long long v = 0;
	int sign;

	if (*pos + 1 + (size_t)intsize > len)
		return false;
	sign = b[(*pos)++];
	for (int i = 0; i < intsize; i++)
		v |= (unsigned long long)b[(*pos)++] << (8 * i);
	if (v > LLONG_MAX) /* more than pg_dump, which writes C ints, ever writes */
		return false;
	*out = sign ? -(long long)v : (long long)v;
	return true;
}

static bool read_str(const unsigned char *b, size_t len, size_t *pos, int intsize, char **out)
{
	long long n;

	*out = NULL;
	if (!read_int(b, len, pos, intsize, &n))
		return false;
	if (n < 0)
		return true;
	if ((unsigned long long)n > len - *pos)
		return false;
	*out = strndup((const char *)b + *pos, (size_t)n);
	*pos += (size_t)n;
	return *out != NULL;
}

/* Parses the header of a pg_dump custom-format archive (pg_backup_archiver.c
 * ReadHead): magic, version, sizes, format, compression, creation time,
 * database name, server and pg_dump versions. */
enum afs_err afs_pgdump_parse_header(const unsigned char *b, size_t len, struct afs_pgdump_header *h, char *msg,
				     size_t msglen)
{
	size_t pos = 5;
	int intsize, fmt;
	long long v;
	char *dbname = NULL;

	memset(h, 0, sizeof(*h));
	if (len < 8 || memcmp(b, "PGDMP", 5) != 0)
		return fail(msg, msglen, AFS_E_CORRUPT, "not a pg_dump custom-format archive (no PGDMP)");
	h->vmaj = b[pos++];
	h->vmin = b[pos++];
	h->vrev = (h->vmaj > 1 || (h->vmaj == 1 && h->vmin > 0)) ? b[pos++] : 0;
	if (pos + 3 > len)
		goto short_header;
	intsize = b[pos++];
	pos++; /* offset size */
	fmt = b[pos++];
	if (intsize < 1 || intsize > 8)
		return fail(msg, msglen, AFS_E_CORRUPT, "implausible integer size %d in its header", intsize);
	if (fmt != 1)
		return fail(msg, msglen, AFS_E_CORRUPT, "a pg_dump archive of format %d, not custom (-Fc)", fmt);
	if (h->vmaj != 1)
		return fail(msg, msglen, AFS_E_UNSUPPORTED, "archive version %d.%d, which no pg_restore reads",
				    h->vmaj, h->vmin);
	if (h->vmin >= 15)
		pos++; /* compression algorithm */
	else if (h->vmin >= 4 && !read_int(b, len, &pos, intsize, &v))
		goto short_header;
	else if (h->vmin >= 2 && h->vmin < 4)
		pos++;
	if (h->vmin >= 4) {
		for (int i = 0; i < 7; i++)
			if (!read_int(b, len, &pos, intsize, &v))
				goto short_header;
		if (!read_str(b, len, &pos, intsize, &dbname))
			goto short_header;
		free(dbname);
	}
	if (h->vmin >= 10 && (!read_str(b, len, &pos, intsize, &h->server_version) ||
			      !read_str(b, len, &pos, intsize, &h->pg_dump_version)))
		goto short_header;
	return AFS_OK;
short_header:
	return fail(msg, msglen, AFS_E_CORRUPT, "its header is cut short");
}

