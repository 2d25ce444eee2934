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
#include "backend.h"
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

/* ------------------------------------------------------------ secrets */

/* The connection options whose values are secrets, as libpq names them:
 * a password, the key file's passphrase, and the files they are read from. */
static const char *const secret_keys[] = { "password", "sslpassword", "passfile", "sslkey" };

/* Bytes [start, end) of a string that hold a secret; for the password of
 * a URL's user-info, start is the ':' before it (the display drops both). */
struct span {
	size_t start, end;
	bool userinfo;
};

struct spans {
	struct span *v;
	size_t n, cap;
	bool nomem;
};

static void add_span(struct spans *sp, size_t start, size_t end, bool userinfo)
{
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? 2 * sp->cap : 8;
		struct span *grown = realloc(sp->v, cap * sizeof(*grown));

		if (!grown) {
			sp->nomem = true;
			return;
		}
		sp->v = grown;
		sp->cap = cap;
	}
	sp->v[sp->n++] = (struct span){ start, end, userinfo };
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The bytes of p that spell a secret option's name (any case; %XX
 * sequences decoded when pct, as libpq decodes URL query names), or 0. */
static size_t secret_key_at(const char *p, bool pct)
{
	char name[16];
	size_t i = 0, n = 0;

	while (n < sizeof(name) - 1) {
		int c = (unsigned char)p[i];

		if (pct && c == '%' && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
			c = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
			i += 3;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
			i++;
		} else {
			break;
		}
		name[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	name[n] = '\0';
	for (size_t k = 0; k < sizeof(secret_keys) / sizeof(secret_keys[0]); k++)
		if (strcmp(name, secret_keys[k]) == 0)
			return i;
	return 0;
}

/* Every URL in s ("scheme://"): the password of its user-info, as libpq
 * reads it (from the first ':' up to the '@' before the first '/'; the
 * last such '@', so that a raw '@', '?' or '#' in the password is covered;
 * failing that, the last '@' before the first '?', for a raw '/' that
 * libpq would misread), and the values of secret query parameters (up to
 * the next '&'), after any '?' or '&' past the "://": libpq's user-info
 * ends at the first '@', so a query may hold an '@' of its own
 * ("postgresql://u@h?password=p@ss"). */
static void scan_urls(const char *s, struct spans *sp)
{
	for (const char *p = strstr(s, "://"); p; p = strstr(p + 3, "://")) {
		const char *auth = p + 3, *end = auth + strcspn(auth, "/"), *at = NULL, *colon = NULL, *q;

		for (const char *x = auth; x < end; x++)
			if (*x == '@')
				at = x;
		if (!at)
			for (const char *x = auth, *qm = auth + strcspn(auth, "?"); x < qm; x++)
				if (*x == '@')
					at = x;
		if (at)
			colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon)
			add_span(sp, (size_t)(colon - s), (size_t)(at - s), true);
		for (q = auth; (q = strpbrk(q, "?&"));) {
			size_t k = secret_key_at(++q, true), vlen;

			if (!k || q[k] != '=')
				continue;
			vlen = strcspn(q + k + 1, "&");
			if (vlen)
				add_span(sp, (size_t)(q + k + 1 - s), (size_t)(q + k + 1 + vlen - s), false);
		}
	}
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Every "key = value" of a secret option, as libpq's conninfo_parse reads
 * them: white space around '=', a value in single quotes (with \' and \\
 * escapes) or up to the next white space (with \ escapes).  A key counts
 * at the start, after white space, '=' or ',' (an argv item such as
 * "--database=password=..." or "-o database=...,..."), and after a quote:
 * libpq reads the next key right after a quoted value, with no white
 * space between ("dbname='app'password=..."). */
static void scan_pairs(const char *s, struct spans *sp)
{
	for (size_t i = 0; s[i]; i++) {
		size_t k, v, e;
		bool quoted;

		if (i > 0 && !is_space(s[i - 1]) && s[i - 1] != '=' && s[i - 1] != ',' && s[i - 1] != '\'')
			continue;
		if (!(k = secret_key_at(s + i, false)))
			continue;
		for (v = i + k; is_space(s[v]); v++)
			;
		if (s[v] != '=')
			continue;
		for (v++; is_space(s[v]); v++)
			;
		quoted = s[v] == '\'';
		if (quoted)
			v++;
		for (e = v; s[e] && (quoted ? s[e] != '\'' : !is_space(s[e])); e++)
			if (s[e] == '\\' && s[e + 1])
				e++;
		if (e > v)
			add_span(sp, v, e, false);
	}
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The secrets of s, sorted, overlapping ones merged (a merged span is
 * userinfo only if all the parts that extend it are). */
static void find_secrets(const char *s, struct spans *sp)
{
	size_t out = 0;

	memset(sp, 0, sizeof(*sp));
	scan_urls(s, sp);
	scan_pairs(s, sp);
	if (sp->nomem || sp->n == 0)
		return;
	qsort(sp->v, sp->n, sizeof(*sp->v), span_cmp);
	for (size_t i = 1; i < sp->n; i++) {
		struct span *last = &sp->v[out];

		if (sp->v[i].start <= last->end) {
			if (sp->v[i].end > last->end) { /* a span within another changes nothing */
				last->end = sp->v[i].end;
				last->userinfo = last->userinfo && sp->v[i].userinfo;
			}
		} else {
			sp->v[++out] = sp->v[i];
		}
	}
	sp->n = out + 1;
}

void afs_target_mask_password(char *s)
{
	struct spans sp;

	find_secrets(s, &sp);
	if (sp.nomem) { /* fail closed: nothing of it is shown */
		memset(s, 'x', strlen(s));
		free(sp.v);
		return;
	}
	for (size_t i = 0; i < sp.n; i++) {
		size_t start = sp.v[i].start + (sp.v[i].userinfo ? 1 : 0);

		memset(s + start, 'x', sp.v[i].end - start);
	}
	free(sp.v);
}

char *afs_target_display(const char *s)
{
	struct spans sp;
	char *out = NULL;
	size_t len = 0, at = 0;
	FILE *f;

	find_secrets(s, &sp);
	f = sp.nomem ? NULL : open_memstream(&out, &len);
	if (f) {
		for (size_t i = 0; i < sp.n; i++) {
			fwrite(s + at, 1, sp.v[i].start - at, f);
			fputs(sp.v[i].userinfo ? "" : AFS_TARGET_MASK, f);
			at = sp.v[i].end;
		}
		fputs(s + at, f);
		if (fclose(f) != 0) {
			free(out);
			out = NULL;
		}
	}
	free(sp.v);
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

/* True when s reads as libpq's key=value connection string: it starts
 * with a keyword and '=' ("host=/run/postgresql dbname=app"). */
static bool is_conninfo(const char *s)
{
	size_t k;

	while (is_space(*s))
		s++;
	k = strspn(s, "abcdefghijklmnopqrstuvwxyz_");
	if (k == 0)
		return false;
	for (s += k; is_space(*s); s++)
		;
	return *s == '=';
}

/* The form of url that .status and logs show (*out, malloc'd): the
 * backend's mask() when it has one (its client library's reading of the
 * URL, which may also refuse it: AFS_E_INVAL with msg), else
 * afs_target_display(). */
static enum afs_err display_form(const struct afs_target *t, enum afs_db_type kind, const char *url, char **out,
				 char *msg, size_t msglen)
{
	for (size_t i = 0; t->backends && t->backends[i]; i++) {
		const struct afs_db_backend *be = t->backends[i];

		if (be->kind != kind || !be->mask)
			continue;
		msg[0] = '\0';
		*out = be->mask(url, msg, msglen);
		if (*out)
			return AFS_OK;
		return msg[0] ? AFS_E_INVAL : AFS_E_NOMEM;
	}
	*out = afs_target_display(url);
	return *out ? AFS_OK : AFS_E_NOMEM;
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
		if (kind == AFS_DB_UNKNOWN && is_conninfo(url))
			kind = AFS_DB_POSTGRESQL;
		if (kind == AFS_DB_UNKNOWN) {
			display = afs_target_display(url);
			snprintf(msg, msglen,
				 "database URL '%s': unknown scheme (use sqlite:////path, postgresql://... or a libpq "
				 "key=value connection string)",
				 display ? display : "?");
			err = AFS_E_INVAL;
			goto out;
		}
	}
	copy = strdup(url);
	if (!copy) {
		err = AFS_E_NOMEM;
		goto out;
	}
	err = display_form(t, kind, url, &display, msg, msglen);
	if (err != AFS_OK)
		goto out;
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

/* A missing directory of an option that is not the target itself (the
 * flag file's, the snapshots', the client tools') is a bad option value:
 * AFS_E_INVAL, where the target's own are AFS_E_NOENT or AFS_E_NOTDIR. */
static enum afs_err option_dir(enum afs_err err)
{
	return err == AFS_E_NOENT || err == AFS_E_NOTDIR ? AFS_E_INVAL : err;
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
	t->backends = o->backends;
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
		err = option_dir(check_dir("--flag-file", t->flag_file, true, msg, msglen));
	if (err == AFS_OK && o->snapshot_dir &&
	    (err = afs_target_set_path(&t->snapshot_dir, o->snapshot_dir)) == AFS_OK)
		err = option_dir(check_dir("--snapshot-dir", t->snapshot_dir, false, msg, msglen));
	if (err == AFS_OK && o->pg_bindir && (err = afs_target_set_path(&t->pg_bindir, o->pg_bindir)) == AFS_OK)
		err = option_dir(check_dir("--pg-bindir", t->pg_bindir, false, msg, msglen));
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
