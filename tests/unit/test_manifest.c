/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/manifest.c against the application's manifest.json. */
#include <string.h>
#include "manifest.h"
#include "testutil.h"

static enum afs_err parse(const char *text, struct afs_manifest *m, char *msg)
{
	return afs_manifest_parse(text, strlen(text), m, msg, 256);
}

int main(void)
{
	struct afs_manifest m;
	char msg[256];

	CHECK(parse("{\n  \"alembic_revision\": \"abc123\",\n  \"app_version\": \"4.2.0\",\n"
		    "  \"created_at\": \"2026-11-20T10:15:02\",\n  \"db_type\": \"sqlite\"\n}", &m, msg) == AFS_OK);
	CHECK(m.db_type == AFS_DB_SQLITE);
	CHECK(m.alembic_revision && strcmp(m.alembic_revision, "abc123") == 0);
	CHECK(m.app_version && strcmp(m.app_version, "4.2.0") == 0);
	CHECK(m.created_at && strcmp(m.created_at, "2026-11-20T10:15:02") == 0);
	CHECK(m.json && strstr(m.json, "\"db_type\":\"sqlite\""));
	afs_manifest_release(&m);
	CHECK(m.json == NULL && m.created_at == NULL);

	CHECK(parse("{\"db_type\": \"postgresql\", \"alembic_revision\": null, \"extra\": [1, 2]}", &m, msg) == AFS_OK);
	CHECK(m.db_type == AFS_DB_POSTGRESQL && m.alembic_revision == NULL && m.app_version == NULL);
	CHECK(m.json && strstr(m.json, "extra"));
	afs_manifest_release(&m);

	CHECK(parse("{\"db_type\": \"unknown\"}", &m, msg) == AFS_OK && m.db_type == AFS_DB_UNKNOWN);
	afs_manifest_release(&m);
	CHECK(parse("{}", &m, msg) == AFS_OK && m.db_type == AFS_DB_UNKNOWN);
	afs_manifest_release(&m);

	CHECK(parse("{\"db_type\": \"sqlite\", \"archfs\": {\"snapshot_of\": \"x.zip\", \"created\": [\"a\", \"a/b.png\"]}}",
		    &m, msg) == AFS_OK);
	CHECK(m.ncreated == 2 && strcmp(m.created[0], "a") == 0 && strcmp(m.created[1], "a/b.png") == 0);
	CHECK(m.created_for == NULL);
	afs_manifest_release(&m);
	CHECK(m.created == NULL && m.ncreated == 0);
	/* the uploads root a snapshot was written for */
	CHECK(parse("{\"archfs\": {\"uploads\": \"/srv/up\", \"created\": [\"n.txt\"]}}", &m, msg) == AFS_OK);
	CHECK(m.created_for && strcmp(m.created_for, "/srv/up") == 0 && m.ncreated == 1);
	afs_manifest_release(&m);
	CHECK(m.created_for == NULL);

	const char *bad[] = { "not json", "[1, 2]", "{\"db_type\": 5}", "{\"created_at\": {}}", "", "{\"a\": ",
			      "{\"archfs\": {\"created\": [\"../etc/passwd\"]}}", "{\"archfs\": {\"created\": [\"/abs\"]}}",
			      "{\"archfs\": {\"created\": \"a\"}}", "{\"archfs\": {\"created\": [7]}}", "{\"archfs\": 1}",
			      /* a restore of a snapshot removes these: nothing may leave the uploads root */
			      "{\"archfs\": {\"created\": [\"a/../../x\"]}}", "{\"archfs\": {\"created\": [\"/etc/x\"]}}",
			      "{\"archfs\": {\"created\": [\"..\"]}}", "{\"archfs\": {\"created\": [\"a/./b\"]}}",
			      "{\"archfs\": {\"created\": [\"\"]}}", "{\"archfs\": {\"created\": [\"a//b\"]}}",
			      "{\"archfs\": {\"created\": [\"a/\"]}}", "{\"archfs\": {\"created\": [\"ok\", \"../x\"]}}",
			      "{\"archfs\": {\"uploads\": 5, \"created\": []}}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		CHECK(parse(bad[i], &m, msg) == AFS_E_CORRUPT);
		CHECK(msg[0] != '\0');
		CHECK(m.json == NULL && m.created_at == NULL && m.db_type == AFS_DB_UNKNOWN && m.created == NULL &&
		      m.created_for == NULL);
	}
	CHECK(strcmp(afs_db_type_name(AFS_DB_SQLITE), "sqlite") == 0);
	CHECK(strcmp(afs_db_type_name(AFS_DB_POSTGRESQL), "postgresql") == 0);
	CHECK(strcmp(afs_db_type_name(AFS_DB_UNKNOWN), "unknown") == 0);
	return tu_done("manifest");
}
