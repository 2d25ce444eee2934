/* SPDX-License-Identifier: MIT */
/* One archive as a mount shows it: archive, index, seek points, restore job. */
#include <stdio.h>
#include <stdlib.h>
#include "archive.h"
#include "index.h"
#include "job.h"
#include "seekidx.h"
#include "vfiles.h"
#include "view.h"

enum afs_err afs_view_open(const char *path, const struct afs_target *t, struct afs_seekreg *pool,
			   void (*on_log)(void *ctx, const char *line), struct afs_view **out, char *msg,
			   size_t msglen)
{
	struct afs_view *v = calloc(1, sizeof(*v));
	enum afs_err err;

	*out = NULL;
	if (!v) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	err = afs_archive_open(path, &v->archive, msg, msglen);
	if (err == AFS_OK)
		err = afs_index_build(v->archive, &v->index, msg, msglen);
	if (err != AFS_OK)
		goto out;
	v->seek = afs_seekreg_new_shared(afs_index_count(v->index), pool);
	if (!v->seek || afs_job_new(path, v->archive, v->index, t, &v->job) != AFS_OK) {
		snprintf(msg, msglen, "out of memory");
		err = AFS_E_NOMEM;
		goto out;
	}
	afs_seekreg_set_archive(v->seek, v->archive); /* the identity of its points files */
	if (on_log)
		afs_job_on_log(v->job, on_log, NULL);
	afs_vfile_note_shadowed(v->job, v->index);
	afs_vfile_note_undecodable(v->job, v->index);
out:
	if (err != AFS_OK) {
		afs_view_free(v);
		return err;
	}
	*out = v;
	return AFS_OK;
}

void afs_view_free(struct afs_view *v)
{
	if (!v)
		return;
	afs_job_free(v->job);
	afs_seekreg_free(v->seek);
	afs_index_free(v->index);
	afs_archive_free(v->archive);
	free(v);
}
