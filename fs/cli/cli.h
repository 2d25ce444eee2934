/* SPDX-License-Identifier: MIT */
/* `archfs verify ARCHIVE` and `archfs restore ARCHIVE`: the restore job
 * without FUSE (README.md, docs/restore.md), for hosts without /dev/fuse. */
#ifndef AFS_CLI_H
#define AFS_CLI_H

#include <stdbool.h>

#include "job.h"

struct afs_target;

/* The exit status of verify and restore (both output modes): one per
 * class of failure, so that a script can tell them apart. */
enum {
	AFS_EXIT_OK = 0,
	AFS_EXIT_FAILED = 1,    /* the restore failed and changed nothing (or was rolled back); any other error */
	AFS_EXIT_USAGE = 2,     /* a bad command line or option value, no target for a restore */
	AFS_EXIT_ARCHIVE = 3,   /* the archive cannot be opened, is not a backup, or is damaged */
	AFS_EXIT_TARGET = 4,    /* the target is missing, unreachable, or refused by its server */
	AFS_EXIT_REFUSED = 5,   /* another restore holds the target */
	AFS_EXIT_CANCELLED = 6, /* Ctrl-C or SIGTERM before the commit */
};

/* The exit status of a job's failure class (AFS_EXIT_OK for none). */
int afs_cli_exit_status(enum afs_fail f);

/* Runs command ("verify" or "restore") on the archive at path into t and
 * shows its progress: a bar on a terminal, "PERCENT PHASE" lines on stdout
 * otherwise; log lines go to stderr.  With json, every event is a JSON
 * line on stdout instead (status, log, then one summary) and nothing goes
 * to stderr.  Returns the exit status (AFS_EXIT_*). */
int afs_cli_run(const char *command, const char *path, const struct afs_target *t, bool json);

struct afs_args;

/* True when the command line is `verify ARCHIVE` or `restore ARCHIVE`
 * (whether or not its options are good: afs_cli_command() reports them). */
bool afs_cli_is_command(const struct afs_args *a);

/* Runs that command: refuses a bad command line (a->bad) and options that
 * only apply to a mount, builds the target from the options and the
 * environment, and runs it as afs_cli_run() does (a->json).  Returns the
 * exit status; with --json even a usage error is a summary on stdout. */
int afs_cli_command(const struct afs_args *a);

/* Applies the remote archive options of a (--remote-cache MB,
 * --s3-endpoint URL, --ca-file FILE; remote.h) to the process, before any
 * thread.  False, with a one-line reason in msg, for a bad value. */
bool afs_cli_remote_setup(const struct afs_args *a, char *msg, size_t msglen);

/* Hides what a remote archive's URL s may carry as secrets (a presigned
 * query string, a user-info password) from ps: overwritten with 'x' in
 * place, the length unchanged.  Other strings are left alone. */
void afs_cli_mask_url(char *s);

/* archfs-cli's main: the command line read, --help, --version, then
 * afs_cli_command().  Masks database passwords in argv. */
int afs_cli_main(int argc, char *argv[]);

#endif
