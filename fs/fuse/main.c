/* SPDX-License-Identifier: MIT */
/* archfs: options, checks before mounting, and the FUSE session. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "archive.h"
#include "args.h"
#include "backups.h"
#include "cli.h"
#include "db.h"
#include "diff.h"
#include "log.h"
#include "ops.h"
#include "pointfile.h"
#include "remote.h"
#include "seekidx.h"
#include "target.h"
#include "view.h"

enum { EXIT_MOUNT = 1, EXIT_USAGE = 2 };
#define DEFAULT_SEEK_CACHE_MB 128
#define MAX_OPEN_ARCHIVES_CAP 1000000
/* Descriptors never given to archives: libfuse's device and a splice pipe
 * pair per worker thread, the log, and a restore's database files (the
 * target, its journal, the staged copy), uploads tree walk, snapshot
 * writer and its child processes' pipes. */
#define FD_RESERVE 128
#define STR_(x) #x
#define STR(x) STR_(x)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: archfs [options] ARCHIVE.zip MOUNTPOINT\n"
		"       archfs [options] https://HOST/PATH.zip|s3://BUCKET/KEY.zip MOUNTPOINT\n"
		"       archfs [options] s3://BUCKET/PREFIX/ MOUNTPOINT\n"
		"       archfs [options] BACKUP_DIR MOUNTPOINT\n"
		"       archfs verify [--json] ARCHIVE.zip [target options]\n"
		"       archfs restore [--json] ARCHIVE.zip [target options]\n"
		"       archfs diff [--json] OLD.zip NEW.zip [PATH]\n"
		"       archfs diff [--json] BACKUP_DIR OLD NEW [PATH]\n"
		"\n"
		"Mounts a backup archive read-only at MOUNTPOINT; with a target, writing\n"
		"'restore' to MOUNTPOINT/.control restores it.  A directory of archives\n"
		"mounts as one directory per archive (NAME.zip as NAME/, archives added\n"
		"later included) and 'latest', a link to the newest.  verify and restore\n"
		"run the same restore without FUSE (also as archfs-cli, which needs no\n"
		"FUSE library).\n"
		"diff lists what changed between two backups, A, D, M or T and the path\n"
		"(--json: one JSON object per line), from the archives' central directories\n"
		"alone; OLD and NEW name backups in BACKUP_DIR as a mount shows them (NAME,\n"
		"or latest); PATH limits it to a file or directory.  Exit status: 0 the same,\n"
		"1 different, 2 usage error, 3 an archive cannot be read.\n"
		"\n"
		"Target options (each also as -o name=value):\n"
		"  --database URL         sqlite:////abs/path.db (four slashes: an absolute path)\n"
		"                         or postgresql://user:pw@host/db (default: $DATABASE_URL);\n"
		"                         sqlite:///name.db (three slashes) is relative to the\n"
		"                         application's folder, which archfs cannot know: refused\n"
		"  --create               restore into a new database when the target does not\n"
		"                         exist (without it a missing database is refused)\n"
		"  --uploads DIR          the live uploads directory (default: $UPLOAD_FOLDER)\n"
		"  --migrate CMD          run before the swap on a staged copy of the archive's\n"
		"                         database, via /bin/sh -c, with DATABASE_URL naming\n"
		"                         that copy (e.g. 'flask db upgrade')\n"
		"  --flag-file PATH       exists (JSON: pid, archive, started_at) while a restore runs\n"
		"  --snapshot-dir DIR     where pre-restore snapshots go (default: beside the target)\n"
		"  --no-snapshot          skip the pre-restore snapshot\n"
		"  --pg-bindir DIR        where pg_restore and pg_dump are (default: the newest)\n"
		"  --lock-wait SECONDS    how long the database step may wait on other sessions' locks (60)\n"
		"  --terminate-blockers   past --lock-wait, terminate the blocking sessions\n"
		"\n"
		"verify and restore:\n"
		"  --json                 one JSON object per line on stdout (status, log, then a\n"
		"                         summary with the exit code), nothing on stderr\n"
		"\n"
		"Mount options (each also as -o name=value):\n"
		"  --seek-cache MB        memory for seek points into deflated entries (default 128)\n"
		"  --index-dir DIR        where seek points are kept between mounts, so that a\n"
		"                         remount reads at random at once (default\n"
		"                         $XDG_CACHE_HOME/archfs, else ~/.cache/archfs; none: keep none)\n"
		"  --max-open-archives N  BACKUP_DIR: archives kept open at once; past N the least\n"
		"                         recently used idle ones are closed, reopened when next used\n"
		"                         (default " STR(AFS_BACKUPS_MAX_OPEN) ", and never more than the limit of\n"
		"                         open files allows)\n"
		"\n"
		"Remote archives (mount, verify and restore; each also as -o name=value):\n"
		"  --remote-cache MB      memory for blocks of a remote archive (default " STR(AFS_REMOTE_CACHE_DEFAULT_MB) ")\n"
		"  --s3-endpoint URL      an S3-compatible server, addressed path-style\n"
		"                         (default: $AWS_ENDPOINT_URL, else AWS)\n"
		"  --ca-file FILE         trust the CA certificates in FILE for https://\n"
		"                         (default: $ARCHFS_CA_FILE, else the system's store)\n"
		"  S3 credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
		"  AWS_SESSION_TOKEN, AWS_REGION, or AWS_PROFILE in ~/.aws (docs/remote.md)\n"
		"\n"
		"Options:\n"
		"  -h, --help             show this help and exit\n"
		"  -V, --version          show the version and exit\n"
		"  -f                     stay in the foreground\n"
		"  -d                     debug output (implies -f)\n"
		"  -s                     single-threaded\n"
		"  -o opt[,opt...]        mount options, e.g. -o allow_other,ro\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n"
		"Exit status: 0 after a clean unmount, 1 archive or mount error, 2 usage error.\n"
		"verify and restore: 0 success; 1 the restore failed and changed nothing (or\n"
		"was rolled back), or another error; 2 usage error; 3 the archive is bad\n"
		"(cannot be opened, not a backup, damaged); 4 the target is bad (missing,\n"
		"unreachable, refused by its server); 5 refused (another restore holds the\n"
		"target); 6 cancelled (Ctrl-C, SIGTERM) before the commit.\n");
}

/* Checks that the mount point is a directory we can mount on. */
static int check_mountpoint(const char *mp)
{
	struct stat st;

	if (stat(mp, &st) != 0) {
		fprintf(stderr, "archfs: mount point '%s': %s\n", mp, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "archfs: mount point '%s' is not a directory\n", mp);
		return -1;
	}
	return 0;
}

/* Names the mount "archfs" with the archive as its source in mount(8) and df. */
static int add_fsname(struct fuse_args *args, const char *archive)
{
	size_t len = strlen(archive);
	char *opt = malloc(len * 2 + 32), *p;
	int rc;

	if (!opt)
		return -1;
	p = opt + sprintf(opt, "-osubtype=archfs,fsname=");
	for (const char *a = archive; *a; a++) {
		if (*a == ',' || *a == '\\')
			*p++ = '\\'; /* fuse_opt escapes */
		*p++ = *a;
	}
	*p = '\0';
	rc = fuse_opt_add_arg(args, opt);
	free(opt);
	return rc;
}

static int run_session(struct fuse_args *args, struct afs_mount *m, const char *mountpoint)
{
	struct fuse_cmdline_opts cl;
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se;
	struct afs_ll *ll;
	int rc = EXIT_MOUNT;

	if (fuse_parse_cmdline(args, &cl) != 0)
		return EXIT_USAGE;
	afs_log_set_debug(cl.debug);
	if (!(ll = afs_ll_new(m))) {
		fprintf(stderr, "archfs: out of memory\n");
		goto out;
	}
	se = afs_ll_session(ll, args, !cl.singlethread);
	if (!se) {
		rc = EXIT_USAGE; /* libfuse printed the rejected option */
		goto out;
	}
	if (fuse_session_mount(se, mountpoint) != 0)
		goto out_destroy;
	if (fuse_daemonize(cl.foreground) != 0)
		goto out_unmount;
	afs_remote_set_background(true); /* after the fork: remote read-ahead may start threads */
	if (!cl.foreground)
		afs_log_to_syslog();
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;
	if (cl.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc)
			goto out_signals;
		fuse_loop_cfg_set_clone_fd(lc, cl.clone_fd);
		if (cl.max_threads > 0 && cl.max_threads <= 100000) /* unset is -1 */
			fuse_loop_cfg_set_max_threads(lc, cl.max_threads);
		if (cl.max_idle_threads <= 100000)
			fuse_loop_cfg_set_idle_threads(lc, cl.max_idle_threads);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* libfuse returns the signal that ended the loop: a stop, not a failure */
	rc = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : EXIT_MOUNT;
out_signals:
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_session_unmount(se);
out_destroy:
	fuse_session_destroy(se);
out:
	afs_ll_free(ll);
	free(cl.mountpoint);
	return rc;
}

/* --seek-cache MB in bytes, or 0 with a message for a bad value. */
static size_t seek_cache_bytes(const char *v)
{
	char *end;
	unsigned long mb;

	if (!v)
		return (size_t)DEFAULT_SEEK_CACHE_MB << 20;
	errno = 0;
	mb = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || mb < 1 || mb > 1048576) {
		fprintf(stderr, "archfs: --seek-cache: '%s' is not a number of megabytes (1 to 1048576)\n", v);
		return 0;
	}
	return (size_t)mb << 20;
}

/* --max-open-archives N, or 0 with a message for a bad value. */
static size_t max_open_archives(const char *v)
{
	char *end;
	unsigned long n;

	if (!v)
		return AFS_BACKUPS_MAX_OPEN;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < 1 || n > MAX_OPEN_ARCHIVES_CAP) {
		fprintf(stderr, "archfs: --max-open-archives: '%s' is not a number of archives (1 to %d)\n", v,
			MAX_OPEN_ARCHIVES_CAP);
		return 0;
	}
	return n;
}

/* Loads libgcc_s now, while descriptors are free.  glibc's pthread_cancel
 * (libfuse cancels its workers when the session ends) loads the unwinder
 * on first use and aborts the process when it cannot ("libgcc_s.so.1 must
 * be installed for pthread_cancel to work"), as when every descriptor is
 * taken; once loaded, it is found without opening anything.  Never
 * unloaded. */
static void preload_unwinder(void)
{
	if (!dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE))
		afs_log(AFS_LOG_WARN, "cannot load libgcc_s.so.1 (%s): the daemon may abort if it runs out of "
			"file descriptors", dlerror());
}

/* Raises the soft limit of open files to the hard one (every open archive
 * holds a descriptor) and returns the soft limit then in force. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &want) == 0) /* fails for a hard limit past fs.nr_open */
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur;
}

/* The archives that may be open at once with nofile descriptors: all but
 * FD_RESERVE (half of them under twice that). */
static size_t fd_budget(rlim_t nofile)
{
	if (nofile == RLIM_INFINITY || nofile > SIZE_MAX / 2)
		return SIZE_MAX / 2;
	return nofile > 2 * FD_RESERVE ? (size_t)nofile - FD_RESERVE : (size_t)nofile / 2;
}

/* Bounds the open archives of a backups directory: max_open as asked, cut
 * (with a warning) to what the limit of open files leaves. */
static void limit_backups(struct afs_backups *b, size_t max_open, rlim_t nofile)
{
	size_t budget = fd_budget(nofile);

	if (max_open > budget) {
		afs_log(AFS_LOG_WARN, "--max-open-archives %zu: the limit of %llu open files leaves room for %zu",
			max_open, (unsigned long long)nofile, budget);
		max_open = budget;
	}
	afs_backups_limit(b, max_open, budget);
}

/* True when one of libfuse's -o lists holds the item name. */
static bool fuse_opt_given(const struct afs_args *o, const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; i + 1 < o->nfuse; i++) {
		if (strcmp(o->fuse[i], "-o") != 0)
			continue;
		for (const char *p = o->fuse[i + 1]; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
			if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
				return true;
	}
	return false;
}

static void points_line(const char *line)
{
	afs_log(AFS_LOG_WARN, "%s", line);
}

static void log_line(void *ctx, const char *line)
{
	afs_log(AFS_LOG_INFO, "restore: %s", line);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct afs_args o;
	struct afs_mount m = { .uid = getuid(), .gid = getgid(), .mounted_at = time(NULL) };
	struct afs_target target = { 0 };
	struct afs_seekreg *seek_pool = NULL;
	const char *archive, *mountpoint;
	char msg[1024], *full = NULL, *mp_full = NULL, shown[PATH_MAX];
	size_t seek_cap, max_open;
	rlim_t nofile;
	struct stat ast;
	bool remote;
	enum afs_err err;
	int rc = EXIT_USAGE;

	afs_archive_init_process();
	preload_unwinder();
	if (argc >= 2 && strcmp(argv[1], "diff") == 0)
		return afs_diff_main(argc - 1, argv + 1); /* its own arguments: no target, no mount */
	err = afs_args_parse(&o, argc, argv);
	/* the values are copies now: hide database passwords from ps */
	for (int i = 1; i < argc; i++)
		afs_target_mask_password(argv[i]);
	for (int i = 1; i < argc; i++)
		afs_cli_mask_url(argv[i]);
	if (err == AFS_E_NOMEM) {
		fprintf(stderr, "archfs: out of memory\n");
		rc = EXIT_MOUNT;
		goto out;
	}
	if (o.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (o.version) {
		printf("archfs %s (FUSE library %s)\n", AFS_VERSION, fuse_pkgversion());
		rc = 0;
		goto out;
	}
	if (afs_cli_is_command(&o)) {
		rc = afs_cli_command(&o); /* a bad option too: in its output mode */
		goto out;
	}
	if (err == AFS_OK && o.json) {
		fprintf(stderr, "archfs: option '--json' only applies to verify and restore\n");
		goto out;
	}
	if (err != AFS_OK || o.npos != 2) {
		fprintf(stderr, "archfs: %s\n",
			o.bad[0] ? o.bad : "usage: archfs [options] ARCHIVE.zip MOUNTPOINT (see archfs --help)");
		goto out;
	}
	mountpoint = o.pos[1];
	remote = afs_remote_url(o.pos[0]);
	archive = afs_remote_redact(o.pos[0], shown, sizeof(shown)); /* as messages show it */
	if (!afs_cli_remote_setup(&o, msg, sizeof(msg))) {
		fprintf(stderr, "archfs: %s\n", msg);
		goto out;
	}
	o.target.backends = afs_db_backends; /* the URL is checked and masked by its backend */
	if (afs_target_from_options(&o.target, &target, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "archfs: %s\n", msg);
		goto out;
	}
	seek_cap = seek_cache_bytes(o.seek_cache);
	max_open = max_open_archives(o.max_open_archives);
	if (!seek_cap || !max_open)
		goto out;
	rc = EXIT_MOUNT;
	nofile = raise_nofile();
	if (fuse_opt_add_arg(&args, argv[0]) != 0)
		goto nomem;
	for (int i = 0; i < o.nfuse; i++)
		if (fuse_opt_add_arg(&args, o.fuse[i]) != 0)
			goto nomem;
	/* Other users may enter: the kernel must check every file's mode (a
	 * 0600 entry is not theirs to read), and .status and .log become the
	 * owner's only. */
	m.others = fuse_opt_given(&o, "allow_other");
	if (m.others && fuse_opt_add_arg(&args, "-odefault_permissions") != 0)
		goto nomem;
	seek_pool = afs_seekreg_new(0, seek_cap); /* one cap for every archive of the mount */
	full = remote ? strdup(o.pos[0]) : realpath(archive, NULL); /* the daemon leaves the current directory */
	if (!seek_pool || (!full && (remote || errno == ENOMEM)))
		goto nomem;
	if (!o.index_dir || strcmp(o.index_dir, "none") != 0) { /* seek points kept between mounts */
		int dfd = afs_pointdir_open(o.index_dir, msg, sizeof(msg));

		if (dfd >= 0) {
			afs_seekreg_keep(seek_pool, dfd, points_line);
		} else if (o.index_dir) {
			fprintf(stderr, "archfs: --index-dir: %s\n", msg);
			rc = EXIT_USAGE;
			goto out;
		} else {
			afs_log(AFS_LOG_WARN, "seek points are not kept between mounts: %s", msg);
		}
	}
	if (full && (remote ? afs_remote_is_prefix(full) : stat(full, &ast) == 0 && S_ISDIR(ast.st_mode)))
		err = afs_backups_new(full, &target, seek_pool, log_line, &m.backups, msg, sizeof(msg));
	else
		err = afs_view_open(full ? full : archive, &target, seek_pool, log_line, &m.view, msg, sizeof(msg));
	if (err != AFS_OK) {
		afs_log(AFS_LOG_ERR, "%s: %s", archive, msg); /* escaped: msg may name an archive entry */
		goto out;
	}
	if (m.backups)
		limit_backups(m.backups, max_open, nofile);
	if (check_mountpoint(mountpoint) != 0 || add_fsname(&args, archive) != 0)
		goto out;
	/* absolute: the daemon changes to / and unmounts by this path on SIGTERM */
	mp_full = realpath(mountpoint, NULL);
	if (!mp_full)
		goto nomem;
	rc = run_session(&args, &m, mp_full);
	goto out;
nomem:
	fprintf(stderr, "archfs: out of memory\n");
out:
	afs_view_free(m.view); /* waits for a restore past its commit to end */
	afs_backups_free(m.backups);
	afs_seekreg_free(seek_pool);
	afs_target_release(&target);
	fuse_opt_free_args(&args);
	afs_args_release(&o);
	free(full);
	free(mp_full);
	return rc;
}
