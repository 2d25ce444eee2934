/* SPDX-License-Identifier: MIT */
/* `archfs verify ARCHIVE` and `archfs restore ARCHIVE`: the restore job
 * without FUSE (SPEC.md section 6), for hosts without /dev/fuse. */
#ifndef AFS_CLI_H
#define AFS_CLI_H

struct afs_target;

/* Runs command ("verify" or "restore") on the archive at path into t and
 * shows its progress: a bar on a terminal, "PERCENT PHASE" lines on stdout
 * otherwise; log lines go to stderr.  Returns the exit status: 0 only on
 * success, 1 when the archive cannot be opened or the job fails, 2 when the
 * command is refused (no target). */
int afs_cli_run(const char *command, const char *path, const struct afs_target *t);

#endif
