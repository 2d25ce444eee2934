/* SPDX-License-Identifier: MIT */
/* The SQLite backend (the only sqlite3.h user).
 *
 * verify stages db.sqlite from the archive into a private directory beside
 * the live database (privdir.h: 0700, made by mkdtemp; every staged file,
 * its page-size rewrite and their journals live there and nowhere else),
 * in one sequential read that also checks its CRC-32, runs PRAGMA
 * integrity_check on it and brings it to the live page size (the backup API
 * cannot write into a WAL database of another page size).
 * restore copies the staged file into the live database with the online
 * backup API: one write transaction on the live file, so every other
 * connection sees the old database or the new one, never a mix, and a crash
 * before the commit leaves the old one (SQLite's journal or WAL recovers).
 * The step that returns SQLITE_DONE has committed: the job is told at once.
 * When the step that would commit fails instead, what happened is read from
 * the live file (PRAGMA data_version of another connection, then its
 * content against the staged copy) before anything is reported.
 *
 * This process never opens the live database's file other than through
 * SQLite: closing a descriptor of it would drop the POSIX locks SQLite holds
 * on it (job.c locks the target's directory instead).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "afile.h"
#include "db.h"
#include "index.h"
#include "job.h"
#include "privdir.h"
#include "stream.h"
#include "target.h"

#define COPY_CHUNK (1 << 20)
#define STEP_PAGES 1024      /* pages per backup step: a few MB between cancel checks */
#define TEST_STEP_PAGES 16
#define BUSY_SLEEP_MS 50

#define STAGED "stage.db"     /* names in the private directory */
#define REWRITTEN "pagesize.db"

struct sq_state {
	char *staged; /* the verified copy of the archive's database, or NULL */
	char *beside; /* staged files go beside this path: the live database, or
		       * a name in $TMPDIR when verifying without a target */
	struct afs_privdir dir; /* where they go */
	bool created; /* create() made the live file: discard() may remove it */
	dev_t dev;    /* and which file that was */
	ino_t ino;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The first row of PRAGMA integrity_check: "ok" for a sound database.
 * Returns a malloc'd string, or NULL with the SQLite error in msg. */
static char *integrity(sqlite3 *db, char *msg, size_t msglen)
{
	sqlite3_stmt *st = NULL;
	char *res = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(5)", -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		res = strdup(t ? (const char *)t : "");
		/* fold a multi-line report into one line */
		for (char *p = res; p && *p; p++)
			if (*p == '\n')
				*p = ' ';
	} else {
		snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	return res;
}

/* The integer a one-value PRAGMA returns, or 0. */
static int64_t pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int page_size(sqlite3 *db)
{
	return (int)pragma_int(db, "PRAGMA page_size");
}

/* ".NAME.archfs-": the private directories of the live database NAME. */
static char *stage_prefix(const char *live)
{
	char *b = strdup(live), *out = NULL;

	if (b && asprintf(&out, ".%s.archfs-", basename(b)) < 0)
		out = NULL;
	free(b);
	return out;
}

/* Makes the private directory of the staged files beside s->beside. */
static enum afs_err make_dir(struct afs_job *j, struct sq_state *s)
{
	char *d = strdup(s->beside), *prefix = stage_prefix(s->beside), msg[512] = "";
	enum afs_err err = d && prefix ? afs_privdir_make(&s->dir, dirname(d), prefix, msg, sizeof(msg)) : AFS_E_NOMEM;

	if (err != AFS_OK)
		afs_job_fail(j, err, "staging beside %s: %s", s->beside, err == AFS_E_NOMEM && !msg[0] ? "out of memory" : msg);
	free(d);
	free(prefix);
	return err;
}

/* Copies node dump of the job's archive into the new staged file STAGED
 * of s's private directory. */
static enum afs_err stage(struct afs_job *j, struct sq_state *s, uint32_t dump)
{
	const char *beside = s->beside;
	struct afs_stream *st = NULL;
	char *path = afs_privdir_file(&s->dir, STAGED), *buf = malloc(COPY_CHUNK);
	uint64_t off = 0;
	enum afs_err err;
	int fd = -1;

	if (!path || !buf) {
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	err = afs_privdir_create(&s->dir, STAGED, &fd);
	if (err != AFS_OK) {
		afs_job_fail(j, err, "cannot create a staging file in %s: %s", s->dir.path, strerror(errno));
		goto out;
	}
	err = afs_stream_open(afs_job_archive(j), afs_job_index(j), dump, &st);
	while (err == AFS_OK) {
		size_t got = 0;

		if (afs_job_cancelled(j)) {
			err = AFS_E_CANCELLED;
			break;
		}
		err = afs_stream_pread(st, buf, COPY_CHUNK, off, &got);
		if (err != AFS_OK || got == 0)
			break;
		if ((err = afs_write_all(fd, buf, got)) != AFS_OK) {
			afs_job_fail(j, err, "writing the staged database beside %s: %s", beside, strerror(errno));
			goto out;
		}
		off += got;
		afs_job_advance(j, got);
	}
	if (err != AFS_OK && err != AFS_E_CANCELLED)
		afs_job_fail_as(j, AFS_FAIL_ARCHIVE, err, "db.sqlite in the archive cannot be read: %s", afs_stream_error(st, err));
out:
	afs_stream_close(st);
	free(buf);
	if (fd >= 0)
		close(fd);
	if (err == AFS_OK)
		s->staged = path; /* removed with the directory, as on error */
	else
		free(path);
	return err;
}

/* Turns a WAL-format header (bytes 18 and 19 = 2) into a rollback-journal
 * one, so the private staged copy opens without a -wal or -shm file. */
static enum afs_err check_header(struct afs_job *j, const struct sq_state *s)
{
	unsigned char h[100];
	enum afs_err err = AFS_OK;
	int fd = openat(s->dir.fd, STAGED, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return afs_job_fail(j, AFS_E_IO, "staged database: %s", strerror(errno));
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0) {
		err = afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT, "db.sqlite in the archive is not a SQLite database");
	} else if (h[18] == 2 || h[19] == 2) {
		static const unsigned char legacy[2] = { 1, 1 };

		if (pwrite(fd, legacy, 2, 18) != 2)
			err = afs_job_fail(j, AFS_E_IO, "staged database: %s", strerror(errno));
	}
	close(fd);
	return err;
}

/* Disk space beside the live database for the staged copy (twice, if its
 * page size must change) and the live database's growth. */
static enum afs_err check_space(struct afs_job *j, const char *beside, uint64_t dump_size)
{
	char *d = strdup(beside);
	struct statvfs sv;
	uint64_t need = 2 * dump_size + (1 << 20), have;
	enum afs_err err = AFS_OK;

	if (!d)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	if (statvfs(dirname(d), &sv) != 0) {
		err = afs_job_fail(j, AFS_E_IO, "the directory of %s: %s", beside, strerror(errno));
	} else {
		have = (uint64_t)sv.f_bavail * sv.f_frsize;
		if (have < need)
			err = afs_job_fail(j, AFS_E_NOSPC,
					   "not enough disk space beside %s: the restore needs %llu MB, %llu MB are free",
					   beside, (unsigned long long)(need >> 20), (unsigned long long)(have >> 20));
	}
	free(d);
	return err;
}

/* Rewrites the staged database with the live database's page size, into
 * REWRITTEN of the private directory: created there empty and 0600 first
 * (VACUUM INTO takes an empty file), so SQLite opens nothing another user
 * could have named. */
static enum afs_err match_page_size(struct afs_job *j, struct sq_state *s, sqlite3 *src, int want)
{
	char *copy = afs_privdir_file(&s->dir, REWRITTEN), *sql = NULL;
	enum afs_err err = AFS_OK;

	if (!copy)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	err = afs_privdir_create(&s->dir, REWRITTEN, NULL);
	if (err != AFS_OK) {
		afs_job_fail(j, err, "cannot create a staging file in %s: %s", s->dir.path, strerror(errno));
		goto out;
	}
	sql = sqlite3_mprintf("PRAGMA page_size=%d; VACUUM INTO %Q", want, copy);
	if (!sql || sqlite3_exec(src, sql, NULL, NULL, NULL) != SQLITE_OK) {
		err = afs_job_fail(j, AFS_E_IO, "changing the page size of the staged database: %s", sqlite3_errmsg(src));
		goto out;
	}
	afs_job_log(j, "staged database rewritten with the live page size %d", want);
	unlinkat(s->dir.fd, STAGED, 0);
	free(s->staged);
	s->staged = copy;
	copy = NULL;
out:
	sqlite3_free(sql);
	free(copy);
	return err;
}

/* Removes what an interrupted run left beside the live database,
 * ".NAME.archfs-*": private directories of this user with their staged
 * copies and journals (and the staged files older versions left there):
 * the job holds the target's lock, so no other restore of it is using them.
 * Nothing is followed.  Says so in the log. */
static void sweep_leftovers(struct afs_job *j, const char *live)
{
	char *d = strdup(live), *prefix = stage_prefix(live);
	const char *dir = d ? dirname(d) : NULL;
	DIR *dp = NULL;
	struct dirent *e;
	size_t n = 0;

	if (!d || !prefix || !(dp = opendir(dir)))
		goto out;
	while ((e = readdir(dp)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
		    (afs_privdir_remove_at(dirfd(dp), e->d_name) || unlinkat(dirfd(dp), e->d_name, 0) == 0)) {
			afs_job_log(j, "removed %s/%s, left by an interrupted restore", dir, e->d_name);
			n++;
		}
	if (n)
		afs_job_warn(j, "%zu staged file%s of an interrupted restore removed beside %s", n, n == 1 ? "" : "s",
			     live);
out:
	if (dp)
		closedir(dp);
	free(prefix);
	free(d);
}

static enum afs_err sq_verify(struct afs_job *j, uint32_t dump, void **state)
{
	const struct afs_target *t = afs_job_target(j);
	struct sq_state *s = calloc(1, sizeof(*s));
	sqlite3 *src = NULL, *live = NULL;
	char msg[256] = "", *ok = NULL;
	enum afs_err err;
	struct stat st;
	int want;

	*state = s;
	if (!s)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	s->dir = (struct afs_privdir)AFS_PRIVDIR_INIT;
	if (t->db_path) {
		if (afs_job_target_locked(j))
			sweep_leftovers(j, t->db_path);
		s->beside = strdup(t->db_path);
	} else if (asprintf(&s->beside, "%s/db.sqlite", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") < 0)
		s->beside = NULL;
	if (!s->beside)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	err = check_space(j, s->beside, afs_index_node(afs_job_index(j), dump)->size);
	if (err == AFS_OK)
		err = make_dir(j, s);
	if (err == AFS_OK)
		err = stage(j, s, dump);
	if (err == AFS_OK)
		err = check_header(j, s);
	if (err != AFS_OK)
		goto out;
	afs_job_test_gate(j, "sqlite-staged");
	if (sqlite3_open_v2(s->staged, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		err = afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT,
				      "db.sqlite in the archive cannot be opened: %s", sqlite3_errmsg(src));
		goto out;
	}
	ok = integrity(src, msg, sizeof(msg));
	if (!ok || strcmp(ok, "ok") != 0) {
		err = afs_job_fail_as(j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT,
				      "db.sqlite in the archive fails PRAGMA integrity_check: %s",
				   ok ? ok : msg);
		goto out;
	}
	afs_job_log(j, "db.sqlite passes PRAGMA integrity_check");
	if (t->db_path && stat(t->db_path, &st) == 0) {
		if (sqlite3_open_v2(t->db_path, &live, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
			err = afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_IO, "cannot open the live database %s: %s", t->db_path,
					   sqlite3_errmsg(live));
			goto out;
		}
		want = page_size(live);
		if (want == 0) {
			err = afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_IO, "the live database %s is not readable: %s", t->db_path,
					   sqlite3_errmsg(live));
			goto out;
		}
		if (want != page_size(src) && (err = match_page_size(j, s, src, want)) == AFS_OK)
			afs_job_test_gate(j, "sqlite-rewritten");
	}
out:
	free(ok);
	sqlite3_close(src);
	sqlite3_close(live);
	return err;
}

/* What the restore's copy watches to find out, when the step that would
 * commit fails, whether the commit went through. */
struct commit_watch {
	sqlite3 *obs;         /* another connection to the live database, or NULL */
	int64_t version;      /* its PRAGMA data_version before the copy */
	bool maybe_committed; /* the step that would commit failed: its outcome is to be found */
	int rc;               /* and its SQLite error */
};

/* Copies every page of from into to with the backup API, in steps: one
 * transaction on the destination, committed by the last step.  With w (the
 * restore's copy), progress and cancellation apply, the job is told the
 * moment the last step has committed, and when the step that would commit
 * fails, w->maybe_committed is set and AFS_E_IO returned without a job
 * error: the caller finds out what happened (commit_outcome()). */
static enum afs_err copy_db(struct afs_job *j, sqlite3 *to, sqlite3 *from, struct commit_watch *w)
{
	unsigned delay = afs_job_test_delay_ms(j, AFS_ST_DATABASE);
	int pages = delay || afs_job_test_gate_listed(j, "db-step") ? TEST_STEP_PAGES : STEP_PAGES;
	int psize = page_size(from), total = (int)pragma_int(from, "PRAGMA page_count"), rc;
	const struct afs_target *t = afs_job_target(j);
	time_t busy_since = 0;
	uint64_t reported = 0;
	bool started = false, last;
	sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");

	if (!b)
		return afs_job_fail(j, AFS_E_IO, "cannot start copying into the database: %s", sqlite3_errmsg(to));
	if (w && w->obs)
		w->version = pragma_int(w->obs, "PRAGMA data_version");
	for (;;) {
		/* this step copies what is left and commits */
		last = (started ? sqlite3_backup_remaining(b) : total) <= pages;
		if (w && last && afs_job_test_fault(j, "sqlite-commit-refused"))
			rc = SQLITE_IOERR; /* the step that would commit fails before it writes */
		else
			rc = sqlite3_backup_step(b, pages);
		if (w && last && rc == SQLITE_DONE && afs_job_test_fault(j, "sqlite-commit-error"))
			rc = SQLITE_IOERR; /* committed, but reported as failed */
		if (rc == SQLITE_DONE) {
			if (w) {
				afs_job_committed(j); /* before anything else: a cancel from now on is refused */
				afs_job_test_gate(j, "sqlite-commit");
			}
			break;
		}
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
			if (!busy_since)
				busy_since = time(NULL);
			if (time(NULL) - busy_since > (time_t)t->lock_wait) {
				sqlite3_backup_finish(b);
				return afs_job_fail(j, AFS_E_BUSY,
						    "the live database stayed locked by another connection for %u s",
						    t->lock_wait);
			}
			sleep_ms(BUSY_SLEEP_MS);
		} else if (rc != SQLITE_OK) {
			sqlite3_backup_finish(b);
			if (w && last) {
				w->maybe_committed = true;
				w->rc = rc;
				return AFS_E_IO;
			}
			return afs_job_fail(j, rc == SQLITE_FULL ? AFS_E_NOSPC : AFS_E_IO,
					    "copying into the database failed: %s", sqlite3_errstr(rc));
		} else {
			busy_since = 0;
			if (w && !started)
				afs_job_test_gate(j, "db-step");
			started = true;
		}
		if (w) {
			uint64_t done = (uint64_t)(sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b)) *
					(uint64_t)psize;

			if (done > reported) {
				afs_job_advance(j, done - reported);
				reported = done;
			}
			if (afs_job_cancelled(j)) {
				sqlite3_backup_finish(b); /* rolls the destination back */
				return AFS_E_CANCELLED;
			}
			afs_job_test_pause(j, AFS_ST_DATABASE);
		}
	}
	rc = sqlite3_backup_finish(b);
	if (rc != SQLITE_OK && !w)
		return afs_job_fail(j, AFS_E_IO, "copying into the database failed: %s", sqlite3_errmsg(to));
	if (rc != SQLITE_OK) /* after SQLITE_DONE the copy is committed: only cleaning up failed */
		afs_job_warn(j, "the copy into the database committed, then ended with: %s", sqlite3_errmsg(to));
	return AFS_OK;
}

/* True when statements sa and sb give the same rows, value for value. */
static bool same_rows(sqlite3_stmt *sa, sqlite3_stmt *sb)
{
	for (;;) {
		int ra = sqlite3_step(sa), rb = sqlite3_step(sb), n = sqlite3_column_count(sa);

		if (ra != rb || (ra != SQLITE_ROW && ra != SQLITE_DONE) || n != sqlite3_column_count(sb))
			return false;
		if (ra == SQLITE_DONE)
			return true;
		for (int i = 0; i < n; i++) {
			int type = sqlite3_column_type(sa, i);

			if (type != sqlite3_column_type(sb, i))
				return false;
			if (type == SQLITE_INTEGER && sqlite3_column_int64(sa, i) != sqlite3_column_int64(sb, i))
				return false;
			if (type == SQLITE_FLOAT && memcmp(&(double){ sqlite3_column_double(sa, i) },
							   &(double){ sqlite3_column_double(sb, i) }, sizeof(double)) != 0)
				return false;
			if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
				const void *x = sqlite3_column_blob(sa, i), *y = sqlite3_column_blob(sb, i);
				int len = sqlite3_column_bytes(sa, i);

				if (len != sqlite3_column_bytes(sb, i) || (len && memcmp(x, y, (size_t)len) != 0))
					return false;
			}
		}
	}
}

/* True when sql (a format with one %w for a table name, or none) gives
 * the same rows on a and b. */
static bool same_query(sqlite3 *a, sqlite3 *b, const char *sql)
{
	sqlite3_stmt *sa = NULL, *sb = NULL;
	bool same = sqlite3_prepare_v2(a, sql, -1, &sa, NULL) == SQLITE_OK &&
		    sqlite3_prepare_v2(b, sql, -1, &sb, NULL) == SQLITE_OK && same_rows(sa, sb);

	sqlite3_finalize(sa);
	sqlite3_finalize(sb);
	return same;
}

/* True when the databases at a_path and b_path hold the same pages count,
 * schema and rows (in storage order: the backup API copies pages as they
 * are, so a committed copy matches row for row).  Read through SQLite. */
static bool same_content(const char *a_path, const char *b_path)
{
	sqlite3 *a = NULL, *b = NULL;
	sqlite3_stmt *tables = NULL;
	bool same = false;

	if (sqlite3_open_v2(a_path, &a, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(b_path, &b, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(a, 1000);
	same = pragma_int(a, "PRAGMA page_count") == pragma_int(b, "PRAGMA page_count") &&
	       same_query(a, b, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid") &&
	       sqlite3_prepare_v2(a, "SELECT name FROM sqlite_schema WHERE type = 'table'", -1, &tables, NULL) ==
		       SQLITE_OK;
	while (same && sqlite3_step(tables) == SQLITE_ROW) {
		char *sql = sqlite3_mprintf("SELECT * FROM \"%w\"", (const char *)sqlite3_column_text(tables, 0));

		same = sql && same_query(a, b, sql);
		sqlite3_free(sql);
	}
out:
	sqlite3_finalize(tables);
	sqlite3_close(a);
	sqlite3_close(b);
	return same;
}

/* After the step that would commit failed (w): reads the live file to
 * find out what happened.  No connection committed since the copy began:
 * rolled back, the usual failure.  The live database holds
 * exactly the staged copy: committed (the job is told; AFS_OK).  Anything
 * else: unknown, said so (afs_job_commit_unknown()). */
static enum afs_err commit_outcome(struct afs_job *j, const struct sq_state *s, struct commit_watch *w)
{
	const char *live_path = afs_job_target(j)->db_path, *why = sqlite3_errstr(w->rc);
	int64_t now = w->obs ? pragma_int(w->obs, "PRAGMA data_version") : 0;

	if (now != 0 && now == w->version)
		return afs_job_fail(j, w->rc == SQLITE_FULL ? AFS_E_NOSPC : AFS_E_IO,
				    "copying into the database failed while committing: %s; the transaction was "
				    "rolled back (the database is unchanged)", why);
	if (now != 0 && same_content(live_path, s->staged)) {
		afs_job_committed(j);
		afs_job_warn(j, "the last copy step reported \"%s\", but %s holds the restored copy, page for page: "
				"the commit went through", why, live_path);
		return AFS_OK;
	}
	afs_job_commit_unknown(j);
	return afs_job_fail(j, AFS_E_IO,
			    "copying into the database failed while committing (%s), and %s now holds neither its "
			    "old content nor the restored copy as far as archfs can tell: whether the restore went "
			    "through is unknown",
			    why, live_path);
}

static enum afs_err sq_snapshot(struct afs_job *j, void *state, const char *path)
{
	const char *live_path = afs_job_target(j)->db_path;
	const struct sq_state *s = state;
	sqlite3 *live = NULL, *out = NULL;
	enum afs_err err;
	struct stat st;

	if ((s && s->created) || stat(live_path, &st) != 0)
		return AFS_E_NOENT;
	if (sqlite3_open_v2(live_path, &live, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(path, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		err = afs_job_fail(j, AFS_E_IO, "snapshot of %s: %s", live_path,
				   sqlite3_errmsg(out ? out : live));
		goto out;
	}
	err = copy_db(j, out, live, NULL);
out:
	sqlite3_close(out);
	sqlite3_close(live);
	return err;
}

static enum afs_err sq_restore(struct afs_job *j, void *state)
{
	struct sq_state *s = state;
	const char *live_path = afs_job_target(j)->db_path;
	struct commit_watch w = { 0 };
	sqlite3 *live = NULL, *src = NULL;
	int64_t live_pages, src_pages;
	enum afs_err err;
	struct stat st;

	if (stat(s->staged, &st) != 0)
		return afs_job_fail(j, AFS_E_IO, "the staged database is gone: %s", strerror(errno));
	afs_job_phase_bytes(j, (uint64_t)st.st_size);
	if (sqlite3_open_v2(s->staged, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(live_path, &live, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		err = afs_job_fail(j, AFS_E_IO, "cannot open %s: %s", live ? live_path : "the staged database",
				   sqlite3_errmsg(live ? live : src));
		goto out;
	}
	/* read-write: should a failed commit leave a hot journal, this
	 * connection rolls it back as any would before reading */
	if (sqlite3_open_v2(live_path, &w.obs, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(w.obs);
		w.obs = NULL;
	} else {
		sqlite3_busy_timeout(w.obs, 1000);
	}
	sqlite3_busy_timeout(live, 200);
	err = copy_db(j, live, src, &w);
	if (err != AFS_OK && w.maybe_committed) {
		sqlite3_close(live); /* its locks go before the live file is read */
		live = NULL;
		err = commit_outcome(j, s, &w);
	}
	if (err != AFS_OK || !live)
		goto out;
	/* The staged copy passed PRAGMA integrity_check (after its migration
	 * too), and the backup API copies it page for page: checking the whole
	 * live file again would double the step's cost.  That every page
	 * landed is checked. */
	live_pages = pragma_int(live, "PRAGMA page_count");
	src_pages = pragma_int(src, "PRAGMA page_count");
	if (live_pages != src_pages)
		err = afs_job_fail(j, AFS_E_CORRUPT, "the restored database has %lld pages, the staged copy %lld",
				   (long long)live_pages, (long long)src_pages);
	else
		afs_job_log(j, "%s holds every page of the checked copy", live_path);
out:
	sqlite3_close(w.obs);
	sqlite3_close(src);
	sqlite3_close(live);
	return err;
}

static char *alembic_revision(const char *path);

/* --migrate on the staged copy, before the swap (backend.h): the live
 * database is not touched until sq_restore() copies the migrated file in. */
static enum afs_err sq_migrate(struct afs_job *j, void *state)
{
	struct sq_state *s = state;
	char *url = NULL, msg[256] = "", *ok = NULL, *rev = NULL;
	sqlite3 *db = NULL;
	enum afs_err err;

	if (asprintf(&url, "sqlite:///%s", s->staged) < 0) /* staged is absolute: sqlite:////... */
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	err = afs_job_migrate(j, url);
	free(url);
	if (err != AFS_OK)
		return err;
	if (sqlite3_open_v2(s->staged, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		err = afs_job_fail(j, AFS_E_IO, "the migrated copy cannot be opened: %s", sqlite3_errmsg(db));
		goto out;
	}
	ok = integrity(db, msg, sizeof(msg));
	if (!ok || strcmp(ok, "ok") != 0) {
		err = afs_job_fail(j, AFS_E_CORRUPT, "the migrated copy fails PRAGMA integrity_check: %s", ok ? ok : msg);
		goto out;
	}
	rev = alembic_revision(s->staged);
	afs_job_log(j, "the migrated copy passes PRAGMA integrity_check, at Alembic revision %s", rev ? rev : "none");
out:
	free(rev);
	free(ok);
	sqlite3_close(db);
	return err;
}

/* The alembic_version of the database file at path (malloc'd), or NULL
 * when it has none or cannot be read. */
static char *alembic_revision(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *rev = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT version_num FROM alembic_version LIMIT 1", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		rev = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rev;
}

static enum afs_err sq_revision(struct afs_job *j, void *state, char **rev)
{
	const char *live_path = afs_job_target(j)->db_path;
	struct stat sb;

	*rev = NULL;
	if (stat(live_path, &sb) == 0)
		*rev = alembic_revision(live_path);
	return AFS_OK;
}

static enum afs_err sq_inspect(struct afs_job *j, struct afs_db_info *info, char *msg, size_t msglen)
{
	const char *path = afs_job_target(j)->db_path;
	struct stat st;

	memset(info, 0, sizeof(*info));
	info->name = strdup(path);
	if (!info->name) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return AFS_OK;
		snprintf(msg, msglen, "the database %s: %s", path, strerror(errno));
		return errno == ENOTDIR ? AFS_E_NOTDIR : AFS_E_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "the database %s is not a regular file", path);
		return S_ISDIR(st.st_mode) ? AFS_E_ISDIR : AFS_E_INVAL;
	}
	info->exists = true;
	info->size = (uint64_t)st.st_size;
	info->revision = alembic_revision(path);
	return AFS_OK;
}

static enum afs_err sq_create(struct afs_job *j, void *state)
{
	struct sq_state *s = state;
	const char *path = afs_job_target(j)->db_path;
	struct afs_newfile how;
	struct stat st;
	char msg[512] = "";
	enum afs_err err = afs_target_create_file(path, &how, msg, sizeof(msg));

	if (err != AFS_OK)
		return afs_job_fail_as(j, err == AFS_E_NOMEM ? AFS_FAIL_FAILED : AFS_FAIL_TARGET, err, "--create: %s", msg);
	if (stat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	s->created = true;
	if (how.like[0])
		afs_job_log(j, "created the database %s: mode %04o, owner %lu:%lu, as %s in its directory", path,
			    (unsigned)how.mode, (unsigned long)how.uid, (unsigned long)how.gid, how.like);
	else
		afs_job_log(j, "created the database %s: mode 0600, owner %lu:%lu (its directory has no other files)",
			    path, (unsigned long)how.uid, (unsigned long)how.gid);
	if (how.owner_kept)
		afs_job_warn(j, "%s could not be given the owner of %s (archfs is not root): it is owned by %lu:%lu",
			     path, how.like, (unsigned long)how.uid, (unsigned long)how.gid);
	return AFS_OK;
}

static void sq_discard(struct afs_job *j, void *state)
{
	struct sq_state *s = state;
	const char *path = afs_job_target(j)->db_path;
	struct stat st;

	if (!s || !s->created)
		return;
	s->created = false;
	/* only the file create() made: a file put there since is not ours */
	if (stat(path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino && unlink(path) == 0)
		afs_job_log(j, "removed %s, created for this restore: nothing was restored into it", path);
	else
		afs_job_warn(j, "%s, created for this restore, could not be removed", path);
}

static void sq_release(void *state)
{
	struct sq_state *s = state;

	if (!s)
		return;
	/* the staged copies, and whatever a migration's connections left
	 * beside them (-journal, -wal, -shm): all in the private directory */
	afs_privdir_remove(&s->dir);
	free(s->staged);
	free(s->beside);
	free(s);
}

const struct afs_db_backend afs_sqlite_backend = {
	.name = "sqlite",
	.kind = AFS_DB_SQLITE,
	.dump_name = "db.sqlite",
	.inspect = sq_inspect,
	.verify = sq_verify,
	.create = sq_create,
	.discard = sq_discard,
	.snapshot = sq_snapshot,
	.migrate = sq_migrate,
	.restore = sq_restore,
	.revision = sq_revision,
	.release = sq_release,
};

