/* SPDX-License-Identifier: MIT */
/* manifest.json of a backup archive, parsed and validated (the only cJSON user). */
#ifndef AFS_MANIFEST_H
#define AFS_MANIFEST_H

#include <stddef.h>
#include "err.h"

enum afs_db_type { AFS_DB_UNKNOWN, AFS_DB_SQLITE, AFS_DB_POSTGRESQL };

struct afs_manifest {
	char *created_at;       /* "YYYY-MM-DDTHH:MM:SS" or NULL when absent */
	enum afs_db_type db_type;
	char *alembic_revision; /* NULL when absent or null */
	char *app_version;      /* NULL when absent or null */
	char *json;             /* the manifest re-serialised compactly (for .status) */
	/* archfs's own key in the manifests of pre-restore snapshots:
	 * "archfs": {"uploads": root, "created": [...]}, the uploads root the
	 * snapshot was written for and the paths below it that the restore
	 * which wrote the snapshot created: restoring the snapshot removes
	 * them, but only when it is a snapshot archfs wrote for that target
	 * (afs_snapshot_is_own(), restore/snapshot.h), since any archive can
	 * carry this key.  Each path passed afs_index_check_name() (relative,
	 * no empty, "." or ".." component) and has no trailing '/'.  NULL and
	 * empty elsewhere. */
	char *created_for;
	char **created;
	size_t ncreated;
};

/* Parses len bytes of manifest.json.  Unknown keys are kept in json and
 * otherwise ignored.  AFS_E_CORRUPT, with a reason in msg, when the text is
 * not a JSON object or a known key has the wrong type.  On error *m is
 * left zeroed; on success release it with afs_manifest_release(). */
enum afs_err afs_manifest_parse(const char *text, size_t len, struct afs_manifest *m, char *msg, size_t msglen);

/* Frees the strings of m and zeroes it. */
void afs_manifest_release(struct afs_manifest *m);

/* "sqlite", "postgresql" or "unknown". */
const char *afs_db_type_name(enum afs_db_type t);

#endif
