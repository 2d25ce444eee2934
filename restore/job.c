/* SPDX-License-Identifier: MIT */
/* The restore job: command handling, state, progress and log (the part
 * every thread sees), and the pipeline itself (the job's own thread). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "backend.h"
#include "index.h"
#include "job.h"
#include "log.h"
#include "manifest.h"
#include "proc.h"
#include "report.h"
#include "snapshot.h"
#include "stream.h"
#include "target.h"
#include "uploads.h"

#define LOG_CAP (1 << 20)     /* .log keeps the newest megabyte */
#define MAX_WARNINGS 64
#define READ_CHUNK (1 << 20)
#define TAIL_LEN 512

/* Phase weights of the progress percentage, renormalised over the phases a
 * command runs: verify reads every byte of the archive, the database and
 * uploads steps write theirs. */
enum { W_VERIFY = 25, W_SNAPSHOT = 15, W_DATABASE = 35, W_UPLOADS = 20, W_MIGRATE = 5 };

struct afs_job {
	pthread_mutex_t cmd_mu;            /* one command at a time */
	pthread_mutex_t mu;
	char *archive_path;
	struct afs_archive *archive;       /* the job's archive */
	const struct afs_index *index;
	struct afs_archive *cur_archive;   /* what the steps read: the snapshot's during a rollback */
	const struct afs_index *cur_index;
	const struct afs_target *target;
	struct afs_manifest manifest;
	char *manifest_error;              /* why manifest.json is unusable, or NULL */
	bool has_manifest;
	void (*on_log)(void *ctx, const char *line);
	void *on_log_ctx;

	/* --- under mu --- */
	enum afs_state state;
	enum afs_cmd command;
	bool running, joinable, cancel, committed, in_progress;
	pthread_t thread;
	unsigned wtotal, wdone, wcur;      /* phase weights: all, finished, current */
	uint64_t phase_total, phase_done;
	unsigned percent;
	char *started_at, *finished_at, *error, *refusal, *snapshot, *dump_info;
	char *warnings[MAX_WARNINGS];
	size_t nwarnings;
	size_t nfixed;                     /* warnings[0..nfixed) outlive a run */
	char *log;
	size_t loglen;

	/* --- the pipeline thread's own --- */
	bool do_db, do_uploads, do_migrate;
	const struct afs_db_backend *backend;
	void *backend_state;
	uint32_t dump;                     /* node of the dump, AFS_NONE if none */
	struct afs_uplan *plan;
	int lock_db, lock_uploads;         /* flock()ed descriptors of the target */
	char *flag_tmp;
};

/* ---------------------------------------------------------------- text */

static void iso_now(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
}

static const char *const state_names[] = {
	[AFS_ST_IDLE] = "idle",         [AFS_ST_VERIFYING] = "verifying", [AFS_ST_SNAPSHOT] = "snapshot",
	[AFS_ST_DATABASE] = "database", [AFS_ST_UPLOADS] = "uploads",     [AFS_ST_MIGRATE] = "migrate",
	[AFS_ST_DONE] = "done",         [AFS_ST_FAILED] = "failed",       [AFS_ST_CANCELLED] = "cancelled",
};

const char *afs_state_name(enum afs_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "unknown";
}

static const char *const cmd_names[] = {
	[AFS_CMD_RESTORE] = "restore",          [AFS_CMD_RESTORE_DATABASE] = "restore database",
	[AFS_CMD_RESTORE_UPLOADS] = "restore uploads", [AFS_CMD_VERIFY] = "verify",
	[AFS_CMD_CANCEL] = "cancel",
};

enum afs_err afs_cmd_parse(const char *text, size_t len, enum afs_cmd *out)
{
	char word[2][16];
	size_t nwords = 0, i = 0;

	while (i < len) {
		size_t n = 0;

		while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
			i++;
		if (i == len)
			break;
		if (nwords == 2)
			return AFS_E_INVAL;
		while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
			if (n + 1 >= sizeof(word[0]) || text[i] == '\0')
				return AFS_E_INVAL;
			word[nwords][n++] = text[i++];
		}
		word[nwords++][n] = '\0';
	}
	for (size_t c = 0; c < sizeof(cmd_names) / sizeof(cmd_names[0]); c++) {
		char joined[40];

		if (nwords == 1)
			snprintf(joined, sizeof(joined), "%s", word[0]);
		else if (nwords == 2)
			snprintf(joined, sizeof(joined), "%s %s", word[0], word[1]);
		else
			return AFS_E_INVAL;
		if (strcmp(joined, cmd_names[c]) == 0) {
			*out = (enum afs_cmd)c;
			return AFS_OK;
		}
	}
	return AFS_E_INVAL;
}

/* ----------------------------------------------------------------- log */

/* Appends "TIMESTAMP line\n" to the log; mu held.  Past LOG_CAP the oldest
 * half is dropped at a line boundary. */
static void log_append_locked(struct afs_job *j, const char *line)
{
	char stamp[32];
	size_t need;
	char *grown;

	iso_now(stamp, sizeof(stamp));
	need = strlen(stamp) + 1 + strlen(line) + 1;
	if (j->loglen + need > LOG_CAP && j->loglen > 0) {
		char *cut = memchr(j->log + j->loglen / 2, '\n', j->loglen - j->loglen / 2);
		size_t drop = cut ? (size_t)(cut - j->log) + 1 : j->loglen;

		memmove(j->log, j->log + drop, j->loglen - drop);
		j->loglen -= drop;
	}
	grown = realloc(j->log, j->loglen + need + 1);
	if (!grown)
		return;
	j->log = grown;
	j->loglen += (size_t)snprintf(j->log + j->loglen, need + 1, "%s %s\n", stamp, line);
}

static void vlog(struct afs_job *j, bool warn, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	pthread_mutex_lock(&j->mu);
	log_append_locked(j, line);
	if (warn && j->nwarnings < MAX_WARNINGS) {
		char *copy = strdup(line);

		if (copy)
			j->warnings[j->nwarnings++] = copy;
	}
	pthread_mutex_unlock(&j->mu);
	afs_log(warn ? AFS_LOG_WARN : AFS_LOG_DEBUG, "%s", line);
	if (j->on_log)
		j->on_log(j->on_log_ctx, line);
}

void afs_job_log(struct afs_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(j, false, fmt, ap);
	va_end(ap);
}

void afs_job_warn(struct afs_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(j, true, fmt, ap);
	va_end(ap);
}

enum afs_err afs_job_fail(struct afs_job *j, enum afs_err err, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;
	bool first;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&j->mu);
	first = j->error == NULL;
	if (first)
		j->error = strdup(reason);
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "error: %s", reason);
	return err;
}

/* ------------------------------------------------------------ progress */

static void set_state(struct afs_job *j, enum afs_state st, unsigned weight)
{
	pthread_mutex_lock(&j->mu);
	j->wdone += j->wcur;
	j->wcur = weight;
	j->phase_total = j->phase_done = 0;
	j->state = st;
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "step: %s", afs_state_name(st));
}

/* Recomputes the percentage; it never goes backwards and stays below 100
 * until the state is done.  mu held. */
static void update_percent_locked(struct afs_job *j)
{
	double part = 0, p;

	if (j->wtotal == 0)
		return;
	if (j->phase_total)
		part = (double)(j->phase_done < j->phase_total ? j->phase_done : j->phase_total) / (double)j->phase_total;
	p = (j->wdone + j->wcur * part) * 100.0 / j->wtotal;
	if (p > 99)
		p = 99;
	if ((unsigned)p > j->percent)
		j->percent = (unsigned)p;
}

void afs_job_phase_bytes(struct afs_job *j, uint64_t total)
{
	pthread_mutex_lock(&j->mu);
	j->phase_total = total;
	j->phase_done = 0;
	pthread_mutex_unlock(&j->mu);
}

void afs_job_advance(struct afs_job *j, uint64_t bytes)
{
	pthread_mutex_lock(&j->mu);
	j->phase_done += bytes;
	update_percent_locked(j);
	pthread_mutex_unlock(&j->mu);
}

bool afs_job_cancelled(struct afs_job *j)
{
	bool c;

	pthread_mutex_lock(&j->mu);
	c = j->cancel;
	pthread_mutex_unlock(&j->mu);
	return c;
}

void afs_job_committed(struct afs_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->committed = true;
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "committed: cancel is refused from now on");
}

unsigned afs_job_test_delay_ms(void)
{
	const char *v = getenv("ARCHFS_TEST_DB_STEP_DELAY_MS");

	return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

const struct afs_target *afs_job_target(const struct afs_job *j) { return j->target; }
struct afs_archive *afs_job_archive(const struct afs_job *j) { return j->cur_archive; }
const struct afs_index *afs_job_index(const struct afs_job *j) { return j->cur_index; }
const char *afs_job_archive_path(const struct afs_job *j) { return j->archive_path; }

void afs_job_on_log(struct afs_job *j, void (*fn)(void *ctx, const char *line), void *ctx)
{
	j->on_log = fn;
	j->on_log_ctx = ctx;
}

/* ----------------------------------------------------- target locking */

/* flock()s path (or, when it does not exist yet, its directory) so that
 * one restore at a time writes into a target, across processes. */
static enum afs_err lock_path(const char *path, bool dir, int *fd, char *msg, size_t msglen)
{
	int f = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));

	if (f < 0 && errno == ENOENT && !dir) {
		char *copy = strdup(path);

		if (!copy)
			return AFS_E_NOMEM;
		f = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(copy);
	}
	if (f < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? AFS_E_NOENT : AFS_E_IO;
	}
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		snprintf(msg, msglen, "another restore into %s is running", path);
		close(f);
		return AFS_E_BUSY;
	}
	*fd = f;
	return AFS_OK;
}

static void unlock_target(struct afs_job *j)
{
	if (j->lock_db >= 0)
		close(j->lock_db);
	if (j->lock_uploads >= 0)
		close(j->lock_uploads);
	j->lock_db = j->lock_uploads = -1;
}

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
	afs_stream_close(s);
	if (err != AFS_OK && err != AFS_E_CANCELLED)
		return afs_job_fail(j, err, "%s in the archive cannot be read: %s", afs_index_path(j->cur_index, id),
				    afs_strerror(err));
	return err;
}

/* Checks every entry's CRC-32 (the dump's is checked as the backend reads
 * it) and that nothing under uploads/ is other than a file or directory. */
static enum afs_err verify_entries(struct afs_job *j, bool backend_reads_dump)
{
	const struct afs_index *ix = j->cur_index;
	uint64_t total = 0, files = 0;
	enum afs_err err = AFS_OK;
	char *buf;

	for (uint32_t id = 1; id < afs_index_count(ix); id++) {
		const struct afs_node *n = afs_index_node(ix, id);
		const char *path = afs_index_path(ix, id);

		if (strncmp(path, "uploads/", 8) == 0 && !S_ISREG(n->mode) && !S_ISDIR(n->mode))
			return afs_job_fail(j, AFS_E_BADNAME, "%s in the archive is a %s: refusing to restore it", path,
					    S_ISLNK(n->mode) ? "symlink" : "special file");
		if (!S_ISDIR(n->mode))
			total += n->size;
	}
	afs_job_phase_bytes(j, total);
	buf = malloc(READ_CHUNK);
	if (!buf)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	for (uint32_t id = 1; id < afs_index_count(ix) && err == AFS_OK; id++) {
		if (S_ISDIR(afs_index_node(ix, id)->mode) || (backend_reads_dump && id == j->dump))
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
		return afs_job_fail(j, AFS_E_IO, "uploads directory %s: %s", j->target->uploads, strerror(errno));
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (have < need)
		return afs_job_fail(j, AFS_E_NOSPC,
				    "not enough disk space for the uploads in %s: %llu MB needed, %llu MB free",
				    j->target->uploads, (unsigned long long)(need >> 20), (unsigned long long)(have >> 20));
	return AFS_OK;
}

/* Step 1: everything is checked, nothing is changed. */
static enum afs_err verify(struct afs_job *j)
{
	const struct afs_target *t = j->target;
	enum afs_db_type kind;
	uint32_t up;
	char msg[512] = "";
	enum afs_err err;

	afs_job_log(j, "verifying %s", j->archive_path);
	if (j->manifest_error)
		return afs_job_fail(j, AFS_E_CORRUPT, "%s", j->manifest_error);
	if (!j->has_manifest)
		afs_job_warn(j, "the archive has no manifest.json: the database file present decides its type");
	kind = archive_db_type(j);
	if (j->command == AFS_CMD_VERIFY && t->kind == AFS_DB_UNKNOWN && j->dump != AFS_NONE &&
	    afs_backend_for(kind)) {
		j->do_db = true; /* no target: still check the dump itself */
		j->backend = afs_backend_for(kind);
	} else if (j->do_db) {
		if (kind == AFS_DB_UNKNOWN || j->dump == AFS_NONE)
			return afs_job_fail(j, AFS_E_CORRUPT, "the archive holds no database (%s)",
					    kind == AFS_DB_SQLITE ? "db.sqlite is missing"
					    : kind == AFS_DB_POSTGRESQL ? "db.dump is missing"
					    : "neither db.sqlite nor db.dump");
		if (kind != t->kind)
			return afs_job_fail(j, AFS_E_INVAL, "the archive holds a %s database but the target is %s",
					    afs_db_type_name(kind), afs_db_type_name(t->kind));
		j->backend = afs_backend_for(kind);
		if (!j->backend)
			return afs_job_fail(j, AFS_E_UNSUPPORTED, "archfs cannot restore %s databases yet",
					    afs_db_type_name(kind));
		if (j->has_manifest && j->manifest.alembic_revision)
			afs_job_log(j, "the archive's database is at Alembic revision %s", j->manifest.alembic_revision);
	}
	if (j->do_uploads) {
		bool undoes = j->has_manifest && j->manifest.ncreated > 0; /* a snapshot removes paths */

		if (!undoes && (afs_index_lookup(j->cur_index, "/uploads", &up) != AFS_OK ||
				!S_ISDIR(afs_index_node(j->cur_index, up)->mode))) {
			if (j->command == AFS_CMD_RESTORE_UPLOADS)
				return afs_job_fail(j, AFS_E_NOENT, "the archive has no uploads/ directory");
			afs_job_log(j, "the archive has no uploads/: the uploads directory is left as it is");
			j->do_uploads = false;
		}
	}
	err = verify_entries(j, j->do_db);
	if (err != AFS_OK)
		return err;
	if (j->do_uploads) {
		err = afs_uploads_plan(j->cur_archive, j->cur_index, t->uploads, &j->plan, msg, sizeof(msg));
		if (err != AFS_OK)
			return afs_job_fail(j, err, "uploads: %s", msg);
		err = check_uploads_space(j);
		if (err != AFS_OK)
			return err;
		afs_job_log(j, "uploads: %zu files replace live ones, %zu new paths, %llu bytes to write",
			    afs_uploads_replaced_count(j->plan), afs_uploads_created_count(j->plan),
			    (unsigned long long)afs_uploads_bytes(j->plan));
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
	char *text = NULL, *tmp = NULL;
	enum afs_err err = AFS_OK;
	int fd = -1;

	pthread_mutex_lock(&j->mu);
	j->in_progress = true;
	text = afs_report_flag((long)getpid(), j->archive_path, j->started_at);
	pthread_mutex_unlock(&j->mu);
	if (!path) {
		free(text);
		return AFS_OK;
	}
	if (!text || asprintf(&tmp, "%s.archfs-XXXXXX", path) < 0) {
		free(text);
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fchmod(fd, 0644) != 0 ||
	    fsync(fd) != 0 || rename(tmp, path) != 0)
		err = afs_job_fail(j, AFS_E_IO, "cannot write the flag file %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (err != AFS_OK && fd >= 0)
		unlink(tmp);
	free(tmp);
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

static void merge_progress(void *ctx, uint64_t bytes)
{
	afs_job_advance(ctx, bytes);
}

/* Merges the uploads of the current archive, then removes the paths its
 * manifest lists as created by the restore it undoes. */
static enum afs_err merge_uploads(struct afs_job *j, const struct afs_uplan *plan,
				  const struct afs_manifest *man)
{
	char msg[512] = "";
	size_t left = 0;
	enum afs_err err;

	afs_job_phase_bytes(j, afs_uploads_bytes(plan));
	err = afs_uploads_merge(plan, j->cur_archive, j->cur_index, merge_progress, j, msg, sizeof(msg));
	if (err != AFS_OK)
		return afs_job_fail(j, err, "uploads: %s", msg);
	if (man && man->ncreated) {
		afs_uploads_remove(j->target->uploads, (const char *const *)man->created, man->ncreated, &left);
		afs_job_log(j, "uploads: removed %zu paths the undone restore had created%s", man->ncreated - left,
			    left ? " (some could not be removed)" : "");
		if (left)
			afs_job_warn(j, "uploads: %zu paths the undone restore created could not be removed", left);
	}
	afs_job_log(j, "uploads merged: %llu bytes written", (unsigned long long)afs_uploads_bytes(plan));
	return AFS_OK;
}

static void migrate_line(void *ctx, const char *line)
{
	afs_job_log(ctx, "migrate: %s", line);
}

static bool never_cancelled(void *ctx)
{
	return false; /* migrate runs after the commit: cancel is refused then */
}

static enum afs_err migrate(struct afs_job *j)
{
	const char *argv[] = { "/bin/sh", "-c", j->target->migrate, NULL };
	char *env_url = NULL, tail[TAIL_LEN] = "";
	const char *env[] = { NULL, NULL };
	struct afs_proc_opts o = { .argv = argv, .setenv = env, .line = migrate_line, .cancelled = never_cancelled,
				   .ctx = j };
	enum afs_err err;
	int status = 0;

	if (asprintf(&env_url, "DATABASE_URL=%s", j->target->url) < 0)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	env[0] = env_url;
	afs_job_log(j, "migrate: running the migrate command");
	err = afs_proc_run(&o, &status, tail, sizeof(tail));
	free(env_url);
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

/* The pipeline of SPEC.md section 5. */
static enum afs_err pipeline(struct afs_job *j)
{
	bool db_changed = false, uploads_changed = false;
	char *snap = NULL;
	enum afs_err err;

	set_state(j, AFS_ST_VERIFYING, W_VERIFY);
	err = verify(j);
	if (err != AFS_OK || j->command == AFS_CMD_VERIFY)
		return err;

	err = raise_flag(j);
	if (err == AFS_OK && j->do_db && j->backend->flag_on)
		err = j->backend->flag_on(j, j->backend_state);
	if (err != AFS_OK)
		return err;
	if (!j->target->no_snapshot) {
		set_state(j, AFS_ST_SNAPSHOT, W_SNAPSHOT);
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

	if (j->do_db) {
		set_state(j, AFS_ST_DATABASE, W_DATABASE);
		err = j->backend->restore(j, j->backend_state);
		pthread_mutex_lock(&j->mu);
		db_changed = j->committed;
		pthread_mutex_unlock(&j->mu);
		if (err != AFS_OK)
			goto fail;
		afs_job_log(j, "database restored");
	}
	if (j->do_uploads) {
		set_state(j, AFS_ST_UPLOADS, W_UPLOADS);
		if (!j->do_db)
			afs_job_committed(j);
		uploads_changed = true;
		err = merge_uploads(j, j->plan, j->has_manifest ? &j->manifest : NULL);
		if (err != AFS_OK)
			goto fail;
	}
	if (j->do_migrate) {
		set_state(j, AFS_ST_MIGRATE, W_MIGRATE);
		err = migrate(j);
		if (err != AFS_OK)
			goto fail;
	}
	return AFS_OK;
fail:
	if (db_changed || uploads_changed)
		rollback(j, db_changed, uploads_changed);
	return err;
}

/* Ends a run: the flag goes, the target is unlocked, the state is final. */
static void finish(struct afs_job *j, enum afs_err err)
{
	enum afs_state st = err == AFS_OK ? AFS_ST_DONE : err == AFS_E_CANCELLED ? AFS_ST_CANCELLED : AFS_ST_FAILED;
	bool nothing_changed;
	char stamp[32];

	if (j->backend && j->backend_state && j->backend->flag_off)
		j->backend->flag_off(j, j->backend_state, afs_state_name(st));
	if (j->backend && j->backend_state)
		j->backend->release(j->backend_state);
	j->backend_state = NULL;
	afs_uploads_plan_free(j->plan);
	j->plan = NULL;
	pthread_mutex_lock(&j->mu);
	nothing_changed = !j->committed;
	if (err == AFS_E_CANCELLED && !j->error)
		j->error = strdup("cancelled: nothing was changed");
	else if (err != AFS_OK && !j->error)
		j->error = strdup(afs_strerror(err));
	pthread_mutex_unlock(&j->mu);
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
	unlock_target(j);
	iso_now(stamp, sizeof(stamp));
	pthread_mutex_lock(&j->mu);
	j->finished_at = strdup(stamp);
	j->in_progress = false;
	j->state = st;
	if (st == AFS_ST_DONE)
		j->percent = 100;
	j->running = false;
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "%s %s", cmd_names[j->command],
		    st == AFS_ST_DONE ? "done" : st == AFS_ST_CANCELLED ? "cancelled" : "failed");
}

static void *run(void *arg)
{
	struct afs_job *j = arg;

	finish(j, pipeline(j));
	return NULL;
}

/* ---------------------------------------------------------- the job */

enum afs_err afs_job_new(const char *archive_path, struct afs_archive *a, const struct afs_index *ix,
			 const struct afs_target *t, struct afs_job **out)
{
	struct afs_job *j = calloc(1, sizeof(*j));
	uint32_t id;

	*out = NULL;
	if (!j)
		return AFS_E_NOMEM;
	j->archive_path = strdup(archive_path);
	if (!j->archive_path) {
		free(j);
		return AFS_E_NOMEM;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_mutex_init(&j->cmd_mu, NULL);
	j->archive = j->cur_archive = a;
	j->index = j->cur_index = ix;
	j->target = t;
	j->lock_db = j->lock_uploads = -1;
	j->dump = AFS_NONE;
	if (afs_index_lookup(ix, "/manifest.json", &id) == AFS_OK && S_ISREG(afs_index_node(ix, id)->mode)) {
		const struct afs_node *n = afs_index_node(ix, id);
		struct afs_stream *s = NULL;
		char msg[256] = "", *text = n->size <= (1 << 20) ? malloc(n->size + 1) : NULL;
		size_t got = 0;
		enum afs_err err = text ? afs_stream_open(a, ix, id, &s) : AFS_E_RANGE;

		if (err == AFS_OK)
			err = afs_stream_pread(s, text, n->size, 0, &got);
		if (err == AFS_OK)
			err = afs_manifest_parse(text, got, &j->manifest, msg, sizeof(msg));
		else
			snprintf(msg, sizeof(msg), "manifest.json cannot be read: %s", afs_strerror(err));
		if (err == AFS_OK)
			j->has_manifest = true;
		else
			j->manifest_error = strdup(msg);
		afs_stream_close(s);
		free(text);
	}
	*out = j;
	return AFS_OK;
}

enum afs_state afs_job_wait(struct afs_job *j)
{
	enum afs_state st;
	bool join;

	pthread_mutex_lock(&j->mu);
	join = j->joinable;
	j->joinable = false;
	pthread_mutex_unlock(&j->mu);
	if (join)
		pthread_join(j->thread, NULL);
	pthread_mutex_lock(&j->mu);
	st = j->state;
	pthread_mutex_unlock(&j->mu);
	return st;
}

static void clear_run_locked(struct afs_job *j)
{
	free(j->started_at);
	free(j->finished_at);
	free(j->error);
	free(j->refusal);
	free(j->snapshot);
	free(j->dump_info);
	j->dump_info = NULL;
	for (size_t i = j->nfixed; i < j->nwarnings; i++)
		free(j->warnings[i]);
	j->started_at = j->finished_at = j->error = j->refusal = j->snapshot = NULL;
	j->nwarnings = j->nfixed;
	j->cancel = j->committed = j->in_progress = false;
	j->wtotal = j->wdone = j->wcur = 0;
	j->phase_total = j->phase_done = 0;
	j->percent = 0;
}

void afs_job_free(struct afs_job *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	if (j->running && !j->committed)
		j->cancel = true;
	pthread_mutex_unlock(&j->mu);
	afs_job_wait(j);
	clear_run_locked(j);
	for (size_t i = 0; i < j->nfixed; i++)
		free(j->warnings[i]);
	afs_manifest_release(&j->manifest);
	free(j->manifest_error);
	free(j->log);
	free(j->archive_path);
	pthread_mutex_destroy(&j->mu);
	pthread_mutex_destroy(&j->cmd_mu);
	free(j);
}

static void record_refusal(struct afs_job *j, const char *reason)
{
	pthread_mutex_lock(&j->mu);
	free(j->refusal);
	j->refusal = strdup(reason);
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "refused: %s", reason);
}

void afs_job_refuse(struct afs_job *j, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	record_refusal(j, reason);
}

/* Records a refused command in .status and .log, with the reason in msg;
 * returns err. */
static enum afs_err refuse(struct afs_job *j, enum afs_err err, char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static enum afs_err refuse(struct afs_job *j, enum afs_err err, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	record_refusal(j, msg);
	return err;
}

void afs_job_note(struct afs_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(j, true, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&j->mu);
	j->nfixed = j->nwarnings;
	pthread_mutex_unlock(&j->mu);
}

void afs_job_set_dump_info(struct afs_job *j, const char *json)
{
	char *copy = strdup(json);

	pthread_mutex_lock(&j->mu);
	free(j->dump_info);
	j->dump_info = copy;
	pthread_mutex_unlock(&j->mu);
}

char *afs_job_error(struct afs_job *j)
{
	char *e;

	pthread_mutex_lock(&j->mu);
	e = j->error ? strdup(j->error) : j->refusal ? strdup(j->refusal) : NULL;
	pthread_mutex_unlock(&j->mu);
	return e;
}

/* Takes the target's locks for a restore that changes what cmd names. */
static enum afs_err lock_target(struct afs_job *j, bool db, bool uploads, char *msg, size_t msglen)
{
	enum afs_err err = AFS_OK;

	if (db && j->target->db_path)
		err = lock_path(j->target->db_path, false, &j->lock_db, msg, msglen);
	if (err == AFS_OK && uploads)
		err = lock_path(j->target->uploads, true, &j->lock_uploads, msg, msglen);
	if (err != AFS_OK)
		unlock_target(j);
	return err;
}

static enum afs_err command_locked(struct afs_job *j, enum afs_cmd cmd, char *msg, size_t msglen);

enum afs_err afs_job_command(struct afs_job *j, enum afs_cmd cmd, char *msg, size_t msglen)
{
	enum afs_err err;

	pthread_mutex_lock(&j->cmd_mu);
	err = command_locked(j, cmd, msg, msglen);
	pthread_mutex_unlock(&j->cmd_mu);
	return err;
}

static enum afs_err command_locked(struct afs_job *j, enum afs_cmd cmd, char *msg, size_t msglen)
{
	const struct afs_target *t = j->target;
	bool running, committed, db, uploads;
	char stamp[32], lmsg[512] = "";
	enum afs_err err;

	pthread_mutex_lock(&j->mu);
	running = j->running;
	committed = j->committed;
	if (cmd == AFS_CMD_CANCEL && running && !committed)
		j->cancel = true;
	pthread_mutex_unlock(&j->mu);
	if (cmd == AFS_CMD_CANCEL) {
		if (!running)
			return refuse(j, AFS_E_INVAL, msg, msglen, "cancel: no restore is running");
		if (committed)
			return refuse(j, AFS_E_BUSY, msg, msglen,
				      "cancel: the database step has committed; the restore can no longer be cancelled");
		snprintf(msg, msglen, "cancel accepted");
		afs_job_log(j, "cancel requested");
		return AFS_OK;
	}
	if (running)
		return refuse(j, AFS_E_BUSY, msg, msglen, "%s: a restore is already running", cmd_names[cmd]);
	db = t->kind != AFS_DB_UNKNOWN && cmd != AFS_CMD_RESTORE_UPLOADS;
	uploads = t->uploads && cmd != AFS_CMD_RESTORE_DATABASE;
	if (cmd == AFS_CMD_RESTORE_DATABASE && !db)
		return refuse(j, AFS_E_INVAL, msg, msglen, "%s: no database target configured (--database)",
			      cmd_names[cmd]);
	if (cmd == AFS_CMD_RESTORE_UPLOADS && !uploads)
		return refuse(j, AFS_E_INVAL, msg, msglen, "%s: no uploads directory configured (--uploads)",
			      cmd_names[cmd]);
	if (cmd == AFS_CMD_RESTORE && !db && !uploads)
		return refuse(j, AFS_E_INVAL, msg, msglen,
			      "restore: no target configured (--database or --uploads); the mount is browse-only");
	if (cmd != AFS_CMD_VERIFY) {
		err = lock_target(j, db, uploads, lmsg, sizeof(lmsg));
		if (err != AFS_OK)
			return refuse(j, err, msg, msglen, "%s: %s", cmd_names[cmd], lmsg);
	}
	afs_job_wait(j); /* joins the previous run's thread */
	iso_now(stamp, sizeof(stamp));
	pthread_mutex_lock(&j->mu);
	clear_run_locked(j);
	j->command = cmd;
	j->do_db = db;
	j->do_uploads = uploads;
	j->do_migrate = db && t->migrate && cmd != AFS_CMD_VERIFY;
	j->backend = NULL;
	j->dump = AFS_NONE;
	j->wtotal = W_VERIFY;
	if (cmd != AFS_CMD_VERIFY) {
		j->wtotal += (t->no_snapshot ? 0 : W_SNAPSHOT) + (db ? W_DATABASE : 0) + (uploads ? W_UPLOADS : 0) +
			     (j->do_migrate ? W_MIGRATE : 0);
	}
	j->started_at = strdup(stamp);
	j->state = AFS_ST_VERIFYING;
	j->running = true;
	if (pthread_create(&j->thread, NULL, run, j) != 0) {
		j->running = false;
		j->state = AFS_ST_IDLE;
		pthread_mutex_unlock(&j->mu);
		unlock_target(j);
		return refuse(j, AFS_E_NOMEM, msg, msglen, "%s: cannot start a thread", cmd_names[cmd]);
	}
	j->joinable = true;
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "%s of %s started", cmd_names[cmd], j->archive_path);
	snprintf(msg, msglen, "%s started", cmd_names[cmd]);
	return AFS_OK;
}

/* ---------------------------------------------------------- readers */

char *afs_job_status_json(struct afs_job *j)
{
	const struct afs_target *t = j->target;
	struct afs_status_view v = { 0 };
	char *out;

	pthread_mutex_lock(&j->mu);
	update_percent_locked(j);
	v.state = afs_state_name(j->state);
	v.command = j->started_at ? cmd_names[j->command] : NULL;
	v.percent = j->percent;
	v.bytes_done = j->phase_done < j->phase_total ? j->phase_done : j->phase_total;
	v.bytes_total = j->phase_total;
	v.archive = j->archive_path;
	v.started_at = j->started_at;
	v.finished_at = j->finished_at;
	v.error = j->error ? j->error : j->refusal;
	v.snapshot = j->snapshot;
	v.target_type = t->kind != AFS_DB_UNKNOWN ? afs_db_type_name(t->kind) : NULL;
	v.target_url = t->display_url;
	v.uploads = t->uploads;
	v.manifest_json = j->has_manifest ? j->manifest.json : NULL;
	v.dump_json = j->dump_info;
	v.warnings = (const char *const *)j->warnings;
	v.nwarnings = j->nwarnings;
	out = afs_report_status(&v);
	pthread_mutex_unlock(&j->mu);
	return out;
}

char *afs_job_progress_line(struct afs_job *j)
{
	char *out = NULL;

	pthread_mutex_lock(&j->mu);
	update_percent_locked(j);
	if (asprintf(&out, "%u %s\n", j->percent, afs_state_name(j->state)) < 0)
		out = NULL;
	pthread_mutex_unlock(&j->mu);
	return out;
}

char *afs_job_log_text(struct afs_job *j)
{
	char *out;

	pthread_mutex_lock(&j->mu);
	out = malloc(j->loglen + 1);
	if (out) {
		if (j->loglen)
			memcpy(out, j->log, j->loglen);
		out[j->loglen] = '\0';
	}
	pthread_mutex_unlock(&j->mu);
	return out;
}

bool afs_job_in_progress(struct afs_job *j)
{
	bool b;

	pthread_mutex_lock(&j->mu);
	b = j->in_progress;
	pthread_mutex_unlock(&j->mu);
	return b;
}

void afs_job_peek(struct afs_job *j, enum afs_state *st, unsigned *percent)
{
	pthread_mutex_lock(&j->mu);
	update_percent_locked(j);
	*st = j->state;
	*percent = j->percent;
	pthread_mutex_unlock(&j->mu);
}
