/* SPDX-License-Identifier: MIT */
/* Fuzz target: manifest.json as an archive holds it (any bytes, not
 * NUL-terminated), parsed by afs_manifest_parse().  Checks: a refusal says
 * why and leaves the manifest zeroed; an accepted manifest's re-serialised
 * text parses again to the same values, and every path in its "archfs"
 * "created" list is one restoring a snapshot may remove. */
#include <stdlib.h>
#include <string.h>
#include "fuzzutil.h"
#include "index.h"
#include "manifest.h"

static int same(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct afs_manifest zero;
	struct afs_manifest m, again;
	char msg[256];
	enum afs_err err = afs_manifest_parse((const char *)data, size, &m, msg, sizeof(msg));

	if (err != AFS_OK) {
		FZ_ASSERT(msg[0] != '\0', "a refusal without a reason");
		FZ_ASSERT(memcmp(&m, &zero, sizeof(m)) == 0, "a refused manifest is not zeroed");
		return 0;
	}
	FZ_ASSERT(m.json != NULL, "no re-serialised text");
	for (size_t i = 0; i < m.ncreated; i++) {
		size_t len = strlen(m.created[i]);

		FZ_ASSERT(afs_index_check_name(m.created[i]) == AFS_OK && len > 0 && m.created[i][len - 1] != '/',
			  "unsafe created path '%s'", m.created[i]);
	}
	err = afs_manifest_parse(m.json, strlen(m.json), &again, msg, sizeof(msg));
	FZ_ASSERT(err == AFS_OK, "the re-serialised manifest is refused: %s", msg);
	FZ_ASSERT(again.db_type == m.db_type && same(again.created_at, m.created_at) &&
			  same(again.alembic_revision, m.alembic_revision) && same(again.app_version, m.app_version) &&
			  same(again.created_for, m.created_for) && again.ncreated == m.ncreated &&
			  strcmp(again.json, m.json) == 0,
		  "the re-serialised manifest reads differently: %s", m.json);
	afs_manifest_release(&again);
	afs_manifest_release(&m);
	return 0;
}
