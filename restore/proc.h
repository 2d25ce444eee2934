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
	/* When set, a second command whose stdin is the first one's stdout
	 * (pg_restore -f - | psql); its stdout and both stderrs are captured.
	 * The bytes pass through archfs: relay_prefix goes first, and
	 * relay_suffix last only if the first command exited 0, so the second
	 * never sees a complete-looking input from a first that failed. */
	const char *const *pipe_to;
	const char *relay_prefix, *relay_suffix;
	/* When set, the first command's stdin is a pipe fed from this
	 * callback, on a thread of its own, until it returns *got == 0 or an
	 * error (the pipe is then closed; a child that stops reading early is
	 * not an error of the feed).  Otherwise stdin is /dev/null.  SIGPIPE
	 * is ignored in the process from the first such call on. */
	enum afs_err (*input)(void *ctx, void *buf, size_t len, size_t *got);
	const char *const *setenv;  /* "NAME=value" items replacing or adding to the environment; NULL-terminated or NULL */
	void (*line)(void *ctx, const char *line); /* each line of stdout and stderr, newline removed */
	bool (*cancelled)(void *ctx); /* polled about five times a second; true kills the child */
	void *ctx;
};

/* Runs the command (or both) to its end.  AFS_OK when every command
 * exited 0; AFS_E_FAILED when one exited otherwise or was killed by a
 * signal (*status holds the first failing wait status); the input
 * callback's error when it failed; AFS_E_CANCELLED when cancelled() asked
 * for it (each child runs in its own process group, and the whole group
 * gets SIGTERM, then SIGKILL after two seconds);
 * AFS_E_IO when it could not be started.  tail receives the last lines of
 * its output (up to taillen - 1 bytes, NUL-terminated) for error messages.
 * Test hook (-Dtest_hooks=true): with ARCHFS_TEST_ARGV_LOG=FILE in the
 * environment, each spawned argv is appended to FILE (arguments
 * NUL-terminated, a newline after the last). */
enum afs_err afs_proc_run(const struct afs_proc_opts *o, int *status, char *tail, size_t taillen);

#endif
