/* SPDX-License-Identifier: MIT */
/* Child processes of a restore (the migrate command; pg_restore and psql
 * later): argv without a shell unless the caller asks for one, extra
 * environment variables, output captured line by line, killed on cancel. */
#ifndef AFS_PROC_H
#define AFS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

struct afs_proc_opts {
	const char *const *argv;    /* argv[0] is looked up in PATH */
	const char *const *setenv;  /* "NAME=value" items replacing or adding to the environment; NULL-terminated or NULL */
	void (*line)(void *ctx, const char *line); /* each line of stdout and stderr, newline removed */
	bool (*cancelled)(void *ctx); /* polled about five times a second; true kills the child */
	void *ctx;
};

/* Runs the command to its end with stdin from /dev/null.  AFS_OK when it
 * exited 0; AFS_E_FAILED when it exited otherwise or was killed by a signal
 * (*status holds the wait status); AFS_E_CANCELLED when cancelled() asked
 * for it (the child got SIGTERM, then SIGKILL after two seconds);
 * AFS_E_IO when it could not be started.  tail receives the last lines of
 * its output (up to taillen - 1 bytes, NUL-terminated) for error messages. */
enum afs_err afs_proc_run(const struct afs_proc_opts *o, int *status, char *tail, size_t taillen);

#endif
