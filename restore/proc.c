/* SPDX-License-Identifier: MIT */
/* Child processes: posix_spawn (safe in a threaded daemon), one pipe for
 * stdout and stderr, lines handed to the caller, cancellation by signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "afile.h"
#include "proc.h"

extern char **environ;

#define FEED_CHUNK (256 * 1024)

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

struct feeder {
	const struct afs_proc_opts *o;
	int fd;
	enum afs_err err;
};

/* The input thread: callback -> the first child's stdin, until the end,
 * an error, or the child closing its end (EPIPE: it read what it wanted). */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	char *buf = malloc(FEED_CHUNK);
	size_t got;

	if (!buf)
		f->err = AFS_E_NOMEM;
	while (buf && f->err == AFS_OK) {
		got = 0;
		f->err = f->o->input(f->o->ctx, buf, FEED_CHUNK, &got);
		if (f->err != AFS_OK || got == 0)
			break;
		if (afs_write_all(f->fd, buf, got) != AFS_OK)
			break; /* EPIPE: the child is done reading */
	}
	close(f->fd);
	free(buf);
	return NULL;
}

struct relay {
	const struct afs_proc_opts *o;
	int from, to;  /* the first child's stdout, the second's stdin */
	pid_t first;
	int status;    /* the first child's wait status, reaped here */
};

/* The relay thread: prefix, the first child's output, and the suffix only
 * when the first child exited 0. */
static void *relay(void *arg)
{
	struct relay *r = arg;
	char *buf = malloc(FEED_CHUNK);
	bool ok = buf && (!r->o->relay_prefix ||
			  afs_write_all(r->to, r->o->relay_prefix, strlen(r->o->relay_prefix)) == AFS_OK);
	ssize_t n;

	while (buf) {
		n = read(r->from, buf, FEED_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (ok)
			ok = afs_write_all(r->to, buf, (size_t)n) == AFS_OK; /* keep draining after EPIPE */
	}
	close(r->from);
	while (waitpid(r->first, &r->status, 0) < 0 && errno == EINTR)
		;
	if (ok && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0 && r->o->relay_suffix)
		afs_write_all(r->to, r->o->relay_suffix, strlen(r->o->relay_suffix));
	close(r->to);
	free(buf);
	return NULL;
}

#if AFS_TEST_HOOKS
/* Test hook: with ARCHFS_TEST_ARGV_LOG=FILE, every command line spawned
 * is appended to FILE (each argument NUL-terminated, a newline after the
 * last), so that a test sees every child's argv, as ps would show it,
 * without sampling ps. */
static void record_argv(const char *const *argv)
{
	const char *path = getenv("ARCHFS_TEST_ARGV_LOG");
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int fd;

	if (!path || !(f = open_memstream(&buf, &len)))
		return;
	for (size_t i = 0; argv[i]; i++)
		fwrite(argv[i], 1, strlen(argv[i]) + 1, f);
	fputc('\n', f);
	if (fclose(f) == 0 && (fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0) {
		afs_write_all(fd, buf, len);
		close(fd);
	}
	free(buf);
}
#else
static void record_argv(const char *const *argv)
{
	(void)argv;
}
#endif

/* Spawns argv with stdin from in_fd (or /dev/null when -1), stdout to
 * out_fd, stderr to err_fd.  0 or the posix_spawn error. */
static int spawn(pid_t *pid, const char *const *argv, char **env, int in_fd, int out_fd, int err_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc;

	sigset_t none, dfl;

	/* its own process group, so that a cancel reaches what it started too
	 * (a shell's children, say): kill(-pid); no signal blocked (the
	 * restore thread blocks SIGTERM, and a cancel's SIGTERM must reach
	 * pg_restore or psql) and SIGPIPE at its default (archfs ignores it) */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	rc = posix_spawnp(pid, argv[0], &fa, &attr, (char *const *)argv, env);
	if (rc == 0)
		record_argv(argv);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

enum afs_err afs_proc_run(const struct afs_proc_opts *o, int *status, char *tail, size_t taillen)
{
	char **env = build_env(o->setenv);
	char buf[4096], line[1024];
	size_t used = 0;
	int out[2] = { -1, -1 }, in[2] = { -1, -1 }, mid[2] = { -1, -1 }, mid2[2] = { -1, -1 };
	struct feeder f = { .o = o, .fd = -1, .err = AFS_OK };
	struct relay r = { .o = o, .from = -1, .to = -1 };
	pthread_t feeder, relayer;
	bool feeding = false, relaying = false;
	enum afs_err err = AFS_OK;
	double kill_at = 0;
	bool killed = false, open_pipe = true;
	pid_t pids[2] = { -1, -1 };
	int rc = 0, st;

	*status = 0;
	if (taillen)
		tail[0] = '\0';
	if (!env)
		return AFS_E_NOMEM;
	if (o->input)
		signal(SIGPIPE, SIG_IGN);
	if (pipe2(out, O_CLOEXEC) != 0 || (o->input && pipe2(in, O_CLOEXEC) != 0) ||
	    (o->pipe_to && (pipe2(mid, O_CLOEXEC) != 0 || pipe2(mid2, O_CLOEXEC) != 0))) {
		err = AFS_E_IO;
		snprintf(tail, taillen, "cannot create a pipe: %s", strerror(errno));
		goto out;
	}
	rc = spawn(&pids[0], o->argv, env, in[0], o->pipe_to ? mid[1] : out[1], out[1]);
	if (rc == 0 && o->pipe_to)
		rc = spawn(&pids[1], o->pipe_to, env, mid2[0], out[1], out[1]);
	close_fd(&out[1]);
	close_fd(&in[0]);
	close_fd(&mid[1]);
	close_fd(&mid2[0]);
	if (rc != 0) {
		snprintf(tail, taillen, "cannot run %s: %s", pids[0] < 0 ? o->argv[0] : o->pipe_to[0], strerror(rc));
		err = AFS_E_IO;
		for (int i = 0; i < 2; i++)
			if (pids[i] > 0)
				kill(pids[i], SIGKILL);
		goto reap;
	}
	if (o->pipe_to) {
		r.from = mid[0];
		r.to = mid2[1];
		r.first = pids[0];
		mid[0] = mid2[1] = -1;
		if (pthread_create(&relayer, NULL, relay, &r) != 0) {
			close_fd(&r.from);
			close_fd(&r.to);
			kill(pids[0], SIGKILL);
			waitpid(pids[0], &r.status, 0);
		} else {
			relaying = true;
		}
		pids[0] = -1; /* reaped by the relay */
	}
	if (o->input) {
		f.fd = in[1];
		in[1] = -1;
		if (pthread_create(&feeder, NULL, feed, &f) != 0) {
			close_fd(&f.fd);
			f.err = AFS_E_NOMEM;
		} else {
			feeding = true;
		}
	}
	while (open_pipe) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		ssize_t n;

		if (!killed && o->cancelled && o->cancelled(o->ctx)) {
			for (int i = 0; i < 2; i++)
				if (pids[i] > 0)
					kill(-pids[i], SIGTERM);
			if (r.first > 0)
				kill(-r.first, SIGTERM);
			killed = true;
			kill_at = now() + 2.0;
		}
		if (killed && kill_at && now() > kill_at) {
			for (int i = 0; i < 2; i++)
				if (pids[i] > 0)
					kill(-pids[i], SIGKILL);
			if (r.first > 0)
				kill(-r.first, SIGKILL);
			kill_at = 0;
		}
		if (poll(&p, 1, 200) <= 0)
			continue;
		n = read(out[0], buf, sizeof(buf));
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
reap:
	for (int i = 0; i < 2; i++) {
		if (pids[i] <= 0)
			continue;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (err == AFS_OK && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
			*status = st;
			err = AFS_E_FAILED;
		}
	}
	if (feeding)
		pthread_join(feeder, NULL);
	if (relaying)
		pthread_join(relayer, NULL);
	if (o->pipe_to && err != AFS_E_IO && (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)) {
		*status = r.status; /* the first command's failure comes first */
		err = AFS_E_FAILED;
	}
	if (killed)
		err = AFS_E_CANCELLED;
	else if (f.err != AFS_OK && err != AFS_E_IO)
		err = f.err;
out:
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&mid[0]);
	close_fd(&mid[1]);
	close_fd(&mid2[0]);
	close_fd(&mid2[1]);
	free(env);
	return err;
}
