/* SPDX-License-Identifier: MIT */
/* Target configuration: database URLs and paths, made absolute at parse time
 * (the daemon changes directory to / when it detaches). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "target.h"

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
	if (db) {
		char sub[400];

		err = afs_target_set_database(t, db, sub, sizeof(sub));
		if (err != AFS_OK)
			snprintf(msg, msglen, "--database: %s", sub);
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
