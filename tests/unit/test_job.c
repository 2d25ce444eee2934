/* SPDX-License-Identifier: MIT */
/* Unit tests of the restore job (restore/job.c, restore/pipeline.c): its
 * state machine, cancel, refusals and the rollback from the snapshot,
 * driven through the public API against a scripted fake database backend
 * (no SQLite, no PostgreSQL).
 *
 * The fake keeps its "live database" in the target's db_path file: verify
 * reads the dump entry of the job's current archive, restore writes those
 * bytes over the live file, snapshot copies the live file.  So a restore
 * leaves the archive's bytes in the file, and a rollback (which verifies
 * and restores the snapshot's dump) puts the old bytes back: the test
 * checks real files, not only the calls.
 *
 * Thread safety: the fake's calls run on the job's thread; everything the
 * test reads of the fake is under F.mu.  A restore() told to block waits on
 * F.cv until the test releases it; the test waits for that with a bounded
 * pthread_cond_timedwait, never a sleep. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "backend.h"
#include "index.h"
#include "job.h"
#include "stream.h"
#include "target.h"
#include "testutil.h"

#define WAIT_BOUND_S 30 /* how long the test waits for the job to reach restore() */
#define WATCHDOG_S 90   /* an engine that hangs (a join on a blocked run) fails the test, before meson's timeout */

/* ------------------------------------------------------------ fixture */

static const char DUMP[] = "archive database bytes: the restored content\n"; /* db.sqlite in the archive */
static const char LIVE_DB[] = "live database bytes: before the restore\n";
static const char ARC_A[] = "a.txt from the archive\n";
static const char ARC_B[] = "new/b.txt from the archive\n";
static const char LIVE_A[] = "live a.txt, older\n";
static const char LIVE_KEEP[] = "keep.txt: not in the archive\n";
static const char MANIFEST[] = "{\"db_type\": \"sqlite\", \"alembic_revision\": \"abc123\"}";

static const char *archive_path;

/* ---------------------------------------------------------- the fake */

enum block { NO_BLOCK, BLOCK_BEFORE_COMMIT, BLOCK_AFTER_COMMIT };

#define MAX_CALLS 64

static struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* the script of a case */
	const char *fail_at; /* the call that fails ... */
	int fail_nth;        /* ... the nth time it is made (1: the first) */
	bool commit_first;   /* restore: commit, then fail */
	enum block block;    /* the first restore() waits for release_restore() */
	const char *live;    /* the live database file (the target's db_path) */
	/* what happened */
	char calls[MAX_CALLS][40];
	size_t ncalls;
	bool blocked, go;
	int nstates, nreleased, nbad_release;
	bool committed_in_restore; /* restore() called afs_job_committed() */
	char rollback_dump[256];   /* what the second verify() read */
} F = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

#define STATE_MAGIC 0x4a4f42u

struct fstate {
	unsigned magic;
	unsigned char *dump;
	size_t len;
};

static void fake_reset(const char *live)
{
	pthread_mutex_lock(&F.mu);
	F.fail_at = NULL;
	F.fail_nth = 1;
	F.commit_first = false;
	F.block = NO_BLOCK;
	F.live = live;
	F.ncalls = 0;
	F.blocked = F.go = false;
	F.nstates = F.nreleased = F.nbad_release = 0;
	F.committed_in_restore = false;
	F.rollback_dump[0] = '\0';
	pthread_mutex_unlock(&F.mu);
}

/* Records a call; returns how many times a call of this name was made
 * (this one included).  "flag_off:done" counts as "flag_off". */
static int record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int record(const char *fmt, ...)
{
	char name[40];
	va_list ap;
	int n = 0;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&F.mu);
	if (F.ncalls < MAX_CALLS)
		snprintf(F.calls[F.ncalls++], sizeof(F.calls[0]), "%s", name);
	for (size_t i = 0; i < F.ncalls; i++)
		n += strncmp(F.calls[i], name, strcspn(name, ":")) == 0 &&
		     (F.calls[i][strcspn(name, ":")] == '\0' || F.calls[i][strcspn(name, ":")] == ':');
	pthread_mutex_unlock(&F.mu);
	return n;
}

/* True when the script fails call name on its nth time. */
static bool scripted_failure(const char *name, int nth)
{
	bool fail;

	pthread_mutex_lock(&F.mu);
	fail = F.fail_at && strcmp(F.fail_at, name) == 0 && F.fail_nth == nth;
	pthread_mutex_unlock(&F.mu);
	return fail;
}

/* The calls so far, space-separated (malloc'd). */
static char *calls_text(void)
{
	size_t len = 1;
	char *s;

	pthread_mutex_lock(&F.mu);
	for (size_t i = 0; i < F.ncalls; i++)
		len += strlen(F.calls[i]) + 1;
	s = calloc(1, len);
	for (size_t i = 0; s && i < F.ncalls; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, F.calls[i]);
	}
	pthread_mutex_unlock(&F.mu);
	return s;
}

/* How many calls named name (with any ":outcome") were made. */
static int ncalls(const char *name)
{
	size_t l = strlen(name);
	int n = 0;

	pthread_mutex_lock(&F.mu);
	for (size_t i = 0; i < F.ncalls; i++)
		n += strncmp(F.calls[i], name, l) == 0 && (F.calls[i][l] == '\0' || F.calls[i][l] == ':');
	pthread_mutex_unlock(&F.mu);
	return n;
}

#define CHECK_CALLS(want)                                                                        \
	do {                                                                                     \
		char *got_ = calls_text();                                                       \
		if (!got_ || strcmp(got_, want) != 0) {                                          \
			fprintf(stderr, "%s:%d: calls\n  got:  %s\n  want: %s\n", __FILE__, __LINE__, \
				got_ ? got_ : "(null)", want);                                   \
			tu_failures++;                                                           \
		}                                                                                \
		free(got_);                                                                      \
	} while (0)

/* Blocks the job's thread until the test calls release_restore(). */
static void block_here(void)
{
	pthread_mutex_lock(&F.mu);
	F.blocked = true;
	pthread_cond_broadcast(&F.cv);
	while (!F.go)
		pthread_cond_wait(&F.cv, &F.mu);
	F.blocked = false;
	pthread_mutex_unlock(&F.mu);
}

/* Waits (at most WAIT_BOUND_S) until restore() blocks; false on timeout. */
static bool wait_blocked(void)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_BOUND_S;
	pthread_mutex_lock(&F.mu);
	while (!F.blocked && !F.go)
		if (pthread_cond_timedwait(&F.cv, &F.mu, &until) == ETIMEDOUT)
			break;
	ok = F.blocked;
	pthread_mutex_unlock(&F.mu);
	if (!ok)
		fprintf(stderr, "the job did not reach restore() within %d s\n", WAIT_BOUND_S);
	return ok;
}

static void release_restore(void)
{
	pthread_mutex_lock(&F.mu);
	F.go = true;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static bool write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(data, 1, len, f) == len;

	if (f && fclose(f) != 0)
		ok = false;
	return ok;
}

/* The whole file at path (malloc'd, NUL-terminated), or NULL. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		char *grown;

		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			grown = realloc(buf, cap);
			if (!grown) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = grown;
		}
		got = fread(buf + n, 1, 4096, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static enum afs_err fk_inspect(struct afs_job *j, struct afs_db_info *info, char *msg, size_t msglen)
{
	struct stat st;

	(void)j;
	record("inspect");
	if (scripted_failure("inspect", ncalls("inspect"))) {
		snprintf(msg, msglen, "fake: the database cannot be looked at");
		return AFS_E_IO;
	}
	info->exists = stat(F.live, &st) == 0;
	info->size = info->exists ? (uint64_t)st.st_size : 0;
	info->name = strdup(F.live);
	info->revision = NULL;
	return info->name ? AFS_OK : AFS_E_NOMEM;
}

/* Reads the dump of the job's current archive (the snapshot's in a
 * rollback) into a new state. */
static enum afs_err fk_verify(struct afs_job *j, uint32_t dump, void **state)
{
	int n = record("verify");
	const struct afs_index *ix = afs_job_index(j);
	struct fstate *s = calloc(1, sizeof(*s));
	struct afs_stream *st = NULL;
	enum afs_err err;
	size_t got = 0;
	uint64_t size;

	if (!s)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	s->magic = STATE_MAGIC;
	pthread_mutex_lock(&F.mu);
	F.nstates++;
	pthread_mutex_unlock(&F.mu);
	*state = s; /* also on error: release() frees it */
	if (dump == AFS_NONE || !S_ISREG(afs_index_node(ix, dump)->mode))
		return afs_job_fail(j, AFS_E_CORRUPT, "fake: verify got no dump");
	size = afs_index_node(ix, dump)->size;
	s->dump = malloc(size + 1);
	if (!s->dump)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	err = afs_stream_open(afs_job_archive(j), ix, dump, &st);
	if (err == AFS_OK)
		err = afs_stream_pread(st, s->dump, size, 0, &got);
	afs_stream_close(st);
	if (err != AFS_OK || got != size)
		return afs_job_fail(j, err != AFS_OK ? err : AFS_E_IO, "fake: the dump cannot be read");
	s->len = got;
	afs_job_advance(j, got);
	if (n == 2) {
		pthread_mutex_lock(&F.mu);
		snprintf(F.rollback_dump, sizeof(F.rollback_dump), "%.*s", (int)got, (const char *)s->dump);
		pthread_mutex_unlock(&F.mu);
	}
	if (scripted_failure("verify", n))
		return afs_job_fail(j, AFS_E_CORRUPT, "fake: the dump fails its integrity check");
	return AFS_OK;
}

static enum afs_err fk_create(struct afs_job *j, void *state)
{
	(void)state;
	record("create");
	if (!write_file(F.live, "", 0))
		return afs_job_fail(j, AFS_E_IO, "fake: cannot create %s", F.live);
	return AFS_OK;
}

static void fk_discard(struct afs_job *j, void *state)
{
	(void)j;
	(void)state;
	record("discard");
	unlink(F.live);
}

static enum afs_err fk_snapshot(struct afs_job *j, void *state, const char *path)
{
	size_t len = 0;
	char *live;
	bool ok;

	(void)state;
	record("snapshot");
	live = read_file(F.live, &len);
	if (!live || len == 0) { /* missing, or just created empty */
		free(live);
		return AFS_E_NOENT;
	}
	ok = write_file(path, live, len);
	free(live);
	return ok ? AFS_OK : afs_job_fail(j, AFS_E_IO, "fake: cannot write the snapshot copy %s", path);
}

static enum afs_err fk_restore(struct afs_job *j, void *state)
{
	struct fstate *s = state;
	int n = record("restore");
	bool fail = scripted_failure("restore", n);
	enum block block;

	pthread_mutex_lock(&F.mu);
	block = n == 1 ? F.block : NO_BLOCK;
	pthread_mutex_unlock(&F.mu);
	if (block == BLOCK_BEFORE_COMMIT)
		block_here();
	if (afs_job_cancelled(j))
		return AFS_E_CANCELLED; /* as the real backends: the transaction is rolled back, no error text */
	if (fail && !F.commit_first)
		return afs_job_fail(j, AFS_E_IO, "fake: restore failed before its commit");
	if (!s || s->magic != STATE_MAGIC || !write_file(F.live, s->dump, s->len))
		return afs_job_fail(j, AFS_E_IO, "fake: cannot write the live database");
	afs_job_advance(j, s->len);
	afs_job_committed(j);
	pthread_mutex_lock(&F.mu);
	F.committed_in_restore = true;
	pthread_mutex_unlock(&F.mu);
	if (block == BLOCK_AFTER_COMMIT)
		block_here();
	if (fail)
		return afs_job_fail(j, AFS_E_IO, "fake: restore failed after its commit");
	return AFS_OK;
}

static enum afs_err fk_revision(struct afs_job *j, void *state, char **rev)
{
	(void)j;
	(void)state;
	record("revision");
	*rev = strdup("livehead");
	return *rev ? AFS_OK : AFS_E_NOMEM;
}

static void fk_release(void *state)
{
	struct fstate *s = state;

	if (!s)
		return;
	record("release");
	pthread_mutex_lock(&F.mu);
	if (s->magic != STATE_MAGIC)
		F.nbad_release++;
	F.nreleased++;
	pthread_mutex_unlock(&F.mu);
	s->magic = 0;
	free(s->dump);
	free(s);
}

static enum afs_err fk_flag_on(struct afs_job *j, void *state)
{
	(void)state;
	if (scripted_failure("flag_on", record("flag_on")))
		return afs_job_fail(j, AFS_E_BUSY, "fake: another restore holds the flag");
	return AFS_OK;
}

static void fk_flag_off(struct afs_job *j, void *state, const char *outcome)
{
	(void)j;
	(void)state;
	record("flag_off:%s", outcome);
}

static const struct afs_db_backend fake = {
	.name = "fake",
	.kind = AFS_DB_SQLITE,
	.dump_name = "db.sqlite",
	.inspect = fk_inspect,
	.verify = fk_verify,
	.create = fk_create,
	.discard = fk_discard,
	.snapshot = fk_snapshot,
	.restore = fk_restore,
	.revision = fk_revision,
	.release = fk_release,
	.flag_on = fk_flag_on,
	.flag_off = fk_flag_off,
};

static const struct afs_db_backend *const backends[] = { &fake, NULL };

/* ------------------------------------------------------------ a case */

struct tcase {
	char dir[256], db[300], up[300], snaps[300], flag[300], url[320];
	struct afs_target t;
	struct afs_archive *a;
	struct afs_index *ix;
	struct afs_job *j;
};

static void must(bool ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(2);
	}
}

static void put(const char *dir, const char *rel, const char *text)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	must(write_file(p, text, strlen(text)), p);
}

/* A fresh target under TMP/name: the live database (unless missing), an
 * uploads tree with a.txt (older than the archive's) and keep.txt (not in
 * the archive), an empty snapshot directory and a flag file path; then the
 * job.  opts may set migrate, no_snapshot and create. */
static void setup(struct tcase *c, const char *name, const struct afs_target_opts *extra, bool db_exists)
{
	struct afs_target_opts o = { 0 };
	char msg[512] = "";

	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s/%s", tu_tmpdir(), name);
	snprintf(c->db, sizeof(c->db), "%s/app.db", c->dir);
	snprintf(c->up, sizeof(c->up), "%s/uploads", c->dir);
	snprintf(c->snaps, sizeof(c->snaps), "%s/snaps", c->dir);
	snprintf(c->flag, sizeof(c->flag), "%s/restore.flag", c->dir);
	snprintf(c->url, sizeof(c->url), "sqlite:///%s", c->db); /* four slashes: an absolute path */
	must(mkdir(c->dir, 0755) == 0, c->dir);
	must(mkdir(c->up, 0755) == 0, c->up);
	must(mkdir(c->snaps, 0755) == 0, c->snaps);
	if (db_exists)
		must(write_file(c->db, LIVE_DB, strlen(LIVE_DB)), c->db);
	put(c->up, "a.txt", LIVE_A);
	put(c->up, "keep.txt", LIVE_KEEP);
	if (extra)
		o = *extra;
	o.database = c->url;
	o.uploads = c->up;
	o.snapshot_dir = c->snaps;
	o.flag_file = c->flag;
	if (afs_target_from_options(&o, &c->t, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "target of %s: %s\n", name, msg);
		exit(2);
	}
	CHECK(c->t.kind == AFS_DB_SQLITE && c->t.db_path && strcmp(c->t.db_path, c->db) == 0);
	c->t.backends = backends;
	if (afs_archive_open(archive_path, &c->a, msg, sizeof(msg)) != AFS_OK ||
	    afs_index_build(c->a, &c->ix, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "fixture %s: %s\n", archive_path, msg);
		exit(2);
	}
	must(afs_job_new(archive_path, c->a, c->ix, &c->t, &c->j) == AFS_OK, "afs_job_new");
	fake_reset(c->db);
}

static void teardown(struct tcase *c)
{
	release_restore(); /* never leave the job's thread waiting */
	afs_job_free(c->j);
	afs_index_free(c->ix);
	afs_archive_free(c->a);
	afs_target_release(&c->t);
}

/* 1 when dir/rel holds exactly text. */
static int holds(const char *dir, const char *rel, const char *text)
{
	char p[600], *got;
	size_t len = 0;
	int ok;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	got = read_file(p, &len);
	ok = got && len == strlen(text) && memcmp(got, text, len) == 0;
	free(got);
	return ok;
}

static int present(const char *dir, const char *rel)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

/* Entries of dir whose name starts with prefix; the last one's path in
 * last (when not NULL). */
static int count_prefixed(const char *dir, const char *prefix, char *last, size_t lastlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (last)
			snprintf(last, lastlen, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	return n;
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
	return count_prefixed(dir, "", NULL, 0) - 2;
}

/* The live target exactly as setup() left it: database, uploads, no
 * snapshot, no flag file, no stray temporary file. */
static void check_unchanged(struct tcase *c, bool db_exists)
{
	if (db_exists)
		CHECK(holds(c->dir, "app.db", LIVE_DB));
	else
		CHECK(!present(c->dir, "app.db"));
	CHECK(holds(c->up, "a.txt", LIVE_A));
	CHECK(holds(c->up, "keep.txt", LIVE_KEEP));
	CHECK(!present(c->up, "new"));
	CHECK(count_entries(c->up) == 2);
	CHECK(count_entries(c->snaps) == 0);
	CHECK(!present(c->dir, "restore.flag"));
	CHECK(count_prefixed(c->dir, ".", NULL, 0) == 2); /* . and .. only: no staged or temporary file */
}

static int has(const char *s, const char *part)
{
	return s && strstr(s, part) != NULL;
}

/* afs_job_error() contains part. */
static void check_error(struct afs_job *j, const char *part)
{
	char *e = afs_job_error(j);

	if (!has(e, part)) {
		fprintf(stderr, "error '%s' does not contain '%s'\n", e ? e : "(null)", part);
		CHECK(has(e, part));
	}
	free(e);
}

static void check_state(struct afs_job *j, enum afs_state want, bool hundred)
{
	enum afs_state st;
	unsigned pct = 0;

	afs_job_peek(j, &st, &pct);
	if (st != want)
		fprintf(stderr, "state %s, want %s\n", afs_state_name(st), afs_state_name(want));
	CHECK(st == want);
	CHECK(hundred ? pct == 100 : pct < 100);
	CHECK(!afs_job_in_progress(j));
}

static void check_states_released(int n)
{
	pthread_mutex_lock(&F.mu);
	if (F.nstates != n || F.nreleased != n)
		fprintf(stderr, "fake states: %d made, %d released, want %d\n", F.nstates, F.nreleased, n);
	CHECK(F.nstates == n && F.nreleased == n && F.nbad_release == 0);
	pthread_mutex_unlock(&F.mu);
}

/* Starts cmd, expecting it accepted. */
static void start(struct tcase *c, enum afs_cmd cmd)
{
	char msg[256] = "";

	CHECK(afs_job_command(c->j, cmd, msg, sizeof(msg)) == AFS_OK);
	CHECK(has(msg, "started"));
}

/* --------------------------------------------------------------- cases */

/* The job reports no error. */
static void check_no_error(struct afs_job *j)
{
	char *e = afs_job_error(j);

	CHECK(e == NULL);
	free(e);
}

/* 1. verify: the backend verifies, nothing is written. */
static void case_verify(void)
{
	struct tcase c;

	setup(&c, "verify", NULL, true);
	start(&c, AFS_CMD_VERIFY);
	CHECK(afs_job_wait(c.j) == AFS_ST_DONE);
	check_state(c.j, AFS_ST_DONE, true);
	CHECK(ncalls("verify") == 1);
	CHECK(ncalls("restore") == 0 && ncalls("snapshot") == 0 && ncalls("flag_on") == 0 &&
	      ncalls("create") == 0 && ncalls("revision") == 0 && ncalls("discard") == 0);
	CHECK(ncalls("release") == 1);
	check_states_released(1);
	check_unchanged(&c, true);
	check_no_error(c.j);
	teardown(&c);
}

/* 1b. verify fails (the fake finds the dump bad): failed, nothing written,
 * the state verify left is released. */
static void case_verify_fails(void)
{
	struct tcase c;

	setup(&c, "verify-fails", NULL, true);
	F.fail_at = "verify";
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_state(c.j, AFS_ST_FAILED, false);
	check_error(c.j, "fake: the dump fails its integrity check");
	CHECK(ncalls("flag_on") == 0 && ncalls("snapshot") == 0 && ncalls("restore") == 0);
	CHECK(ncalls("release") == 1);
	check_states_released(1);
	check_unchanged(&c, true);
	teardown(&c);
}

/* The snapshot the last run left in c->snaps holds the live database and
 * the live a.txt as they were before it, and names new/b.txt as created. */
static void check_snapshot(struct tcase *c)
{
	char path[600] = "", msg[256] = "", *status;
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	uint32_t id;

	CHECK(count_prefixed(c->snaps, "archfs_pre_restore_", path, sizeof(path)) == 1);
	CHECK(count_entries(c->snaps) == 1); /* no temporary copy left beside it */
	CHECK(strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".zip") == 0);
	status = afs_job_status_json(c->j);
	CHECK(has(status, path));
	free(status);
	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(a && afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK);
	if (ix) {
		struct {
			const char *path, *want;
		} want[] = { { "/db.sqlite", LIVE_DB }, { "/uploads/a.txt", LIVE_A }, { "/manifest.json", "new" } };

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			struct afs_stream *s = NULL;
			char buf[1024] = "";
			size_t got = 0;

			CHECK(afs_index_lookup(ix, want[i].path, &id) == AFS_OK);
			if (afs_index_lookup(ix, want[i].path, &id) != AFS_OK)
				continue;
			CHECK(afs_stream_open(a, ix, id, &s) == AFS_OK);
			CHECK(s && afs_stream_pread(s, buf, sizeof(buf) - 1, 0, &got) == AFS_OK);
			afs_stream_close(s);
			if (i < 2)
				CHECK(got == strlen(want[i].want) && memcmp(buf, want[i].want, got) == 0);
			else
				CHECK(has(buf, "\"new\"") || has(buf, "new/b.txt")); /* what the merge creates */
		}
		CHECK(afs_index_lookup(ix, "/uploads/keep.txt", &id) != AFS_OK); /* not overwritten: not kept */
	}
	afs_index_free(ix);
	afs_archive_free(a);
}

/* 2. restore, all OK. */
static void case_restore_ok(void)
{
	struct tcase c;
	char *line;

	setup(&c, "restore-ok", NULL, true);
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_DONE);
	check_state(c.j, AFS_ST_DONE, true);
	line = afs_job_progress_line(c.j);
	CHECK(line && strcmp(line, "100 done\n") == 0);
	free(line);
	/* docs/restore.md's steps: inspect the target, verify, flag, snapshot
	 * (the database copy, then its revision for the snapshot's manifest),
	 * the database, then the end: flag off, release, the target looked at
	 * again ("target now") */
	CHECK_CALLS("inspect verify flag_on snapshot revision restore flag_off:done release inspect");
	check_states_released(1);
	CHECK(holds(c.dir, "app.db", DUMP));
	CHECK(holds(c.up, "a.txt", ARC_A));
	CHECK(holds(c.up, "new/b.txt", ARC_B));
	CHECK(holds(c.up, "keep.txt", LIVE_KEEP));
	CHECK(!present(c.dir, "restore.flag"));
	check_snapshot(&c);
	check_no_error(c.j);
	teardown(&c);
}

/* 3. the database step fails before its commit: nothing changed. */
static void case_fail_before_commit(void)
{
	struct tcase c;

	setup(&c, "fail-before-commit", NULL, true);
	F.fail_at = "restore";
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_state(c.j, AFS_ST_FAILED, false);
	check_error(c.j, "fake: restore failed before its commit");
	/* no rollback (nothing was committed), no "target now" */
	CHECK_CALLS("inspect verify flag_on snapshot revision restore flag_off:failed release");
	check_states_released(1);
	check_unchanged(&c, true); /* also: the snapshot, which undoes nothing, is removed */
	teardown(&c);
}

/* 4. cancel while restore() runs before its commit. */
static void case_cancel(void)
{
	struct tcase c;
	enum afs_state st;
	unsigned pct;
	char msg[256] = "";

	setup(&c, "cancel", NULL, true);
	F.block = BLOCK_BEFORE_COMMIT;
	start(&c, AFS_CMD_RESTORE);
	if (wait_blocked()) {
		afs_job_peek(c.j, &st, &pct);
		CHECK(st == AFS_ST_DATABASE && pct < 100);
		CHECK(afs_job_in_progress(c.j));
		CHECK(present(c.dir, "restore.flag")); /* section 2: everyone can see it */
		CHECK(count_prefixed(c.snaps, "archfs_pre_restore_", NULL, 0) == 1);
		CHECK(afs_job_command(c.j, AFS_CMD_CANCEL, msg, sizeof(msg)) == AFS_OK);
		CHECK(has(msg, "cancel accepted"));
	} else {
		CHECK(!"restore() reached");
	}
	release_restore();
	CHECK(afs_job_wait(c.j) == AFS_ST_CANCELLED);
	check_state(c.j, AFS_ST_CANCELLED, false);
	check_error(c.j, "cancelled");
	CHECK_CALLS("inspect verify flag_on snapshot revision restore flag_off:cancelled release");
	check_states_released(1);
	check_unchanged(&c, true);
	/* nothing runs any more: a second cancel has nothing to cancel */
	CHECK(afs_job_command(c.j, AFS_CMD_CANCEL, msg, sizeof(msg)) == AFS_E_INVAL);
	CHECK(has(msg, "no restore is running"));
	teardown(&c);
}

/* 5. cancel after the commit is refused, and the restore carries on. */
static void case_cancel_after_commit(void)
{
	struct tcase c;
	char msg[256] = "";

	setup(&c, "cancel-after-commit", NULL, true);
	F.block = BLOCK_AFTER_COMMIT;
	start(&c, AFS_CMD_RESTORE);
	if (wait_blocked()) {
		CHECK(afs_job_command(c.j, AFS_CMD_CANCEL, msg, sizeof(msg)) == AFS_E_BUSY);
		CHECK(has(msg, "committed"));
		check_error(c.j, "committed"); /* the refusal is in .status error */
	} else {
		CHECK(!"restore() reached");
	}
	release_restore();
	CHECK(afs_job_wait(c.j) == AFS_ST_DONE);
	check_state(c.j, AFS_ST_DONE, true);
	CHECK_CALLS("inspect verify flag_on snapshot revision restore flag_off:done release inspect");
	check_states_released(1);
	CHECK(holds(c.dir, "app.db", DUMP));
	CHECK(holds(c.up, "a.txt", ARC_A) && holds(c.up, "new/b.txt", ARC_B));
	teardown(&c);
}

/* The target back as it was after a rollback: the old database, a.txt's old
 * content, new/ removed; the snapshot stays (the target was changed). */
static void check_rolled_back(struct tcase *c)
{
	char *status;

	CHECK(holds(c->dir, "app.db", LIVE_DB));
	CHECK(holds(c->up, "a.txt", LIVE_A));
	CHECK(holds(c->up, "keep.txt", LIVE_KEEP));
	CHECK(!present(c->up, "new/b.txt"));
	CHECK(!present(c->up, "new"));
	CHECK(count_entries(c->up) == 2);
	CHECK(count_prefixed(c->snaps, "archfs_pre_restore_", NULL, 0) == 1);
	CHECK(!present(c->dir, "restore.flag"));
	pthread_mutex_lock(&F.mu);
	CHECK(strcmp(F.rollback_dump, LIVE_DB) == 0); /* the rollback verified the snapshot's database */
	pthread_mutex_unlock(&F.mu);
	status = afs_job_status_json(c->j);
	CHECK(status && !has(status, "rollback of the") && !has(status, "could not") &&
	      !has(status, "rollback failed")); /* a complete rollback warns of nothing */
	free(status);
	status = afs_job_log_text(c->j);
	CHECK(has(status, "rolling back from the snapshot"));
	free(status);
}

/* 6. the migrate command fails after the commit: the rollback puts back
 * the database (the fake verifies and restores the snapshot's dump) and
 * the uploads; the state is failed with the migrate error. */
static void case_rollback_migrate(void)
{
	struct afs_target_opts o = { .migrate = "echo migrating; exit 3" };
	struct tcase c;

	setup(&c, "rollback-migrate", &o, true);
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_state(c.j, AFS_ST_FAILED, false);
	check_error(c.j, "the migrate command exited with status 3");
	check_error(c.j, "migrating");
	CHECK_CALLS("inspect verify flag_on snapshot revision restore verify restore release flag_off:failed release "
		    "inspect");
	check_states_released(2);
	check_rolled_back(&c);
	teardown(&c);
}

/* 6b. the database step fails after its commit: the database is rolled
 * back; the uploads were never touched. */
static void case_rollback_after_commit(void)
{
	struct tcase c;

	setup(&c, "rollback-db", NULL, true);
	F.fail_at = "restore";
	F.commit_first = true;
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_state(c.j, AFS_ST_FAILED, false);
	check_error(c.j, "fake: restore failed after its commit"); /* the first error */
	CHECK_CALLS("inspect verify flag_on snapshot revision restore verify restore release flag_off:failed release "
		    "inspect");
	check_states_released(2);
	check_rolled_back(&c);
	teardown(&c);
}

/* 6c. without a snapshot there is no rollback: failed, a warning, and the
 * target keeps what was restored. */
static void case_no_snapshot(void)
{
	struct afs_target_opts o = { .migrate = "exit 3", .no_snapshot = true };
	struct tcase c;
	char *status;

	setup(&c, "no-snapshot", &o, true);
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_error(c.j, "exited with status 3");
	CHECK_CALLS("inspect verify flag_on restore flag_off:failed release inspect");
	check_states_released(1);
	status = afs_job_status_json(c.j);
	CHECK(has(status, "rollback impossible without a snapshot"));
	free(status);
	CHECK(holds(c.dir, "app.db", DUMP));
	CHECK(holds(c.up, "a.txt", ARC_A) && holds(c.up, "new/b.txt", ARC_B));
	CHECK(count_entries(c.snaps) == 0);
	teardown(&c);
}

/* 7. one restore at a time: a second command on the job, and a second job
 * on the same target, are refused with AFS_E_BUSY while one runs. */
static void case_busy(void)
{
	struct tcase c;
	struct afs_job *other = NULL;
	char msg[256] = "";

	setup(&c, "busy", NULL, true);
	F.block = BLOCK_BEFORE_COMMIT;
	start(&c, AFS_CMD_RESTORE);
	if (wait_blocked()) {
		CHECK(afs_job_command(c.j, AFS_CMD_RESTORE, msg, sizeof(msg)) == AFS_E_BUSY);
		CHECK(has(msg, "already running"));
		check_error(c.j, "already running");
		CHECK(afs_job_command(c.j, AFS_CMD_RESTORE_UPLOADS, msg, sizeof(msg)) == AFS_E_BUSY);
		CHECK(afs_job_command(c.j, AFS_CMD_VERIFY, msg, sizeof(msg)) == AFS_E_BUSY);
		/* another mount of another archive, same target: the flock */
		CHECK(afs_job_new(archive_path, c.a, c.ix, &c.t, &other) == AFS_OK);
		CHECK(afs_job_command(other, AFS_CMD_RESTORE, msg, sizeof(msg)) == AFS_E_BUSY);
		CHECK(has(msg, "another restore"));
		afs_job_free(other);
	} else {
		CHECK(!"restore() reached");
	}
	release_restore();
	CHECK(afs_job_wait(c.j) == AFS_ST_DONE);
	check_state(c.j, AFS_ST_DONE, true);
	/* the refused commands started nothing */
	CHECK_CALLS("inspect verify flag_on snapshot revision restore flag_off:done release inspect");
	check_states_released(1);
	CHECK(holds(c.dir, "app.db", DUMP));
	teardown(&c);
}

/* 8. --create onto a missing database, and the restore fails before its
 * commit: the database create() made is discarded again (section 0). */
static void case_create_discarded(void)
{
	struct afs_target_opts o = { .create = true };
	struct tcase c;

	setup(&c, "create-discard", &o, false);
	F.fail_at = "restore";
	start(&c, AFS_CMD_RESTORE);
	CHECK(afs_job_wait(c.j) == AFS_ST_FAILED);
	check_error(c.j, "fake: restore failed before its commit");
	CHECK_CALLS("inspect verify create flag_on snapshot revision restore flag_off:failed discard release");
	check_states_released(1);
	check_unchanged(&c, false);
	teardown(&c);
}

int main(void)
{
	struct tu_entry e[] = {
		{ "manifest.json", MANIFEST, sizeof(MANIFEST) - 1, 1, S_IFREG | 0644, 1700000000 },
		{ "db.sqlite", DUMP, sizeof(DUMP) - 1, 1, S_IFREG | 0644, 1700000000 },
		{ "settings.json", "{\"theme\": \"dark\"}", 17, 1, S_IFREG | 0644, 1700000000 },
		{ "uploads/a.txt", ARC_A, sizeof(ARC_A) - 1, 1, S_IFREG | 0644, 1700000000 },
		{ "uploads/new/b.txt", ARC_B, sizeof(ARC_B) - 1, 0, S_IFREG | 0644, 1700000000 },
	};

	alarm(WATCHDOG_S); /* SIGALRM's default action ends the process: a failure, not a hang */
	archive_path = tu_zip("backup.zip", e, sizeof(e) / sizeof(e[0]));
	case_verify();
	case_verify_fails();
	case_restore_ok();
	case_fail_before_commit();
	case_cancel();
	case_cancel_after_commit();
	case_rollback_migrate();
	case_rollback_after_commit();
	case_no_snapshot();
	case_busy();
	case_create_discarded();
	return tu_done("job");
}
