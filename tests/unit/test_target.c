/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/target.c: database URLs, paths and the options. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "db.h"
#include "target.h"
#include "testutil.h"

static int has(const char *s, const char *part)
{
	return s && strstr(s, part) != NULL;
}

static int eq(const char *s, const char *want)
{
	return s && strcmp(s, want) == 0;
}

/* A PostgreSQL URL with a password: its display form drops the password. */
static void check_pg(const char *url, const char *want_display)
{
	struct afs_target t = { 0 };
	char msg[256] = "";

	CHECK(afs_target_set_database(&t, url, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_POSTGRESQL);
	CHECK(eq(t.url, url));
	CHECK(t.db_path == NULL);
	CHECK(t.display_url && !has(t.display_url, "secret"));
	CHECK(has(t.display_url, "u@") && has(t.display_url, "h"));
	if (want_display && !eq(t.display_url, want_display)) {
		fprintf(stderr, "display of %s: '%s', want '%s'\n", url, t.display_url ? t.display_url : "(null)",
			want_display);
		CHECK(eq(t.display_url, want_display));
	}
	afs_target_release(&t);
	CHECK(t.url == NULL && t.display_url == NULL && t.kind == AFS_DB_UNKNOWN);
}

/* afs_target_from_options expecting a refusal whose message names opt. */
static void refused(const struct afs_target_opts *o, const char *opt, const char *secret)
{
	struct afs_target t;
	char msg[1024] = "";
	enum afs_err err;

	memset(&t, 0x5a, sizeof(t)); /* from_options zeroes t first */
	err = afs_target_from_options(o, &t, msg, sizeof(msg));
	CHECK(err != AFS_OK);
	CHECK(msg[0] != '\0' && strchr(msg, '\n') == NULL);
	if (!has(msg, opt)) {
		fprintf(stderr, "message '%s' does not name %s\n", msg, opt);
		CHECK(has(msg, opt));
	}
	if (secret)
		CHECK(!has(msg, secret));
	/* on error t is released */
	CHECK(t.url == NULL && t.display_url == NULL && t.db_path == NULL && t.uploads == NULL &&
	      t.migrate == NULL && t.flag_file == NULL && t.snapshot_dir == NULL && t.pg_bindir == NULL);
	CHECK(t.kind == AFS_DB_UNKNOWN);
	if (err == AFS_OK)
		afs_target_release(&t);
}

/* Writes dir/name with data and its NUL and mode (and owner when uid is not -1). */
static void put(const char *dir, const char *name, const char *data, mode_t mode, int uid)
{
	char p[4600];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(fwrite(data, 1, strlen(data) + 1, f) == strlen(data) + 1);
	fclose(f);
	CHECK(chmod(p, mode) == 0);
	if (uid >= 0)
		CHECK(chown(p, (uid_t)uid, (gid_t)uid) == 0);
}

/* Creates dir/app.db with afs_target_create_file and checks what it got. */
static void created_like(const char *dir, mode_t mode, uid_t uid, gid_t gid, const char *like)
{
	struct afs_newfile how;
	struct stat st;
	char p[4600], msg[512] = "";

	snprintf(p, sizeof(p), "%s/app.db", dir);
	CHECK(afs_target_create_file(p, &how, msg, sizeof(msg)) == AFS_OK);
	CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0);
	if ((st.st_mode & 07777) != mode || st.st_uid != uid || st.st_gid != gid || !eq(how.like, like)) {
		fprintf(stderr, "%s: mode %04o owner %u:%u like '%s', want %04o %u:%u '%s'\n", p,
			(unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid, how.like,
			(unsigned)mode, (unsigned)uid, (unsigned)gid, like);
		CHECK(0);
	}
	CHECK(how.mode == mode && how.uid == uid && how.gid == gid && !how.owner_kept);
}

/* afs_target_create_file: the new database file's mode and owner. */
static void test_create_file(const char *tmp)
{
	char dir[2048], p[4600], msg[512] = "";
	struct afs_newfile how;
	struct stat st;
	bool root = geteuid() == 0;
	mode_t old = umask(077); /* the mode copied is not the umask's */

	/* a directory with no other file: 0600, archfs's user */
	snprintf(dir, sizeof(dir), "%s/cf-empty", tmp);
	CHECK(mkdir(dir, 0755) == 0);
	put(dir, ".hidden", "x", 0666, -1);
	put(dir, "archfs_pre_restore_20261120_101502.zip", "PK", 0644, -1); /* archfs's own */
	snprintf(p, sizeof(p), "%s/elsewhere", tmp);
	put(tmp, "elsewhere", "x", 0664, -1);
	snprintf(p, sizeof(p), "%s/link.db", dir);
	CHECK(symlink("../elsewhere", p) == 0); /* not followed */
	snprintf(p, sizeof(p), "%s/sub", dir);
	CHECK(mkdir(p, 0777) == 0);
	created_like(dir, 0600, geteuid(), getegid(), "");

	/* it must not exist: an existing file is left as it was */
	snprintf(p, sizeof(p), "%s/app.db", dir);
	CHECK(chmod(p, 0640) == 0);
	CHECK(afs_target_create_file(p, &how, msg, sizeof(msg)) == AFS_E_CONFLICT);
	CHECK(has(msg, p) && stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);

	/* a SQLite database of the directory wins over other files and names */
	snprintf(dir, sizeof(dir), "%s/cf-db", tmp);
	CHECK(mkdir(dir, 0755) == 0);
	put(dir, "a-notes.txt", "notes", 0644, -1);
	put(dir, "old.db", "SQLite format 3", 0640, root ? 65534 : -1); /* with its NUL: a SQLite header */
	put(dir, "z.db", "not a database", 0600, -1);
	created_like(dir, 0640, root ? 65534 : geteuid(), root ? 65534 : getegid(), "old.db");

	/* else the first file by name; execute and special bits are not copied */
	snprintf(dir, sizeof(dir), "%s/cf-files", tmp);
	CHECK(mkdir(dir, 0755) == 0);
	put(dir, "b.cfg", "b", 0600, -1);
	put(dir, "a.sh", "#!/bin/sh", 06775, root ? 65534 : -1);
	created_like(dir, 0664, root ? 65534 : geteuid(), root ? 65534 : getegid(), "a.sh");

	/* a setgid directory's group is kept when there is no other file */
	if (root) {
		snprintf(dir, sizeof(dir), "%s/cf-setgid", tmp);
		CHECK(mkdir(dir, 0755) == 0 && chown(dir, 0, 65534) == 0 && chmod(dir, 02775) == 0);
		created_like(dir, 0600, 0, 65534, "");
	}

	/* a directory that is not there: an error, nothing made */
	snprintf(p, sizeof(p), "%s/cf-none/app.db", tmp);
	msg[0] = '\0';
	CHECK(afs_target_create_file(p, &how, msg, sizeof(msg)) != AFS_OK && has(msg, "cf-none"));
	CHECK(stat(p, &st) != 0);
	umask(old);
}

/* One form: display and in-place mask as expected, neither holding
 * secret; the in-place mask keeps the length. */
static void masks(const char *in, const char *want_display, const char *want_inplace, const char *secret)
{
	char *shown = afs_target_display(in), *copy = strdup(in);

	CHECK(shown && copy);
	if (!shown || !copy)
		goto out;
	afs_target_mask_password(copy);
	if (!eq(shown, want_display) || (want_inplace && !eq(copy, want_inplace)) || has(shown, secret) ||
	    has(copy, secret) || strlen(copy) != strlen(in)) {
		fprintf(stderr, "masking '%s': display '%s' (want '%s'), in place '%s' (want '%s')\n", in, shown,
			want_display, copy, want_inplace ? want_inplace : "no secret");
		CHECK(0);
	}
out:
	free(shown);
	free(copy);
}

/* The PostgreSQL backend's mask(): libpq's reading of in (PQconninfoParse)
 * agrees with the display (want, NULL: refused), which never holds secret. */
static void libpq_masks(const char *in, const char *want, const char *secret)
{
	char msg[512] = "", *shown = afs_pg_backend.mask(in, msg, sizeof(msg));

	if (!eq(shown, want) && !(want == NULL && shown == NULL)) {
		fprintf(stderr, "libpq mask of '%s': '%s' (%s), want '%s'\n", in, shown ? shown : "(refused)", msg,
			want ? want : "(refused)");
		CHECK(0);
	}
	CHECK(!has(shown, secret) && !has(msg, secret));
	CHECK(shown || msg[0]); /* a refusal says why */
	free(shown);
}

/* Every form libpq reads a secret in, for argv (in place), .status and logs. */
static void test_masking(void)
{
	struct afs_target t = { 0 };
	struct afs_target_opts o = { .backends = afs_db_backends };
	char msg[512] = "";

	/* URL user-info: the display drops the password, argv keeps the length */
	masks("postgresql://u:secret@h:5432/db", "postgresql://u@h:5432/db", "postgresql://u:xxxxxx@h:5432/db", "secret");
	masks("postgresql://u:s%40cr%2Ft@h/db", "postgresql://u@h/db", "postgresql://u:xxxxxxxxxx@h/db", "cr%2Ft");
	/* libpq takes the user-info up to the first '/': a raw '?' or '#' is password */
	masks("postgresql://u:se?cr#et@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require", NULL, "cr#et");
	masks("postgresql://u:se@cret@h/db", "postgresql://u@h/db", NULL, "cret@");
	/* a raw '/' libpq misreads (the user-info ends there for it): masked all the same */
	masks("postgresql://u:se/cret@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require", NULL, "cret");
	masks("postgresql://h:5432/db?user=a@b", "postgresql://h:5432/db?user=a@b", NULL, "\x01");
	/* URL query: password, sslpassword, passfile, sslkey; names percent-encoded */
	masks("postgresql://u@h/db?password=secret", "postgresql://u@h/db?password=xxx",
	      "postgresql://u@h/db?password=xxxxxx", "secret");
	masks("postgresql://u@h/db?sslmode=require&password=secret&port=5",
	      "postgresql://u@h/db?sslmode=require&password=xxx&port=5", NULL, "secret");
	masks("postgres://h/db?pass%77ord=secret&%70assword=secret2", "postgres://h/db?pass%77ord=xxx&%70assword=xxx",
	      NULL, "secret");
	masks("postgresql://h/db?sslpassword=secret&passfile=/x/secret&sslkey=/k/secret&user=u",
	      "postgresql://h/db?sslpassword=xxx&passfile=xxx&sslkey=xxx&user=u", NULL, "secret");
	masks("postgresql+psycopg2://u:secret@/db?host=/run/pg&password=secret2",
	      "postgresql+psycopg2://u@/db?host=/run/pg&password=xxx", NULL, "secret");
	/* key=value: spaces around '=', quotes with \' and \\ escapes, \ escapes */
	masks("host=h user=u password=secret dbname=db", "host=h user=u password=xxx dbname=db",
	      "host=h user=u password=xxxxxx dbname=db", "secret");
	masks("host=h password='se cret' dbname=db", "host=h password='xxx' dbname=db",
	      "host=h password='xxxxxxx' dbname=db", "cret");
	masks("password='it\\'s se\\\\cret' host=h", "password='xxx' host=h", NULL, "cret");
	masks("password = secret\thost=h", "password = xxx\thost=h", NULL, "secret");
	masks("password=se\\ cret host=h passfile = '/p/secret' sslpassword=secret sslkey=/k/secret",
	      "password=xxx host=h passfile = 'xxx' sslpassword=xxx sslkey=xxx", NULL, "secret");
	masks("dbname=postgresql://u:secret@h/db host=h", "dbname=postgresql://u@h/db host=h", NULL, "secret");
	/* libpq reads a key right after a quoted value (a fuzz find, fuzz_dburl:
	 * the second password, after the quote, was shown in argv) */
	masks("host=h dbname='app'password=secret", "host=h dbname='app'password=xxx",
	      "host=h dbname='app'password=xxxxxx", "secret");
	masks("host=h dbname='password=s3credbname='password=s3cgpass", "host=h dbname='password=xxx",
	      "host=h dbname='password=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "s3cgpass");
	/* libpq's user-info ends at the first '@': a query may hold one of its own
	 * (fuzz finds, fuzz_dburl: these were shown whole, in argv and display) */
	masks("postgresql://u@h?password=p@ss", "postgresql://u@h?password=xxx", "postgresql://u@h?password=xxxx", "p@ss");
	masks("postgresql://app@happ?password=,@", "postgresql://app@happ?password=xxx",
	      "postgresql://app@happ?password=xx", "=,@");
	masks("postgresql://app@happ?password=s3@oes\\#ret-pw&sslpassword=-pass/",
	      "postgresql://app@happ?password=xxx&sslpassword=xxx",
	      "postgresql://app@happ?password=xxxxxxxxxxxxxx&sslpassword=xxxxxx", "ret-pw");
	masks("postgresql://ap@h?password=s3cret-pw&sslpassword=keys3s3cret-pw@s3cret-pw a5432/aets3cret-pw-pasn&sslkey=/k/em",
	      "postgresql://ap@h?password=xxx&sslpassword=xxx&sslkey=xxx", NULL, "s3cret");
	/* argv items as given on the command line */
	masks("--database=postgresql://u:secret@h/db", "--database=postgresql://u@h/db", NULL, "secret");
	masks("--database=host=h password=secret", "--database=host=h password=xxx", NULL, "secret");
	masks("database=postgresql://u@h/db?password=secret,uploads=/up", "database=postgresql://u@h/db?password=xxx",
	      NULL, "secret");
	masks("database=host=h password=secret,uploads=/up", "database=host=h password=xxx", NULL, "secret");
	/* nothing secret: unchanged */
	masks("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require",
	      "postgresql://u@h/db?sslmode=require", "\x01");
	masks("user=passwordless host=password dbname=sslkeys", "user=passwordless host=password dbname=sslkeys",
	      "user=passwordless host=password dbname=sslkeys", "\x01");
	masks("", "", "", "\x01");

	/* libpq's own reading agrees: what it takes for a secret is gone */
	libpq_masks("postgresql://u:secret@h:5432/db", "postgresql://u@h:5432/db", "secret");
	libpq_masks("postgresql+psycopg2://u@/db?host=/run/pg&pass%77ord=secret",
		    "postgresql+psycopg2://u@/db?host=/run/pg&pass%77ord=xxx", "secret");
	libpq_masks("host=h password='it\\'s se\\\\cret' dbname=db", "host=h password='xxx' dbname=db", "cret");
	libpq_masks("host=h dbname='app'password=secret", "host=h dbname='app'password=xxx", "secret");
	libpq_masks("postgresql://u@h?password=p@ss", "postgresql://u@h?password=xxx", "p@ss");
	libpq_masks("postgresql://u@h/db?sslpassword=secret&sslkey=/k/secret&passfile=/p/secret",
		    "postgresql://u@h/db?sslpassword=xxx&sslkey=xxx&passfile=xxx", "secret");
	/* a display whose other options would differ is not shown at all */
	libpq_masks("postgresql://u:se@cret@h/db",
		    "(a PostgreSQL connection string that archfs cannot show without its password)", "cret");
	libpq_masks("postgresql://u:se/cret@h/db",
		    "(a PostgreSQL connection string that archfs cannot show without its password)", "cret");
	/* what libpq refuses is refused, its message without the secret */
	libpq_masks("postgresql://u:secret@h/db?bogus=secret", NULL, "secret");
	libpq_masks("host=h password='secret", NULL, "secret");
	libpq_masks("postgresql://u:secret@[::1/db", NULL, "secret");

	/* the target: a key=value string is PostgreSQL, shown masked */
	o.database = "host=/run/pg user=u password='se cret' dbname=app";
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_POSTGRESQL && eq(t.url, o.database));
	CHECK(eq(t.display_url, "host=/run/pg user=u password='xxx' dbname=app"));
	afs_target_release(&t);
	o.database = "postgresql://u:secret@h/db?password=secret&bogus=1";
	msg[0] = '\0';
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(has(msg, "--database") && has(msg, "libpq") && !has(msg, "secret"));
	o.database = "postgresql://u@h/db?password=secret";
	o.backends = NULL; /* without a backend: target.c's display alone */
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(eq(t.display_url, "postgresql://u@h/db?password=xxx"));
	afs_target_release(&t);
}

int main(void)
{
	const char *tmp = tu_tmpdir();
	struct afs_target t = { 0 };
	struct afs_target_opts o;
	char msg[1024], cwd[4096], want[4600], path[4600], dbpath[4600];

	/* ------------------------------------------------ database URLs */
	CHECK(afs_target_set_database(&t, "sqlite:////abs/x.db", msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, "/abs/x.db") && eq(t.url, "sqlite:////abs/x.db"));
	CHECK(eq(t.display_url, "sqlite:////abs/x.db"));
	CHECK(afs_target_configured(&t));
	afs_target_release(&t);

	/* a relative SQLite URL (three slashes) is refused: the application
	 * resolves it against its own folder, which archfs cannot know; the
	 * message names the absolute form against the current directory */
	CHECK(chdir(tmp) == 0);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	snprintf(want, sizeof(want), "sqlite:////%s/rel.db ", cwd + 1);
	msg[0] = '\0';
	CHECK(afs_target_set_database(&t, "sqlite:///rel.db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(t.kind == AFS_DB_UNKNOWN && t.db_path == NULL && t.url == NULL);
	CHECK(has(msg, "'sqlite:///rel.db'") && has(msg, want) && has(msg, "relative") &&
	      has(msg, "instance folder") && has(msg, "cannot know") && !strchr(msg, '\n'));
	snprintf(want, sizeof(want), "sqlite:////%s/d/rel.db?timeout=5 ", cwd + 1);
	CHECK(afs_target_set_database(&t, "sqlite:///d/rel.db?timeout=5", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(has(msg, want));
	CHECK(afs_target_set_database(&t, "sqlite:///./app.db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(afs_target_set_database(&t, "sqlite:///~/app.db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(t.url == NULL);
	/* the same file, absolute (four slashes), is taken */
	snprintf(want, sizeof(want), "sqlite:////%s/rel.db", cwd + 1);
	CHECK(afs_target_set_database(&t, want, msg, sizeof(msg)) == AFS_OK);
	snprintf(want, sizeof(want), "%s/rel.db", cwd);
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, want));
	afs_target_release(&t);

	check_pg("postgresql://u:secret@h:5432/db", "postgresql://u@h:5432/db");
	check_pg("postgres://u:secret@h:5432/db", "postgres://u@h:5432/db");
	check_pg("postgresql+psycopg2://u:secret@h:5432/db", "postgresql+psycopg2://u@h:5432/db");
	check_pg("postgresql://u:secret@h/db?sslmode=require", NULL);

	/* a URL without a password is shown as given */
	CHECK(afs_target_set_database(&t, "postgresql://u@h/db", msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_POSTGRESQL && eq(t.display_url, "postgresql://u@h/db"));
	afs_target_release(&t);

	/* refusals leave t unchanged and never repeat the password */
	CHECK(afs_target_set_database(&t, "sqlite:////abs/keep.db", msg, sizeof(msg)) == AFS_OK);
	msg[0] = '\0';
	CHECK(afs_target_set_database(&t, "mysql://u:pw@h/db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(msg[0] != '\0' && !has(msg, "pw"));
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, "/abs/keep.db") && eq(t.url, "sqlite:////abs/keep.db"));
	msg[0] = '\0';
	CHECK(afs_target_set_database(&t, "sqlite:///", msg, sizeof(msg)) != AFS_OK);
	CHECK(msg[0] != '\0');
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, "/abs/keep.db"));
	msg[0] = '\0';
	CHECK(afs_target_set_database(&t, "", msg, sizeof(msg)) == AFS_E_INVAL && msg[0] != '\0');
	CHECK(afs_target_set_database(&t, "/just/a/path.db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(afs_target_set_database(&t, "sqlite://x.db", msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(eq(t.url, "sqlite:////abs/keep.db"));
	/* replacing one database with another */
	CHECK(afs_target_set_database(&t, "postgresql://u:secret@h/db", msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_POSTGRESQL && t.db_path == NULL && !has(t.display_url, "secret"));
	afs_target_release(&t);

	/* ------------------------------------------------ paths */
	char *field = NULL;
	CHECK(afs_target_set_path(&field, "/a/b") == AFS_OK && eq(field, "/a/b"));
	snprintf(want, sizeof(want), "%s/up", cwd);
	CHECK(afs_target_set_path(&field, "up") == AFS_OK && eq(field, want));
	free(field);

	/* ------------------------------------------------ options */
	CHECK(unsetenv("DATABASE_URL") == 0 && unsetenv("UPLOAD_FOLDER") == 0);
	snprintf(path, sizeof(path), "%s/up", tmp);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(dbpath, sizeof(dbpath), "sqlite:///%s/app.db", tmp);

	memset(&o, 0, sizeof(o));
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_UNKNOWN && t.url == NULL && t.uploads == NULL);
	CHECK(t.lock_wait == AFS_LOCK_WAIT_DEFAULT);
	CHECK(!t.no_snapshot && !t.terminate_blockers);
	CHECK(!afs_target_configured(&t));
	afs_target_release(&t);

	o.no_snapshot = true;
	o.terminate_blockers = true;
	o.lock_wait = "5";
	o.database = dbpath;
	o.uploads = path;
	o.migrate = "flask db upgrade";
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.lock_wait == 5 && t.no_snapshot && t.terminate_blockers);
	snprintf(want, sizeof(want), "%s/app.db", tmp);
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, want));
	CHECK(eq(t.uploads, path) && eq(t.migrate, "flask db upgrade"));
	CHECK(afs_target_configured(&t));
	afs_target_release(&t);

	o.lock_wait = "0";
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK && t.lock_wait == 0);
	afs_target_release(&t);

	const char *bad_waits[] = { "x", "-1", "", "5s", "1e3", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(bad_waits) / sizeof(bad_waits[0]); i++) {
		o.lock_wait = bad_waits[i];
		refused(&o, "--lock-wait", NULL);
	}
	o.lock_wait = NULL;

	/* the uploads tree only: configured, no database */
	memset(&o, 0, sizeof(o));
	o.uploads = "up"; /* relative, the current directory is tmp */
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	snprintf(want, sizeof(want), "%s/up", cwd);
	CHECK(t.kind == AFS_DB_UNKNOWN && eq(t.uploads, want) && afs_target_configured(&t));
	afs_target_release(&t);
	CHECK(!afs_target_configured(&t));

	o.uploads = "/no/such/uploads-dir";
	refused(&o, "--uploads", NULL);
	snprintf(want, sizeof(want), "%s/app.db", tmp); /* a file, not a directory */
	tu_file("app.db", "", 0);
	o.uploads = want;
	refused(&o, "--uploads", NULL);

	memset(&o, 0, sizeof(o));
	o.migrate = "flask db upgrade";
	refused(&o, "--migrate", NULL);
	o.uploads = path; /* an uploads tree does not make a database */
	refused(&o, "--migrate", NULL);

	memset(&o, 0, sizeof(o));
	o.database = "sqlite:////no/such/dir/app.db";
	refused(&o, "--database", NULL);
	o.database = "mysql://u:pw@h/db";
	refused(&o, "--database", "pw");
	o.database = dbpath;
	o.uploads = path;
	o.flag_file = "/no/such/dir/restore.flag";
	refused(&o, "--flag-file", NULL);
	o.flag_file = NULL;
	o.snapshot_dir = "/no/such/dir";
	refused(&o, "--snapshot-dir", NULL);
	o.snapshot_dir = tmp;
	o.flag_file = "restore.flag";
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	snprintf(want, sizeof(want), "%s/restore.flag", cwd);
	CHECK(eq(t.flag_file, want) && eq(t.snapshot_dir, tmp));
	afs_target_release(&t);

	/* --create: kept, and meaningless without a database */
	memset(&o, 0, sizeof(o));
	o.database = dbpath;
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK && !t.create);
	afs_target_release(&t);
	o.create = true;
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK && t.create);
	afs_target_release(&t);
	o.database = NULL;
	o.uploads = path;
	refused(&o, "--create", NULL);
	/* a relative SQLite URL is refused before anything is mounted */
	memset(&o, 0, sizeof(o));
	o.database = "sqlite:///app.db";
	refused(&o, "--database", NULL);
	refused(&o, "sqlite:////", NULL);

	/* ------------------------------------------------ the environment */
	memset(&o, 0, sizeof(o));
	CHECK(setenv("DATABASE_URL", "sqlite:////tmp/x.db", 1) == 0);
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, "/tmp/x.db") && afs_target_configured(&t));
	afs_target_release(&t);
	o.migrate = "true"; /* the environment's database counts for --migrate */
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK && eq(t.migrate, "true"));
	afs_target_release(&t);
	o.migrate = NULL;

	o.database = dbpath; /* the option beats the environment */
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	snprintf(want, sizeof(want), "%s/app.db", tmp);
	CHECK(t.kind == AFS_DB_SQLITE && eq(t.db_path, want));
	afs_target_release(&t);
	o.database = NULL;

	CHECK(setenv("DATABASE_URL", "", 1) == 0); /* empty counts as unset */
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_UNKNOWN && t.url == NULL && !afs_target_configured(&t));
	afs_target_release(&t);
	o.migrate = "true";
	refused(&o, "--migrate", NULL);
	o.migrate = NULL;

	CHECK(setenv("DATABASE_URL", "postgresql://u:secret@h/db", 1) == 0);
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.kind == AFS_DB_POSTGRESQL && !has(t.display_url, "secret"));
	afs_target_release(&t);
	CHECK(setenv("DATABASE_URL", "mysql://u:pw@h/db", 1) == 0);
	refused(&o, "--database", "pw");
	CHECK(setenv("DATABASE_URL", "sqlite:///app.db", 1) == 0); /* as a Flask app's .env often has it */
	refused(&o, "$DATABASE_URL", NULL);
	refused(&o, "sqlite:////", NULL);
	CHECK(unsetenv("DATABASE_URL") == 0);

	CHECK(setenv("UPLOAD_FOLDER", path, 1) == 0);
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(eq(t.uploads, path) && afs_target_configured(&t));
	afs_target_release(&t);
	o.uploads = "/no/such/uploads-dir"; /* the option beats the environment */
	refused(&o, "--uploads", NULL);
	o.uploads = NULL;
	CHECK(setenv("UPLOAD_FOLDER", "", 1) == 0);
	CHECK(afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK);
	CHECK(t.uploads == NULL && !afs_target_configured(&t));
	afs_target_release(&t);
	CHECK(unsetenv("UPLOAD_FOLDER") == 0);

	test_create_file(tmp);
	test_masking();

	CHECK(chdir("/") == 0); /* so that the temp dir can go */
	return tu_done("target");
}
