/* SPDX-License-Identifier: MIT */
/* The header of a pg_dump custom-format archive (-Fc), read without
 * PostgreSQL: which archive version it is, which PostgreSQL and pg_dump made
 * it, and which pg_restore can read it. */
#ifndef AFS_PGDUMP_H
#define AFS_PGDUMP_H

#include <stddef.h>
#include "err.h"

struct afs_pgdump_header {
	int vmaj, vmin, vrev;  /* archive version, e.g. 1.14-0 */
	char *server_version;  /* "15.10 (Debian ...)" or NULL (versions before 1.10) */
	char *pg_dump_version;
};

/* Parses the first len bytes of a dump (4 KiB is plenty).  AFS_E_CORRUPT
 * for something that is not a custom-format archive or whose header is cut
 * short, AFS_E_UNSUPPORTED for a major archive version other than 1; msg
 * then says why.  Release h with afs_pgdump_header_release(), also on error. */
enum afs_err afs_pgdump_parse_header(const unsigned char *b, size_t len, struct afs_pgdump_header *h, char *msg,
				     size_t msglen);

void afs_pgdump_header_release(struct afs_pgdump_header *h);

/* The newest archive minor version (1.N) the pg_restore of a PostgreSQL
 * major version reads, and the major version that reads 1.N. */
int afs_pgdump_max_minor(int major);
int afs_pgdump_major_for(int vmin);

#endif
