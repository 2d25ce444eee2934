/* SPDX-License-Identifier: MIT */
/* The restore pipeline of docs/restore.md, on the job's own thread:
 * verify, flag, snapshot, database, uploads, migrate, and the rollback from
 * the snapshot when a step after the commit fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include "afile.h"
#include "archive.h"
#include "backend.h"
#include "index.h"
#include "job.h"
#include "job_priv.h"
#include "proc.h"
#include "report.h"
#include "snapshot.h"
#include "stream.h"
#include "target.h"
#include "uploads.h"

#define READ_CHUNK (1 << 20)
#define TAIL_LEN 512

/* ------------------------------------------------------------ verify */


/* Reads node id of the job's archive to its end (the stream checks the
 * CRC-32 there), counting progress. */
static enum afs_err read_entry(struct afs_job *j, uint32_t id, char *buf)
{
	struct afs_stream *s;
	uint64_t off = 0;
	size_t got;
	enum afs_err err = afs_stream_open(j->cur_archive, j->cur_index, id, &s);

	while (err == AFS_OK) {
		if (afs_job_cancelled(j)) {
			err = AFS_E_CANCELLED;
			break;
		}
		got = 0;
		err = afs_stream_pread(s, buf, READ_CHUNK, off, &got);
		if (err != AFS_OK || got == 0)
			break;
		off += got;
		afs_job_advance(j, got);
	}
	if (err != AFS_OK && err != AFS_E_CANCELLED)
		afs_job_fail_as(j, AFS_FAIL_ARCHIVE, err, "%s in the archive cannot be read: %s", afs_index_path(j->cur_index, id),
			     afs_stream_error(s, err));
	afs_stream_close(s);
	return err;
}

/* True for the entries of the backup format, which a restore reads. */
static bool part_of_backup(const char *path)
{
	return strcmp(path, "manifest.json") == 0 || strcmp(path, "settings.json") == 0 ||
	       strcmp(path, "db.sqlite") == 0 || strcmp(path, "db.dump") == 0 || strncmp(path, "uploads/", 8) == 0;
}

/* The file type the archive states for node n: its entry's Unix mode
 * (the index shows a device or fifo as a regular file), or the type the
 * index shows when the archive states none. */
static mode_t stated_type(const struct afs_job *j, const struct afs_node *n)
{
	struct afs_entry_info e;

	if (n->entry != AFS_NONE && afs_archive_entry(j->cur_archive, n->entry, &e) == AFS_OK && (e.mode & S_IFMT) &&
	    !S_ISDIR(n->mode))
		return e.mode & S_IFMT;
	return n->mode & S_IFMT;
}

/* Checks every entry's CRC-32 (the dump's is checked as the backend reads
 * it) and that nothing under uploads/ is other than a file or directory.
 * An entry that cannot be decoded (encrypted, an unknown method) refuses
 * the restore when it is part of the backup, else is passed over. */
static enum afs_err verify_entries(struct afs_job *j, bool backend_reads_dump)
{
	const struct afs_index *ix = j->cur_index;
	uint64_t total = 0, files = 0;
	uint32_t passed = 0;
	enum afs_err err = AFS_OK;
	char *buf, why[160];

	for (uint32_t id = 1; id < afs_index_count(ix); id++) {
		const struct afs_node *n = afs_index_node(ix, id);
		const char *path = afs_index_path(ix, id);
		mode_t type = strncmp(path, "uploads/", 8) == 0 ? stated_type(j, n) : S_IFREG;

		if (type != S_IFREG && type != S_IFDIR)
			return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_BADNAME, "%s in the archive is a %s: refusing to restore it", path,
					    type == S_IFLNK ? "symlink" : "special file (a device, fifo or socket)");
		if (!S_ISDIR(n->mode) && !afs_stream_decodable(n, why, sizeof(why))) {
			if (part_of_backup(path))
				return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_UNSUPPORTED, "%s in the archive is %s: refusing to restore it",
						    path, why);
			if (passed++ < 8)
				afs_job_log(j, "%s in the archive is %s: not part of a backup, passed over", path, why);
		} else if (!S_ISDIR(n->mode)) {
			total += n->size;
		}
	}
	if (passed > 8)
		afs_job_log(j, "%u more entries that cannot be decoded, not part of a backup, passed over", passed - 8);
	afs_job_phase_bytes(j, total);
	buf = malloc(READ_CHUNK);
	if (!buf)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	for (uint32_t id = 1; id < afs_index_count(ix) && err == AFS_OK; id++) {
		if (S_ISDIR(afs_index_node(ix, id)->mode) || (backend_reads_dump && id == j->dump) ||
		    !afs_stream_decodable(afs_index_node(ix, id), NULL, 0))
			continue;
		err = read_entry(j, id, buf);
		files++;
	}
	free(buf);
	if (err == AFS_OK)
		afs_job_log(j, "CRC-32 of %llu entries checked", (unsigned long long)files);
	return err;
}

/* Which database the archive holds: the manifest's db_type, else the dump
 * file present.  Sets j->dump. */
static enum afs_db_type archive_db_type(struct afs_job *j)
{
	uint32_t sq = AFS_NONE, pg = AFS_NONE;
	enum afs_db_type kind = j->has_manifest ? j->manifest.db_type : AFS_DB_UNKNOWN;

	afs_index_lookup(j->cur_index, "/db.sqlite", &sq);
	afs_index_lookup(j->cur_index, "/db.dump", &pg);
	if (kind == AFS_DB_UNKNOWN)
		kind = sq != AFS_NONE ? AFS_DB_SQLITE : pg != AFS_NONE ? AFS_DB_POSTGRESQL : AFS_DB_UNKNOWN;
	j->dump = kind == AFS_DB_SQLITE ? sq : kind == AFS_DB_POSTGRESQL ? pg : AFS_NONE;
	if (j->dump != AFS_NONE && !S_ISREG(afs_index_node(j->cur_index, j->dump)->mode))
		j->dump = AFS_NONE;
	return kind;
}

static enum afs_err check_uploads_space(struct afs_job *j)
{
	struct statvfs sv;
	uint64_t need = afs_uploads_bytes(j->plan) + (1 << 20), have;

	if (statvfs(j->target->uploads, &sv) != 0)
		return afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_IO, "uploads directory %s: %s", j->target->uploads, strerror(errno));
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (have < need)
		return afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_NOSPC,
				    "not enough disk space for the uploads in %s: %llu MB needed, %llu MB free",
				    j->target->uploads, (unsigned long long)(need >> 20), (unsigned long long)(have >> 20));
	return AFS_OK;
}

/* "315.2 MB (330501120 bytes)". */
static void size_text(uint64_t n, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f MB (%llu bytes)", (double)n / (1 << 20), (unsigned long long)n);
}

/* The backend for a database kind in table (NULL-terminated, as struct
 * afs_target's backends), or NULL when it has none. */
static const struct afs_db_backend *backend_for(const struct afs_db_backend *const *table, enum afs_db_type kind)
{
	for (; table && *table; table++)
		if ((*table)->kind == kind)
			return *table;
	return NULL;
}

/* Looks at the live database before anything else, so that the first lines
 * of a run name what a restore replaces (also in .status); refuses a
 * database that does not exist unless --create asks for a new one. */
static enum afs_err inspect_target(struct afs_job *j, bool after)
{
	const struct afs_target *t = j->target;
	const struct afs_db_backend *be = backend_for(t->backends, t->kind);
	const char *type = afs_db_type_name(t->kind);
	struct afs_db_info info = { 0 };
	char size[64], msg[512] = "";
	enum afs_err err;

	if (!be || !be->inspect)
		return AFS_OK;
	err = be->inspect(j, &info, msg, sizeof(msg));
	if (err != AFS_OK) {
		afs_db_info_release(&info);
		if (after) {
			afs_job_log(j, "the database cannot be looked at after the restore: %s", msg);
			return err;
		}
		return afs_job_fail_as(j, err == AFS_E_NOMEM ? AFS_FAIL_FAILED : AFS_FAIL_TARGET, err, "%s", msg);
	}
	pthread_mutex_lock(&j->mu);
	afs_db_info_release(&j->tinfo);
	j->tinfo = info; /* owned by the job now; only this thread changes it */
	j->tinfo_known = true;
	pthread_mutex_unlock(&j->mu);
	if (info.exists) {
		size_text(info.size, size, sizeof(size));
		afs_job_log(j, "target%s: %s database %s, %s, Alembic revision %s%s", after ? " now" : "", type, info.name,
			    size, info.revision ? info.revision : "none", after ? "" : " (what a restore replaces)");
		return AFS_OK;
	}
	if (after)
		return AFS_OK;
	if (!t->create)
		return afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_NOENT,
				    "the %s database %s does not exist: nothing was changed (check --database, or add "
				    "--create to restore into a new database)",
				    type, info.name);
	afs_job_log(j, "target: %s database %s does not exist: --create, a restore creates it", type, info.name);
	return AFS_OK;
}

/* Step 1: everything is checked, nothing is changed.  Without a target
 * (j->any_target), every check that needs none runs as for a target of the
 * archive's own kind: verify refuses what a restore into any target would
 * refuse for the archive itself, with the same reason. */
static enum afs_err verify(struct afs_job *j)
{
	const struct afs_target *t = j->target;
	enum afs_db_type kind;
	uint32_t up;
	char msg[512] = "";
	enum afs_err err;

	afs_job_log(j, "verifying %s", j->archive_path);
	if (afs_archive_prefix(j->cur_archive))
		afs_job_log(j, "the archive starts after %llu bytes of other data (a self-extracting stub)",
			    (unsigned long long)afs_archive_prefix(j->cur_archive));
	if (j->do_db && t->kind != AFS_DB_UNKNOWN) {
		err = inspect_target(j, false);
		if (err != AFS_OK)
			return err;
	}
	if (j->manifest_error)
		return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT, "%s", j->manifest_error);
	if (!j->has_manifest)
		afs_job_warn(j, "the archive has no manifest.json: the database file present decides its type");
	kind = archive_db_type(j);
	if (j->do_db) {
		if (kind == AFS_DB_UNKNOWN || j->dump == AFS_NONE)
			return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT, "the archive holds no database (%s)",
					    kind == AFS_DB_SQLITE ? "db.sqlite is missing"
					    : kind == AFS_DB_POSTGRESQL ? "db.dump is missing"
					    : "neither db.sqlite nor db.dump");
		if (kind != t->kind && !j->any_target)
			return afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_INVAL,
					       "the archive holds a %s database but the target is %s",
					    afs_db_type_name(kind), afs_db_type_name(t->kind));
		j->backend = backend_for(t->backends, kind);
		if (!j->backend)
			return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_UNSUPPORTED, "archfs cannot restore %s databases yet",
					    afs_db_type_name(kind));
		if (j->has_manifest && j->manifest.alembic_revision)
			afs_job_log(j, "the archive's database is at Alembic revision %s", j->manifest.alembic_revision);
	}
	if (j->do_uploads) {
		bool undoes = j->has_manifest && j->manifest.ncreated > 0; /* a snapshot removes paths */

		if (!undoes && (afs_index_lookup(j->cur_index, "/uploads", &up) != AFS_OK ||
				!S_ISDIR(afs_index_node(j->cur_index, up)->mode))) {
			if (j->command == AFS_CMD_RESTORE_UPLOADS)
				return afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_NOENT, "the archive has no uploads/ directory");
			afs_job_log(j, "the archive has no uploads/: the uploads directory is left as it is");
			j->do_uploads = false;
		}
	}
	err = verify_entries(j, j->do_db);
	if (err != AFS_OK)
		return err;
	if (j->do_uploads) {
		err = afs_uploads_plan(j->cur_archive, j->cur_index, t->uploads, &j->plan, msg, sizeof(msg));
		/* the archive's own entries were checked above: what fails here
		 * is the live uploads tree (missing, a symlink, a conflict) */
		if (err != AFS_OK)
			return afs_job_fail_as(j, err == AFS_E_NOMEM ? AFS_FAIL_FAILED : AFS_FAIL_TARGET, err,
					       "uploads: %s", msg);
		err = check_uploads_space(j);
		if (err != AFS_OK)
			return err;
		afs_job_log(j, "uploads: %zu files replace live ones, %zu new paths, %llu bytes to write",
			    afs_uploads_replaced_count(j->plan), afs_uploads_created_count(j->plan),
			    (unsigned long long)afs_uploads_bytes(j->plan));
		afs_job_note_uploads(j, j->plan, false);
	}
	if (j->do_db) {
		err = j->backend->verify(j, j->dump, &j->backend_state);
		if (err != AFS_OK)
			return err;
	}
	afs_job_log(j, "verified: the archive is sound and the target can take it");
	return AFS_OK;
}

/* -------------------------------------------------------------- flag */

/* Writes the flag file atomically (a temporary name, then rename). */
static enum afs_err raise_flag(struct afs_job *j)
{
	const char *path = j->target->flag_file;
	struct afs_afile f;
	enum afs_err err;
	char *text;

	pthread_mutex_lock(&j->mu);
	j->in_progress = true;
	text = afs_report_flag((long)getpid(), j->archive_path, j->started_at);
	pthread_mutex_unlock(&j->mu);
	if (!path) {
		free(text);
		return AFS_OK;
	}
	if (!text)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	/* written whole and synced before it appears: readers never see half */
	err = afs_afile_hold_path(&f, path);
	if (err == AFS_OK)
		err = afs_write_all(f.fd, text, strlen(text));
	if (err == AFS_OK && fchmod(f.fd, 0644) != 0) /* every process may read the flag */
		err = AFS_E_IO;
	if (err == AFS_OK)
		err = afs_afile_commit(&f);
	else
		afs_afile_rollback(&f);
	if (err != AFS_OK)
		afs_job_fail(j, err, "cannot write the flag file %s: %s", path, strerror(errno));
	free(text);
	if (err == AFS_OK)
		afs_job_log(j, "flag file %s written", path);
	return err;
}

static void lower_flag(struct afs_job *j)
{
	const char *path = j->target->flag_file;

	if (path && unlink(path) != 0 && errno != ENOENT)
		afs_job_warn(j, "cannot remove the flag file %s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------ steps */

/* Called after each chunk of an upload is written, before the file is
 * published.  Test hook: the gate "upload-write" holds the merge once, at
 * the chunk that brings the step's bytes to half of its total, with that
 * file written but unnamed and the files before it published: a kill -9
 * there lands in the middle of the step. */
static void merge_progress(void *ctx, uint64_t bytes)
{
	struct afs_job *j = ctx;
	bool half = false;

	if (afs_job_test_gate_listed(j, "upload-write")) {
		pthread_mutex_lock(&j->mu);
		half = j->phase_done < j->phase_total / 2 && j->phase_done + bytes >= j->phase_total / 2;
		pthread_mutex_unlock(&j->mu);
	}
	afs_job_advance(j, bytes);
	if (half)
		afs_job_test_gate(j, "upload-write");
	afs_job_test_pause(j, AFS_ST_UPLOADS);
}

/* Merges the uploads of the current archive, then removes the paths its
 * manifest lists as created by the restore it undoes: only when the
 * archive is a snapshot archfs wrote for this target (afs_snapshot_is_own:
 * any archive can carry that list), and never outside the uploads root
 * (afs_uploads_remove). */
static enum afs_err merge_uploads(struct afs_job *j, const struct afs_uplan *plan,
				  const struct afs_manifest *man)
{
	char msg[512] = "", why[256] = "";
	size_t left = 0;
	enum afs_err err;

	afs_job_phase_bytes(j, afs_uploads_bytes(plan));
	err = afs_uploads_merge(plan, j->cur_archive, j->cur_index, merge_progress, j, msg, sizeof(msg));
	if (err != AFS_OK)
		return afs_job_fail(j, err, "uploads: %s", msg);
	if (man && man->ncreated &&
	    !afs_snapshot_is_own(j->target, j->archive_path, j->archive, man, why, sizeof(why))) {
		afs_job_warn(j, "ignoring archfs.created: %s is not a snapshot archfs wrote for this target (%s)",
			     j->archive_path, why);
	} else if (man && man->ncreated) {
		afs_uploads_remove(j->target->uploads, (const char *const *)man->created, man->ncreated, &left);
		afs_job_log(j, "uploads: removed %zu paths the undone restore had created%s", man->ncreated - left,
			    left ? " (some could not be removed)" : "");
		if (left)
			afs_job_warn(j, "uploads: %zu paths the undone restore created could not be removed", left);
	}
	afs_job_log(j, "uploads merged: %llu bytes written", (unsigned long long)afs_uploads_bytes(plan));
	afs_job_note_uploads(j, plan, true);
	return AFS_OK;
}

static void migrate_line(void *ctx, const char *line)
{
	afs_job_log(ctx, "migrate: %s", line);
}

/* Before the commit a cancel stops the command; after it nothing may. */
static bool migrate_cancelled(void *ctx)
{
	struct afs_job *j = ctx;
	bool stop;

	pthread_mutex_lock(&j->mu);
	stop = j->cancel && !j->committed;
	pthread_mutex_unlock(&j->mu);
	return stop;
}

enum afs_err afs_job_migrate(struct afs_job *j, const char *database_url)
{
	const char *argv[] = { "/bin/sh", "-c", j->target->migrate, NULL };
	const char *rev = j->has_manifest && j->manifest.alembic_revision ? j->manifest.alembic_revision : "";
	char *env_url = NULL, *env_rev = NULL, tail[TAIL_LEN] = "";
	const char *env[] = { NULL, NULL, NULL };
	struct afs_proc_opts o = { .argv = argv, .setenv = env, .line = migrate_line, .cancelled = migrate_cancelled,
				   .ctx = j };
	enum afs_err err;
	int status = 0;

	if (asprintf(&env_url, "DATABASE_URL=%s", database_url) < 0 ||
	    asprintf(&env_rev, "ARCHFS_ARCHIVE_REVISION=%s", rev) < 0) {
		free(env_url);
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	}
	env[0] = env_url;
	env[1] = env_rev;
	afs_job_log(j, "migrate: running the migrate command");
	err = afs_proc_run(&o, &status, tail, sizeof(tail));
	free(env_url);
	free(env_rev);
	if (err == AFS_E_CANCELLED)
		return afs_job_fail(j, err, "cancelled during the migration: nothing was changed");
	if (err == AFS_E_IO)
		return afs_job_fail(j, AFS_E_FAILED, "the migrate command could not be started");
	if (err != AFS_OK) {
		if (WIFEXITED(status))
			return afs_job_fail(j, AFS_E_FAILED, "the migrate command exited with status %d: %s",
					    WEXITSTATUS(status), tail[0] ? tail : "(no output)");
		return afs_job_fail(j, AFS_E_FAILED, "the migrate command was killed by signal %d: %s",
				    WIFSIGNALED(status) ? WTERMSIG(status) : 0, tail[0] ? tail : "(no output)");
	}
	afs_job_log(j, "migrate: done");
	return AFS_OK;
}

/* Removes the paths plan created (what undoing its merge takes away). */
static void remove_created(struct afs_job *j, const struct afs_uplan *plan, size_t *left)
{
	size_t n = afs_uploads_created_count(plan);
	const char **paths = calloc(n ? n : 1, sizeof(*paths));

	*left = n;
	if (!paths)
		return;
	for (size_t i = 0; i < n; i++)
		paths[i] = afs_uploads_created(plan, i);
	afs_uploads_remove(j->target->uploads, paths, n, left);
	free(paths);
}

/* Undoes a restore that failed after its commit: restores the snapshot's
 * database and uploads, and removes the upload paths this restore created. */
static void rollback(struct afs_job *j, bool db_changed, bool uploads_changed)
{
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_uplan *plan = NULL;
	void *state = NULL;
	char msg[512] = "";
	uint32_t dump = AFS_NONE;
	size_t left = 0;
	enum afs_err err;

	if (!j->snapshot) {
		afs_job_warn(j, "rollback impossible without a snapshot (--no-snapshot): the target keeps what was "
				"restored so far");
		return;
	}
	afs_job_log(j, "rolling back from the snapshot %s", j->snapshot);
	err = afs_archive_open(j->snapshot, &a, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_index_build(a, &ix, msg, sizeof(msg));
	if (err != AFS_OK) {
		afs_job_warn(j, "rollback failed: the snapshot %s cannot be opened: %s", j->snapshot, msg);
		goto out;
	}
	j->cur_archive = a;
	j->cur_index = ix;
	if (db_changed && j->backend) {
		char name[64];

		snprintf(name, sizeof(name), "/%s", j->backend->dump_name);
		if (afs_index_lookup(ix, name, &dump) != AFS_OK) {
			afs_job_warn(j, "rollback: the snapshot holds no database; the database keeps the restored one");
		} else if ((err = j->backend->verify(j, dump, &state)) != AFS_OK ||
			   (err = j->backend->restore(j, state)) != AFS_OK) {
			afs_job_warn(j, "rollback of the database failed: %s", afs_strerror(err));
		} else {
			afs_job_log(j, "rollback: the database is back to its content before the restore");
		}
	}
	if (uploads_changed && j->plan) {
		uint32_t up;

		if (afs_index_lookup(ix, "/uploads", &up) == AFS_OK) {
			err = afs_uploads_plan(a, ix, j->target->uploads, &plan, msg, sizeof(msg));
			if (err == AFS_OK)
				err = afs_uploads_merge(plan, a, ix, NULL, NULL, msg, sizeof(msg));
			if (err != AFS_OK)
				afs_job_warn(j, "rollback of the uploads failed: %s", msg);
		}
		remove_created(j, j->plan, &left);
		if (left)
			afs_job_warn(j, "rollback: %zu new upload paths could not be removed", left);
		afs_job_log(j, "rollback: the uploads are back to their content before the restore");
	}
out:
	if (j->backend && state)
		j->backend->release(state);
	afs_uploads_plan_free(plan);
	j->cur_archive = j->archive;
	j->cur_index = j->index;
	afs_index_free(ix);
	afs_archive_free(a);
}

/* The pipeline of docs/restore.md. */
static enum afs_err pipeline(struct afs_job *j)
{
	bool db_changed = false, uploads_changed = false, migrated;
	char *snap = NULL;
	enum afs_err err;

	afs_job_set_state(j, AFS_ST_VERIFYING, W_VERIFY);
	err = verify(j);
	if (err != AFS_OK || j->command == AFS_CMD_VERIFY)
		return err;

	err = raise_flag(j);
	if (err == AFS_OK && j->do_db && afs_job_target_missing(j)) {
		err = j->backend->create(j, j->backend_state);
		if (err == AFS_OK) {
			pthread_mutex_lock(&j->mu);
			j->created = true;
			pthread_mutex_unlock(&j->mu);
		}
	}
	if (err == AFS_OK && j->do_db && j->backend->flag_on)
		err = j->backend->flag_on(j, j->backend_state);
	if (err != AFS_OK)
		return err;
	if (!j->target->no_snapshot) {
		afs_job_set_state(j, AFS_ST_SNAPSHOT, W_SNAPSHOT);
		afs_job_test_gate(j, "snapshot"); /* tests change the live uploads here */
		err = afs_snapshot_write(j, j->do_db ? j->backend : NULL, j->backend_state,
					 j->do_uploads ? j->plan : NULL, &snap);
		if (err != AFS_OK)
			return err;
		pthread_mutex_lock(&j->mu);
		j->snapshot = snap;
		pthread_mutex_unlock(&j->mu);
		afs_job_log(j, "snapshot written: %s", snap);
	}
	if (afs_job_cancelled(j))
		return AFS_E_CANCELLED;

	/* A backend that can migrates a staged copy now, before the swap: the
	 * application sees the old database, then the migrated one. */
	migrated = false;
	if (j->do_migrate && j->backend->migrate) {
		afs_job_set_state(j, AFS_ST_MIGRATE, W_MIGRATE);
		/* tinfo is this thread's to change: read without the lock */
		afs_job_log(j, "archive at Alembic revision %s, live at %s: migrating a staged copy before the swap",
			    j->has_manifest && j->manifest.alembic_revision ? j->manifest.alembic_revision : "unknown",
			    j->tinfo.revision ? j->tinfo.revision : j->tinfo.exists ? "none" : "(no database yet)");
		err = j->backend->migrate(j, j->backend_state);
		if (err != AFS_OK)
			return err;
		migrated = true;
		if (afs_job_cancelled(j))
			return AFS_E_CANCELLED;
	}
	if (j->do_db) {
		afs_job_set_state(j, AFS_ST_DATABASE, W_DATABASE);
		err = j->backend->restore(j, j->backend_state);
		pthread_mutex_lock(&j->mu);
		db_changed = j->committed;
		pthread_mutex_unlock(&j->mu);
		if (err != AFS_OK)
			goto fail;
		afs_job_log(j, "database restored");
	}
	if (j->do_uploads) {
		afs_job_set_state(j, AFS_ST_UPLOADS, W_UPLOADS);
		if (!j->do_db)
			afs_job_committed(j);
		afs_job_test_gate(j, "uploads");
		uploads_changed = true;
		err = merge_uploads(j, j->plan, j->has_manifest ? &j->manifest : NULL);
		if (err != AFS_OK)
			goto fail;
	}
	if (j->do_migrate && !migrated) { /* after the swap: the live database */
		afs_job_set_state(j, AFS_ST_MIGRATE, W_MIGRATE);
		err = afs_job_migrate(j, j->target->url);
		if (err != AFS_OK)
			goto fail;
	}
	return AFS_OK;
fail:
	if (db_changed || uploads_changed)
		rollback(j, db_changed, uploads_changed);
	return err;
}

void afs_job_commit_unknown(struct afs_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->commit_unknown = true;
	pthread_mutex_unlock(&j->mu);
	afs_job_warn(j, "the database step was interrupted while committing: whether it went through is unknown");
}

/* Ends a run: the flag goes, the target is unlocked, the state is final.
 * Only a run that certainly changed nothing (nothing committed, and no
 * commit of unknown outcome) discards what it created and deletes its
 * snapshot, and is reported as "nothing was changed". */
static void finish(struct afs_job *j, enum afs_err err)
{
	enum afs_state st = err == AFS_OK ? AFS_ST_DONE : err == AFS_E_CANCELLED ? AFS_ST_CANCELLED : AFS_ST_FAILED;
	bool nothing_changed, created, unknown;
	char stamp[32];

	if (j->backend && j->backend_state && j->backend->flag_off)
		j->backend->flag_off(j, j->backend_state, afs_state_name(st));
	pthread_mutex_lock(&j->mu);
	unknown = j->commit_unknown && !j->committed;
	nothing_changed = !j->committed && !unknown;
	created = j->created;
	pthread_mutex_unlock(&j->mu);
	if (created && nothing_changed) {
		j->backend->discard(j, j->backend_state);
		pthread_mutex_lock(&j->mu);
		j->created = false;
		pthread_mutex_unlock(&j->mu);
	}
	if (j->backend && j->backend_state)
		j->backend->release(j->backend_state);
	j->backend_state = NULL;
	if (!nothing_changed && j->do_db)
		inspect_target(j, true); /* .status shows the database as it is now */
	afs_uploads_plan_free(j->plan);
	j->plan = NULL;
	pthread_mutex_lock(&j->mu);
	if (err == AFS_E_CANCELLED && !j->error)
		j->error = strdup(nothing_changed ? "cancelled: nothing was changed" : "cancelled");
	else if (err != AFS_OK && !j->error)
		j->error = strdup(afs_strerror(err));
	/* the class follows the outcome: a cancel is one whatever failed on the way */
	j->fail = err == AFS_OK ? AFS_FAIL_NONE : err == AFS_E_CANCELLED ? AFS_FAIL_CANCELLED
		: j->fail == AFS_FAIL_NONE || j->fail == AFS_FAIL_CANCELLED ? AFS_FAIL_FAILED : j->fail;
	pthread_mutex_unlock(&j->mu);
	if (unknown)
		afs_job_warn(j, "%s: check the database; %s%s", j->snapshot ? "the snapshot is kept" : "there is no snapshot",
			     j->snapshot ? "restoring it undoes the restore if it went through: " : "",
			     j->snapshot ? j->snapshot : "(--no-snapshot)");
	/* A snapshot of a target that was never changed undoes nothing. */
	if (err != AFS_OK && nothing_changed && j->snapshot) {
		unlink(j->snapshot);
		pthread_mutex_lock(&j->mu);
		free(j->snapshot);
		j->snapshot = NULL;
		pthread_mutex_unlock(&j->mu);
	}
	if (j->command != AFS_CMD_VERIFY)
		lower_flag(j);
	afs_job_unlock_target(j);
	afs_job_iso_now(stamp, sizeof(stamp));
	pthread_mutex_lock(&j->mu);
	j->finished_at = strdup(stamp);
	j->in_progress = false;
	j->state = st;
	if (st == AFS_ST_DONE)
		j->percent = 100;
	j->running = false;
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "%s %s", afs_cmd_name(j->command),
		    st == AFS_ST_DONE ? "done" : st == AFS_ST_CANCELLED ? "cancelled" : "failed");
}

void *afs_job_run(void *arg)
{
	struct afs_job *j = arg;

	pthread_mutex_lock(&j->mu);
	j->commit_unknown = false; /* the run's own; committed is reset with the command */
	pthread_mutex_unlock(&j->mu);
	finish(j, pipeline(j));
	return NULL;
}

