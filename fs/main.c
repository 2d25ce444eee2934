/* SPDX-License-Identifier: MIT */
/* archfs: options, checks before mounting, and the FUSE session. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive.h"
#include "index.h"
#include "log.h"
#include "ops.h"
#include <fuse_lowlevel.h> /* fuse_parse_cmdline() */

enum { EXIT_MOUNT = 1, EXIT_USAGE = 2 };
enum { KEY_HELP, KEY_VERSION };

struct options {
	char *archive;
	char *mountpoint;
	int nonopts;
	bool help, version;
	char bad[256]; /* first usage error, reported after parsing */
};

static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	switch (key) {
	case KEY_HELP:
		o->help = true;
		return 0;
	case KEY_VERSION:
		o->version = true;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (o->nonopts == 0)
			o->archive = strdup(arg);
		else if (o->nonopts == 1)
			o->mountpoint = strdup(arg);
		else if (!o->bad[0])
			snprintf(o->bad, sizeof(o->bad), "unexpected argument '%s'", arg);
		o->nonopts++;
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "--", 2) == 0) {
			if (!o->bad[0])
				snprintf(o->bad, sizeof(o->bad), "unknown option '%s' (see archfs --help)", arg);
			return 0;
		}
		return 1; /* -f, -d, -s and -o items: libfuse checks them */
	}
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: archfs [options] ARCHIVE.zip MOUNTPOINT\n"
		"\n"
		"Mounts a backup archive read-only at MOUNTPOINT.\n"
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
		"Exit status: 0 after a clean unmount, 1 archive or mount error, 2 usage error.\n");
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
	struct fuse *fuse;
	int rc = EXIT_MOUNT;

	if (fuse_parse_cmdline(args, &cl) != 0)
		return EXIT_USAGE;
	afs_log_set_debug(cl.debug);
	fuse = fuse_new(args, &afs_fuse_ops, sizeof(afs_fuse_ops), m);
	if (!fuse) {
		rc = EXIT_USAGE; /* libfuse printed the rejected option */
		goto out;
	}
	if (fuse_mount(fuse, mountpoint) != 0)
		goto out_destroy;
	if (fuse_daemonize(cl.foreground) != 0)
		goto out_unmount;
	if (!cl.foreground)
		afs_log_to_syslog();
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	if (cl.singlethread) {
		rc = fuse_loop(fuse);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc)
			goto out_signals;
		fuse_loop_cfg_set_clone_fd(lc, cl.clone_fd);
		if (cl.max_threads > 0 && cl.max_threads <= 100000) /* unset is -1 */
			fuse_loop_cfg_set_max_threads(lc, cl.max_threads);
		if (cl.max_idle_threads <= 100000)
			fuse_loop_cfg_set_idle_threads(lc, cl.max_idle_threads);
		rc = fuse_loop_mt(fuse, lc);
		fuse_loop_cfg_destroy(lc);
	}
	rc = rc == 0 ? 0 : EXIT_MOUNT;
out_signals:
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_destroy:
	fuse_destroy(fuse);
out:
	free(cl.mountpoint);
	return rc;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { 0 };
	struct afs_mount m = { .uid = getuid(), .gid = getgid() };
	char msg[512];
	enum afs_err err;
	int rc = EXIT_USAGE;

	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) != 0)
		goto out;
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
	if (o.bad[0] || !o.archive || !o.mountpoint) {
		fprintf(stderr, "archfs: %s\n",
			o.bad[0] ? o.bad : "usage: archfs [options] ARCHIVE.zip MOUNTPOINT (see archfs --help)");
		goto out;
	}
	rc = EXIT_MOUNT;
	err = afs_archive_open(o.archive, &m.archive, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_index_build(m.archive, &m.index, msg, sizeof(msg));
	if (err != AFS_OK) {
		fprintf(stderr, "archfs: %s: %s\n", o.archive, msg);
		goto out;
	}
	if (check_mountpoint(o.mountpoint) != 0 || add_fsname(&args, o.archive) != 0)
		goto out;
	rc = run_session(&args, &m, o.mountpoint);
out:
	afs_index_free(m.index);
	afs_archive_free(m.archive);
	fuse_opt_free_args(&args);
	free(o.archive);
	free(o.mountpoint);
	return rc;
}
