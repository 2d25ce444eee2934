/* SPDX-License-Identifier: MIT */
/* The inside of a restore job, shared by job.c (commands, state, progress,
 * log: what every thread sees) and pipeline.c (the steps, on the job's own
 * thread).  Nothing else includes this. */
#ifndef AFS_JOB_PRIV_H
#define AFS_JOB_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "backend.h"
#include "job.h"
#include "manifest.h"

#define MAX_WARNINGS 64

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
#if AFS_TEST_HOOKS
	unsigned test_db_delay_ms, test_upload_delay_ms; /* see afs_job_test_delay_ms() */
	char *test_gate_dir, *test_gates;                /* see afs_job_test_gate() */
#endif
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
	uint64_t logdropped;               /* bytes dropped from the front of log so far */
	struct afs_db_info tinfo;          /* the live database as the last run found it */
	bool tinfo_known;                  /* tinfo holds something (a run looked) */
	bool created;                      /* this run created the database (--create) */
	bool commit_unknown;               /* the database step cannot tell whether it committed */
	bool up_planned, up_merged;        /* this run planned, then merged, the uploads (up_*) */
	uint64_t up_replaced, up_created, up_bytes; /* the plan's counts (uploads.h) */
	enum afs_fail fail;                /* the class of error, once error is set; final in finish() */

	/* --- the pipeline thread's own --- */
	bool do_db, do_uploads, do_migrate;
	bool any_target;                   /* verify without a target: as for a restore of everything (do_db) into a target of the archive's own kind */
	const struct afs_db_backend *backend;
	void *backend_state;
	uint32_t dump;                     /* node of the dump, AFS_NONE if none */
	struct afs_uplan *plan;
	int lock_db, lock_uploads;         /* flock()ed directories of the target (job.c), -1: none or the same as the other */
};

/* "YYYY-MM-DDTHH:MM:SS", local time. */
void afs_job_iso_now(char *buf, size_t len);

/* Records the counts of the uploads plan p for .status, and whether the
 * merge is done. */
void afs_job_note_uploads(struct afs_job *j, const struct afs_uplan *p, bool merged);

/* Ends the current phase and starts st, which weighs weight in .progress. */
void afs_job_set_state(struct afs_job *j, enum afs_state st, unsigned weight);

/* Releases the locks taken on the target by afs_job_command(). */
void afs_job_unlock_target(struct afs_job *j);

/* "restore", "restore database", ... */
const char *afs_cmd_name(enum afs_cmd c);

/* The pipeline thread (pipeline.c): runs the command, then finishes the job. */
void *afs_job_run(void *arg);

#endif
