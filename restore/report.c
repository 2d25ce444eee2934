/* SPDX-License-Identifier: MIT */
/* JSON documents of the restore, built with cJSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "report.h"
#include "uploads.h"

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
		 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
	    (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

/* text (cJSON's output, freed here) as valid UTF-8, then tail; NULL
 * when text is NULL or out of memory.  JSON is UTF-8 (RFC 8259) and its
 * readers refuse anything else (so does PostgreSQL, for a NOTIFY
 * payload), but its strings come from archives (entry and archive names,
 * manifest fields, dump headers) and .control writes, any bytes: each
 * byte that does not start a well-formed sequence becomes U+FFFD.  cJSON
 * writes only ASCII outside strings, so only strings change. */
static char *valid_utf8(char *text, const char *tail)
{
	size_t len, o = 0, tlen = strlen(tail);
	char *out;

	if (!text)
		return NULL;
	len = strlen(text);
	out = malloc(3 * len + tlen + 1);
	for (size_t i = 0; out && i < len;) {
		size_t n = utf8_seq((const unsigned char *)text + i);

		memcpy(out + o, n ? text + i : "\xef\xbf\xbd", n ? n : 3);
		o += n ? n : 3;
		i += n ? n : 1;
	}
	if (out)
		memcpy(out + o, tail, tlen + 1);
	cJSON_free(text);
	return out;
}

/* root (consumed) formatted, with a trailing newline, valid UTF-8; NULL
 * on fail or when out of memory. */
static char *finish(cJSON *root, int fail)
{
	char *text = root && !fail ? cJSON_Print(root) : NULL;

	cJSON_Delete(root);
	return valid_utf8(text, "\n");
}

/* .status "uploads_merge": null, or what this run's merge of the uploads
 * does (replaced, created, bytes) and whether it is done (merged). */
static cJSON *uploads_merge(const struct afs_status_view *v)
{
	cJSON *o;

	if (!v->uploads_planned)
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	if (o && (!cJSON_AddNumberToObject(o, "replaced", (double)v->uploads_replaced) ||
		  !cJSON_AddNumberToObject(o, "created", (double)v->uploads_created) ||
		  !cJSON_AddNumberToObject(o, "bytes", (double)v->uploads_bytes) ||
		  !cJSON_AddBoolToObject(o, "merged", v->uploads_merged))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

char *afs_report_status(const struct afs_status_view *v)
{
	cJSON *root = cJSON_CreateObject(), *target = NULL, *warn = cJSON_CreateArray(), *man = NULL, *dump = NULL;
	int fail = !root || !warn;

	if (v->target_type || v->uploads) {
		target = cJSON_CreateObject();
		fail |= !target;
		if (target) {
			fail |= !cJSON_AddItemToObject(target, "type", str_or_null(v->target_type));
			fail |= !cJSON_AddItemToObject(target, "url", str_or_null(v->target_url));
			fail |= !cJSON_AddItemToObject(target, "uploads", str_or_null(v->uploads));
			if (v->target_type) {
				fail |= !cJSON_AddItemToObject(target, "path", str_or_null(v->target_path));
				fail |= !cJSON_AddItemToObject(target, "exists", v->target_exists < 0 ? cJSON_CreateNull()
									      : cJSON_CreateBool(v->target_exists));
				fail |= !cJSON_AddItemToObject(target, "size", v->target_exists == 1
									    ? cJSON_CreateNumber((double)v->target_size)
									    : cJSON_CreateNull());
				fail |= !cJSON_AddItemToObject(target, "revision", str_or_null(v->target_revision));
				fail |= !cJSON_AddBoolToObject(target, "create", v->target_create);
				fail |= !cJSON_AddBoolToObject(target, "created", v->target_created);
			}
		}
	}
	if (v->manifest_json)
		man = cJSON_Parse(v->manifest_json);
	if (v->dump_json)
		dump = cJSON_Parse(v->dump_json);
	for (size_t i = 0; warn && i < v->nwarnings; i++)
		fail |= !cJSON_AddItemToArray(warn, cJSON_CreateString(v->warnings[i]));
	if (root) {
		fail |= !cJSON_AddStringToObject(root, "state", v->state);
		fail |= !cJSON_AddItemToObject(root, "command", str_or_null(v->command));
		fail |= !cJSON_AddNumberToObject(root, "percent", v->percent);
		fail |= !cJSON_AddNumberToObject(root, "bytes_done", (double)v->bytes_done);
		fail |= !cJSON_AddNumberToObject(root, "bytes_total", (double)v->bytes_total);
		fail |= !cJSON_AddItemToObject(root, "archive", str_or_null(v->archive));
		fail |= !cJSON_AddItemToObject(root, "started_at", str_or_null(v->started_at));
		fail |= !cJSON_AddItemToObject(root, "finished_at", str_or_null(v->finished_at));
		fail |= !cJSON_AddItemToObject(root, "error", str_or_null(v->error));
		fail |= !cJSON_AddItemToObject(root, "failure", str_or_null(v->failure));
		fail |= !cJSON_AddItemToObject(root, "snapshot", str_or_null(v->snapshot));
		fail |= !cJSON_AddItemToObject(root, "target", target ? target : cJSON_CreateNull());
		fail |= !cJSON_AddItemToObject(root, "manifest", man ? man : cJSON_CreateNull());
		fail |= !cJSON_AddItemToObject(root, "dump", dump ? dump : cJSON_CreateNull());
		fail |= !cJSON_AddItemToObject(root, "warnings", warn);
		fail |= !cJSON_AddItemToObject(root, "uploads_merge", uploads_merge(v));
	} else {
		cJSON_Delete(target);
		cJSON_Delete(man);
		cJSON_Delete(dump);
		cJSON_Delete(warn);
	}
	return finish(root, fail);
}

char *afs_report_flag(long pid, const char *archive, const char *started_at)
{
	cJSON *root = cJSON_CreateObject();
	int fail = !root;

	if (root) {
		fail |= !cJSON_AddNumberToObject(root, "pid", (double)pid);
		fail |= !cJSON_AddItemToObject(root, "archive", str_or_null(archive));
		fail |= !cJSON_AddItemToObject(root, "started_at", str_or_null(started_at));
	}
	return finish(root, fail);
}

/* root (consumed) as one line, without a newline, valid UTF-8; NULL on
 * fail or when out of memory. */
static char *finish_line(cJSON *root, int fail)
{
	char *text = root && !fail ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	return valid_utf8(text, "");
}

char *afs_report_dump(const struct afs_dump_view *v)
{
	cJSON *root = cJSON_CreateObject();
	char version[48];
	int fail = !root;

	snprintf(version, sizeof(version), "%d.%d-%d", v->vmaj, v->vmin, v->vrev);
	if (root) {
		fail |= !cJSON_AddItemToObject(root, "format", str_or_null(v->format));
		fail |= !cJSON_AddStringToObject(root, "archive_version", version);
		fail |= !cJSON_AddStringToObject(root, "server_version", v->server_version ? v->server_version : "");
		fail |= !cJSON_AddStringToObject(root, "pg_dump_version", v->pg_dump_version ? v->pg_dump_version : "");
		fail |= !cJSON_AddItemToObject(root, "pg_restore", str_or_null(v->restore_tool));
		fail |= !cJSON_AddNumberToObject(root, "pg_restore_major", v->restore_tool_major);
	}
	return finish_line(root, fail);
}

char *afs_report_notify(const char *event, long pid, const char *archive, const char *state)
{
	cJSON *root = cJSON_CreateObject();
	int fail = !root;

	if (root) {
		fail |= !cJSON_AddStringToObject(root, "event", event);
		fail |= !cJSON_AddNumberToObject(root, "pid", (double)pid);
		fail |= !cJSON_AddItemToObject(root, "archive", str_or_null(archive));
		fail |= !cJSON_AddItemToObject(root, "state", str_or_null(state));
	}
	return finish_line(root, fail);
}

char *afs_report_event_status(const char *state, unsigned percent, double elapsed_seconds)
{
	cJSON *root = cJSON_CreateObject();
	int fail = !root;

	if (root) {
		fail |= !cJSON_AddStringToObject(root, "message_type", "status");
		fail |= !cJSON_AddItemToObject(root, "state", str_or_null(state));
		fail |= !cJSON_AddNumberToObject(root, "percent", percent);
		fail |= !cJSON_AddNumberToObject(root, "elapsed_seconds", (double)(long long)(elapsed_seconds * 1000) / 1000);
	}
	return finish_line(root, fail);
}

char *afs_report_event_log(const char *line)
{
	cJSON *root = cJSON_CreateObject();
	int fail = !root;

	if (root) {
		fail |= !cJSON_AddStringToObject(root, "message_type", "log");
		fail |= !cJSON_AddItemToObject(root, "line", str_or_null(line));
	}
	return finish_line(root, fail);
}

/* Moves key from status (may be NULL) to root, or adds dflt (consumed;
 * NULL: JSON null) when status lacks it. */
static int take(cJSON *root, cJSON *status, const char *key, cJSON *dflt)
{
	cJSON *item = status ? cJSON_DetachItemFromObjectCaseSensitive(status, key) : NULL;

	if (item) {
		cJSON_Delete(dflt);
		return cJSON_AddItemToObject(root, key, item);
	}
	return cJSON_AddItemToObject(root, key, dflt ? dflt : cJSON_CreateNull());
}

char *afs_report_summary(const struct afs_summary_view *v)
{
	cJSON *root = cJSON_CreateObject(), *status = v->status_json ? cJSON_Parse(v->status_json) : NULL;
	cJSON *target = NULL;
	int fail = !root || (v->status_json && !status);

	if (!status && (v->target_type || v->uploads)) {
		target = cJSON_CreateObject();
		fail |= !target;
		if (target) {
			fail |= !cJSON_AddItemToObject(target, "type", str_or_null(v->target_type));
			fail |= !cJSON_AddItemToObject(target, "url", str_or_null(v->target_url));
			fail |= !cJSON_AddItemToObject(target, "uploads", str_or_null(v->uploads));
		}
	}
	if (root) {
		fail |= !cJSON_AddStringToObject(root, "message_type", "summary");
		fail |= !cJSON_AddItemToObject(root, "command", str_or_null(v->command));
		fail |= !cJSON_AddItemToObject(root, "result", str_or_null(v->result));
		fail |= !cJSON_AddNumberToObject(root, "exit_code", v->exit_code);
		fail |= !cJSON_AddItemToObject(root, "failure", str_or_null(v->failure));
		fail |= !cJSON_AddItemToObject(root, "error", str_or_null(v->error));
		fail |= !cJSON_AddItemToObject(root, "archive", str_or_null(v->archive));
		fail |= !take(root, status, "target", target);
		fail |= !take(root, status, "snapshot", NULL);
		fail |= !take(root, status, "started_at", NULL);
		fail |= !take(root, status, "finished_at", NULL);
		fail |= !cJSON_AddNumberToObject(root, "elapsed_seconds",
						 (double)(long long)(v->elapsed_seconds * 1000) / 1000);
		fail |= !take(root, status, "manifest", NULL);
		fail |= !take(root, status, "dump", NULL);
		fail |= !take(root, status, "uploads_merge", NULL);
		fail |= !take(root, status, "warnings", cJSON_CreateArray());
	} else {
		cJSON_Delete(target);
	}
	cJSON_Delete(status);
	return finish_line(root, fail);
}

char *afs_report_snapshot_manifest(const char *created_at, enum afs_db_type type, const char *revision,
				   const char *source, const char *uploads, const struct afs_uplan *plan)
{
	cJSON *root = cJSON_CreateObject(), *ours = cJSON_CreateObject(), *created = cJSON_CreateArray();
	int fail = !root || !ours || !created;

	for (size_t i = 0; plan && created && i < afs_uploads_created_count(plan); i++)
		fail |= !cJSON_AddItemToArray(created, cJSON_CreateString(afs_uploads_created(plan, i)));
	if (ours) {
		fail |= !cJSON_AddItemToObject(ours, "snapshot_of", str_or_null(source));
		fail |= !cJSON_AddItemToObject(ours, "uploads", str_or_null(uploads));
		fail |= !cJSON_AddItemToObject(ours, "created", created ? created : cJSON_CreateArray());
	} else {
		cJSON_Delete(created);
	}
	if (root) {
		/* the application's keys, sorted as it writes them */
		fail |= !cJSON_AddItemToObject(root, "alembic_revision", str_or_null(revision));
		fail |= !cJSON_AddItemToObject(root, "app_version", cJSON_CreateNull());
		fail |= !cJSON_AddItemToObject(root, "archfs", ours ? ours : cJSON_CreateNull());
		fail |= !cJSON_AddItemToObject(root, "created_at", str_or_null(created_at));
		fail |= !cJSON_AddStringToObject(root, "db_type", afs_db_type_name(type));
	} else {
		cJSON_Delete(ours);
	}
	return finish(root, fail);
}

/* root (consumed) as one line with a newline, valid UTF-8; NULL on fail
 * or when out of memory. */
static char *finish_nl(cJSON *root, int fail)
{
	char *text = root && !fail ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	return valid_utf8(text, "\n");
}

/* Adds item (consumed, may be NULL) to root as name; 0 when it could not. */
static int add_item(cJSON *root, const char *name, cJSON *item)
{
	if (item && root && cJSON_AddItemToObject(root, name, item))
		return 1;
	cJSON_Delete(item);
	return 0;
}

static cJSON *diff_side(const struct afs_diff_side *d, int *fail)
{
	char mode[16], crc[16];
	cJSON *o;

	if (!d)
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	snprintf(mode, sizeof(mode), "%04o", d->mode & 07777);
	snprintf(crc, sizeof(crc), "%08x", (unsigned)d->crc);
	*fail |= !o || !cJSON_AddStringToObject(o, "type", d->type) || !cJSON_AddStringToObject(o, "mode", mode) ||
		 !cJSON_AddNumberToObject(o, "size", (double)d->size) || !cJSON_AddStringToObject(o, "crc32", crc);
	return o;
}

char *afs_report_diff_entry(const char *path, const char *change, const struct afs_diff_side *old,
			    const struct afs_diff_side *new_)
{
	cJSON *root = cJSON_CreateObject();
	int fail = !root;
	bool utf8 = true;

	for (const unsigned char *p = (const unsigned char *)path; *p && utf8;) {
		size_t n = utf8_seq(p);

		utf8 = n > 0;
		p += n;
	}
	fail |= !cJSON_AddStringToObject(root, "path", path);
	if (!utf8 && !fail) {
		size_t len = strlen(path);
		char *hex = malloc(2 * len + 1);

		for (size_t i = 0; hex && i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", (unsigned char)path[i]);
		fail |= !hex || !cJSON_AddStringToObject(root, "path_hex", hex);
		free(hex);
	}
	fail |= !cJSON_AddStringToObject(root, "change", change);
	fail |= !add_item(root, "old", diff_side(old, &fail));
	fail |= !add_item(root, "new", diff_side(new_, &fail));
	return finish_nl(root, fail);
}

char *afs_report_diff_summary(uint64_t added, uint64_t removed, uint64_t modified, uint64_t type_changed)
{
	cJSON *root = cJSON_CreateObject(), *sum = cJSON_CreateObject();
	int fail = !root || !sum;

	fail |= !cJSON_AddNumberToObject(sum, "added", (double)added) ||
		!cJSON_AddNumberToObject(sum, "removed", (double)removed) ||
		!cJSON_AddNumberToObject(sum, "modified", (double)modified) ||
		!cJSON_AddNumberToObject(sum, "type_changed", (double)type_changed);
	fail |= !add_item(root, "summary", sum);
	return finish_nl(root, fail);
}
