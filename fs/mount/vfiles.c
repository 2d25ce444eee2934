/* SPDX-License-Identifier: MIT */
/* The control and status files: names, modes, contents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "index.h"
#include "job.h"
#include "stream.h"
#include "vfiles.h"

static const char *const names[AFS_VF_COUNT] = {
	[AFS_VF_CONTROL] = ".control", [AFS_VF_PROGRESS] = ".progress", [AFS_VF_FLAG] = ".restore_in_progress",
	[AFS_VF_STATUS] = ".status",   [AFS_VF_LOG] = ".log",
};

enum afs_vfile afs_vfile_named(const char *name)
{
	for (int v = AFS_VF_CONTROL; v < AFS_VF_COUNT; v++)
		if (strcmp(name, names[v]) == 0)
			return (enum afs_vfile)v;
	return AFS_VF_NONE;
}

enum afs_vfile afs_vfile_lookup(const char *path)
{
	return path[0] == '/' ? afs_vfile_named(path + 1) : AFS_VF_NONE;
}

const char *afs_vfile_name(enum afs_vfile v)
{
	return v > AFS_VF_NONE && v < AFS_VF_COUNT ? names[v] : "";
}

mode_t afs_vfile_mode(enum afs_vfile v)
{
	return S_IFREG | (v == AFS_VF_CONTROL ? 0200 : 0444);
}

char *afs_vfile_read(struct afs_job *j, enum afs_vfile v, size_t *len)
{
	char *text = NULL;

	switch (v) {
	case AFS_VF_PROGRESS:
		text = afs_job_progress_line(j);
		break;
	case AFS_VF_FLAG:
		text = strdup(afs_job_in_progress(j) ? "1\n" : "0\n");
		break;
	case AFS_VF_STATUS:
		text = afs_job_status_json(j);
		break;
	case AFS_VF_LOG:
		text = afs_job_log_text(j);
		break;
	default:
		text = strdup("");
		break;
	}
	*len = text ? strlen(text) : 0;
	return text;
}

void afs_vfile_log_open(struct afs_job *j, struct afs_vlog *r)
{
	afs_job_log_span(j, &r->start, &r->end);
	r->skipped = 0;
}

size_t afs_vfile_log_read(struct afs_job *j, struct afs_vlog *r, char *buf, size_t len, uint64_t off)
{
	uint64_t want = r->start + r->skipped + off, at = want;
	size_t n;

	n = afs_job_log_read(j, &at, r->end, buf, len);
	r->skipped += at - want;
	return n;
}

enum afs_err afs_vfile_control(struct afs_job *j, const char *buf, size_t len)
{
	enum afs_cmd cmd;
	char msg[512];

	if (afs_cmd_parse(buf, len, &cmd) != AFS_OK) {
		afs_job_refuse(j, "unknown command '%.*s' (one of: restore, restore database, restore uploads, "
				  "verify, cancel)", (int)(len > 64 ? 64 : len - (len && buf[len - 1] == '\n')), buf);
		return AFS_E_INVAL;
	}
	return afs_job_command(j, cmd, msg, sizeof(msg));
}

void afs_vfile_note_shadowed(struct afs_job *j, const struct afs_index *ix)
{
	char path[64];
	uint32_t id;

	for (int v = AFS_VF_CONTROL; v < AFS_VF_COUNT; v++) {
		snprintf(path, sizeof(path), "/%s", names[v]);
		if (afs_index_lookup(ix, path, &id) == AFS_OK)
			afs_job_note(j, "the archive entry %s is hidden by the control file of the same name", names[v]);
	}
}

void afs_vfile_note_undecodable(struct afs_job *j, const struct afs_index *ix)
{
	uint32_t more = 0, named = 0;
	char why[160];

	for (uint32_t id = 1; id < afs_index_count(ix); id++) {
		const struct afs_node *n = afs_index_node(ix, id);

		if (S_ISDIR(n->mode) || afs_stream_decodable(n, why, sizeof(why)))
			continue;
		if (named++ < AFS_VFILE_UNDECODABLE_NAMED)
			afs_job_note(j, "%s is %s: its reads fail (EOPNOTSUPP)", afs_index_path(ix, id), why);
		else
			more++;
	}
	if (more > 0)
		afs_job_note(j, "%u more entries are encrypted or compressed with a method archfs cannot decode: "
				"their reads fail (EOPNOTSUPP)", more);
}
