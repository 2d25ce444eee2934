/* SPDX-License-Identifier: MIT */
/* The database backends behind the restore pipeline, one table each (as
 * curl's struct Curl_ssl): the job calls these and nothing else of them. */
#ifndef AFS_BACKEND_H
#define AFS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "manifest.h"

struct afs_job;

/* What the live database is, as inspect() found it. */
struct afs_db_info {
	bool exists;
	uint64_t size;   /* bytes: the file, or pg_database_size() */
	char *name;      /* what the user knows it by: the absolute file path, or the PostgreSQL database's name */
	char *revision;  /* its alembic_version, NULL when it has none */
};

/* Frees the strings of info and zeroes it. */
void afs_db_info_release(struct afs_db_info *info);

struct afs_db_backend {
	const char *name;      /* "sqlite" */
	enum afs_db_type kind;
	const char *dump_name; /* the archive entry holding the dump: "db.sqlite" */

	/* Looks at the live database without changing anything: whether it
	 * exists, its size and its Alembic revision.  A database that does not
	 * exist is not an error here (exists is false); one that cannot be
	 * looked at (a wrong password, an unreachable server, a directory
	 * where the file should be) is, with a one-line reason in msg (the job
	 * is not told: the caller decides). */
	enum afs_err (*inspect)(struct afs_job *j, struct afs_db_info *info, char *msg, size_t msglen);

	/* Reads the dump (index node dump of the job's archive) to its end and
	 * checks it, and checks the live target can take it (disk space).
	 * Progress: afs_job_advance() per byte read.  Leaves whatever the later
	 * calls need in *state (also on error: release() frees it). */
	enum afs_err (*verify)(struct afs_job *j, uint32_t dump, void **state);

	/* Creates the live database that inspect() found missing (--create),
	 * after verify() and the flag: an empty SQLite file with the mode and
	 * owner of its directory's other files, or CREATE DATABASE. */
	enum afs_err (*create)(struct afs_job *j, void *state);

	/* Removes the database create() made, when the restore ends without
	 * committing anything into it; a no-op when create() was not called. */
	void (*discard)(struct afs_job *j, void *state);

	/* Copies the live database into a new file at path, for the
	 * pre-restore snapshot.  AFS_E_NOENT when there is no live database
	 * (also when create() just made an empty one). */
	enum afs_err (*snapshot)(struct afs_job *j, void *state, const char *path);

	/* Optional: migrates a staged copy of the verified dump before the swap
	 * (--migrate): stages it where verify() has not already, calls
	 * afs_job_migrate() with that copy's URL, and checks the result; the
	 * live database is not touched, and restore() then swaps in the
	 * migrated copy.  Cancellable (afs_job_migrate() stops the command).
	 * Without it, the pipeline migrates the live database after the swap. */
	enum afs_err (*migrate)(struct afs_job *j, void *state);

	/* Replaces the live database with the verified dump (migrated, after
	 * migrate()) as one atomic change, calling afs_job_committed() when it
	 * is made; checks afs_job_cancelled() until then.  Progress: bytes
	 * written.  When it is interrupted where the change may have been made
	 * (the committing step fails, psql or the connection is lost, a cancel
	 * arrives while COMMIT is under way), it asks the database what
	 * happened before it returns: made, afs_job_committed() and AFS_OK
	 * (with a warning); not made, its error; cannot tell,
	 * afs_job_commit_unknown() and its error. */
	enum afs_err (*restore)(struct afs_job *j, void *state);

	/* The live database's Alembic revision in *rev (malloc'd; NULL when
	 * it has none). */
	enum afs_err (*revision)(struct afs_job *j, void *state, char **rev);

	/* Frees state and removes anything verify() staged; NULL is a no-op. */
	void (*release)(void *state);

	/* Optional: checks a database URL or connection string as the
	 * backend's client library reads it, and returns (malloc'd) the form
	 * .status and logs show: afs_target_display()'s when the library finds
	 * no secret left in it and every other option unchanged, else a form
	 * that shows none of it.  NULL when the library refuses the URL (msg
	 * says why, without any of its secrets) or when out of memory (msg
	 * left empty).  Called when the target is set, before any restore. */
	char *(*mask)(const char *url, char *msg, size_t msglen);

	/* Optional: tells other sessions of the database that a restore runs
	 * (flag_on, from the flag step; AFS_E_BUSY when another restore holds
	 * the flag) and that it ended with outcome "done", "failed" or
	 * "cancelled" (flag_off, whatever happened). */
	enum afs_err (*flag_on)(struct afs_job *j, void *state);
	void (*flag_off)(struct afs_job *j, void *state, const char *outcome);
};


#endif
