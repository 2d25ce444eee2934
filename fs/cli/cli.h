/* SPDX-License-Identifier: MIT */
/* `archfs verify ARCHIVE` and `archfs restore ARCHIVE`: the restore job
 * without FUSE (README.md, docs/restore.md), for hosts without /dev/fuse. */
#ifndef AFS_CLI_H
#define AFS_CLI_H

#include <stdbool.h>

struct afs_target;

/* Runs command ("verify" or "restore") on the archive at path into t and
 * shows its progress: a bar on a terminal, "PERCENT PHASE" lines on stdout
 * otherwise; log lines go to stderr.  Returns the exit status: 0 only on
 * success, 1 when the archive cannot be opened or the job fails, 2 when the
 * command is refused (no target). */
int afs_cli_run(const char *command, const char *path, const struct afs_target *t);

struct afs_args;

/* True when the command line is `verify ARCHIVE` or `restore ARCHIVE`. */
bool afs_cli_is_command(const struct afs_args *a);

/* Runs that command: refuses options that only apply to a mount, builds
 * the target from the options and the environment, and calls
 * afs_cli_run().  Returns the exit status. */
int afs_cli_command(const struct afs_args *a);

/* archfs-cli's main: the command line read, --help, --version, then
 * afs_cli_command().  Masks database passwords in argv. */
int afs_cli_main(int argc, char *argv[]);

#endif
