/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/mount/backups.c: which files a backups directory shows, the
 * newest archive, archives opened on first use, a directory that changes
 * while it is mounted, an open that keeps nothing else waiting,
 * archives gone from the directory closed once unused, and the bound on
 * archives open at once (LRU, descriptors). */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "backups.h"
#include "index.h"
#include "job.h"
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

/* The test hook: holds the open of one archive until the test lets it go. */
struct gate {
	const char *name;
	int entered[2]; /* the opener writes a byte when it is held */
	int release[2]; /* the test writes a byte to let it go on */
	int calls;      /* opens of name begun */
};

static void gate_hook(void *ctx, const char *name)
{
	struct gate *g = ctx;
	char c = 0;

	if (strcmp(name, g->name) != 0)
		return;
	g->calls++;
	CHECK(write(g->entered[1], &c, 1) == 1);
	CHECK(read(g->release[0], &c, 1) == 1);
}

static void gate_init(struct gate *g, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->name = name;
	CHECK(pipe(g->entered) == 0 && pipe(g->release) == 0);
}

static void gate_wait(struct gate *g)
{
	char c;

	CHECK(read(g->entered[0], &c, 1) == 1);
}

static void gate_open(struct gate *g)
{
	char c = 0;

	CHECK(write(g->release[1], &c, 1) == 1);
}

static void gate_close(struct gate *g)
{
	close(g->entered[0]);
	close(g->entered[1]);
	close(g->release[0]);
	close(g->release[1]);
}

/* afs_backups_view() of one archive on a thread of its own. */
struct opener {
	pthread_t t;
	struct afs_backups *b;
	const char *name;
	struct afs_view *v;
	enum afs_err err;
};

static void *open_main(void *arg)
{
	struct opener *o = arg;

	o->err = afs_backups_view(o->b, o->name, strlen(o->name), &o->v);
	return NULL;
}

static void opener_start(struct opener *o, struct afs_backups *b, const char *name)
{
	memset(o, 0, sizeof(*o));
	o->b = b;
	o->name = name;
	CHECK(pthread_create(&o->t, NULL, open_main, o) == 0);
}

static void set_mtime(const char *path, time_t t)
{
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };

	CHECK(utimes(path, tv) == 0);
}

static off_t file_size(const char *path)
{
	struct stat st;

	CHECK(stat(path, &st) == 0);
	return st.st_size;
}

/* While one archive's open is held in the hook, the listing, stats,
 * latest, a rescan and other archives are served; a second caller for the
 * held archive shares its one open.  Without the fix these calls would
 * wait for the held open forever (and the test time out). */
static void open_keeps_nothing_waiting(const char *dir, const struct afs_target *target, struct afs_seekreg *pool,
				       const struct tu_entry *e, const char *copy, const char *copy2)
{
	struct afs_backups *b = NULL;
	struct opener first, second;
	struct afs_view *v = NULL;
	struct gate g;
	struct stat st;
	uint64_t count, bytes;
	char msg[256];

	char *held = tu_zip("held.zip", e, 2), *other = tu_zip("other.zip", e, 1); /* a size of its own */

	set_mtime(other, 2000000000); /* the newest: `latest` names it (no timestamps in these names) */
	CHECK(afs_backups_new(dir, target, pool, NULL, &b, msg, sizeof(msg)) == AFS_OK);
	gate_init(&g, "held");
	afs_backups_on_open(b, gate_hook, &g);

	opener_start(&first, b, "held");
	gate_wait(&g); /* held.zip is being opened now, and stays so */
	CHECK(strcmp(listing(b), "copy copy2 held other") == 0);
	CHECK(afs_backups_stat(b, "held", 4, &st) == AFS_OK && st.st_size == file_size(held));
	CHECK(afs_backups_view(b, "other", 5, &v) == AFS_OK && v);
	afs_backups_totals(b, &count, &bytes);
	CHECK(count == 4 && bytes == (uint64_t)(file_size(copy) + file_size(copy2) + file_size(held) + file_size(other)));
	CHECK(strcmp(latest(b), "other") == 0);
	afs_backups_refresh(b);
	opener_start(&second, b, "held"); /* waits for the first open, or finds its view */
	gate_open(&g);
	CHECK(pthread_join(first.t, NULL) == 0 && pthread_join(second.t, NULL) == 0);
	CHECK(first.err == AFS_OK && first.v && second.err == AFS_OK && second.v == first.v);
	CHECK(g.calls == 1);
	CHECK(afs_backups_view(b, "held", 4, &v) == AFS_OK && v == first.v);

	gate_close(&g);

	/* replaced while it is being opened: the caller keeps the view it got,
	 * the next lookup opens the new file */
	tu_zip("swap.zip", e, 2);
	afs_backups_refresh(b);
	gate_init(&g, "swap");
	afs_backups_on_open(b, gate_hook, &g);
	opener_start(&first, b, "swap");
	gate_wait(&g);
	tu_zip("swap.zip", e, 1);
	afs_backups_refresh(b);
	gate_open(&g);
	CHECK(pthread_join(first.t, NULL) == 0 && first.err == AFS_OK && first.v);
	gate_open(&g); /* lets the next open through at once */
	CHECK(afs_backups_view(b, "swap", 4, &v) == AFS_OK && v && v != first.v);
	CHECK(g.calls == 2 && afs_index_count(v->index) == 2); /* the root and manifest.json */
	gate_close(&g);

	/* gone while it is being opened: the open fails, the name is gone */
	char *gone = tu_zip("gone.zip", e, 2);
	afs_backups_refresh(b);
	gate_init(&g, "gone");
	afs_backups_on_open(b, gate_hook, &g);
	opener_start(&first, b, "gone");
	gate_wait(&g);
	CHECK(unlink(gone) == 0);
	afs_backups_refresh(b);
	CHECK(strstr(listing(b), "gone") == NULL);
	gate_open(&g);
	CHECK(pthread_join(first.t, NULL) == 0 && first.err != AFS_OK && !first.v);
	CHECK(afs_backups_view(b, "gone", 4, &v) == AFS_E_NOENT);
	afs_backups_on_open(b, NULL, NULL);
	afs_backups_free(b);
	gate_close(&g);
}

/* Whether this process has path open (deleted or not). */
static bool open_here(const char *path)
{
	char link[4096], want[4096];
	bool found = false;
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");

	snprintf(want, sizeof(want), "%s (deleted)", path);
	while (d && (de = readdir(d))) {
		char fd[300];
		ssize_t n;

		snprintf(fd, sizeof(fd), "/proc/self/fd/%s", de->d_name);
		n = readlink(fd, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found |= strcmp(link, path) == 0 || strcmp(link, want) == 0;
	}
	if (d)
		closedir(d);
	return found;
}

/* An archive removed from the directory (or replaced) is closed by the
 * next refresh when nothing holds it, else when its last reference is
 * put; until then its view stays whole. */
static void gone_archives_close(const char *dir, const struct afs_target *target, struct afs_seekreg *pool,
				const struct tu_entry *e)
{
	char *p1 = strdup(tu_zip("gone1.zip", e, 2)), *p2 = strdup(tu_zip("gone2.zip", e, 2));
	char *p3 = strdup(tu_zip("gone3.zip", e, 2));
	struct afs_backups *b = NULL;
	struct afs_view *v1 = NULL, *v2 = NULL, *v3 = NULL, *v;
	char msg[256];
	uint32_t id;

	CHECK(afs_backups_new(dir, target, pool, NULL, &b, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_backups_view(b, "gone1", 5, &v1) == AFS_OK);
	CHECK(afs_backups_view(b, "gone2", 5, &v2) == AFS_OK);
	CHECK(afs_backups_view(b, "gone3", 5, &v3) == AFS_OK);
	CHECK(afs_backups_view(b, "gone2", 5, &v) == AFS_OK && v == v2); /* two references */
	afs_backups_put(b, v1);
	afs_backups_put(b, v3);
	CHECK(open_here(p1) && open_here(p2) && open_here(p3));
	afs_backups_put(b, v1 = NULL); /* NULL: nothing */
	CHECK(unlink(p1) == 0 && unlink(p2) == 0);
	tu_zip("gone3.zip", e, 1); /* replaced under the same name */
	afs_backups_refresh(b);
	CHECK(!strstr(listing(b), "gone1") && !strstr(listing(b), "gone2") && strstr(listing(b), "gone3"));
	CHECK(!open_here(p1));  /* unused: closed by the scan */
	CHECK(!open_here(p3));  /* the replaced file too; the new one is not opened yet */
	CHECK(open_here(p2));   /* still held */
	CHECK(afs_index_lookup(v2->index, "/uploads/a.txt", &id) == AFS_OK);
	afs_backups_put(b, v2);
	CHECK(open_here(p2) && afs_index_lookup(v2->index, "/manifest.json", &id) == AFS_OK);
	afs_backups_put(b, v2); /* the last one */
	CHECK(!open_here(p2));
	CHECK(afs_backups_view(b, "gone3", 5, &v) == AFS_OK && v != v3 && open_here(p3));
	CHECK(afs_index_lookup(v->index, "/uploads/a.txt", &id) == AFS_E_NOENT); /* the new file's */
	afs_backups_put(b, v);
	afs_backups_free(b);
	CHECK(!open_here(p3));
	unlink(p3);
	free(p1);
	free(p2);
	free(p3);
}

static struct afs_view *view_of(struct afs_backups *b, const char *name)
{
	struct afs_view *v = NULL;

	CHECK(afs_backups_view(b, name, strlen(name), &v) == AFS_OK && v);
	return v;
}

/* Looks name up and gives the reference back at once. */
static void touch(struct afs_backups *b, const char *name)
{
	afs_backups_put(b, view_of(b, name));
}

/* Past max_open the least recently looked up idle archive is closed, and
 * opened again (a new index) when next looked up. */
static void lru_closes_least_recent(struct afs_backups *b, char *const *p)
{
	uint32_t id;

	afs_backups_limit(b, 2, 100);
	touch(b, "lru0");
	touch(b, "lru1");
	CHECK(afs_backups_open_count(b) == 2 && open_here(p[0]) && open_here(p[1]));
	touch(b, "lru0"); /* now lru1 is the least recent */
	touch(b, "lru2");
	CHECK(afs_backups_open_count(b) == 2);
	CHECK(open_here(p[0]) && !open_here(p[1]) && open_here(p[2]));
	struct afs_view *v = view_of(b, "lru1"); /* reopened; lru0 goes */
	CHECK(v && afs_index_lookup(v->index, "/uploads/a.txt", &id) == AFS_OK);
	CHECK(open_here(p[1]) && !open_here(p[0]) && open_here(p[2]));
	afs_backups_put(b, v);
	afs_backups_limit(b, 1, 100); /* lowering the bound closes at once */
	CHECK(afs_backups_open_count(b) == 1 && open_here(p[1]) && !open_here(p[2]));
}

/* Archives in use are never closed: the bound is passed while they are
 * held, up to max_fds, past which a lookup answers AFS_E_MFILE (not
 * remembered); once given back, they are closed down to the bound.  A job
 * that refused a command keeps its archive open (its .status says so). */
static void lru_spares_used_archives(struct afs_backups *b, char *const *p)
{
	struct afs_view *v0, *v1, *v = NULL;
	char msg[256];

	afs_backups_limit(b, 1, 2);
	v0 = view_of(b, "lru0");
	v1 = view_of(b, "lru1");
	CHECK(afs_backups_open_count(b) == 2 && open_here(p[0]) && open_here(p[1]));
	CHECK(afs_backups_view(b, "lru2", 4, &v) == AFS_E_MFILE && !v && !open_here(p[2]));
	afs_backups_put(b, v1);
	CHECK(afs_backups_open_count(b) == 1 && !open_here(p[1]) && open_here(p[0]));
	touch(b, "lru2"); /* lru0 is held: one past the bound */
	CHECK(afs_backups_open_count(b) == 1 && open_here(p[0]) && !open_here(p[2]));

	/* a command refused (no target): the job has something to show */
	CHECK(afs_job_command(v0->job, AFS_CMD_CANCEL, msg, sizeof(msg)) == AFS_E_INVAL);
	afs_backups_put(b, v0);
	afs_backups_limit(b, 1, 100);
	touch(b, "lru1");
	touch(b, "lru2");
	CHECK(open_here(p[0]) && !open_here(p[1]) && !open_here(p[2]));
	CHECK(afs_backups_open_count(b) == 1);
}

/* The on_replaced hook: which archive, and the view handed out. */
struct replaced {
	char name[32];
	struct afs_view *v;
	int calls;
};

static void on_replaced(void *ctx, const char *name, size_t len, struct afs_view *v)
{
	struct replaced *r = ctx;

	snprintf(r->name, sizeof(r->name), "%.*s", (int)len, name);
	r->v = v;
	r->calls++;
}

/* An archive closed by the LRU whose file was replaced meanwhile, before
 * any scan saw it: the reopen reads the new file whole (its index, its
 * entry's stat), never the old index over the new bytes, and the hook
 * that drops the kernel's cache of it is called (not for a reopen of the
 * same file). */
static void lru_reopen_sees_new_file(struct afs_backups *b, const struct tu_entry *e)
{
	struct replaced r = { .calls = 0 };
	struct afs_view *v;
	struct stat before, after;
	uint32_t id;

	afs_backups_on_replaced(b, on_replaced, &r);
	afs_backups_limit(b, 1, 100);
	touch(b, "lru3");
	touch(b, "lru1"); /* lru3 is closed */
	touch(b, "lru3"); /* reopened from the same file */
	touch(b, "lru1");
	CHECK(r.calls == 0);
	CHECK(afs_backups_stat(b, "lru3", 4, &before) == AFS_OK);
	char *p3 = tu_zip("lru3.zip", e, 1); /* a new file: no uploads/a.txt */
	v = view_of(b, "lru3");
	CHECK(v && afs_index_lookup(v->index, "/uploads/a.txt", &id) == AFS_E_NOENT);
	CHECK(afs_index_count(v->index) == 2);
	CHECK(afs_backups_stat(b, "lru3", 4, &after) == AFS_OK);
	CHECK(after.st_ino != before.st_ino && after.st_size < before.st_size && open_here(p3));
	CHECK(r.calls == 1 && strcmp(r.name, "lru3") == 0 && r.v == v);
	afs_backups_put(b, v);
	afs_backups_on_replaced(b, NULL, NULL);
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static void set_nofile(rlim_t n)
{
	struct rlimit rl;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = n;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* With no descriptor left, a lookup closes an idle archive to get one;
 * with none idle it answers AFS_E_MFILE for that call only.  (lru0 stays
 * open throughout: its job refused a command.) */
static void lru_descriptor_shortage(struct afs_backups *b, char *const *p)
{
	struct afs_view *v2, *v = NULL;
	struct rlimit saved;

	afs_backups_limit(b, 64, 1000);
	touch(b, "lru1");
	CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
	set_nofile((rlim_t)lowest_free_fd()); /* not one descriptor more */
	v2 = view_of(b, "lru2");                /* lru1, idle, is closed for it */
	CHECK(afs_backups_view(b, "lru3", 4, &v) == AFS_E_MFILE && !v);
	CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
	CHECK(open_here(p[0]) && !open_here(p[1]) && open_here(p[2]));
	v = view_of(b, "lru3"); /* the shortage was not remembered against it */
	afs_backups_put(b, v);
	afs_backups_put(b, v2);
}

static void lru(const char *dir, const struct afs_target *target, struct afs_seekreg *pool,
		const struct tu_entry *e)
{
	struct afs_backups *b = NULL;
	char *p[4], name[16], msg[256];

	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "lru%d.zip", i);
		p[i] = strdup(tu_zip(name, e, 2));
	}
	CHECK(afs_backups_new(dir, target, pool, NULL, &b, msg, sizeof(msg)) == AFS_OK);
	lru_closes_least_recent(b, p);
	lru_spares_used_archives(b, p);
	lru_reopen_sees_new_file(b, e);
	lru_descriptor_shortage(b, p);
	afs_backups_free(b);
	for (int i = 0; i < 4; i++) {
		CHECK(!open_here(p[i]));
		unlink(p[i]);
		free(p[i]);
	}
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
	CHECK(count == 3 && bytes == (uint64_t)(file_size(older) + file_size(newer) + 9));
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
	char *copy = tu_zip("copy.zip", e, 2);
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

	open_keeps_nothing_waiting(dir, &target, pool, e, copy, copy2);
	gone_archives_close(dir, &target, pool, e);
	lru(dir, &target, pool, e);

	b = NULL;
	CHECK(afs_backups_new("/nonexistent/archfs-backups", &target, pool, NULL, &b, msg, sizeof(msg)) == AFS_E_IO);
	CHECK(b == NULL && strstr(msg, "No such file"));
	afs_seekreg_free(pool);
	return tu_done("backups");
}
