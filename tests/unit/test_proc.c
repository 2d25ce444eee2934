/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/proc.c: exit codes, captured lines, environment,
 * stdin feeding, the relay between two commands, and cancellation. */
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include "proc.h"
#include "testutil.h"

#define MAXLINES 4096

struct seen {
	char *lines[MAXLINES];
	size_t n;
	size_t bytes;  /* total length of all lines */
	double start;  /* for the cancel callback */
	double after;  /* cancel this many seconds after start (0: never) */
	int polls;
	/* the input callback: total bytes to give, given so far */
	size_t in_total, in_given;
	int in_fail;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_line(void *ctx, const char *line)
{
	struct seen *s = ctx;

	s->bytes += strlen(line);
	if (s->n < MAXLINES)
		s->lines[s->n++] = strdup(line);
}

static bool cancel_later(void *ctx)
{
	struct seen *s = ctx;

	s->polls++;
	return s->after > 0 && now() - s->start >= s->after;
}

static enum afs_err give(void *ctx, void *buf, size_t len, size_t *got)
{
	struct seen *s = ctx;
	size_t n = s->in_total - s->in_given;

	if (s->in_fail && s->in_given > 0)
		return AFS_E_CORRUPT;
	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		((char *)buf)[i] = (s->in_given + i) % 64 == 63 ? '\n' : 'y';
	s->in_given += n;
	*got = n;
	return AFS_OK;
}

/* An endless input: the child decides when to stop reading. */
static enum afs_err endless(void *ctx, void *buf, size_t len, size_t *got)
{
	memset(buf, 'z', len);
	*got = len;
	return AFS_OK;
}

/* Runs argv with o's cancel callback firing 0.3 s in; checks that the run
 * ended cancelled and returns the seconds it took. */
static double run_cancelled(struct afs_proc_opts *o, struct seen *s, const char *const *argv)
{
	char tail[256];
	int status = -1;

	o->argv = argv;
	o->ctx = s;
	s->after = 0.3;
	s->start = now();
	CHECK(afs_proc_run(o, &status, tail, sizeof(tail)) == AFS_E_CANCELLED);
	return now() - s->start;
}

static int saw(const struct seen *s, const char *line)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->lines[i], line) == 0)
			return 1;
	return 0;
}

static void reset(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->lines[i]);
	memset(s, 0, sizeof(*s));
}

int main(void)
{
	static struct seen s;
	struct afs_proc_opts o;
	char tail[256];
	int status = -1;
	double t0, t;

	/* ---- exit status, stdout and stderr lines, tail */
	const char *const fail3[] = { "/bin/sh", "-c", "echo one; echo two >&2; exit 3", NULL };
	memset(&o, 0, sizeof(o));
	o.argv = fail3;
	o.line = on_line;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_FAILED);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CHECK(saw(&s, "one") && saw(&s, "two"));
	CHECK(s.n == 2);
	CHECK(strstr(tail, "two") != NULL);
	reset(&s);

	/* ---- a child starts with no signal blocked and SIGPIPE at its default,
	 * whatever the spawning thread blocks or the process ignores (the
	 * restore thread blocks SIGTERM; a cancel's SIGTERM must reach psql) */
	{
		const char *const masks[] = { "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL };
		sigset_t term, old;

		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &term, &old);
		signal(SIGPIPE, SIG_IGN);
		o.argv = masks;
		o.ctx = &s;
		CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
		CHECK(s.n == 2 && saw(&s, "SigBlk:\t0000000000000000"));
		for (size_t i = 0; i < s.n; i++)
			if (strncmp(s.lines[i], "SigIgn:", 7) == 0)
				CHECK((strtoull(s.lines[i] + 8, NULL, 16) & (1ULL << (SIGPIPE - 1))) == 0);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		signal(SIGPIPE, SIG_DFL);
		reset(&s);
	}

	/* ---- success; argv without a shell, looked up in PATH */
	const char *const echo[] = { "echo", "a  b", "c", NULL };
	o.argv = echo;
	o.ctx = &s;
	status = -1;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(s.n == 1 && saw(&s, "a  b c"));
	CHECK(strstr(tail, "a  b c") != NULL);
	reset(&s);

	/* killed by a signal: a failure too */
	const char *const killed[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
	o.argv = killed;
	o.ctx = &s;
	status = 0;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_FAILED);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == 9);
	reset(&s);

	/* a last line without a newline is still a line; stdin is /dev/null */
	const char *const partial[] = { "/bin/sh", "-c", "cat; printf 'no newline'", NULL };
	o.argv = partial;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(s.n == 1 && saw(&s, "no newline"));
	reset(&s);

	/* ---- environment: replacing one variable, keeping the others */
	const char *const env[] = { "/bin/sh", "-c", "echo $FOO; echo \"[$AFS_TEST_KEEP]\"; echo \"[$AFS_NEW]\"", NULL };
	const char *const add[] = { "FOO=bar", "AFS_NEW=n=1", NULL };
	CHECK(setenv("FOO", "old", 1) == 0 && setenv("AFS_TEST_KEEP", "kept", 1) == 0);
	o.argv = env;
	o.setenv = add;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(saw(&s, "bar") && !saw(&s, "old"));
	CHECK(saw(&s, "[kept]"));
	CHECK(saw(&s, "[n=1]"));
	CHECK(s.n == 3);
	CHECK(getenv("FOO") && strcmp(getenv("FOO"), "old") == 0); /* ours is untouched */
	reset(&s);
	/* each variable once: the replaced value is gone, not shadowed */
	const char *const envcmd[] = { "env", NULL };
	o.argv = envcmd;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	{
		int foo = 0, keep = 0;

		for (size_t i = 0; i < s.n; i++) {
			foo += strncmp(s.lines[i], "FOO=", 4) == 0;
			keep += strcmp(s.lines[i], "AFS_TEST_KEEP=kept") == 0;
		}
		CHECK(foo == 1 && saw(&s, "FOO=bar") && !saw(&s, "FOO=old"));
		CHECK(keep == 1 && saw(&s, "AFS_NEW=n=1"));
	}
	reset(&s);
	const char *const only_foo[] = { "FOO=bar", NULL };
	o.setenv = only_foo;
	o.argv = env;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK && saw(&s, "bar") && saw(&s, "[]"));
	o.setenv = NULL;
	reset(&s);

	/* ---- a program that does not exist could not be started */
	const char *const missing[] = { "/nonexistent/archfs-no-such-program", NULL };
	const char *const missing_path[] = { "archfs-no-such-program-xyz", NULL };
	o.argv = missing;
	o.ctx = &s;
	tail[0] = 'x';
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_IO);
	CHECK(tail[0] != '\0'); /* the reason, for the error message (not promised by proc.h, but wanted) */
	o.argv = missing_path;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_IO);
	reset(&s);

	/* ---- cancellation: SIGTERM at once */
	const char *const sleep30[] = { "sleep", "30", NULL };
	o.cancelled = cancel_later;
	t = run_cancelled(&o, &s, sleep30);
	CHECK(t >= 0.25 && t < 3.0);
	CHECK(s.polls >= 2);
	reset(&s);

	/* ... and SIGKILL two seconds later for a child that ignores SIGTERM */
	const char *const stubborn[] = { "/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 30", NULL };
	t = run_cancelled(&o, &s, stubborn);
	CHECK(t >= 2.0 && t < 8.0);
	CHECK(saw(&s, "ready"));
	reset(&s);

	/* the whole process group is signalled: a shell's own child goes too */
	const char *const nested[] = { "/bin/sh", "-c", "sleep 30; true", NULL };
	CHECK(run_cancelled(&o, &s, nested) < 3.0);
	reset(&s);

	/* a cancel callback that never fires changes nothing */
	const char *const quick[] = { "/bin/sh", "-c", "sleep 0.5; echo done", NULL };
	o.argv = quick;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK && saw(&s, "done"));
	CHECK(s.polls >= 1);
	o.cancelled = NULL;
	reset(&s);

	/* ---- a line longer than 64 KiB */
	const char *const longline[] = { "/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo end", NULL };
	char small[32];
	o.argv = longline;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, small, sizeof(small)) == AFS_OK);
	CHECK(s.bytes == 100000 + 3);
	CHECK(s.n >= 2 && strcmp(s.lines[s.n - 1], "end") == 0);
	for (size_t i = 0; i + 1 < s.n; i++)
		CHECK(strspn(s.lines[i], "x") == strlen(s.lines[i]));
	CHECK(strlen(small) < sizeof(small) && strstr(small, "end") != NULL);
	reset(&s);

	/* many lines: every one arrives, the tail holds the newest */
	const char *const many[] = { "/bin/sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done", NULL };
	o.argv = many;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(s.n == 3000 && saw(&s, "line0") && saw(&s, "line2999"));
	CHECK(strlen(tail) < sizeof(tail) && strstr(tail, "line2999") != NULL && strstr(tail, "line0\n") == NULL);
	reset(&s);
	/* a NULL line callback is allowed */
	o.line = NULL;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK && strstr(tail, "line2999") != NULL);
	o.line = on_line;

	/* ---- stdin fed from a callback */
	const char *const wc[] = { "wc", "-c", NULL };
	o.argv = wc;
	o.input = give;
	o.ctx = &s;
	s.in_total = 1000000;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(s.n == 1 && atol(s.lines[0]) == 1000000);
	reset(&s);

	/* the input callback's error is the result */
	o.ctx = &s;
	s.in_total = 10000000;
	s.in_fail = 1;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_CORRUPT);
	reset(&s);

	/* a child that stops reading early is not an error of the feed */
	const char *const headc[] = { "head", "-c", "10", NULL };
	o.argv = headc;
	o.input = endless;
	o.ctx = &s;
	t0 = now();
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(saw(&s, "zzzzzzzzzz"));
	CHECK(now() - t0 < 10.0);
	o.input = NULL;
	reset(&s);

	/* ---- two commands: prefix, output, suffix only after a success */
	const char *const first_ok[] = { "printf", "mid", NULL };
	const char *const first_bad[] = { "/bin/sh", "-c", "printf mid; exit 4", NULL };
	const char *const cat[] = { "cat", NULL };
	const char *const second_bad[] = { "/bin/sh", "-c", "cat; exit 5", NULL };
	o.argv = first_ok;
	o.pipe_to = cat;
	o.relay_prefix = "pre-";
	o.relay_suffix = "-post\n";
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_OK);
	CHECK(s.n == 1 && saw(&s, "pre-mid-post"));
	reset(&s);

	o.argv = first_bad;
	o.ctx = &s;
	status = 0;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_FAILED);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 4);
	CHECK(saw(&s, "pre-mid") && !saw(&s, "pre-mid-post"));
	reset(&s);

	o.argv = first_ok;
	o.pipe_to = second_bad;
	o.ctx = &s;
	status = 0;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_FAILED);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	reset(&s);

	/* both fail: the first command's status comes first */
	o.argv = first_bad;
	o.ctx = &s;
	status = 0;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_FAILED);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 4);
	reset(&s);

	/* a second command that does not exist */
	o.argv = first_ok;
	o.pipe_to = missing;
	o.ctx = &s;
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_IO);
	reset(&s);

	/* cancelling a pipeline */
	o.argv = sleep30;
	o.pipe_to = cat;
	o.cancelled = cancel_later;
	o.ctx = &s;
	s.after = 0.3;
	s.start = t0 = now();
	CHECK(afs_proc_run(&o, &status, tail, sizeof(tail)) == AFS_E_CANCELLED);
	CHECK(now() - t0 < 5.0);
	reset(&s);

	return tu_done("proc");
}
