/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/mount/resolve.c: what each path of a single-archive mount and
 * of a backups directory names, and the attributes, links, listings and
 * permissions each place gets, without mounting. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "backups.h"
#include "index.h"
#include "resolve.h"
#include "seekidx.h"
#include "target.h"
#include "testutil.h"
#include "view.h"

#define MOUNTED_AT 1700000000
#define ENTRY_MTIME 1600000000
#define FILE_MTIME 1500000000
#define DIR_MTIME 1400000000

static const struct tu_entry entries[] = {
	{ "manifest.json", "{\"db_type\": \"sqlite\"}", 20, 1, S_IFREG | 0600, ENTRY_MTIME },
	{ "uploads/a.txt", "hello", 5, 0, S_IFREG | 0644, ENTRY_MTIME },
	{ "uploads/link", "a.txt", 5, 0, S_IFLNK | 0777, ENTRY_MTIME },
	{ ".status", "shadowed", 8, 0, S_IFREG | 0644, ENTRY_MTIME },
	{ "uploads/d/", "", 0, 0, S_IFDIR | 0750, DIR_MTIME },
};
#define NENTRIES (sizeof(entries) / sizeof(entries[0]))

/* The names afs_place_list() gives, space-separated. */
struct names {
	char all[512];
	int n;
	int stop_after; /* 0: never says it is full */
};

static int collect(void *ctx, const char *name, const struct stat *st)
{
	struct names *c = ctx;

	CHECK(st->st_nlink == (S_ISDIR(st->st_mode) ? 2u : 1u));
	snprintf(c->all + strlen(c->all), sizeof(c->all) - strlen(c->all), "%s%s", c->n++ ? " " : "", name);
	return c->stop_after && c->n >= c->stop_after;
}

static const char *listing(const struct afs_mount *m, const char *path, enum afs_err *err)
{
	static struct names c;
	struct afs_place pl;

	memset(&c, 0, sizeof(c));
	*err = afs_resolve(m, path, AFS_RESOLVE_OPEN, &pl);
	if (*err == AFS_OK)
		*err = afs_place_list(m, &pl, collect, &c);
	return c.all;
}

/* Resolves path and stats it; the error of whichever failed. */
static enum afs_err stat_of(const struct afs_mount *m, const char *path, enum afs_resolve_how how,
			    struct afs_place *pl, struct stat *st)
{
	enum afs_err err = afs_resolve(m, path, how, pl);

	memset(st, 0, sizeof(*st));
	return err == AFS_OK ? afs_place_stat(m, pl, st) : err;
}

static void check_owner(const struct stat *st)
{
	CHECK(st->st_uid == 1234 && st->st_gid == 5678 && st->st_blksize == 4096);
	CHECK(st->st_atim.tv_sec == st->st_mtim.tv_sec && st->st_ctim.tv_sec == st->st_mtim.tv_sec);
}

/* What a view's places get: shared by both kinds of mount; prefix is ""
 * or "/NAME", zip_mtime the archive file's mtime (its implied
 * directories': an explicit directory has its entry's). */
static void check_view(const struct afs_mount *m, const char *prefix, time_t zip_mtime)
{
	struct afs_place pl;
	struct stat st;
	char path[256], buf[64];
	size_t len;
	enum afs_err err;

#define P(s) (snprintf(path, sizeof(path), "%s%s", prefix, s), path)
	CHECK(stat_of(m, P("/uploads/a.txt"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_NODE && pl.view && strcmp(afs_index_path(pl.view->index, pl.node), "uploads/a.txt") == 0);
	CHECK(st.st_mode == (S_IFREG | 0644) && st.st_size == 5 && st.st_nlink == 1 && st.st_blocks == 1);
	CHECK(st.st_mtim.tv_sec == ENTRY_MTIME);
	check_owner(&st);
	CHECK(afs_place_access(m, &pl, R_OK, 999) == AFS_OK);
	CHECK(afs_place_access(m, &pl, W_OK, 0) == AFS_E_ROFS);
	CHECK(afs_place_may_open(m, &pl, O_RDONLY, 999) == AFS_OK);
	CHECK(afs_place_may_open(m, &pl, O_RDONLY | O_TRUNC, 999) == AFS_E_ROFS);
	CHECK(afs_place_may_open(m, &pl, O_RDWR, 1234) == AFS_E_ROFS);
	CHECK(afs_place_getxattr(&pl, "user.archfs.method", buf, sizeof(buf), &len) == AFS_OK && len == 5 &&
	      memcmp(buf, "store", 5) == 0);
	CHECK(afs_place_getxattr(&pl, "user.archfs.crc32", NULL, 0, &len) == AFS_OK && len == 8);
	CHECK(afs_place_getxattr(&pl, "user.archfs.crc32", buf, 4, &len) == AFS_E_RANGE);
	CHECK(afs_place_getxattr(&pl, "user.other", buf, sizeof(buf), &len) == AFS_E_NODATA);
	CHECK(afs_place_listxattr(&pl, NULL, 0, &len) == AFS_OK && len == 65);
	CHECK(afs_place_listxattr(&pl, buf, 10, &len) == AFS_E_RANGE);
	CHECK(afs_place_readlink(m, &pl, buf, sizeof(buf)) == AFS_E_INVAL);

	CHECK(stat_of(m, P("/uploads/link"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(st.st_mode == (S_IFLNK | 0777) && st.st_size == 5);
	CHECK(afs_place_readlink(m, &pl, buf, sizeof(buf)) == AFS_OK && strcmp(buf, "a.txt") == 0);
	CHECK(afs_place_readlink(m, &pl, buf, 3) == AFS_OK && strcmp(buf, "a.") == 0);
	CHECK(afs_place_readlink(m, &pl, buf, 0) == AFS_E_INVAL);

	CHECK(stat_of(m, P("/uploads"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(st.st_mode == (S_IFDIR | 0755) && st.st_nlink == 2 && st.st_size == 0);
	CHECK(st.st_mtim.tv_sec == zip_mtime);
	CHECK(stat_of(m, P("/uploads/d"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(st.st_mode == (S_IFDIR | 0750) && st.st_nlink == 2 && st.st_mtim.tv_sec == DIR_MTIME);
	check_owner(&st);
	CHECK(stat_of(m, P("/uploads"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(afs_place_getxattr(&pl, "user.archfs.crc32", buf, sizeof(buf), &len) == AFS_E_NODATA);
	CHECK(afs_place_listxattr(&pl, buf, sizeof(buf), &len) == AFS_OK && len == 0);
	CHECK(afs_place_may_open(m, &pl, O_RDONLY, 999) == AFS_OK); /* the kernel opens directories with opendir */

	/* the control and status files shadow the archive's .status */
	CHECK(stat_of(m, P("/.status"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_VFILE && pl.vfile == AFS_VF_STATUS && pl.view);
	CHECK(st.st_mode == (S_IFREG | 0444) && st.st_size == 0 && st.st_nlink == 1 && st.st_mtim.tv_sec == MOUNTED_AT);
	check_owner(&st);
	CHECK(afs_place_access(m, &pl, R_OK, 999) == AFS_OK);
	CHECK(afs_place_access(m, &pl, X_OK, 999) == AFS_E_ACCES);
	CHECK(afs_place_access(m, &pl, W_OK, 0) == AFS_E_ROFS);
	CHECK(afs_place_may_open(m, &pl, O_RDONLY | O_TRUNC, 999) == AFS_OK);
	CHECK(afs_place_may_open(m, &pl, O_WRONLY, 1234) == AFS_E_ROFS);
	CHECK(afs_place_getxattr(&pl, "user.archfs.crc32", buf, sizeof(buf), &len) == AFS_E_NODATA);
	CHECK(afs_place_list(m, &pl, collect, &(struct names){ 0 }) == AFS_E_NOTDIR);

	CHECK(stat_of(m, P("/.control"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_VFILE && pl.vfile == AFS_VF_CONTROL);
	CHECK(st.st_mode == (S_IFREG | 0200) && st.st_size == 0);
	CHECK(afs_place_access(m, &pl, W_OK, 1234) == AFS_OK && afs_place_access(m, &pl, W_OK, 0) == AFS_OK);
	CHECK(afs_place_access(m, &pl, W_OK, 999) == AFS_E_ACCES);
	CHECK(afs_place_access(m, &pl, R_OK, 1234) == AFS_E_ACCES);
	CHECK(afs_place_may_open(m, &pl, O_WRONLY | O_TRUNC, 1234) == AFS_OK);
	CHECK(afs_place_may_open(m, &pl, O_WRONLY, 999) == AFS_E_ACCES);
	CHECK(afs_place_may_open(m, &pl, O_RDONLY, 0) == AFS_E_ACCES);
	CHECK(afs_mount_may_control(m, 0) && afs_mount_may_control(m, 1234) && !afs_mount_may_control(m, 999));

	/* a control file's name below the top is an ordinary missing name */
	CHECK(stat_of(m, P("/uploads/.status"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_E_NOENT);
	CHECK(stat_of(m, P("/missing"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_E_NOENT);
	CHECK(pl.view != NULL); /* statfs still answers for the archive */
	CHECK(stat_of(m, P("/uploads/a.txt/x"), AFS_RESOLVE_LOOK, &pl, &st) == AFS_E_NOTDIR);
	CHECK(stat_of(m, P("/manifest.json/x"), AFS_RESOLVE_OPEN, &pl, &st) == AFS_E_NOTDIR);

	CHECK(strcmp(listing(m, P("/uploads"), &err), ". .. a.txt link d") == 0 && err == AFS_OK);
	CHECK(strcmp(listing(m, P("/uploads/a.txt"), &err), "") == 0 && err == AFS_E_NOTDIR);
#undef P
}

static time_t file_mtime(const char *path)
{
	struct stat st;

	CHECK(stat(path, &st) == 0);
	return st.st_mtim.tv_sec;
}

static void single_archive(const struct afs_target *target, struct afs_seekreg *pool)
{
	char *zip = tu_zip("single.zip", entries, NENTRIES);
	struct afs_mount m = { .mounted_at = MOUNTED_AT, .uid = 1234, .gid = 5678 };
	struct names full = { .stop_after = 3 };
	struct afs_place pl;
	struct stat st;
	uint64_t files, bytes;
	char msg[256];
	enum afs_err err;

	CHECK(afs_view_open(zip, target, pool, NULL, &m.view, msg, sizeof(msg)) == AFS_OK);
	CHECK(stat_of(&m, "/", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_NODE && pl.node == 0 && pl.view == m.view);
	CHECK(st.st_mode == (S_IFDIR | 0755) && st.st_nlink == 2 && st.st_mtim.tv_sec == file_mtime(zip));
	check_owner(&st);
	CHECK(strcmp(listing(&m, "/", &err),
		     ". .. .control .progress .restore_in_progress .status .log manifest.json uploads") == 0);
	CHECK(err == AFS_OK);
	CHECK(afs_resolve(&m, "/", AFS_RESOLVE_OPEN, &pl) == AFS_OK);
	CHECK(afs_place_list(&m, &pl, collect, &full) == AFS_E_NOMEM && full.n == 3);
	CHECK(stat_of(&m, "/latest", AFS_RESOLVE_LOOK, &pl, &st) == AFS_E_NOENT); /* only in directory mode */
	check_view(&m, "", file_mtime(zip));
	CHECK(afs_resolve(&m, "/nowhere/at/all", AFS_RESOLVE_OPEN, &pl) == AFS_E_NOENT);
	CHECK(afs_place_totals(&m, &pl, &files, &bytes) == AFS_OK && files == afs_index_count(m.view->index));
	CHECK(bytes > 100);
	afs_view_free(m.view);
}

static void set_mtime(const char *path, time_t t)
{
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };

	CHECK(utimes(path, tv) == 0);
}

static void directory_mode(const struct afs_target *target, struct afs_seekreg *pool)
{
	struct afs_mount m = { .mounted_at = MOUNTED_AT, .uid = 1234, .gid = 5678 };
	char dir[300], *old;
	struct afs_place pl, pl2;
	struct stat st;
	uint64_t files, bytes;
	char msg[256], buf[64];
	enum afs_err err;

	/* a backups directory of its own, below the harness's */
	snprintf(dir, sizeof(dir), "%s/backups", tu_tmpdir());
	CHECK(mkdir(dir, 0755) == 0);
	CHECK(afs_backups_new(dir, target, pool, NULL, &m.backups, msg, sizeof(msg)) == AFS_OK);

	/* empty: the top only, no latest yet */
	CHECK(stat_of(&m, "/", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK && pl.kind == AFS_PL_TOP);
	CHECK(st.st_mode == (S_IFDIR | 0755) && st.st_nlink == 2 && st.st_mtim.tv_sec == MOUNTED_AT);
	check_owner(&st);
	CHECK(strcmp(listing(&m, "/", &err), ". ..") == 0 && err == AFS_OK);
	CHECK(afs_resolve(&m, "/latest", AFS_RESOLVE_LOOK, &pl) == AFS_OK && pl.kind == AFS_PL_LATEST);
	CHECK(afs_place_stat(&m, &pl, &st) == AFS_E_NOENT);
	CHECK(afs_place_readlink(&m, &pl, buf, sizeof(buf)) == AFS_E_NOENT);
	CHECK(afs_place_totals(&m, &pl, &files, &bytes) == AFS_OK && files == 0 && bytes == 0);

	/* archives copied in after the mount appear on the next lookup */
	old = tu_zip("backups/app_20261120_101502.zip", entries, NENTRIES);
	set_mtime(old, FILE_MTIME);
	tu_file("backups/broken.zip", "not a zip", 9);

	CHECK(stat_of(&m, "/app_20261120_101502", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_ARCHIVE && pl.view == NULL);
	CHECK(st.st_mode == (S_IFDIR | 0755) && st.st_nlink == 2 && st.st_mtim.tv_sec == FILE_MTIME);
	check_owner(&st);
	CHECK(afs_place_access(&m, &pl, R_OK | X_OK, 999) == AFS_OK);
	CHECK(afs_place_access(&m, &pl, W_OK, 0) == AFS_E_ROFS);
	CHECK(afs_place_may_open(&m, &pl, O_RDONLY, 999) == AFS_E_ISDIR);
	CHECK(afs_place_list(&m, &pl, collect, &(struct names){ 0 }) == AFS_E_NOTDIR);

	/* the top lists them, latest names the newest */
	CHECK(stat_of(&m, "/latest", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK && pl.kind == AFS_PL_LATEST);
	CHECK(st.st_mode == (S_IFLNK | 0777) && st.st_nlink == 1 && st.st_size == 19);
	CHECK(st.st_mtim.tv_sec == MOUNTED_AT);
	CHECK(afs_place_readlink(&m, &pl, buf, sizeof(buf)) == AFS_OK && strcmp(buf, "app_20261120_101502") == 0);
	CHECK(afs_place_readlink(&m, &pl, buf, 0) == AFS_E_INVAL);
	CHECK(afs_place_may_open(&m, &pl, O_RDONLY, 999) == AFS_E_ISDIR);
	CHECK(afs_place_access(&m, &pl, W_OK, 999) == AFS_E_ROFS);
	CHECK(strcmp(listing(&m, "/", &err), ". .. latest app_20261120_101502 broken") == 0 && err == AFS_OK);
	CHECK(strcmp(listing(&m, "/latest", &err), "") == 0 && err == AFS_E_NOTDIR);

	/* a broken archive lists and stats from its file, and answers its error
	 * once anything inside it is asked for */
	CHECK(stat_of(&m, "/broken", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK && pl.kind == AFS_PL_ARCHIVE);
	CHECK(afs_resolve(&m, "/broken", AFS_RESOLVE_OPEN, &pl) == AFS_E_NOTZIP && pl.view == NULL);
	CHECK(afs_resolve(&m, "/broken/.status", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOTZIP);
	CHECK(afs_place_totals(&m, &pl, &files, &bytes) == AFS_OK && files == 2); /* the whole directory */

	/* inside an archive: the same as a single-archive mount */
	CHECK(afs_resolve(&m, "/app_20261120_101502", AFS_RESOLVE_OPEN, &pl) == AFS_OK);
	CHECK(pl.kind == AFS_PL_NODE && pl.node == 0 && pl.view);
	CHECK(afs_resolve(&m, "/app_20261120_101502/uploads", AFS_RESOLVE_LOOK, &pl2) == AFS_OK && pl2.view == pl.view);
	CHECK(afs_place_stat(&m, &pl, &st) == AFS_OK && st.st_mode == (S_IFDIR | 0755));
	CHECK(afs_place_totals(&m, &pl, &files, &bytes) == AFS_OK && files == afs_index_count(pl.view->index));
	CHECK(strcmp(listing(&m, "/app_20261120_101502", &err),
		     ". .. .control .progress .restore_in_progress .status .log manifest.json uploads") == 0);
	check_view(&m, "/app_20261120_101502", FILE_MTIME);

	/* names that are not there */
	CHECK(afs_resolve(&m, "/nope", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOENT);
	CHECK(afs_resolve(&m, "/nope", AFS_RESOLVE_OPEN, &pl) == AFS_E_NOENT);
	CHECK(afs_resolve(&m, "/nope/x", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOENT && pl.view == NULL);
	CHECK(afs_resolve(&m, "/latest/x", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOENT);
	CHECK(afs_resolve(&m, "/app_20261120_101502/nope", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOENT && pl.view);
	CHECK(afs_resolve(&m, "/app", AFS_RESOLVE_LOOK, &pl) == AFS_E_NOENT); /* no prefix match */

	/* a newer archive appears: resolved at once, and latest follows */
	tu_zip("backups/app_20261121_090000.zip", entries, 2);
	CHECK(stat_of(&m, "/app_20261121_090000/manifest.json", AFS_RESOLVE_LOOK, &pl, &st) == AFS_OK);
	CHECK(pl.kind == AFS_PL_NODE && st.st_mode == (S_IFREG | 0600) && st.st_size == 20);
	CHECK(afs_resolve(&m, "/latest", AFS_RESOLVE_LOOK, &pl) == AFS_OK);
	CHECK(afs_place_readlink(&m, &pl, buf, sizeof(buf)) == AFS_OK && strcmp(buf, "app_20261121_090000") == 0);
	CHECK(strcmp(listing(&m, "/", &err), ". .. latest app_20261120_101502 app_20261121_090000 broken") == 0);
	CHECK(afs_resolve(&m, "/", AFS_RESOLVE_OPEN, &pl) == AFS_OK);
	CHECK(afs_place_totals(&m, &pl, &files, &bytes) == AFS_OK && files == 3);

	afs_backups_free(m.backups);
}

int main(void)
{
	struct afs_target target = { 0 };
	struct afs_seekreg *pool = afs_seekreg_new(0, 1u << 20);

	single_archive(&target, pool);
	directory_mode(&target, pool);
	afs_seekreg_free(pool);
	return tu_done("resolve");
}
