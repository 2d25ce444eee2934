/* SPDX-License-Identifier: MIT */
/* Fuzz target: the first bytes of a pg_dump custom-format archive, as the
 * PostgreSQL backend reads them from db.dump before it runs pg_restore
 * (afs_pgdump_parse_header, any length, not NUL-terminated).  Checks: a
 * refusal says why; an accepted header is version 1.x with the versions
 * its format has, and the restore version tables answer for it. */
#include <string.h>
#include "fuzzutil.h"
#include "pgdump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct afs_pgdump_header h;
	char msg[256] = "";
	enum afs_err err = afs_pgdump_parse_header(data, size, &h, msg, sizeof(msg));

	if (err != AFS_OK) {
		FZ_ASSERT(msg[0] != '\0', "a refusal without a reason");
	} else {
		int major = afs_pgdump_major_for(h.vmin);

		FZ_ASSERT(h.vmaj == 1 && h.vmin >= 0 && h.vmin <= 255 && h.vrev >= 0 && h.vrev <= 255,
			  "version %d.%d-%d", h.vmaj, h.vmin, h.vrev);
		FZ_ASSERT(size >= 5 && memcmp(data, "PGDMP", 5) == 0, "accepted without the magic");
		FZ_ASSERT(afs_pgdump_max_minor(major) >= h.vmin || h.vmin > 99,
			  "version 1.%d: PostgreSQL %d's pg_restore reads up to 1.%d", h.vmin, major,
			  afs_pgdump_max_minor(major));
		if (h.server_version)
			(void)strlen(h.server_version);
		if (h.pg_dump_version)
			(void)strlen(h.pg_dump_version);
	}
	afs_pgdump_header_release(&h);
	return 0;
}
