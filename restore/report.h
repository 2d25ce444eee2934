/* SPDX-License-Identifier: MIT */
/* The JSON that the restore writes: .status (with the dump's details),
 * the flag file, NOTIFY payloads and the manifest of a pre-restore
 * snapshot.  With restore/manifest.c (which reads
 * manifests) this is the only user of cJSON. */
#ifndef AFS_REPORT_H
#define AFS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "manifest.h"

struct afs_uplan;

/* Everything .status shows; NULL strings become JSON null. */
struct afs_status_view {
	const char *state;
	const char *command;
	unsigned percent;
	uint64_t bytes_done, bytes_total;
	const char *archive, *started_at, *finished_at, *error, *snapshot;
	const char *failure;         /* the failure's class (afs_fail_name) when failed or cancelled, else NULL */
	const char *target_type, *target_url, *uploads; /* target_type NULL: no database target */
	const char *target_path;     /* SQLite: the database file's absolute path */
	const char *target_revision; /* its alembic_version; NULL: none, or not looked at yet */
	int target_exists;           /* 1, 0, or -1: not looked at yet (no run since the mount) */
	uint64_t target_size;        /* bytes, when target_exists is 1 */
	bool target_create, target_created; /* --create given; this run created the database */
	const char *manifest_json; /* the parsed manifest, re-serialised; NULL when absent */
	const char *dump_json;     /* what the backend read from the dump's header; NULL when nothing */
	const char *const *warnings;
	size_t nwarnings;
	bool uploads_planned, uploads_merged; /* this run's uploads merge: planned, done */
	uint64_t uploads_replaced, uploads_created, uploads_bytes; /* its live files replaced, new paths, bytes */
};

/* Each returns a malloc'd NUL-terminated JSON text ending in a newline, or
 * NULL when out of memory.  The text is valid UTF-8: a byte of a string
 * that does not start a well-formed UTF-8 sequence is shown as U+FFFD. */
char *afs_report_status(const struct afs_status_view *v);
char *afs_report_flag(long pid, const char *archive, const char *started_at);

/* What a backend read from the header of a dump, for .status "dump".
 * Strings come from the archive: any bytes, escaped by the JSON writer. */
struct afs_dump_view {
	const char *format;           /* "custom" */
	int vmaj, vmin, vrev;         /* archive version, shown as "1.14-0" */
	const char *server_version;   /* NULL: "" */
	const char *pg_dump_version;  /* NULL: "" */
	const char *restore_tool;     /* the client program that reads it: ".../pg_restore" */
	int restore_tool_major;
};

/* The JSON object of v, one line ({"format", "archive_version",
 * "server_version", "pg_dump_version", "pg_restore", "pg_restore_major"}),
 * without a newline, valid UTF-8 as above, or NULL when out of memory. */
char *afs_report_dump(const struct afs_dump_view *v);

/* The payload of NOTIFY archfs_restore: {"event": "start"|"end", "pid",
 * "archive", "state" (at the end: done, failed or cancelled)}, one line,
 * valid UTF-8 as above (PostgreSQL refuses a payload that is not, and
 * an archive's name may hold any bytes); NULL when out of memory. */
char *afs_report_notify(const char *event, long pid, const char *archive, const char *state);

/* The --json lines of the command-line verify and restore (docs/restore.md,
 * "Machine-readable output and exit codes"): each one object on one line,
 * without a newline, valid UTF-8 as above, or NULL when out of memory.
 * {"message_type": "status", "state", "percent", "elapsed_seconds"} */
char *afs_report_event_status(const char *state, unsigned percent, double elapsed_seconds);
/* {"message_type": "log", "line"} */
char *afs_report_event_log(const char *line);

/* The last line of a --json run.  NULL strings become JSON null. */
struct afs_summary_view {
	const char *command;     /* "verify", "restore" */
	const char *result;      /* "done", "failed", "cancelled", "refused" */
	int exit_code;
	const char *failure;     /* "usage", or afs_fail_name(): "archive", "target", ...; NULL when done */
	const char *error;
	const char *archive;
	double elapsed_seconds;
	/* the job's .status text when a job was made: its target, snapshot,
	 * started_at, finished_at, manifest, dump and warnings are taken over;
	 * else NULL, and the target is the one below (NULL type and uploads:
	 * no target) */
	const char *status_json;
	const char *target_type, *target_url, *uploads;
};

/* {"message_type": "summary", "command", "result", "exit_code", "failure",
 * "error", "archive", "target", "snapshot", "started_at", "finished_at",
 * "elapsed_seconds", "manifest", "dump", "warnings"}. */
char *afs_report_summary(const struct afs_summary_view *v);

/* The manifest of a snapshot: the application's keys, plus "archfs":
 * {"snapshot_of": source archive, "uploads": the uploads root it was
 * written for (null: none), "created": the upload paths below it that the
 * restore created, which restoring the snapshot removes}. */
char *afs_report_snapshot_manifest(const char *created_at, enum afs_db_type type, const char *revision,
				   const char *source, const char *uploads, const struct afs_uplan *plan);

/* One side of an entry that `archfs diff` lists (fs/cli/diff.h). */
struct afs_diff_side {
	const char *type; /* "file", "directory", "symlink", "fifo", "socket", "char", "block" */
	unsigned mode;    /* permission bits, shown in octal */
	uint64_t size;
	uint32_t crc;     /* shown as 8 hex digits, as user.archfs.crc32 */
};

/* One line of `archfs diff --json`, ending in a newline: {"path",
 * "change", "old", "new"}, a side null when the entry is not there.  The
 * path is the entry name, each byte of it that does not start a
 * well-formed UTF-8 sequence shown as U+FFFD; then "path_hex" (its bytes
 * in hex) is added, so that the name is never lost.  NULL when out of
 * memory. */
char *afs_report_diff_entry(const char *path, const char *change, const struct afs_diff_side *old,
			    const struct afs_diff_side *new_);

/* The last line of `archfs diff --json`: {"summary": {"added", "removed",
 * "modified", "type_changed"}}, with a newline; NULL when out of memory. */
char *afs_report_diff_summary(uint64_t added, uint64_t removed, uint64_t modified, uint64_t type_changed);

#endif
