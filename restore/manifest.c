/* SPDX-License-Identifier: MIT */
/* manifest.json of a backup archive -> struct afs_manifest (the only cJSON user). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "index.h"
#include "manifest.h"

const char *afs_db_type_name(enum afs_db_type t)
{
	switch (t) {
	case AFS_DB_SQLITE: return "sqlite";
	case AFS_DB_POSTGRESQL: return "postgresql";
	case AFS_DB_UNKNOWN: break;
	}
	return "unknown";
}

void afs_manifest_release(struct afs_manifest *m)
{
	free(m->created_at);
	free(m->alembic_revision);
	free(m->app_version);
	free(m->json);
	free(m->created_for);
	for (size_t i = 0; i < m->ncreated; i++)
		free(m->created[i]);
	free(m->created);
	memset(m, 0, sizeof(*m));
}

/* Copies the string member key of obj into *dst: absent and null give NULL,
 * another type is an error. */
static enum afs_err get_string(const cJSON *obj, const char *key, char **dst, char *msg, size_t msglen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	*dst = NULL;
	if (!v || cJSON_IsNull(v))
		return AFS_OK;
	if (!cJSON_IsString(v)) {
		snprintf(msg, msglen, "manifest.json: \"%s\" is not a string", key);
		return AFS_E_CORRUPT;
	}
	*dst = strdup(v->valuestring);
	return *dst ? AFS_OK : AFS_E_NOMEM;
}

/* True when path may name something below the uploads root: relative,
 * without empty, "." or ".." components, and not a directory form ("a/"). */
static bool safe_created(const char *path)
{
	size_t len = strlen(path);

	return afs_index_check_name(path) == AFS_OK && path[len - 1] != '/';
}

/* Reads "archfs": {"uploads": root, "created": [paths]} when present:
 * every path must be a safe relative name, since restoring the snapshot
 * removes them. */
static enum afs_err get_created(const cJSON *root, struct afs_manifest *m, char *msg, size_t msglen)
{
	const cJSON *ours = cJSON_GetObjectItemCaseSensitive(root, "archfs"), *list, *item;
	enum afs_err err;
	int n;

	if (!ours || cJSON_IsNull(ours))
		return AFS_OK;
	list = cJSON_GetObjectItemCaseSensitive(ours, "created");
	if (!cJSON_IsObject(ours) || (list && !cJSON_IsArray(list))) {
		snprintf(msg, msglen, "manifest.json: \"archfs\" is malformed");
		return AFS_E_CORRUPT;
	}
	err = get_string(ours, "uploads", &m->created_for, msg, msglen);
	if (err != AFS_OK)
		return err;
	n = cJSON_GetArraySize(list);
	if (n <= 0)
		return AFS_OK;
	m->created = calloc((size_t)n, sizeof(*m->created));
	if (!m->created)
		return AFS_E_NOMEM;
	cJSON_ArrayForEach(item, list) {
		if (!cJSON_IsString(item) || !safe_created(item->valuestring)) {
			snprintf(msg, msglen, "manifest.json: \"archfs\".\"created\" holds an unsafe path");
			return AFS_E_CORRUPT;
		}
		m->created[m->ncreated] = strdup(item->valuestring);
		if (!m->created[m->ncreated])
			return AFS_E_NOMEM;
		m->ncreated++;
	}
	return AFS_OK;
}

enum afs_err afs_manifest_parse(const char *text, size_t len, struct afs_manifest *m, char *msg, size_t msglen)
{
	cJSON *root = NULL;
	char *db_type = NULL;
	enum afs_err err = AFS_OK;

	memset(m, 0, sizeof(*m));
	msg[0] = '\0';
	root = cJSON_ParseWithLength(text, len);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(msg, msglen, "manifest.json is not a JSON object");
		err = AFS_E_CORRUPT;
		goto out;
	}
	if ((err = get_string(root, "created_at", &m->created_at, msg, msglen)) != AFS_OK ||
	    (err = get_string(root, "db_type", &db_type, msg, msglen)) != AFS_OK ||
	    (err = get_string(root, "alembic_revision", &m->alembic_revision, msg, msglen)) != AFS_OK ||
	    (err = get_string(root, "app_version", &m->app_version, msg, msglen)) != AFS_OK ||
	    (err = get_created(root, m, msg, msglen)) != AFS_OK)
		goto out;
	if (db_type && strcmp(db_type, "sqlite") == 0)
		m->db_type = AFS_DB_SQLITE;
	else if (db_type && strcmp(db_type, "postgresql") == 0)
		m->db_type = AFS_DB_POSTGRESQL;
	else
		m->db_type = AFS_DB_UNKNOWN;
	m->json = cJSON_PrintUnformatted(root);
	if (!m->json)
		err = AFS_E_NOMEM;
out:
	if (err == AFS_E_NOMEM && !msg[0])
		snprintf(msg, msglen, "out of memory");
	free(db_type);
	cJSON_Delete(root);
	if (err != AFS_OK)
		afs_manifest_release(m);
	return err;
}
