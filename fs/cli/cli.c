/* SPDX-License-Identifier: MIT */
/* The command-line verify and restore: the job, a progress display, an exit code. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "args.h"
#include "cli.h"
#include "db.h"
#include "index.h"
#include "job.h"
#include "log.h"
#include "target.h"

#define POLL_MS 100
#define BAR_WIDTH 30

struct display {
	bool tty;
	bool bar_shown;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

static void clear_bar(struct display *d)
{
	if (d->tty && d->bar_shown) {
		fputs("\r\033[K", stderr);
		d->bar_shown = false;
	}
}

/* Log lines go to stderr, above the bar. */
static void show_line(void *ctx, const char *line)
{
	struct display *d = ctx;

	clear_bar(d);
	fprintf(stderr, "archfs: %s\n", line);
}

static void show_progress(struct display *d, enum afs_state st, unsigned pct)
{
	if (d->tty) {
		int fill = (int)(pct * BAR_WIDTH / 100);

		fprintf(stderr, "\r[%.*s%*s] %3u%% %-10s", fill, "##############################", BAR_WIDTH - fill, "",
			pct, afs_state_name(st));
		d->bar_shown = true;
	} else {
		printf("%u %s\n", pct, afs_state_name(st));
		fflush(stdout);
	}
}

int afs_cli_run(const char *command, const char *path, const struct afs_target *t)
{
	struct display d = { .tty = isatty(STDERR_FILENO) == 1 };
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_job *j = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	enum afs_cmd cmd = strcmp(command, "verify") == 0 ? AFS_CMD_VERIFY : AFS_CMD_RESTORE;
	enum afs_state st = AFS_ST_IDLE, last_st = AFS_ST_IDLE;
	unsigned pct = 0, last_pct = 101;
	char msg[512], *full = realpath(path, NULL), *error;
	enum afs_err err;
	int rc = 1;

	if (!full) {
		fprintf(stderr, "archfs: %s: %m\n", path);
		return 1;
	}
	err = afs_archive_open(full, &a, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_index_build(a, &ix, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_job_new(full, a, ix, t, &j);
	if (err != AFS_OK) {
		afs_log(AFS_LOG_ERR, "%s: %s", path, msg[0] ? msg : afs_strerror(err)); /* msg may name an entry */
		goto out;
	}
	afs_job_on_log(j, show_line, &d);
	err = afs_job_command(j, cmd, msg, sizeof(msg));
	if (err != AFS_OK) {
		fprintf(stderr, "archfs: %s\n", msg);
		rc = 2;
		goto out;
	}
	/* Ctrl-C cancels (until the database step commits), as .control's cancel does. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		struct timespec ts = { 0, POLL_MS * 1000000L };

		if (interrupted) {
			interrupted = 0;
			afs_job_command(j, AFS_CMD_CANCEL, msg, sizeof(msg));
		}
		afs_job_peek(j, &st, &pct);
		if (st != last_st || pct != last_pct) {
			show_progress(&d, st, pct);
			last_st = st;
			last_pct = pct;
		}
		if (st == AFS_ST_DONE || st == AFS_ST_FAILED || st == AFS_ST_CANCELLED)
			break;
		nanosleep(&ts, NULL);
	}
	st = afs_job_wait(j);
	clear_bar(&d);
	if (st == AFS_ST_DONE) {
		rc = 0; /* the log's last line said so */
	} else {
		error = afs_job_error(j);
		afs_log(AFS_LOG_ERR, "%s %s: %s", command, afs_state_name(st), error ? error : "unknown error");
		free(error);
	}
out:
	afs_job_free(j);
	afs_index_free(ix);
	afs_archive_free(a);
	free(full);
	return rc;
}

bool afs_cli_is_command(const struct afs_args *a)
{
	return a->npos == 2 && (strcmp(a->pos[0], "verify") == 0 || strcmp(a->pos[0], "restore") == 0);
}

int afs_cli_command(const struct afs_args *a)
{
	struct afs_target t = { 0 };
	struct afs_target_opts o = a->target;
	char msg[1024];
	int rc;

	if (a->nfuse > 0 || a->seek_cache || a->index_dir) {
		fprintf(stderr, "archfs: %s: option '%s' only applies to a mount\n", a->pos[0],
			a->nfuse > 0 ? a->fuse[0] : a->seek_cache ? "--seek-cache" : "--index-dir");
		return 2;
	}
	o.backends = afs_db_backends; /* the URL is checked and masked by its backend */
	if (afs_target_from_options(&o, &t, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "archfs: %s\n", msg);
		return 2;
	}
	rc = afs_cli_run(a->pos[0], a->pos[1], &t);
	afs_target_release(&t);
	return rc;
}

static void cli_usage(FILE *f)
{
	fprintf(f,
		"usage: archfs-cli verify ARCHIVE.zip [target options]\n"
		"       archfs-cli restore ARCHIVE.zip [target options]\n"
		"\n"
		"archfs verify and archfs restore, in a program that needs no FUSE library:\n"
		"for hosts and containers without /dev/fuse.  The target options are\n"
		"archfs's (see archfs --help and archfs(1)): --database URL, --uploads DIR,\n"
		"--migrate CMD, --flag-file PATH, --snapshot-dir DIR, --no-snapshot,\n"
		"--create, --pg-bindir DIR, --lock-wait SECONDS, --terminate-blockers,\n"
		"each also as -o name=value.\n"
		"\n"
		"  -h, --help     show this help and exit\n"
		"  -V, --version  show the version and exit\n"
		"\n"
		"Exit status: 0 on success, 1 archive or restore error, 2 usage error.\n");
}

int afs_cli_main(int argc, char *argv[])
{
	struct afs_args a;
	enum afs_err err;
	int rc = 2;

	afs_archive_init_process();
	err = afs_args_parse(&a, argc, argv);
	for (int i = 1; i < argc; i++) /* the values are copies now: hide passwords from ps */
		afs_target_mask_password(argv[i]);
	if (err == AFS_E_NOMEM) {
		fprintf(stderr, "archfs: out of memory\n");
		rc = 1;
	} else if (a.help) {
		cli_usage(stdout);
		rc = 0;
	} else if (a.version) {
		printf("archfs-cli %s\n", AFS_VERSION);
		rc = 0;
	} else if (err != AFS_OK || !afs_cli_is_command(&a)) {
		fprintf(stderr, "archfs: %s\n",
			a.bad[0] ? a.bad : "usage: archfs-cli verify|restore ARCHIVE.zip [target options] (see --help)");
	} else {
		rc = afs_cli_command(&a);
	}
	afs_args_release(&a);
	return rc;
}
