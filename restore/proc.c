/* SPDX-License-Identifier: MIT */
/* Child processes: posix_spawn (safe in a threaded daemon), one pipe for
 * stdout and stderr, lines handed to the caller, cancellation by signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "proc.h"

extern char **environ;

/* environ with the items of add replacing variables of the same name. */
static char **build_env(const char *const *add)
{
	size_t n = 0, k = 0, m = 0;
	char **env;

	while (environ[n])
		n++;
	while (add && add[m])
		m++;
	env = calloc(n + m + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t name = strcspn(environ[i], "=");
		bool replaced = false;

		for (size_t j = 0; j < m; j++)
			if (strncmp(add[j], environ[i], name) == 0 && add[j][name] == '=')
				replaced = true;
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		env[k++] = (char *)add[j];
	return env;
}

/* Appends one line to the tail buffer, dropping the oldest bytes. */
static void keep_tail(char *tail, size_t taillen, const char *line)
{
	size_t have = strlen(tail), add = strlen(line) + 1;

	if (taillen < 2)
		return;
	if (add >= taillen) {
		snprintf(tail, taillen, "%s", line + (add - taillen));
		return;
	}
	if (have + add >= taillen) {
		size_t drop = have + add - (taillen - 1);

		memmove(tail, tail + drop, have - drop + 1);
		have -= drop;
	}
	snprintf(tail + have, taillen - have, "%s%s", have ? "\n" : "", line);
}

static void emit_line(const struct afs_proc_opts *o, char *line, size_t used, char *tail, size_t taillen)
{
	line[used] = '\0';
	if (o->line)
		o->line(o->ctx, line);
	keep_tail(tail, taillen, line);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum afs_err afs_proc_run(const struct afs_proc_opts *o, int *status, char *tail, size_t taillen)
{
	posix_spawn_file_actions_t fa;
	char **env = build_env(o->setenv);
	char buf[4096], line[1024];
	size_t used = 0;
	int pfd[2] = { -1, -1 };
	enum afs_err err = AFS_OK;
	double kill_at = 0;
	bool killed = false, open_pipe = true;
	pid_t pid = -1;
	int rc;

	*status = 0;
	if (taillen)
		tail[0] = '\0';
	if (!env)
		return AFS_E_NOMEM;
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		free(env);
		return AFS_E_IO;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	rc = posix_spawnp(&pid, o->argv[0], &fa, NULL, (char *const *)o->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(pfd[1]);
	if (rc != 0) {
		snprintf(tail, taillen, "cannot run %s: %s", o->argv[0], strerror(rc));
		close(pfd[0]);
		return AFS_E_IO;
	}
	while (open_pipe) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t n;

		if (!killed && o->cancelled && o->cancelled(o->ctx)) {
			kill(pid, SIGTERM);
			killed = true;
			kill_at = now() + 2.0;
		}
		if (killed && kill_at && now() > kill_at) {
			kill(pid, SIGKILL);
			kill_at = 0;
		}
		if (poll(&p, 1, 200) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			open_pipe = false;
			n = 0;
		}
		/* split into lines; an over-long line is cut into pieces */
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n' && used < sizeof(line) - 1) {
				line[used++] = buf[i];
				continue;
			}
			emit_line(o, line, used, tail, taillen);
			used = 0;
			if (buf[i] != '\n')
				line[used++] = buf[i];
		}
		if (!open_pipe && used)
			emit_line(o, line, used, tail, taillen);
	}
	close(pfd[0]);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (killed)
		err = AFS_E_CANCELLED;
	else if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
		err = AFS_E_FAILED;
	return err;
}
