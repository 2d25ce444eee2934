/* SPDX-License-Identifier: MIT */
/* Target configuration: database URLs and paths, made absolute at parse time
 * (the daemon changes directory to / when it detaches). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "target.h"

#define SNAPSHOT_PREFIX "archfs_pre_restore_"

enum afs_err afs_target_set_path(char **field, const char *path)
{
	char cwd[4096];
	char *abs;

	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return AFS_E_RANGE;
		if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
			abs = NULL;
	}
	if (!abs)
		return AFS_E_NOMEM;
	/* "/a/b/" and "/a/b" name the same directory; keep one spelling */
	for (size_t n = strlen(abs); n > 1 && abs[n - 1] == '/'; n--)
		abs[n - 1] = '\0';
	free(*field);
	*field = abs;
	return AFS_OK;
}

/* The URL without the password of its user-info part ("user:pw@"). */
static char *strip_password(const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *auth, *at, *colon, *end;
	char *out;

	if (!scheme)
		return strdup(url);
	auth = scheme + 3;
	end = auth + strcspn(auth, "/?#");
	at = memrchr(auth, '@', (size_t)(end - auth));
	if (!at)
		return strdup(url);
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (!colon)
		return strdup(url);
	if (asprintf(&out, "%.*s%s", (int)(colon - url), url, at) < 0)
		return NULL;
	return out;
}

/* The refusal of a relative SQLite URL: SQLAlchemy resolves sqlite:///NAME
 * against the process's working directory and Flask-SQLAlchemy against the
 * application's instance folder; archfs runs in neither, so it names the
 * absolute form (against its own directory) for the user to confirm. */
static enum afs_err relative_sqlite(const char *url, const char *rel, const char *query, char *msg, size_t msglen)
{
	char *abs = NULL;

	if (afs_target_set_path(&abs, rel) != AFS_OK) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	snprintf(msg, msglen,
		 "'%s' is a relative path (three slashes), which the application resolves against its own folder "
		 "(Flask-SQLAlchemy: its instance folder) and archfs cannot know: give the absolute path (four "
		 "slashes), e.g. sqlite:///%s%s for %s in the current directory",
		 url, abs, query, rel);
	free(abs);
	return AFS_E_INVAL;
}

enum afs_err afs_target_set_database(struct afs_target *t, const char *url, char *msg, size_t msglen)
{
	static const char *const pg_schemes[] = { "postgresql://", "postgres://", "postgresql+psycopg2://" };
	enum afs_db_type kind = AFS_DB_UNKNOWN;
	char *path = NULL, *copy = NULL, *display = NULL;
	enum afs_err err = AFS_OK;

	if (strncmp(url, "sqlite:///", 10) == 0) {
		const char *p = url + 10; /* sqlite:////abs -> "/abs"; sqlite:///rel -> "rel" */
		size_t len = strcspn(p, "?");

		kind = AFS_DB_SQLITE;
		if (len == 0 || (p[0] == '/' && len == 1)) {
			snprintf(msg, msglen, "database URL '%s' names no file", url);
			return AFS_E_INVAL;
		}
		copy = strndup(p, len);
		if (!copy)
			return AFS_E_NOMEM;
		if (copy[0] != '/') {
			err = relative_sqlite(url, copy, p + len, msg, msglen);
			free(copy);
			return err;
		}
		err = afs_target_set_path(&path, copy);
		free(copy);
		copy = NULL;
		if (err != AFS_OK)
			goto out;
	} else {
		for (size_t i = 0; i < sizeof(pg_schemes) / sizeof(pg_schemes[0]); i++)
			if (strncmp(url, pg_schemes[i], strlen(pg_schemes[i])) == 0)
				kind = AFS_DB_POSTGRESQL;
		if (kind == AFS_DB_UNKNOWN) {
			display = strip_password(url);
			snprintf(msg, msglen,
				 "database URL '%s': unknown scheme (use sqlite:////path or postgresql://...)",
				 display ? display : "?");
			err = AFS_E_INVAL;
			goto out;
		}
	}
	copy = strdup(url);
	display = strip_password(url);
	if (!copy || !display) {
		err = AFS_E_NOMEM;
		goto out;
	}
	free(t->url);
	free(t->display_url);
	free(t->db_path);
	t->kind = kind;
	t->url = copy;
	t->display_url = display;
	t->db_path = path;
	return AFS_OK;
out:
	free(path);
	free(copy);
	free(display);
	if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
	return err;
}

bool afs_target_configured(const struct afs_target *t)
{
	return t->kind != AFS_DB_UNKNOWN || t->uploads;
}

void afs_target_release(struct afs_target *t)
{
	free(t->url);
	free(t->display_url);
	free(t->db_path);
	free(t->uploads);
	free(t->migrate);
	free(t->flag_file);
	free(t->snapshot_dir);
	free(t->pg_bindir);
	memset(t, 0, sizeof(*t));
}

/* AFS_OK when path is a directory (of its parent, when parent is set). */
static enum afs_err check_dir(const char *opt, const char *path, bool parent, char *msg, size_t msglen)
{
	char *copy = strdup(path);
	const char *dir = copy && parent ? dirname(copy) : copy;
	struct stat st;
	enum afs_err err = AFS_OK;

	if (!copy)
		return AFS_E_NOMEM;
	if (stat(dir, &st) != 0) {
		snprintf(msg, msglen, "%s: %s: %s", opt, dir, strerror(errno));
		err = AFS_E_NOENT;
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(msg, msglen, "%s: %s is not a directory", opt, dir);
		err = AFS_E_NOTDIR;
	}
	free(copy);
	return err;
}

static const char *given(const char *opt, const char *env)
{
	const char *v = opt ? opt : env ? getenv(env) : NULL;

	return v && v[0] ? v : NULL;
}

enum afs_err afs_target_from_options(const struct afs_target_opts *o, struct afs_target *t, char *msg,
				     size_t msglen)
{
	const char *db = given(o->database, "DATABASE_URL"), *up = given(o->uploads, "UPLOAD_FOLDER");
	enum afs_err err = AFS_OK;

	memset(t, 0, sizeof(*t));
	msg[0] = '\0';
	t->lock_wait = AFS_LOCK_WAIT_DEFAULT;
	t->no_snapshot = o->no_snapshot;
	t->terminate_blockers = o->terminate_blockers;
	t->create = o->create;
	if (db) {
		char sub[1024];

		err = afs_target_set_database(t, db, sub, sizeof(sub));
		if (err != AFS_OK)
			snprintf(msg, msglen, "--database%s: %s", o->database ? "" : " (from $DATABASE_URL)", sub);
		else if (t->db_path)
			err = check_dir("--database", t->db_path, true, msg, msglen);
	}
	if (err == AFS_OK && up && (err = afs_target_set_path(&t->uploads, up)) == AFS_OK)
		err = check_dir("--uploads", t->uploads, false, msg, msglen);
	if (err == AFS_OK && o->flag_file && (err = afs_target_set_path(&t->flag_file, o->flag_file)) == AFS_OK)
		err = check_dir("--flag-file", t->flag_file, true, msg, msglen);
	if (err == AFS_OK && o->snapshot_dir &&
	    (err = afs_target_set_path(&t->snapshot_dir, o->snapshot_dir)) == AFS_OK)
		err = check_dir("--snapshot-dir", t->snapshot_dir, false, msg, msglen);
	if (err == AFS_OK && o->pg_bindir && (err = afs_target_set_path(&t->pg_bindir, o->pg_bindir)) == AFS_OK)
		err = check_dir("--pg-bindir", t->pg_bindir, false, msg, msglen);
	if (err == AFS_OK && o->create && t->kind == AFS_DB_UNKNOWN) {
		snprintf(msg, msglen, "--create needs a database (--database or DATABASE_URL)");
		err = AFS_E_INVAL;
	}
	if (err == AFS_OK && o->migrate) {
		if (t->kind == AFS_DB_UNKNOWN) {
			snprintf(msg, msglen, "--migrate needs a database (--database or DATABASE_URL)");
			err = AFS_E_INVAL;
		} else if (!(t->migrate = strdup(o->migrate))) {
			err = AFS_E_NOMEM;
		}
	}
	if (err == AFS_OK && o->lock_wait) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(o->lock_wait, &end, 10);
		if (errno || end == o->lock_wait || *end || o->lock_wait[0] == '-' || v > 86400) {
			snprintf(msg, msglen, "--lock-wait: '%s' is not a number of seconds (0 to 86400)", o->lock_wait);
			err = AFS_E_INVAL;
		} else {
			t->lock_wait = (unsigned)v;
		}
	}
	if (err != AFS_OK) {
		if (!msg[0])
			snprintf(msg, msglen, "%s", afs_strerror(err));
		afs_target_release(t);
	}
	return err;
}

void afs_target_mask_password(char *s)
{
	for (char *p = strstr(s, "://"); p; p = strstr(p, "://")) {
		char *auth = p + 3, *end = auth + strcspn(auth, "/?#"), *at = NULL, *colon;

		for (char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon)
			memset(colon + 1, 'x', (size_t)(at - colon - 1));
		p = end;
	}
}

/* True when the file name in dir starts like a SQLite database. */
static bool is_sqlite(int dir, const char *name)
{
	char head[16];
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	bool yes;

	if (fd < 0)
		return false;
	yes = read(fd, head, sizeof(head)) == (ssize_t)sizeof(head) && memcmp(head, "SQLite format 3", 16) == 0;
	close(fd);
	return yes;
}

/* The regular file of dir (not self, not hidden, not a snapshot) whose
 * owner and mode a new database takes: a SQLite database first, then the
 * first by name.  False when there is none. */
static bool pick_sibling(int dir, const char *self, char *name, size_t namelen, struct stat *out)
{
	DIR *d = fdopendir(dup(dir));
	struct dirent *e;
	bool found = false, found_db = false;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		struct stat st;
		bool db;

		if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0 ||
		    strncmp(e->d_name, SNAPSHOT_PREFIX, strlen(SNAPSHOT_PREFIX)) == 0 || strlen(e->d_name) >= namelen)
			continue;
		if (fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		db = is_sqlite(dir, e->d_name);
		if (found && (found_db && !db))
			continue;
		if (found && found_db == db && strcmp(e->d_name, name) > 0)
			continue;
		snprintf(name, namelen, "%s", e->d_name);
		*out = st;
		found = true;
		found_db = db;
	}
	closedir(d);
	return found;
}

enum afs_err afs_target_create_file(const char *path, struct afs_newfile *how, char *msg, size_t msglen)
{
	char *dcopy = strdup(path), *bcopy = strdup(path);
	const char *dname, *base;
	struct stat like, st;
	enum afs_err err = AFS_OK;
	int dir = -1, fd = -1;
	bool found;

	memset(how, 0, sizeof(*how));
	if (!dcopy || !bcopy) {
		snprintf(msg, msglen, "out of memory");
		err = AFS_E_NOMEM;
		goto out;
	}
	dname = dirname(dcopy);
	base = basename(bcopy);
	dir = open(dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		snprintf(msg, msglen, "%s: %s", dname, strerror(errno));
		err = AFS_E_IO;
		goto out;
	}
	how->mode = 0600;
	found = pick_sibling(dir, base, how->like, sizeof(how->like), &like);
	if (found)
		how->mode = like.st_mode & 0666;
	fd = openat(dir, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot create %s: %s", path, strerror(errno));
		err = errno == EEXIST ? AFS_E_CONFLICT : AFS_E_IO;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		err = AFS_E_IO;
		goto out;
	}
	/* without another file it keeps what the kernel gave it: archfs's
	 * user, and the directory's group when the directory is setgid */
	how->uid = found ? like.st_uid : st.st_uid;
	how->gid = found ? like.st_gid : st.st_gid;
	if ((st.st_uid != how->uid || st.st_gid != how->gid) && fchown(fd, how->uid, how->gid) != 0) {
		/* not root: the group may still be given when archfs's user is in it */
		how->owner_kept = true;
		how->uid = st.st_uid;
		if (st.st_gid != how->gid && fchown(fd, (uid_t)-1, how->gid) != 0)
			how->gid = st.st_gid;
	}
	if (fchmod(fd, how->mode) != 0 || fsync(fd) != 0 || fsync(dir) != 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		err = AFS_E_IO;
	}
out:
	if (fd >= 0) {
		close(fd);
		if (err != AFS_OK)
			unlinkat(dir, base, 0);
	}
	if (dir >= 0)
		close(dir);
	free(dcopy);
	free(bcopy);
	return err;
}
