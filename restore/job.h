/* SPDX-License-Identifier: MIT */
/* The restore job of one mounted archive: the pipeline of docs/restore.md
 * (verify, flag, snapshot, database, uploads, migrate) on its own thread,
 * with a state machine, byte-based progress, cancellation and a log.
 *
 * Thread safety: every function may be called from any thread.  Commands,
 * status and log reads take the job's mutex briefly and never wait for the
 * pipeline; the pipeline thread takes the same mutex only to publish
 * progress, so a FUSE thread is never blocked by a restore step.
 */
#ifndef AFS_JOB_H
#define AFS_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct afs_archive;
struct afs_index;
struct afs_target;

enum afs_cmd {
	AFS_CMD_RESTORE,          /* database and uploads, then migrate */
	AFS_CMD_RESTORE_DATABASE, /* the database only, then migrate */
	AFS_CMD_RESTORE_UPLOADS,  /* the uploads only */
	AFS_CMD_VERIFY,           /* step 1 alone: changes nothing */
	AFS_CMD_CANCEL,
};

enum afs_state {
	AFS_ST_IDLE,
	AFS_ST_VERIFYING,
	AFS_ST_SNAPSHOT,
	AFS_ST_DATABASE,
	AFS_ST_UPLOADS,
	AFS_ST_MIGRATE,
	AFS_ST_DONE,
	AFS_ST_FAILED,
	AFS_ST_CANCELLED,
};

/* Why a run ended without success, for the exit status of the command
 * line and .status "failure".  Set where the failure is raised (the first
 * failure of a run keeps its class, as its error); a failure nobody
 * classified is AFS_FAIL_FAILED. */
enum afs_fail {
	AFS_FAIL_NONE,      /* the run succeeded, or none has run */
	AFS_FAIL_FAILED,    /* anything else: a step failed (nothing changed, or rolled back), a tool, memory */
	AFS_FAIL_ARCHIVE,   /* the archive is damaged or is not a backup: CRC, undecodable or unsafe entries,
			     * a bad manifest, no database, a dump or db.sqlite that does not read */
	AFS_FAIL_TARGET,    /* the target is missing, unreachable, refused by its server, or cannot take
			     * this archive (another database kind, no disk space) */
	AFS_FAIL_REFUSED,   /* another restore holds the target */
	AFS_FAIL_CANCELLED, /* cancelled before the commit */
};

/* "failed", "archive", "target", "refused", "cancelled"; NULL for
 * AFS_FAIL_NONE. */
const char *afs_fail_name(enum afs_fail f);

/* Parses one command as written to .control (surrounding white space and a
 * trailing newline allowed).  AFS_E_INVAL for anything else. */
enum afs_err afs_cmd_parse(const char *text, size_t len, enum afs_cmd *out);

/* "idle", "verifying", ... as .status and .progress show them. */
const char *afs_state_name(enum afs_state s);

struct afs_job;

/* Creates the job of archive a (at archive_path) with index ix, restoring
 * into t.  a, ix and t are borrowed and must outlive the job.  Reads the
 * manifest now; a missing or bad manifest is a warning here and an error
 * only when a restore needs it. */
enum afs_err afs_job_new(const char *archive_path, struct afs_archive *a, const struct afs_index *ix,
			 const struct afs_target *t, struct afs_job **out);

/* Cancels a running restore (if it still may be cancelled), waits for its
 * thread and frees the job; NULL is a no-op. */
void afs_job_free(struct afs_job *j);

/* Carries out a command: starts the pipeline on its own thread and returns
 * at once, or cancels.  Refusals change nothing and are recorded in the
 * status error and the log: AFS_E_INVAL (no target, cancel with nothing to
 * cancel), AFS_E_BUSY (a restore is running, here or in another process,
 * into the same target; cancel after the database has committed),
 * AFS_E_NOENT or AFS_E_IO (a target directory to lock is missing or cannot
 * be opened); msg receives the reason. */
enum afs_err afs_job_command(struct afs_job *j, enum afs_cmd cmd, char *msg, size_t msglen);

/* Waits until the pipeline thread has finished; returns the final state. */
enum afs_state afs_job_wait(struct afs_job *j);

/* Snapshots for the virtual files; each returns a malloc'd NUL-terminated
 * string (NULL when out of memory) the caller frees. */
char *afs_job_status_json(struct afs_job *j); /* .status */
char *afs_job_progress_line(struct afs_job *j); /* .progress: "42 database\n" */
char *afs_job_log_text(struct afs_job *j);     /* .log */

/* .log without a copy: offsets count every byte ever logged, so a place in
 * the log keeps its meaning while lines are added and, past the log's cap,
 * the oldest dropped (always whole lines).  The span the log holds now is
 * [*start, *end). */
void afs_job_log_span(struct afs_job *j, uint64_t *start, uint64_t *end);

/* Copies up to len bytes of the log from offset *at, never past end, into
 * buf and returns how many (0 at end).  When *at has been dropped since,
 * the copy starts at the oldest byte still held and *at moves there. */
size_t afs_job_log_read(struct afs_job *j, uint64_t *at, uint64_t end, char *buf, size_t len);

/* True from the flag step to the end of a restore (.restore_in_progress). */
bool afs_job_in_progress(struct afs_job *j);

/* Current state and percent, for the command-line progress display. */
void afs_job_peek(struct afs_job *j, enum afs_state *st, unsigned *percent);

/* Records a command refused before it reached the job (an unknown
 * command) in the status error and the log. */
void afs_job_refuse(struct afs_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A warning that stays in .status across restores (a shadowed entry). */
void afs_job_note(struct afs_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Details of the dump the backend verified (a JSON object text, copied),
 * shown in .status "dump". */
void afs_job_set_dump_info(struct afs_job *j, const char *json);

/* The error of the last run or refusal (malloc'd), or NULL. */
char *afs_job_error(struct afs_job *j);

/* Why the last run failed: AFS_FAIL_NONE while it runs or when it
 * succeeded, AFS_FAIL_CANCELLED exactly when its state is cancelled. */
enum afs_fail afs_job_fail_class(struct afs_job *j);

/* Also hands every log line (without its timestamp) to fn, on the thread
 * that logs it; set before the first command. */
void afs_job_on_log(struct afs_job *j, void (*fn)(void *ctx, const char *line), void *ctx);

/* ---- services for the pipeline steps (called on the job's thread) ---- */

const struct afs_target *afs_job_target(const struct afs_job *j);

/* True while the running command holds the target's locks (every command
 * but verify): no other restore of this target can be running. */
bool afs_job_target_locked(const struct afs_job *j);
/* The archive being restored from (the snapshot's, during a rollback). */
struct afs_archive *afs_job_archive(const struct afs_job *j);
const struct afs_index *afs_job_index(const struct afs_job *j);
/* The path of the archive the job was created for. */
const char *afs_job_archive_path(const struct afs_job *j);

/* True when this run found that the live database does not exist (and
 * --create will make it) and it has not been created yet: verify must not
 * try to open it. */
bool afs_job_target_missing(struct afs_job *j);

/* One line in .log (and the daemon's log). */
void afs_job_log(struct afs_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line in .log and in .status warnings. */
void afs_job_warn(struct afs_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the reason of a failure (the first one is kept) and returns err. */
enum afs_err afs_job_fail(struct afs_job *j, enum afs_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, with the failure's class (kept with the first reason);
 * afs_job_fail() leaves it AFS_FAIL_FAILED. */
enum afs_err afs_job_fail_as(struct afs_job *j, enum afs_fail cls, enum afs_err err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Sets the byte count of the current phase and adds done bytes to it. */
void afs_job_phase_bytes(struct afs_job *j, uint64_t total);
void afs_job_advance(struct afs_job *j, uint64_t bytes);

/* True once cancel was accepted; steps check it between units of work. */
bool afs_job_cancelled(struct afs_job *j);

/* The database step calls this the moment its change is committed: from
 * then on cancel is refused. */
void afs_job_committed(struct afs_job *j);

/* The database step calls this when it was interrupted while committing
 * (a lost connection, a failed last write) and cannot find out whether the
 * change went through: the run then counts as possibly changed, so the
 * snapshot is kept, nothing created for it is discarded and the report says
 * the outcome is unknown. */
void afs_job_commit_unknown(struct afs_job *j);

/* Runs the target's --migrate command through /bin/sh -c with
 * DATABASE_URL=database_url and ARCHFS_ARCHIVE_REVISION set to the
 * archive's Alembic revision (empty when unknown), its output lines in the
 * job's log.  Before the commit a cancel stops it (its process group is
 * killed): AFS_E_CANCELLED.  A command that fails gives AFS_E_FAILED with
 * its status and last output in the job's error. */
enum afs_err afs_job_migrate(struct afs_job *j, const char *database_url);

/* Test hooks, compiled in only with meson's -Dtest_hooks=true (the test
 * command's builds; release builds have none), to make a step slow enough
 * to watch or kill: milliseconds from ARCHFS_TEST_DB_STEP_DELAY_MS for step
 * AFS_ST_DATABASE (a pause after each database copy step) or
 * ARCHFS_TEST_UPLOAD_DELAY_MS for AFS_ST_UPLOADS (a pause after each chunk
 * of an upload is written, before the file is finished); 0 when unset.
 * The environment is read once, when the job is made. */
#if AFS_TEST_HOOKS
unsigned afs_job_test_delay_ms(const struct afs_job *j, enum afs_state step);

/* Sleeps for afs_job_test_delay_ms(j, step); returns at once when it is 0. */
void afs_job_test_pause(const struct afs_job *j, enum afs_state step);

/* A gate for deterministic race tests: when ARCHFS_TEST_GATE_DIR is set and
 * ARCHFS_TEST_GATES (comma-separated) names gate, creates DIR/gate.reached
 * and waits until DIR/gate.go exists (the test does its racing step in
 * between), at most 60 s.  Does nothing for an unlisted gate. */
void afs_job_test_gate(const struct afs_job *j, const char *gate);

/* True when gate is listed (a step may make itself smaller so that the
 * gate falls in its middle). */
bool afs_job_test_gate_listed(const struct afs_job *j, const char *gate);

/* The same gate as a shell command, for a child process to wait in (psql's
 * \! between two statements): malloc'd, or NULL when gate is not listed
 * (or its directory's name needs quoting). */
char *afs_job_test_gate_shell(const struct afs_job *j, const char *gate);

/* True when ARCHFS_TEST_FAULTS (comma-separated, read at each call) names
 * fault: a step then fails on purpose where it says so. */
bool afs_job_test_fault(const struct afs_job *j, const char *fault);
#else
static inline unsigned afs_job_test_delay_ms(const struct afs_job *j, enum afs_state step)
{
	return 0;
}
static inline void afs_job_test_pause(const struct afs_job *j, enum afs_state step)
{
}
static inline void afs_job_test_gate(const struct afs_job *j, const char *gate)
{
}
static inline bool afs_job_test_gate_listed(const struct afs_job *j, const char *gate)
{
	return false;
}
static inline char *afs_job_test_gate_shell(const struct afs_job *j, const char *gate)
{
	return NULL;
}
static inline bool afs_job_test_fault(const struct afs_job *j, const char *fault)
{
	return false;
}
#endif

#endif
