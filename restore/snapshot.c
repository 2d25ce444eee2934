/* SPDX-License-Identifier: MIT */
/* Writing the pre-restore snapshot archive. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
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

/* afs_zipw_opener of the database copy: ctx is the descriptor the copy was
 * created with, read from its start. */
static enum afs_err open_copy(const void *ctx, size_t i, int *fd, char *msg, size_t msglen)
{
	(void)i;
	*fd = fcntl(*(const int *)ctx, F_DUPFD_CLOEXEC, 0);
	if (*fd < 0 || lseek(*fd, 0, SEEK_SET) != 0) {
		snprintf(msg, msglen, "the snapshot's database copy: %s", strerror(errno));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return AFS_E_IO;
	}
	return AFS_OK;
}

/* Adds the live database, dumped by the backend into "db" of a private
 * directory made in dir (*tmp; privdir.h): the backend opens the dump by
 * name, so it must be in a directory no other user can write to.  The file
 * is created there 0600 before the backend writes into it (*fd: that
 * descriptor, closed by the caller), and the archive reads the copy through
 * *fd, only when "db" in the directory still is that file.  The caller
 * removes *tmp once the archive is written, on every path
 * (afs_privdir_remove). */
static enum afs_err add_database(struct afs_job *j, struct afs_zipw *w, const struct afs_db_backend *be,
				 void *state, const char *dir, time_t now, struct afs_privdir *tmp, int *fd)
{
	char msg[512] = "", *path = NULL;
	struct stat mine, there;
	enum afs_err err = afs_privdir_make(tmp, dir, ".archfs-snapshot-", msg, sizeof(msg));

	if (err != AFS_OK)
		return afs_job_fail(j, err, "cannot write the snapshot in %s: %s", dir, msg);
	if ((err = afs_privdir_create(tmp, "db", fd)) != AFS_OK) {
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
	if (fstat(*fd, &mine) != 0 || fstatat(tmp->fd, "db", &there, AT_SYMLINK_NOFOLLOW) != 0 ||
	    mine.st_dev != there.st_dev || mine.st_ino != there.st_ino) {
		err = afs_job_fail(j, AFS_E_CONFLICT, "the snapshot's database copy %s was replaced: refused", path);
		goto out;
	}
	err = afs_zipw_add_opener(w, be->dump_name, (uint64_t)mine.st_size, 0100644, now, open_copy, fd, 0);
	if (err != AFS_OK)
		afs_job_fail(j, err, "adding the database to the snapshot: %s", afs_strerror(err));
out:
	free(path);
	return err;
}

/* afs_zipw_opener of a live upload: ctx is the plan, i its replaced file. */
static enum afs_err open_upload(const void *ctx, size_t i, int *fd, char *msg, size_t msglen)
{
	return afs_uploads_open_replaced(ctx, i, fd, msg, msglen);
}

/* Adds every live file the merge would replace, as uploads/<path>.  Each is
 * read when the archive is written, through afs_uploads_open_replaced():
 * never by path, and only if it is still the file verify planned with. */
static enum afs_err add_uploads(struct afs_job *j, struct afs_zipw *w, const struct afs_uplan *plan)
{
	for (size_t i = 0; i < afs_uploads_replaced_count(plan); i++) {
		uint32_t mode;
		int64_t mtime;
		uint64_t size;
		const char *rel = afs_uploads_replaced(plan, i, &mode, &mtime, &size);
		char *name = NULL;
		enum afs_err err = AFS_E_NOMEM;

		if (asprintf(&name, "uploads/%s", rel) >= 0)
			err = afs_zipw_add_opener(w, name, size, mode, mtime, open_upload, plan, i);
		else
			name = NULL;
		free(name);
		if (err != AFS_OK)
			return afs_job_fail(j, err, "adding uploads/%s to the snapshot: %s", rel, afs_strerror(err));
	}
	return AFS_OK;
}

/* The snapshot, written 0600, then takes the owner and the read bits of
 * the database file it holds a copy of (write for the owner only): no one
 * may read it who may not read the database, and only its owner may
 * change it (afs_snapshot_is_own() refuses a snapshot others may write). */
static void like_database(struct afs_job *j, const char *snap, const char *db)
{
	struct stat st;
	int fd;

	if (stat(db, &st) != 0 || (fd = open(snap, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
		afs_job_warn(j, "the snapshot %s keeps archfs's owner: %s", snap, strerror(errno));
	if (fchmod(fd, st.st_mode & 0644) != 0)
		afs_job_warn(j, "the snapshot %s keeps mode 0600: %s", snap, strerror(errno));
	close(fd);
}

#define SNAP_PREFIX "archfs_pre_restore_"
#define SNAP_SUFFIX ".zip"

/* True when a and b name the same existing file or directory. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Why the archive file at path cannot be a snapshot archfs wrote in the
 * target's snapshot directory, or NULL when it can.  a is the same file,
 * as the job opened it. */
static const char *file_not_own(const struct afs_target *t, const char *path, const struct afs_archive *a)
{
	char *copy = strdup(path), *dir = snapshot_dir(t, path);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path, *why = NULL;
	size_t blen = strlen(base);
	struct stat st, db;

	if (!copy || !dir)
		why = "out of memory";
	else if (strncmp(base, SNAP_PREFIX, strlen(SNAP_PREFIX)) != 0 || blen < strlen(SNAP_PREFIX SNAP_SUFFIX) ||
		 strcmp(base + blen - strlen(SNAP_SUFFIX), SNAP_SUFFIX) != 0)
		why = "its name is not " SNAP_PREFIX "*" SNAP_SUFFIX;
	else if (!same_file(dirname(copy), dir))
		why = "it is not in the target's snapshot directory";
	else if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		why = "it is not a regular file";
	else if ((uint64_t)st.st_size != afs_archive_file_size(a) || st.st_mtim.tv_sec != afs_archive_file_mtime(a))
		why = "the file changed since it was opened";
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		why = "others than its owner may write it";
	else if (st.st_uid != 0 && st.st_uid != geteuid() &&
		 !(t->db_path && stat(t->db_path, &db) == 0 && db.st_uid == st.st_uid))
		why = "its owner is neither root, archfs's user nor the database file's owner";
	free(copy);
	free(dir);
	return why;
}

bool afs_snapshot_is_own(const struct afs_target *t, const char *path, const struct afs_archive *a,
			 const struct afs_manifest *m, char *why, size_t whylen)
{
	const char *no = NULL;

	if (!t->uploads || !m->created_for)
		no = "its manifest names no uploads directory";
	else if (strcmp(m->created_for, t->uploads) != 0 && !same_file(m->created_for, t->uploads))
		no = "it was written for another uploads directory";
	else
		no = file_not_own(t, path, a);
	if (no)
		snprintf(why, whylen, "%s", no);
	return !no;
}

enum afs_err afs_snapshot_write(struct afs_job *j, const struct afs_db_backend *be, void *be_state,
				const struct afs_uplan *plan, char **path)
{
	const struct afs_target *t = afs_job_target(j);
	time_t now = time(NULL);
	struct afs_zipw *w = NULL;
	char *dir = snapshot_dir(t, afs_job_archive_path(j)), *rev = NULL, *man = NULL;
	struct afs_privdir tmp = AFS_PRIVDIR_INIT;
	char created[32], msg[512] = "";
	struct tm tm;
	enum afs_err err;
	int dbfd = -1;

	*path = NULL;
	if (!dir)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	localtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%S", &tm);
	err = open_new(j, dir, now, &w, path);
	if (err == AFS_OK && be)
		err = add_database(j, w, be, be_state, dir, now, &tmp, &dbfd);
	if (err == AFS_OK && be)
		err = be->revision(j, be_state, &rev);
	if (err == AFS_OK && plan)
		err = add_uploads(j, w, plan);
	if (err == AFS_OK) {
		man = afs_report_snapshot_manifest(created, be ? be->kind : AFS_DB_UNKNOWN, rev,
						   afs_job_archive_path(j), t->uploads, plan);
		err = man ? afs_zipw_add_buffer(w, "manifest.json", man, strlen(man), 0100600, now) : AFS_E_NOMEM;
		if (err != AFS_OK)
			afs_job_fail(j, err, "writing the snapshot's manifest: %s", afs_strerror(err));
	}
	if (err == AFS_OK) {
		err = afs_zipw_close(w, msg, sizeof(msg));
		w = NULL;
		if (err != AFS_OK)
			afs_job_fail(j, err, "the snapshot cannot be written in %s: %s", dir, msg);
		else if (be && t->db_path)
			like_database(j, *path, t->db_path);
	}
	afs_zipw_discard(w);
	if (dbfd >= 0)
		close(dbfd);
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
