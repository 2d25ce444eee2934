/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/backups.c: which files a backups directory shows, the
 * newest archive, archives opened on first use, and a directory that
 * changes while it is mounted. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "backups.h"
#include "index.h"
#include "seekidx.h"
#include "target.h"
#include "testutil.h"
#include "view.h"

struct names {
	char all[512];
	int n;
};

static int collect(void *ctx, const char *name, const struct stat *st)
{
	struct names *c = ctx;

	CHECK(S_ISREG(st->st_mode));
	snprintf(c->all + strlen(c->all), sizeof(c->all) - strlen(c->all), "%s%s", c->n++ ? " " : "", name);
	return 0;
}

static const char *listing(struct afs_backups *b)
{
	static struct names c;

	memset(&c, 0, sizeof(c));
	afs_backups_each(b, collect, &c);
	return c.all;
}

static const char *latest(struct afs_backups *b)
{
	static char name[256];

	if (afs_backups_latest(b, name, sizeof(name)) != AFS_OK)
		return "(none)";
	return name;
}

static void set_mtime(const char *path, time_t t)
{
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };

	CHECK(utimes(path, tv) == 0);
}

int main(void)
{
	struct tu_entry e[] = {
		{ "manifest.json", "{\"db_type\": \"sqlite\"}", 20, 1, 0600, 0 },
		{ "uploads/a.txt", "a", 1, 0, S_IFREG | 0644, 0 },
	};
	const char *dir = tu_tmpdir();
	struct afs_target target = { 0 };
	struct afs_seekreg *pool = afs_seekreg_new(0, 1u << 20);
	struct afs_backups *b = NULL;
	struct afs_view *v1 = NULL, *v2 = NULL, *v;
	struct stat st;
	uint64_t count, bytes;
	char msg[256];
	uint32_t id;

	/* two backups named with timestamps (the newer one with the older
	 * mtime), a file that is not a ZIP, and files not shown */
	char *older = tu_zip("app_backup_20261120_101502.zip", e, 2);
	char *newer = tu_zip("app_backup_20261121_090000.zip", e, 2);
	char *broken = tu_file("broken.zip", "not a zip", 9);
	tu_file("notes.txt", "x", 1);
	tu_zip(".hidden.zip", e, 2);
	tu_zip("latest.zip", e, 2); /* its name is the link's */
	set_mtime(newer, 1500000000);

	CHECK(afs_backups_new(dir, &target, pool, NULL, &b, msg, sizeof(msg)) == AFS_OK);
	CHECK(strcmp(listing(b), "app_backup_20261120_101502 app_backup_20261121_090000 broken") == 0);
	CHECK(strcmp(latest(b), "app_backup_20261121_090000") == 0); /* by name, not by mtime */
	afs_backups_totals(b, &count, &bytes);
	CHECK(count == 3 && bytes > 9);
	CHECK(afs_backups_stat(b, "broken", 6, &st) == AFS_OK && st.st_size == 9);
	CHECK(afs_backups_stat(b, "brokenX", 6, &st) == AFS_OK); /* only the first len bytes count */
	CHECK(afs_backups_stat(b, "notes", 5, &st) == AFS_E_NOENT);
	CHECK(afs_backups_stat(b, "latest", 6, &st) == AFS_E_NOENT);
	CHECK(afs_backups_stat(b, ".hidden", 7, &st) == AFS_E_NOENT);
	CHECK(afs_backups_stat(b, "app", 3, &st) == AFS_E_NOENT);

	/* archives open on first use, once */
	CHECK(afs_backups_view(b, "app_backup_20261120_101502", 26, &v1) == AFS_OK && v1);
	CHECK(afs_index_lookup(v1->index, "/uploads/a.txt", &id) == AFS_OK);
	CHECK(afs_backups_view(b, "app_backup_20261120_101502/uploads", 26, &v) == AFS_OK && v == v1);
	CHECK(afs_backups_view(b, "missing", 7, &v) == AFS_E_NOENT && v == NULL);
	CHECK(afs_backups_view(b, "broken", 6, &v) == AFS_E_NOTZIP && v == NULL);
	CHECK(afs_backups_view(b, "broken", 6, &v) == AFS_E_NOTZIP); /* remembered, not retried */

	/* the directory changes: a newer backup, one removed, the broken one
	 * rewritten as an archive */
	tu_zip("zz_backup_20261122_000000.zip", e, 2);
	CHECK(unlink(older) == 0);
	tu_zip("broken.zip", e, 2);
	afs_backups_refresh(b);
	CHECK(strcmp(listing(b), "app_backup_20261121_090000 broken zz_backup_20261122_000000") == 0);
	CHECK(strcmp(latest(b), "zz_backup_20261122_000000") == 0);
	CHECK(afs_backups_view(b, "app_backup_20261120_101502", 26, &v) == AFS_E_NOENT);
	CHECK(afs_index_lookup(v1->index, "/manifest.json", &id) == AFS_OK); /* still valid for open files */
	CHECK(afs_backups_view(b, "broken", 6, &v2) == AFS_OK && v2);
	CHECK(afs_index_lookup(v2->index, "/uploads/a.txt", &id) == AFS_OK);

	/* a backup without a timestamp in its name, however new, is not the latest */
	tu_zip("copy.zip", e, 2);
	afs_backups_refresh(b);
	CHECK(afs_backups_stat(b, "copy", 4, &st) == AFS_OK);
	CHECK(strcmp(latest(b), "zz_backup_20261122_000000") == 0);

	/* without timestamps, the newest mtime */
	char *zz = tu_zip("zz_backup_20261122_000000.zip", e, 2);
	char *copy2 = tu_zip("copy2.zip", e, 2);
	set_mtime(copy2, 1500000000);
	CHECK(unlink(zz) == 0 && unlink(newer) == 0 && unlink(broken) == 0);
	afs_backups_refresh(b);
	CHECK(strcmp(listing(b), "copy copy2") == 0);
	CHECK(strcmp(latest(b), "copy") == 0);
	afs_backups_free(b);
	afs_backups_free(NULL);

	b = NULL;
	CHECK(afs_backups_new("/nonexistent/archfs-backups", &target, pool, NULL, &b, msg, sizeof(msg)) == AFS_E_IO);
	CHECK(b == NULL && strstr(msg, "No such file"));
	afs_seekreg_free(pool);
	return tu_done("backups");
}
