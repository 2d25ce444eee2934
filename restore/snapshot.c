/* SPDX-License-Identifier: MIT */
/* Writing the pre-restore snapshot archive. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "backend.h"
#include "job.h"
#include "privdir.h"
#include "report.h"
#include "snapshot.h"
#include "target.h"
#include "uploads.h"

#define MAX_CLASH 100

/* The directory the snapshot goes to (malloc'd). */
static char *snapshot_dir(const struct afs_target *t, const char *archive)
{
	const char *beside = t->db_path ? t->db_path : t->uploads ? t->uploads : archive;
	char *copy, *dir;

	if (t->snapshot_dir)
		return strdup(t->snapshot_dir);
	copy = strdup(beside);
	if (!copy)
		return NULL;
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

/* Opens a new archive named after the time in dir; *path gets its name. */
static enum afs_err open_new(struct afs_job *j, const char *dir, time_t now, struct afs_zipw **w, char **path)
{
	char stamp[32], msg[256] = "";
	struct tm tm;
	enum afs_err err = AFS_E_CONFLICT;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
	for (int n = 1; n <= MAX_CLASH && err == AFS_E_CONFLICT; n++) {
		char suffix[16] = "";

		if (n > 1)
			snprintf(suffix, sizeof(suffix), "_%d", n);
		free(*path);
		if (asprintf(path, "%s/archfs_pre_restore_%s%s.zip", dir, stamp, suffix) < 0) {
			*path = NULL;
			return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		}
		err = afs_zipw_open(*path, w, msg, sizeof(msg));
	}
	if (err != AFS_OK)
		return afs_job_fail(j, err, "cannot create the snapshot in %s: %s", dir, msg);
	return AFS_OK;
}

/* Adds the live database, dumped by the backend into "db" of a private
 * directory made in dir (*tmp; privdir.h): the backend and libzip open the
 * dump by name, so it must be in a directory no other user can write to.
 * The file is created there 0600 before the backend writes into it, and
 * libzip reads it through /proc/self/fd (when there is one), so that even
 * a rename of the directory by dir's owner cannot swap what it reads.  The
 * caller removes *tmp once the archive is written, on every path
 * (afs_privdir_remove). */
static enum afs_err add_database(struct afs_job *j, struct afs_zipw *w, const struct afs_db_backend *be,
				 void *state, const char *dir, time_t now, struct afs_privdir *tmp)
{
	char msg[512] = "", *path = NULL, src[64];
	enum afs_err err = afs_privdir_make(tmp, dir, ".archfs-snapshot-", msg, sizeof(msg));

	if (err != AFS_OK)
		return afs_job_fail(j, err, "cannot write the snapshot in %s: %s", dir, msg);
	if ((err = afs_privdir_create(tmp, "db", NULL)) != AFS_OK) {
		err = afs_job_fail(j, err, "cannot write the snapshot in %s: %s", tmp->path, strerror(errno));
		goto out;
	}
	if (!(path = afs_privdir_file(tmp, "db"))) {
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	err = be->snapshot(j, state, path);
	if (err == AFS_E_NOENT) {
		afs_job_warn(j, "there is no live database: the snapshot holds none");
		err = AFS_OK;
		goto out;
	}
	if (err != AFS_OK)
		goto out;
	afs_job_test_gate(j, "snapshot-dumped");
	snprintf(src, sizeof(src), "/proc/self/fd/%d/db", tmp->fd);
	err = afs_zipw_add_file(w, be->dump_name, access(src, R_OK) == 0 ? src : path, 0100644, now);
	if (err != AFS_OK)
		afs_job_fail(j, err, "adding the database to the snapshot: %s", afs_strerror(err));
out:
	free(path);
	return err;
}

/* Adds every live file the merge would replace, as uploads/<path>. */
static enum afs_err add_uploads(struct afs_job *j, struct afs_zipw *w, const struct afs_uplan *plan)
{
	const char *root = afs_job_target(j)->uploads;

	for (size_t i = 0; i < afs_uploads_replaced_count(plan); i++) {
		uint32_t mode;
		int64_t mtime;
		const char *rel = afs_uploads_replaced(plan, i, &mode, &mtime);
		char *src = NULL, *name = NULL;
		enum afs_err err = AFS_E_NOMEM;

		if (asprintf(&src, "%s/%s", root, rel) >= 0 && asprintf(&name, "uploads/%s", rel) >= 0)
			err = afs_zipw_add_file(w, name, src, mode, mtime);
		else
			src = name = NULL;
		free(src);
		free(name);
		if (err != AFS_OK)
			return afs_job_fail(j, err, "adding uploads/%s to the snapshot: %s", rel, afs_strerror(err));
	}
	return AFS_OK;
}

/* The snapshot, written 0600, then takes the owner and mode (read and write
 * bits only) of the database file it holds a copy of: no one may read it
 * who may not read the database. */
static void like_database(struct afs_job *j, const char *snap, const char *db)
{
	struct stat st;
	int fd;

	if (stat(db, &st) != 0 || (fd = open(snap, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
		afs_job_warn(j, "the snapshot %s keeps archfs's owner: %s", snap, strerror(errno));
	if (fchmod(fd, st.st_mode & 0666) != 0)
		afs_job_warn(j, "the snapshot %s keeps mode 0600: %s", snap, strerror(errno));
	close(fd);
}

enum afs_err afs_snapshot_write(struct afs_job *j, const struct afs_db_backend *be, void *be_state,
				const struct afs_uplan *plan, char **path)
{
	const struct afs_target *t = afs_job_target(j);
	time_t now = time(NULL);
	struct afs_zipw *w = NULL;
	char *dir = snapshot_dir(t, afs_job_archive_path(j)), *rev = NULL, *man = NULL;
	struct afs_privdir tmp = AFS_PRIVDIR_INIT;
	char created[32], msg[256] = "";
	struct tm tm;
	enum afs_err err;

	*path = NULL;
	if (!dir)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	localtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%S", &tm);
	err = open_new(j, dir, now, &w, path);
	if (err == AFS_OK && be)
		err = add_database(j, w, be, be_state, dir, now, &tmp);
	if (err == AFS_OK && be)
		err = be->revision(j, be_state, &rev);
	if (err == AFS_OK && plan)
		err = add_uploads(j, w, plan);
	if (err == AFS_OK) {
		man = afs_report_snapshot_manifest(created, be ? be->kind : AFS_DB_UNKNOWN, rev,
						   afs_job_archive_path(j), plan);
		err = man ? afs_zipw_add_buffer(w, "manifest.json", man, strlen(man), 0100600, now) : AFS_E_NOMEM;
		if (err != AFS_OK)
			afs_job_fail(j, err, "writing the snapshot's manifest: %s", afs_strerror(err));
	}
	if (err == AFS_OK) {
		err = afs_zipw_close(w, msg, sizeof(msg));
		w = NULL;
		if (err != AFS_OK)
			afs_job_fail(j, err, "writing the snapshot %s: %s", *path, msg);
		else if (be && t->db_path)
			like_database(j, *path, t->db_path);
	}
	afs_zipw_discard(w);
	afs_privdir_remove(&tmp);
	if (err != AFS_OK) {
		free(*path);
		*path = NULL;
	}
	free(rev);
	free(man);
	free(dir);
	return err;
}
