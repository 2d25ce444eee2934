/* SPDX-License-Identifier: MIT */
/* The restore job: command handling, state, progress and log, which every
 * thread sees under the job's mutex.  The steps themselves run on the
 * job's own thread in pipeline.c. */
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
#include "backend.h"
#include "index.h"
#include "job.h"
#include "job_priv.h"
#include "log.h"
#include "manifest.h"
#include "remote.h"
#include "report.h"
#include "stream.h"
#include "target.h"
#include "uploads.h"

#define LOG_CAP (1 << 20)     /* .log keeps the newest megabyte */

/* ---------------------------------------------------------------- text */

void afs_job_iso_now(char *buf, size_t len)
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

const char *afs_cmd_name(enum afs_cmd c)
{
	return (unsigned)c < sizeof(cmd_names) / sizeof(cmd_names[0]) ? cmd_names[c] : "?";
}

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

	afs_job_iso_now(stamp, sizeof(stamp));
	need = strlen(stamp) + 1 + strlen(line) + 1;
	if (j->loglen + need > LOG_CAP && j->loglen > 0) {
		char *cut = memchr(j->log + j->loglen / 2, '\n', j->loglen - j->loglen / 2);
		size_t drop = cut ? (size_t)(cut - j->log) + 1 : j->loglen;

		memmove(j->log, j->log + drop, j->loglen - drop);
		j->loglen -= drop;
		j->logdropped += drop;
	}
	grown = realloc(j->log, j->loglen + need + 1);
	if (!grown)
		return;
	j->log = grown;
	j->loglen += (size_t)snprintf(j->log + j->loglen, need + 1, "%s %s\n", stamp, line);
}

/* One line of the log: control characters escaped (afs_log_escape), so
 * that text from the archive (entry names, manifest fields, a child's
 * output) cannot forge lines of .log or of the daemon's log. */
static void vlog(struct afs_job *j, bool warn, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void vlog(struct afs_job *j, bool warn, const char *fmt, va_list ap)
{
	char raw[1024], line[2048];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	afs_log_escape(raw, line, sizeof(line));
	pthread_mutex_lock(&j->mu);
	log_append_locked(j, line);
	if (warn && j->nwarnings < MAX_WARNINGS) {
		char *copy = strdup(line);

		if (copy)
			j->warnings[j->nwarnings++] = copy;
	}
	pthread_mutex_unlock(&j->mu);
	if (j->on_log) /* the engine logs nowhere else: its caller decides */
		j->on_log(j->on_log_ctx, line);
}

void afs_job_note_uploads(struct afs_job *j, const struct afs_uplan *p, bool merged)
{
	pthread_mutex_lock(&j->mu);
	j->up_planned = true;
	j->up_merged = merged;
	j->up_replaced = afs_uploads_replaced_count(p);
	j->up_created = afs_uploads_created_count(p);
	j->up_bytes = afs_uploads_bytes(p);
	pthread_mutex_unlock(&j->mu);
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

static const char *const fail_names[] = {
	[AFS_FAIL_NONE] = NULL,         [AFS_FAIL_FAILED] = "failed",   [AFS_FAIL_ARCHIVE] = "archive",
	[AFS_FAIL_TARGET] = "target",   [AFS_FAIL_REFUSED] = "refused", [AFS_FAIL_CANCELLED] = "cancelled",
};

const char *afs_fail_name(enum afs_fail f)
{
	return (unsigned)f < sizeof(fail_names) / sizeof(fail_names[0]) ? fail_names[f] : "failed";
}

static enum afs_err vfail(struct afs_job *j, enum afs_fail cls, enum afs_err err, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static enum afs_err vfail(struct afs_job *j, enum afs_fail cls, enum afs_err err, const char *fmt, va_list ap)
{
	char reason[1024];

	vsnprintf(reason, sizeof(reason), fmt, ap);
	pthread_mutex_lock(&j->mu);
	if (!j->error) {
		j->error = strdup(reason);
		j->fail = cls;
	}
	pthread_mutex_unlock(&j->mu);
	afs_job_log(j, "error: %s", reason);
	return err;
}

enum afs_err afs_job_fail(struct afs_job *j, enum afs_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = vfail(j, AFS_FAIL_FAILED, err, fmt, ap);
	va_end(ap);
	return err;
}

enum afs_err afs_job_fail_as(struct afs_job *j, enum afs_fail cls, enum afs_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = vfail(j, cls, err, fmt, ap);
	va_end(ap);
	return err;
}

/* ------------------------------------------------------------ progress */

void afs_job_set_state(struct afs_job *j, enum afs_state st, unsigned weight)
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

#if AFS_TEST_HOOKS
static unsigned env_ms(const char *name)
{
	const char *v = getenv(name);

	return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

unsigned afs_job_test_delay_ms(const struct afs_job *j, enum afs_state step)
{
	return step == AFS_ST_DATABASE ? j->test_db_delay_ms : step == AFS_ST_UPLOADS ? j->test_upload_delay_ms : 0;
}

void afs_job_test_pause(const struct afs_job *j, enum afs_state step)
{
	unsigned ms = afs_job_test_delay_ms(j, step);
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	if (ms)
		nanosleep(&ts, NULL);
}

/* True when the comma-separated list names name. */
static bool listed_in(const char *list, const char *name)
{
	size_t len = strlen(name);

	while (list && *list) {
		size_t c = strcspn(list, ",");

		if (c == len && memcmp(list, name, len) == 0)
			return true;
		list += c + (list[c] == ',');
	}
	return false;
}

bool afs_job_test_gate_listed(const struct afs_job *j, const char *gate)
{
	return j->test_gate_dir && listed_in(j->test_gates, gate);
}

bool afs_job_test_fault(const struct afs_job *j, const char *fault)
{
	(void)j;
	return listed_in(getenv("ARCHFS_TEST_FAULTS"), fault);
}

void afs_job_test_gate(const struct afs_job *j, const char *gate)
{
	char *reached = NULL, *go = NULL;
	int fd;

	if (!afs_job_test_gate_listed(j, gate) || asprintf(&reached, "%s/%s.reached", j->test_gate_dir, gate) < 0)
		return;
	if (asprintf(&go, "%s/%s.go", j->test_gate_dir, gate) < 0) {
		free(reached);
		return;
	}
	if ((fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	for (int i = 0; i < 6000 && access(go, F_OK) != 0; i++) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	free(reached);
	free(go);
}

char *afs_job_test_gate_shell(const struct afs_job *j, const char *gate)
{
	const char *d = j->test_gate_dir;
	char *out = NULL;

	if (!afs_job_test_gate_listed(j, gate) || strpbrk(d, "'\n") || strpbrk(gate, "'\n/"))
		return NULL;
	/* it holds against SIGTERM as a busy child would: only SIGKILL ends it */
	if (asprintf(&out, "trap '' TERM INT HUP; touch '%s/%s.reached'; i=0; while [ ! -e '%s/%s.go' ] && "
			   "[ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done", d, gate, d, gate) < 0)
		return NULL;
	return out;
}
#endif

void afs_db_info_release(struct afs_db_info *info)
{
	free(info->name);
	free(info->revision);
	memset(info, 0, sizeof(*info));
}

bool afs_job_target_missing(struct afs_job *j)
{
	bool missing;

	pthread_mutex_lock(&j->mu);
	missing = j->tinfo_known && !j->tinfo.exists && !j->created;
	pthread_mutex_unlock(&j->mu);
	return missing;
}

const struct afs_target *afs_job_target(const struct afs_job *j) { return j->target; }

bool afs_job_target_locked(const struct afs_job *j)
{
	return j->lock_db >= 0 || j->lock_uploads >= 0; /* the pipeline thread's own */
}
struct afs_archive *afs_job_archive(const struct afs_job *j) { return j->cur_archive; }
const struct afs_index *afs_job_index(const struct afs_job *j) { return j->cur_index; }
const char *afs_job_archive_path(const struct afs_job *j) { return j->archive_path; }

void afs_job_on_log(struct afs_job *j, void (*fn)(void *ctx, const char *line), void *ctx)
{
	j->on_log = fn;
	j->on_log_ctx = ctx;
}

/* ----------------------------------------------------- target locking */

/* One restore at a time writes into a target, in this process and across
 * processes.
 *
 * What is locked is a directory: the uploads directory, and the directory
 * of a SQLite database.  Never the database file itself: close() of any
 * descriptor of a file drops every POSIX lock the process holds on it,
 * SQLite's included, so a refused second restore would let other writers
 * into the running restore's transaction.  A directory leaves nothing
 * behind (a lock file would stay beside the database) and SQLite takes no
 * lock on it.  The price: two databases in one directory are restored one
 * at a time.  PostgreSQL targets are locked by the backend (an advisory
 * lock).
 *
 * Across processes: flock() on the directory.  In this process: one table
 * of the directories being restored into, keyed by device and inode, under
 * its own mutex; a second job that wants one is refused from the table
 * before anything is opened, and one job that needs one directory twice
 * (the database beside the uploads) locks it once. */

struct held_dir {
	dev_t dev;
	ino_t ino;
	const struct afs_job *owner;
	struct held_dir *next;
};

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct held_dir *held; /* under held_mu */

/* Enters dir (dev, ino) into the table for j.  AFS_E_BUSY when another job
 * holds it; *again is set when j holds it already. */
static enum afs_err hold_dir(struct afs_job *j, dev_t dev, ino_t ino, bool *again)
{
	struct held_dir *h, *e;
	enum afs_err err = AFS_OK;

	*again = false;
	pthread_mutex_lock(&held_mu);
	for (h = held; h && !(h->dev == dev && h->ino == ino); h = h->next)
		;
	if (h && h->owner == j) {
		*again = true;
	} else if (h) {
		err = AFS_E_BUSY;
	} else if (!(e = calloc(1, sizeof(*e)))) {
		err = AFS_E_NOMEM;
	} else {
		*e = (struct held_dir){ dev, ino, j, held };
		held = e;
	}
	pthread_mutex_unlock(&held_mu);
	return err;
}

/* Removes every entry of j from the table. */
static void drop_dirs(const struct afs_job *j)
{
	pthread_mutex_lock(&held_mu);
	for (struct held_dir **p = &held; *p;) {
		struct held_dir *h = *p;

		if (h->owner == j) {
			*p = h->next;
			free(h);
		} else {
			p = &h->next;
		}
	}
	pthread_mutex_unlock(&held_mu);
}

/* Takes the lock of target path (db: a database file, whose directory is
 * locked; else the uploads directory) for j: the table's entry, then the
 * flock.  *fd receives the locked directory, or stays -1 when j locked it
 * already.  On error the caller drops j's entries (afs_job_unlock_target). */
static enum afs_err lock_one(struct afs_job *j, const char *path, bool db, int *fd, char *msg, size_t msglen)
{
	char *copy = strdup(path);
	const char *dir = copy && db ? dirname(copy) : path;
	enum afs_err err = AFS_OK;
	struct stat st;
	bool again;
	int f = -1;

	if (!copy) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	if (stat(dir, &st) != 0) {
		err = errno == ENOENT ? AFS_E_NOENT : AFS_E_IO;
		snprintf(msg, msglen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	err = hold_dir(j, st.st_dev, st.st_ino, &again);
	if (err != AFS_OK || again)
		goto busy;
	f = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f < 0) {
		err = errno == ENOENT ? AFS_E_NOENT : AFS_E_IO;
		snprintf(msg, msglen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		err = AFS_E_BUSY;
		close(f); /* a directory's descriptor: no SQLite lock is on it */
		goto busy;
	}
	*fd = f;
busy:
	if (err == AFS_E_BUSY && db)
		snprintf(msg, msglen, "another restore into %s is running (a restore locks the database's directory %s)",
			 path, dir);
	else if (err == AFS_E_BUSY)
		snprintf(msg, msglen, "another restore into %s is running", path);
	else if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
out:
	free(copy);
	return err;
}

void afs_job_unlock_target(struct afs_job *j)
{
	if (j->lock_db >= 0)
		close(j->lock_db);
	if (j->lock_uploads >= 0)
		close(j->lock_uploads);
	j->lock_db = j->lock_uploads = -1;
	drop_dirs(j);
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
	/* shown in .status and logs: a URL without query string or userinfo */
	if ((j->archive_path = malloc(strlen(archive_path) + 1)))
		afs_remote_redact(archive_path, j->archive_path, strlen(archive_path) + 1);
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
#if AFS_TEST_HOOKS
	j->test_db_delay_ms = env_ms("ARCHFS_TEST_DB_STEP_DELAY_MS");
	j->test_upload_delay_ms = env_ms("ARCHFS_TEST_UPLOAD_DELAY_MS");
	if (getenv("ARCHFS_TEST_GATE_DIR") && getenv("ARCHFS_TEST_GATES")) {
		j->test_gate_dir = strdup(getenv("ARCHFS_TEST_GATE_DIR"));
		j->test_gates = strdup(getenv("ARCHFS_TEST_GATES"));
	}
#endif
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
			snprintf(msg, sizeof(msg), "manifest.json cannot be read: %s", afs_stream_error(s, err));
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
	j->cancel = j->committed = j->in_progress = j->created = false;
	j->up_planned = j->up_merged = false;
	j->up_replaced = j->up_created = j->up_bytes = 0;
	j->fail = AFS_FAIL_NONE;
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
	afs_db_info_release(&j->tinfo);
	free(j->manifest_error);
	free(j->log);
	free(j->archive_path);
#if AFS_TEST_HOOKS
	free(j->test_gate_dir);
	free(j->test_gates);
#endif
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

enum afs_fail afs_job_fail_class(struct afs_job *j)
{
	enum afs_fail f;

	pthread_mutex_lock(&j->mu);
	f = j->state == AFS_ST_FAILED || j->state == AFS_ST_CANCELLED ? j->fail : AFS_FAIL_NONE;
	pthread_mutex_unlock(&j->mu);
	return f;
}

/* Takes the target's locks for a restore that changes what cmd names. */
static enum afs_err lock_target(struct afs_job *j, bool db, bool uploads, char *msg, size_t msglen)
{
	enum afs_err err = AFS_OK;

	if (db && j->target->db_path)
		err = lock_one(j, j->target->db_path, true, &j->lock_db, msg, msglen);
	if (err == AFS_OK && uploads)
		err = lock_one(j, j->target->uploads, false, &j->lock_uploads, msg, msglen);
	if (err != AFS_OK)
		afs_job_unlock_target(j);
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
	afs_job_iso_now(stamp, sizeof(stamp));
	pthread_mutex_lock(&j->mu);
	clear_run_locked(j);
	j->command = cmd;
	/* verify without a target checks what a restore of everything would,
	 * whatever the target: every check that needs none (see verify()) */
	j->any_target = cmd == AFS_CMD_VERIFY && !afs_target_configured(t);
	j->do_db = db || j->any_target;
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
	if (pthread_create(&j->thread, NULL, afs_job_run, j) != 0) {
		j->running = false;
		j->state = AFS_ST_IDLE;
		pthread_mutex_unlock(&j->mu);
		afs_job_unlock_target(j);
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
	v.failure = j->state == AFS_ST_FAILED || j->state == AFS_ST_CANCELLED ? afs_fail_name(j->fail) : NULL;
	v.snapshot = j->snapshot;
	v.target_type = t->kind != AFS_DB_UNKNOWN ? afs_db_type_name(t->kind) : NULL;
	v.target_url = t->display_url;
	v.uploads = t->uploads;
	v.target_path = t->db_path;
	v.target_exists = j->tinfo_known ? j->tinfo.exists : -1;
	v.target_size = j->tinfo.size;
	v.target_revision = j->tinfo.revision;
	v.target_create = t->create;
	v.target_created = j->created;
	v.manifest_json = j->has_manifest ? j->manifest.json : NULL;
	v.dump_json = j->dump_info;
	v.warnings = (const char *const *)j->warnings;
	v.nwarnings = j->nwarnings;
	v.uploads_planned = j->up_planned;
	v.uploads_merged = j->up_merged;
	v.uploads_replaced = j->up_replaced;
	v.uploads_created = j->up_created;
	v.uploads_bytes = j->up_bytes;
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

void afs_job_log_span(struct afs_job *j, uint64_t *start, uint64_t *end)
{
	pthread_mutex_lock(&j->mu);
	*start = j->logdropped;
	*end = j->logdropped + j->loglen;
	pthread_mutex_unlock(&j->mu);
}

size_t afs_job_log_read(struct afs_job *j, uint64_t *at, uint64_t end, char *buf, size_t len)
{
	uint64_t held_end;
	size_t n = 0;

	pthread_mutex_lock(&j->mu);
	if (*at < j->logdropped)
		*at = j->logdropped; /* dropped since: on from the oldest line still held */
	held_end = j->logdropped + j->loglen;
	if (end > held_end)
		end = held_end;
	if (*at < end) {
		n = end - *at < len ? (size_t)(end - *at) : len;
		memcpy(buf, j->log + (*at - j->logdropped), n);
	}
	pthread_mutex_unlock(&j->mu);
	return n;
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
