/* SPDX-License-Identifier: MIT */
/* Fuzz target: writes to a mount's .control file (afs_vfile_control, which
 * parses with afs_cmd_parse), then the status files read back.  The job is
 * that of a small archive with no restore target (a browse-only mount), so
 * "restore ..." and "cancel" are refused and "verify" runs.
 *
 * Input: up to MAX_WRITES writes, separated by 0xff bytes (which no
 * command holds); each write is its own buffer of exactly its length.
 * Checks: a write afs_cmd_parse refuses is refused (AFS_E_INVAL) and named
 * in .status; .status is one JSON object in valid UTF-8 (RFC 8259), as
 * JSON readers demand; .log holds no raw control characters; .progress
 * and .restore_in_progress are one line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "archive.h"
#include "db.h"
#include "fuzzutil.h"
#include "index.h"
#include "job.h"
#include "target.h"
#include "vfiles.h"

#define MAX_WRITES 4

static char dir[] = "/tmp/archfs-fuzz-control.XXXXXX";
static char path[64];
static struct afs_archive *arch;
static struct afs_index *idx;
static struct afs_target target;

static void cleanup(void)
{
	afs_index_free(idx);
	afs_archive_free(arch);
	unlink(path);
	rmdir(dir);
}

/* Writes the archive every input's job is made for: a manifest and one
 * upload, as the application writes them. */
static void make_archive(void)
{
	static const char manifest[] = "{\"alembic_revision\": \"a1b2c3d4e5f6\", \"app_version\": \"4.2.0\", "
				       "\"created_at\": \"2026-11-20T10:15:02\", \"db_type\": \"sqlite\"}";
	struct afs_zipw *w = NULL;
	char msg[256];

	FZ_ASSERT(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/backup.zip", dir);
	atexit(cleanup);
	FZ_ASSERT(afs_zipw_open(path, &w, msg, sizeof(msg)) == AFS_OK, "%s", msg);
	afs_zipw_add_buffer(w, "manifest.json", manifest, sizeof(manifest) - 1, 0100644, 1763633702);
	afs_zipw_add_buffer(w, "uploads/a.txt", "hello\n", 6, 0100644, 1763633702);
	FZ_ASSERT(afs_zipw_close(w, msg, sizeof(msg)) == AFS_OK, "%s", msg);
	FZ_ASSERT(afs_archive_open(path, &arch, msg, sizeof(msg)) == AFS_OK, "%s", msg);
	FZ_ASSERT(afs_index_build(arch, &idx, msg, sizeof(msg)) == AFS_OK, "%s", msg);
	target.backends = afs_db_backends;
}

/* .status: one JSON object, valid UTF-8. */
static void check_status(struct afs_job *j, bool refused_unknown)
{
	size_t len;
	char *text = afs_vfile_read(j, AFS_VF_STATUS, &len);
	cJSON *root, *err;

	FZ_ASSERT(text != NULL, "no .status");
	FZ_ASSERT(fz_utf8_valid(text, len), ".status is not valid UTF-8: %s", text);
	root = cJSON_ParseWithLength(text, len);
	FZ_ASSERT(root && cJSON_IsObject(root), ".status is not a JSON object: %s", text);
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	FZ_ASSERT(!refused_unknown || (cJSON_IsString(err) && strstr(err->valuestring, "unknown command")),
		  ".status does not name the refused command: %s", text);
	cJSON_Delete(root);
	free(text);
}

/* .log: escaped lines (no control characters but the newlines). */
static void check_log(struct afs_job *j)
{
	struct afs_vlog r;
	char buf[4096];
	uint64_t off = 0;
	size_t n;

	afs_vfile_log_open(j, &r);
	while ((n = afs_vfile_log_read(j, &r, buf, sizeof(buf), off)) > 0) {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];

			FZ_ASSERT(c == '\n' || (c >= 0x20 && c != 0x7f), "raw byte %#x in .log", c);
		}
		off += n;
	}
}

/* A one-line file. */
static void check_line(struct afs_job *j, enum afs_vfile v)
{
	size_t len;
	char *text = afs_vfile_read(j, v, &len);

	FZ_ASSERT(text && len > 0 && text[len - 1] == '\n' && memchr(text, '\n', len) == text + len - 1,
		  "%s is not one line", afs_vfile_name(v));
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct afs_job *j = NULL;
	bool refused_unknown = false, started = false;
	size_t at = 0;

	if (!arch)
		make_archive();
	FZ_ASSERT(afs_job_new(path, arch, idx, &target, &j) == AFS_OK, "afs_job_new");
	for (int w = 0; w < MAX_WRITES && at <= size; w++) {
		const uint8_t *end = memchr(data + at, 0xff, size - at);
		size_t len = end ? (size_t)(end - (data + at)) : size - at;
		char *buf = malloc(len ? len : 1);
		enum afs_cmd cmd;
		enum afs_err err;

		FZ_ASSERT(buf, "out of memory");
		memcpy(buf, data + at, len);
		refused_unknown = afs_cmd_parse(buf, len, &cmd) != AFS_OK;
		err = afs_vfile_control(j, buf, len);
		FZ_ASSERT(!refused_unknown || err == AFS_E_INVAL, "an unknown command gave %s", afs_strerror(err));
		started |= err == AFS_OK;
		free(buf);
		at += len + 1;
	}
	afs_job_wait(j);
	check_status(j, refused_unknown && !started); /* a run's own error outranks a refusal */
	check_log(j);
	check_line(j, AFS_VF_PROGRESS);
	check_line(j, AFS_VF_FLAG);
	afs_job_free(j);
	return 0;
}
