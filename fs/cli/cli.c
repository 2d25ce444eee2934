/* SPDX-License-Identifier: MIT */
/* The command-line verify and restore: the job, a progress display, an exit code. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "args.h"
#include "cli.h"
#include "db.h"
#include "diff.h"
#include "index.h"
#include "job.h"
#include "log.h"
#include "remote.h"
#include "report.h"
#include "target.h"

#define POLL_MS 100
#define BAR_WIDTH 30

/* Thread safety: log lines come on the job's thread, the poll loop runs
 * on the main one; mu orders what they print and guards last_st and
 * last_pct. */
struct display {
	bool tty;
	bool json; /* --json: every event a JSON line on stdout, nothing on stderr */
	struct timespec t0;
	struct afs_job *job; /* set before the first command */
	pthread_mutex_t mu;
	bool bar_shown;      /* under mu */
	enum afs_state last_st;
	unsigned last_pct;
};

/* How a command ended, for the exit status and the summary. */
struct outcome {
	int rc;              /* AFS_EXIT_* */
	const char *result;  /* "done", "cancelled", "refused" (usage, refused), else "failed" */
	const char *failure; /* NULL when done */
	char msg[1024];      /* the error, "" when none */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

static double elapsed(const struct display *d)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - d->t0.tv_sec) + (double)(now.tv_nsec - d->t0.tv_nsec) / 1e9;
}

/* Prints one JSON line (consumed) whole: the log comes from the job's
 * thread, the progress from this one. */
static void emit(char *json)
{
	if (!json)
		return;
	flockfile(stdout);
	fputs(json, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	funlockfile(stdout);
	free(json);
}

static void clear_bar(struct display *d)
{
	if (d->tty && d->bar_shown) {
		fputs("\r\033[K", stderr);
		d->bar_shown = false;
	}
}

/* Shows the job's state and percent when they changed since last shown;
 * mu held. */
static void show_progress_locked(struct display *d)
{
	enum afs_state st;
	unsigned pct;

	afs_job_peek(d->job, &st, &pct);
	if (st == AFS_ST_IDLE || (st == d->last_st && pct == d->last_pct))
		return;
	d->last_st = st;
	d->last_pct = pct;
	if (d->json) {
		emit(afs_report_event_status(afs_state_name(st), pct, elapsed(d)));
	} else if (d->tty) {
		int fill = (int)(pct * BAR_WIDTH / 100);

		fprintf(stderr, "\r[%.*s%*s] %3u%% %-10s", fill, "##############################", BAR_WIDTH - fill, "",
			pct, afs_state_name(st));
		d->bar_shown = true;
	} else {
		printf("%u %s\n", pct, afs_state_name(st));
		fflush(stdout);
	}
}

static void show_progress(struct display *d)
{
	pthread_mutex_lock(&d->mu);
	show_progress_locked(d);
	pthread_mutex_unlock(&d->mu);
}

/* Log lines go to stderr, above the bar, or are JSON lines on stdout.  A
 * new step logs a line as it starts: its state is shown then, so that no
 * step goes unseen between two polls. */
static void show_line(void *ctx, const char *line)
{
	struct display *d = ctx;

	pthread_mutex_lock(&d->mu);
	if (d->json) {
		emit(afs_report_event_log(line));
	} else {
		clear_bar(d);
		fprintf(stderr, "archfs: %s\n", line);
	}
	show_progress_locked(d);
	pthread_mutex_unlock(&d->mu);
}

/* Sets o to a failure of exit status rc, with its reason. */
static void set_outcome(struct outcome *o, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_outcome(struct outcome *o, int rc, const char *fmt, ...)
{
	static const char *const failures[] = {
		[AFS_EXIT_OK] = NULL,           [AFS_EXIT_FAILED] = "failed",   [AFS_EXIT_USAGE] = "usage",
		[AFS_EXIT_ARCHIVE] = "archive", [AFS_EXIT_TARGET] = "target",   [AFS_EXIT_REFUSED] = "refused",
		[AFS_EXIT_CANCELLED] = "cancelled",
	};
	va_list ap;

	o->rc = rc;
	o->failure = failures[rc];
	o->result = rc == AFS_EXIT_OK ? "done" : rc == AFS_EXIT_CANCELLED ? "cancelled"
		    : rc == AFS_EXIT_USAGE || rc == AFS_EXIT_REFUSED ? "refused" : "failed";
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
}

int afs_cli_exit_status(enum afs_fail f)
{
	switch (f) {
	case AFS_FAIL_NONE:
		return AFS_EXIT_OK;
	case AFS_FAIL_ARCHIVE:
		return AFS_EXIT_ARCHIVE;
	case AFS_FAIL_TARGET:
		return AFS_EXIT_TARGET;
	case AFS_FAIL_REFUSED:
		return AFS_EXIT_REFUSED;
	case AFS_FAIL_CANCELLED:
		return AFS_EXIT_CANCELLED;
	case AFS_FAIL_FAILED:
		break;
	}
	return AFS_EXIT_FAILED;
}

/* The exit status of a command the job refused to start (job.h). */
static int refusal_status(enum afs_err err)
{
	return err == AFS_E_INVAL ? AFS_EXIT_USAGE : err == AFS_E_BUSY ? AFS_EXIT_REFUSED
	       : err == AFS_E_NOENT || err == AFS_E_IO ? AFS_EXIT_TARGET : AFS_EXIT_FAILED;
}

/* Ends a command: in --json mode the summary line on stdout (j: the job,
 * NULL when none was made; t: the target, NULL when it was not read). */
static int conclude(const struct display *d, const char *command, const char *archive, struct afs_job *j,
		    const struct afs_target *t, const struct outcome *o)
{
	struct afs_summary_view v = { .command = command, .result = o->result, .exit_code = o->rc,
				      .failure = o->failure, .error = o->msg[0] ? o->msg : NULL, .archive = archive };
	char *status;

	if (!d->json)
		return o->rc;
	status = j ? afs_job_status_json(j) : NULL;
	v.elapsed_seconds = elapsed(d);
	v.status_json = status;
	if (t) {
		v.target_type = t->kind != AFS_DB_UNKNOWN ? afs_db_type_name(t->kind) : NULL;
		v.target_url = t->display_url;
		v.uploads = t->uploads;
	}
	emit(afs_report_summary(&v));
	free(status);
	return o->rc;
}

bool afs_cli_remote_setup(const struct afs_args *a, char *msg, size_t msglen)
{
	struct afs_remote_opts ro = { .s3_endpoint = a->s3_endpoint, .ca_file = a->ca_file };
	const char *v = a->remote_cache;
	char *end;
	unsigned long mb;

	if (v) {
		errno = 0;
		mb = strtoul(v, &end, 10);
		if (errno || end == v || *end || v[0] == '-' || mb < 1 || mb > 1048576) {
			snprintf(msg, msglen, "--remote-cache: '%s' is not a number of megabytes (1 to 1048576)", v);
			return false;
		}
		ro.cache_bytes = (size_t)mb << 20;
	}
	if (ro.s3_endpoint && strncmp(ro.s3_endpoint, "http://", 7) != 0 && strncmp(ro.s3_endpoint, "https://", 8) != 0) {
		snprintf(msg, msglen, "--s3-endpoint: '%s' is not an http:// or https:// URL", ro.s3_endpoint);
		return false;
	}
	if (!ro.ca_file && getenv("ARCHFS_CA_FILE") && *getenv("ARCHFS_CA_FILE"))
		ro.ca_file = getenv("ARCHFS_CA_FILE");
	if (ro.ca_file && access(ro.ca_file, R_OK) != 0) {
		snprintf(msg, msglen, "%s: '%s': %s", a->ca_file ? "--ca-file" : "ARCHFS_CA_FILE", ro.ca_file,
			 strerror(errno));
		return false;
	}
	afs_remote_init_process(&ro);
	return true;
}

void afs_cli_mask_url(char *s)
{
	char *auth, *end, *colon, *q;

	if (!afs_remote_url(s))
		return;
	auth = strstr(s, "://") + 3;
	end = auth + strcspn(auth, "/?#");
	colon = memchr(auth, ':', (size_t)(end - auth));
	if (colon && memchr(colon, '@', (size_t)(end - colon)))
		for (char *p = colon + 1; *p != '@'; p++)
			*p = 'x';
	if ((q = strchr(end, '?')))
		for (char *p = q + 1; *p; p++)
			*p = 'x';
}

static int run(struct display *d, const char *command, const char *path, const struct afs_target *t)
{
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_job *j = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	enum afs_cmd cmd = strcmp(command, "verify") == 0 ? AFS_CMD_VERIFY : AFS_CMD_RESTORE;
	enum afs_state st = AFS_ST_IDLE;
	unsigned pct = 0;
	char msg[512] = "", *full, *error, sbuf[PATH_MAX];
	struct outcome o = { 0 };
	enum afs_err err;
	int rc;

	full = afs_remote_url(path) ? strdup(path) : realpath(path, NULL);
	path = afs_remote_redact(path, sbuf, sizeof(sbuf)); /* as messages show it */
	if (!full) {
		set_outcome(&o, errno == ENOMEM ? AFS_EXIT_FAILED : AFS_EXIT_ARCHIVE, "%s: %s", path, strerror(errno));
		if (!d->json)
			fprintf(stderr, "archfs: %s\n", o.msg);
		goto out;
	}
	err = afs_archive_open(full, &a, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_index_build(a, &ix, msg, sizeof(msg));
	if (err != AFS_OK) /* msg may name an entry */
		set_outcome(&o, err == AFS_E_NOMEM ? AFS_EXIT_FAILED : AFS_EXIT_ARCHIVE, "%s: %s", path,
			    msg[0] ? msg : afs_strerror(err));
	else if ((err = afs_job_new(full, a, ix, t, &j)) != AFS_OK)
		set_outcome(&o, AFS_EXIT_FAILED, "%s: %s", path, afs_strerror(err));
	if (err != AFS_OK) {
		if (!d->json)
			afs_log(AFS_LOG_ERR, "%s", o.msg);
		goto out;
	}
	d->job = j;
	afs_job_on_log(j, show_line, d);
	err = afs_job_command(j, cmd, msg, sizeof(msg));
	if (err != AFS_OK) {
		set_outcome(&o, refusal_status(err), "%s", msg);
		if (!d->json)
			fprintf(stderr, "archfs: %s\n", msg);
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
		show_progress(d);
		afs_job_peek(j, &st, &pct);
		if (st == AFS_ST_DONE || st == AFS_ST_FAILED || st == AFS_ST_CANCELLED)
			break;
		nanosleep(&ts, NULL);
	}
	st = afs_job_wait(j);
	show_progress(d); /* the final state, if the last poll saw the one before */
	clear_bar(d);
	if (st == AFS_ST_DONE) {
		set_outcome(&o, AFS_EXIT_OK, "%s", ""); /* the log's last line said so */
	} else {
		error = afs_job_error(j);
		set_outcome(&o, st == AFS_ST_CANCELLED ? AFS_EXIT_CANCELLED : afs_cli_exit_status(afs_job_fail_class(j)),
			    "%s", error ? error : "unknown error");
		if (!d->json)
			afs_log(AFS_LOG_ERR, "%s %s: %s", command, afs_state_name(st), o.msg);
		free(error);
	}
out:
	rc = conclude(d, command, full && !afs_remote_url(full) ? full : path, j, t, &o);
	afs_job_free(j);
	afs_index_free(ix);
	afs_archive_free(a);
	free(full);
	return rc;
}

static void display_init(struct display *d, bool json)
{
	*d = (struct display){ .tty = !json && isatty(STDERR_FILENO) == 1, .json = json, .last_pct = 101 };
	pthread_mutex_init(&d->mu, NULL);
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
}

int afs_cli_run(const char *command, const char *path, const struct afs_target *t, bool json)
{
	struct display d;
	int rc;

	display_init(&d, json);
	afs_remote_set_background(true); /* no fork here: remote read-ahead may start threads */
	rc = run(&d, command, path, t);
	pthread_mutex_destroy(&d.mu);
	return rc;
}

bool afs_cli_is_command(const struct afs_args *a)
{
	return a->npos == 2 && (strcmp(a->pos[0], "verify") == 0 || strcmp(a->pos[0], "restore") == 0);
}

int afs_cli_command(const struct afs_args *a)
{
	struct display d;
	struct afs_target t = { 0 };
	struct afs_target_opts opts = a->target;
	struct outcome o = { 0 };
	char msg[1024];
	enum afs_err err;
	int rc;

	display_init(&d, a->json);
	if (a->bad[0]) {
		set_outcome(&o, AFS_EXIT_USAGE, "%s", a->bad);
	} else if (a->nfuse > 0 || a->seek_cache || a->index_dir) {
		set_outcome(&o, AFS_EXIT_USAGE, "%s: option '%s' only applies to a mount", a->pos[0],
			    a->nfuse > 0 ? a->fuse[0] : a->seek_cache ? "--seek-cache" : "--index-dir");
	} else if (!afs_cli_remote_setup(a, msg, sizeof(msg))) {
		set_outcome(&o, AFS_EXIT_USAGE, "%s", msg);
	} else {
		opts.backends = afs_db_backends; /* the URL is checked and masked by its backend */
		err = afs_target_from_options(&opts, &t, msg, sizeof(msg));
		if (err != AFS_OK) /* a missing target directory is a missing target, anything else usage */
			set_outcome(&o, err == AFS_E_NOENT || err == AFS_E_NOTDIR ? AFS_EXIT_TARGET
					: err == AFS_E_NOMEM ? AFS_EXIT_FAILED : AFS_EXIT_USAGE, "%s", msg);
	}
	if (o.rc != AFS_EXIT_OK) {
		if (!a->json)
			fprintf(stderr, "archfs: %s\n", o.msg);
		char sbuf[PATH_MAX];
		const char *path = a->pos[1] ? afs_remote_redact(a->pos[1], sbuf, sizeof(sbuf)) : NULL;

		rc = conclude(&d, a->pos[0], path, NULL, NULL, &o);
	} else {
		afs_remote_set_background(true); /* no fork here: remote read-ahead may start threads */
		rc = run(&d, a->pos[0], a->pos[1], &t);
		afs_target_release(&t);
	}
	pthread_mutex_destroy(&d.mu);
	return rc;
}

static void cli_usage(FILE *f)
{
	fprintf(f,
		"usage: archfs-cli verify [--json] ARCHIVE.zip [target options]\n"
		"       archfs-cli restore [--json] ARCHIVE.zip [target options]\n"
		"       archfs-cli diff [--json] OLD.zip NEW.zip [PATH]\n"
		"       archfs-cli diff [--json] BACKUP_DIR OLD NEW [PATH]\n"
		"\n"
		"archfs verify and archfs restore, in a program that needs no FUSE library:\n"
		"for hosts and containers without /dev/fuse.  The target options are\n"
		"archfs's (see archfs --help and archfs(1)): --database URL, --uploads DIR,\n"
		"--migrate CMD, --flag-file PATH, --snapshot-dir DIR, --no-snapshot,\n"
		"--create, --pg-bindir DIR, --lock-wait SECONDS, --terminate-blockers,\n"
		"each also as -o name=value.  diff lists what changed between two backups\n"
		"(see archfs --help); its exit status: 0 the same, 1 different, 2 usage\n"
		"error, 3 an archive cannot be read.\n"
		"\n"
		"ARCHIVE.zip may be remote, https://HOST/PATH.zip or s3://BUCKET/KEY.zip, with\n"
		"--remote-cache MB, --s3-endpoint URL and --ca-file FILE (see archfs --help);\n"
		"S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
		"AWS_SESSION_TOKEN, AWS_REGION, or AWS_PROFILE in ~/.aws.\n"
		"\n"
		"  --json         one JSON object per line on stdout (status, log, then a\n"
		"                 summary with the exit code), nothing on stderr\n"
		"  -h, --help     show this help and exit\n"
		"  -V, --version  show the version and exit\n"
		"\n"
		"Exit status: 0 success; 1 the restore failed and changed nothing (or was\n"
		"rolled back), or another error; 2 usage error; 3 the archive is bad\n"
		"(cannot be opened, not a backup, damaged); 4 the target is bad (missing,\n"
		"unreachable, refused by its server); 5 refused (another restore holds the\n"
		"target); 6 cancelled (Ctrl-C, SIGTERM) before the commit.\n");
}

int afs_cli_main(int argc, char *argv[])
{
	struct afs_args a;
	enum afs_err err;
	int rc = 2;

	afs_archive_init_process();
	if (argc >= 2 && strcmp(argv[1], "diff") == 0)
		return afs_diff_main(argc - 1, argv + 1); /* its own arguments: no target, no mount */
	err = afs_args_parse(&a, argc, argv);
	for (int i = 1; i < argc; i++) /* the values are copies now: hide passwords from ps */
		afs_target_mask_password(argv[i]);
	for (int i = 1; i < argc; i++)
		afs_cli_mask_url(argv[i]);
	if (err == AFS_E_NOMEM) {
		fprintf(stderr, "archfs: out of memory\n");
		rc = 1;
	} else if (a.help) {
		cli_usage(stdout);
		rc = 0;
	} else if (a.version) {
		printf("archfs-cli %s\n", AFS_VERSION);
		rc = 0;
	} else if (afs_cli_is_command(&a)) {
		rc = afs_cli_command(&a); /* a bad option too: in its output mode */
	} else {
		fprintf(stderr, "archfs: %s\n",
			err != AFS_OK && a.bad[0] ? a.bad
			: "usage: archfs-cli verify|restore ARCHIVE.zip [target options] (see --help)");
	}
	afs_args_release(&a);
	return rc;
}
