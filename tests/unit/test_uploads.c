/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/uploads.c: planning, the merge, refused live trees
 * and archives, and undoing a merge. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive.h"
#include "index.h"
#include "testutil.h"
#include "uploads.h"

#define BIG 600000 /* more than one copy chunk */
#define T_A 1700000000
#define T_B 1700000200
#define T_C 1700000400
#define T_KEEP 1500000000
#define T_OLDC 1600000000

struct fx {
	struct afs_archive *a;
	struct afs_index *ix;
};

static char *pool[256]; /* paths made by join(), freed at the end */
static size_t npool;

/* "a/b", valid until free_pool(). */
static char *join(const char *a, const char *b)
{
	char *p = malloc(strlen(a) + strlen(b) + 2);

	if (!p || npool == sizeof(pool) / sizeof(pool[0]))
		exit(2);
	sprintf(p, "%s/%s", a, b);
	pool[npool++] = p;
	return p;
}

static void free_pool(void)
{
	while (npool)
		free(pool[--npool]);
}

static void mkdir_at(const char *base, const char *rel)
{
	char *p = join(base, rel);

	if (mkdir(p, 0755) != 0) {
		perror(p);
		exit(2);
	}
}

static void put(const char *base, const char *rel, const char *text, mode_t mode, int64_t mtime)
{
	char *p = join(base, rel);
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	FILE *f = fopen(p, "wb");

	if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0 || chmod(p, mode) != 0 ||
	    utimensat(AT_FDCWD, p, ts, 0) != 0) {
		perror(p);
		exit(2);
	}
}

/* 1 when base/rel holds exactly len bytes of want. */
static int same(const char *base, const char *rel, const void *want, size_t len)
{
	char *p = join(base, rel);
	FILE *f = fopen(p, "rb");
	unsigned char *got = malloc(len + 1);
	size_t n = f ? fread(got, 1, len + 1, f) : 0;
	int ok = f && n == len && memcmp(got, want, len) == 0;

	if (f)
		fclose(f);
	free(got);
	return ok;
}

/* lstat of base/rel: 0 or -1. */
static int lst(const char *base, const char *rel, struct stat *st)
{
	char *p = join(base, rel);
	return lstat(p, st);
}

static int exists(const char *base, const char *rel)
{
	struct stat st;

	return lst(base, rel, &st) == 0;
}

static int nstray, nentries;

static int count(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0;
	nentries++;
	if (strstr(path + ftw->base, ".archfs"))
		nstray++;
	return 0;
}

/* Number of files with ".archfs" in their name below dir. */
static int strays(const char *dir)
{
	nstray = nentries = 0;
	CHECK(nftw(dir, count, 16, FTW_PHYS) == 0);
	return nstray;
}

/* Number of paths below dir (not following symlinks). */
static int entries(const char *dir)
{
	nstray = nentries = 0;
	if (nftw(dir, count, 16, FTW_PHYS) != 0)
		return -1;
	return nentries;
}

static struct fx open_fx(const char *zip)
{
	struct fx f = { 0 };
	char msg[256] = "";

	CHECK(afs_archive_open(zip, &f.a, msg, sizeof(msg)) == AFS_OK);
	CHECK(f.a && afs_index_build(f.a, &f.ix, msg, sizeof(msg)) == AFS_OK);
	if (!f.a || !f.ix) {
		fprintf(stderr, "fixture %s: %s\n", zip, msg);
		exit(2);
	}
	return f;
}

static void close_fx(struct fx *f)
{
	afs_index_free(f->ix);
	afs_archive_free(f->a);
}

/* 1 when fd reads exactly want (len bytes) from where it is. */
static int fd_holds(int fd, const char *want, size_t len)
{
	char got[64];
	ssize_t n = read(fd, got, sizeof(got));

	return n >= 0 && (size_t)n == len && memcmp(got, want, len) == 0;
}

/* afs_uploads_open_replaced() on p's one replaced file, "sub/c.txt":
 * expects a refusal with "changed since verify" (AFS_E_CONFLICT). */
static void open_refused(const struct afs_uplan *p, const char *what)
{
	char msg[512] = "";
	int fd = 99;

	CHECK(afs_uploads_open_replaced(p, 0, &fd, msg, sizeof(msg)) == AFS_E_CONFLICT && fd == -1);
	if (!strstr(msg, "uploads/sub/c.txt changed since verify: refused")) {
		fprintf(stderr, "%s: message '%s'\n", what, msg);
		CHECK(strstr(msg, "uploads/sub/c.txt changed since verify: refused") != NULL);
	}
	if (fd >= 0)
		close(fd);
}

/* Plans into a tree root/sub/c.txt (the one file of f's archive it
 * replaces), then swaps things between the plan and the snapshot's read. */
static void swapped_reads(struct fx *f, const char *tmp, const char *outside)
{
	char *root = join(tmp, "swap"), *c = join(tmp, "swap/sub/c.txt"), *sub = join(tmp, "swap/sub");
	char *secret_dir = join(outside, "secretdir"), *away = join(tmp, "swap-away");
	struct afs_uplan *p = NULL;
	char msg[512] = "";
	int fd = -1;

	mkdir_at(tmp, "swap");
	mkdir_at(root, "sub");
	put(root, "sub/c.txt", "old c\n", 0640, T_OLDC);
	mkdir_at(outside, "secretdir");
	put(secret_dir, "c.txt", "SECRET", 0600, T_A);
	CHECK(afs_uploads_plan(f->a, f->ix, root, &p, msg, sizeof(msg)) == AFS_OK && p);
	if (!p)
		return;
	CHECK(afs_uploads_replaced_count(p) == 1);
	/* unchanged: the file itself, from its first byte */
	CHECK(afs_uploads_open_replaced(p, 0, &fd, msg, sizeof(msg)) == AFS_OK && fd >= 0);
	CHECK(fd >= 0 && fd_holds(fd, "old c\n", 6));
	if (fd >= 0)
		close(fd);
	/* the file is a symlink to another now */
	CHECK(rename(c, join(tmp, "swap/sub/c.old")) == 0 && symlink(join(secret_dir, "c.txt"), c) == 0);
	open_refused(p, "file symlink");
	/* another file with the same bytes in its place */
	CHECK(unlink(c) == 0);
	put(root, "sub/c.txt", "old c\n", 0640, T_OLDC);
	open_refused(p, "another file");
	/* a fifo in its place: refused at once, not waited on */
	CHECK(unlink(c) == 0 && mkfifo(c, 0644) == 0);
	open_refused(p, "fifo");
	CHECK(unlink(c) == 0 && rename(join(tmp, "swap/sub/c.old"), c) == 0);
	/* the same file, grown */
	put(root, "sub/c.txt", "old c, longer\n", 0640, T_OLDC);
	open_refused(p, "grown");
	/* the directory above it is a symlink to a directory holding a c.txt */
	CHECK(rename(sub, join(tmp, "swap/sub.old")) == 0 && symlink(secret_dir, sub) == 0);
	open_refused(p, "directory symlink");
	CHECK(unlink(sub) == 0 && rename(join(tmp, "swap/sub.old"), sub) == 0);
	/* the root itself renamed away and replaced by a symlink to a lookalike */
	CHECK(rename(root, away) == 0 && symlink(secret_dir, root) == 0);
	mkdir_at(secret_dir, "sub");
	put(secret_dir, "sub/c.txt", "old c\n", 0600, T_OLDC);
	fd = 99;
	CHECK(afs_uploads_open_replaced(p, 0, &fd, msg, sizeof(msg)) == AFS_E_CONFLICT && fd == -1);
	CHECK(strstr(msg, "changed since verify") != NULL);
	CHECK(afs_uploads_merge(p, f->a, f->ix, NULL, NULL, msg, sizeof(msg)) == AFS_E_CONFLICT);
	CHECK(same(secret_dir, "sub/c.txt", "old c\n", 6)); /* the merge wrote nothing there */
	CHECK(same(secret_dir, "c.txt", "SECRET", 6));
	CHECK(same(away, "sub/c.txt", "old c, longer\n", 14));
	afs_uploads_plan_free(p);
}

static void add_bytes(void *ctx, uint64_t bytes)
{
	*(uint64_t *)ctx += bytes;
}

/* Plans into root and expects a refusal whose message names what. */
static void plan_refused(struct fx *f, const char *root, const char *what)
{
	struct afs_uplan *p = NULL;
	char msg[512] = "";
	enum afs_err err = afs_uploads_plan(f->a, f->ix, root, &p, msg, sizeof(msg));

	CHECK(err != AFS_OK);
	CHECK(p == NULL);
	CHECK(msg[0] != '\0');
	if (what && !strstr(msg, what)) {
		fprintf(stderr, "message '%s' does not name '%s'\n", msg, what);
		CHECK(strstr(msg, what) != NULL);
	}
	if (err == AFS_OK)
		afs_uploads_plan_free(p);
}

int main(void)
{
	const char *tmp = tu_tmpdir();
	static const char A[] = "alpha file\n", C[] = "the archive's c.txt\n";
	unsigned char *B = tu_data(BIG, 7);
	struct tu_entry e[] = {
		{ "manifest.json", "{\"db_type\": \"sqlite\"}", 21, 1, S_IFREG | 0644, T_A },
		{ "db.sqlite", "SQLite format 3", 16, 0, S_IFREG | 0644, T_A },
		{ "uploads/a.txt", A, sizeof(A) - 1, 0, 0100644, T_A },
		{ "uploads/sub/b.bin", B, BIG, 1, 0104755, T_B },
		{ "uploads/sub/c.txt", C, sizeof(C) - 1, 1, 0100666, T_C },
	};
	struct fx f = open_fx(tu_zip("good.zip", e, sizeof(e) / sizeof(e[0])));
	struct afs_uplan *p = NULL;
	char msg[512] = "";
	struct stat st;
	uint32_t mode = 0;
	int64_t mtime = 0;
	uint64_t size = 0, progressed = 0;
	size_t left = 99;

	/* ---- the live tree: keep.txt is not in the archive, sub/c.txt is old */
	char *live = join(tmp, "live");
	mkdir_at(tmp, "live");
	mkdir_at(live, "sub");
	put(live, "keep.txt", "keep me\n", 0600, T_KEEP);
	put(live, "sub/c.txt", "old c\n", 0640, T_OLDC);

	CHECK(afs_uploads_plan(f.a, f.ix, live, &p, msg, sizeof(msg)) == AFS_OK);
	if (!p) {
		fprintf(stderr, "plan: %s\n", msg);
		free(B);
		free_pool();
		return tu_done("uploads");
	}
	CHECK(afs_uploads_replaced_count(p) == 1);
	if (afs_uploads_replaced_count(p) == 1) {
		const char *r = afs_uploads_replaced(p, 0, &mode, &mtime, &size);
		CHECK(r && strcmp(r, "sub/c.txt") == 0);
		CHECK(mode == (S_IFREG | 0640)); /* the live file's, for the snapshot */
		CHECK(mtime == T_OLDC);
		CHECK(size == 6);
	}
	/* "sub" exists already: only the two new files are created */
	CHECK(afs_uploads_created_count(p) == 2);
	if (afs_uploads_created_count(p) == 2) {
		CHECK(strcmp(afs_uploads_created(p, 0), "a.txt") == 0);
		CHECK(strcmp(afs_uploads_created(p, 1), "sub/b.bin") == 0);
	}
	CHECK(afs_uploads_bytes(p) == (sizeof(A) - 1) + BIG + (sizeof(C) - 1));
	/* planning only reads */
	CHECK(!exists(live, "a.txt") && !exists(live, "sub/b.bin"));
	CHECK(same(live, "sub/c.txt", "old c\n", 6));

	msg[0] = '\0';
	CHECK(afs_uploads_merge(p, f.a, f.ix, add_bytes, &progressed, msg, sizeof(msg)) == AFS_OK);
	if (msg[0])
		fprintf(stderr, "merge said: %s\n", msg);
	CHECK(progressed == afs_uploads_bytes(p));
	CHECK(same(live, "a.txt", A, sizeof(A) - 1));
	CHECK(same(live, "sub/b.bin", B, BIG));
	CHECK(same(live, "sub/c.txt", C, sizeof(C) - 1));
	CHECK(lst(live, "a.txt", &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 &&
	      st.st_mtim.tv_sec == T_A);
	CHECK(lst(live, "sub/b.bin", &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0755 &&
	      st.st_mtim.tv_sec == T_B); /* setuid stripped */
	CHECK(lst(live, "sub/c.txt", &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0664 &&
	      st.st_mtim.tv_sec == T_C); /* world-write stripped */
	CHECK(same(live, "keep.txt", "keep me\n", 8));
	CHECK(lst(live, "keep.txt", &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_mtim.tv_sec == T_KEEP);
	CHECK(!exists(live, "db.sqlite") && !exists(live, "manifest.json") && !exists(live, "uploads"));
	CHECK(strays(live) == 0);
	CHECK(entries(live) == 5); /* keep.txt, a.txt, sub, sub/b.bin, sub/c.txt */

	/* ---- undoing the merge removes what it created, and nothing else */
	const char *created[2] = { "a.txt", "sub/b.bin" }; /* what the plan says, checked above */
	for (size_t i = 0; i < 2 && i < afs_uploads_created_count(p); i++)
		created[i] = afs_uploads_created(p, i);
	left = 99;
	CHECK(afs_uploads_remove(live, created, 2, &left) == AFS_OK && left == 0);
	CHECK(!exists(live, "a.txt") && !exists(live, "sub/b.bin"));
	CHECK(exists(live, "sub") && exists(live, "sub/c.txt"));
	CHECK(same(live, "keep.txt", "keep me\n", 8));
	left = 99;
	CHECK(afs_uploads_remove(live, created, 2, &left) == AFS_OK && left == 0); /* already gone: skipped */
	CHECK(same(live, "keep.txt", "keep me\n", 8));
	afs_uploads_plan_free(p);
	p = NULL;

	/* ---- into an empty tree: directories are created too, parents first */
	char *fresh = join(tmp, "fresh");
	mkdir_at(tmp, "fresh");
	CHECK(afs_uploads_plan(f.a, f.ix, fresh, &p, msg, sizeof(msg)) == AFS_OK);
	if (p) {
		const char *want[] = { "a.txt", "sub", "sub/b.bin", "sub/c.txt" };
		const char *got[4] = { 0 };
		size_t n = afs_uploads_created_count(p);

		CHECK(afs_uploads_replaced_count(p) == 0);
		CHECK(n == 4);
		for (size_t i = 0; i < n && i < 4; i++) {
			got[i] = afs_uploads_created(p, i);
			CHECK(got[i] && strcmp(got[i], want[i]) == 0);
		}
		CHECK(afs_uploads_merge(p, f.a, f.ix, NULL, NULL, msg, sizeof(msg)) == AFS_OK);
		CHECK(lst(fresh, "sub", &st) == 0 && S_ISDIR(st.st_mode));
		CHECK(same(fresh, "sub/c.txt", C, sizeof(C) - 1));
		CHECK(strays(fresh) == 0);
		/* a directory that holds a file the merge did not create stays */
		put(fresh, "sub/extra", "x", 0644, T_A);
		left = 99;
		CHECK(afs_uploads_remove(fresh, got, n < 4 ? n : 4, &left) == AFS_OK && left == 0);
		CHECK(!exists(fresh, "a.txt") && !exists(fresh, "sub/b.bin") && !exists(fresh, "sub/c.txt"));
		CHECK(exists(fresh, "sub/extra"));
		CHECK(unlink(join(tmp, "fresh/sub/extra")) == 0);
		left = 99;
		CHECK(afs_uploads_remove(fresh, got, n < 4 ? n : 4, &left) == AFS_OK && left == 0);
		CHECK(entries(fresh) == 0);
		afs_uploads_plan_free(p);
		p = NULL;
	}

	/* ---- "sub" is a symlink to a directory outside: refused, nothing written there */
	char *outside = join(tmp, "outside");
	char *evil = join(tmp, "evil");
	mkdir_at(tmp, "outside");
	mkdir_at(tmp, "evil");
	CHECK(symlink(outside, join(tmp, "evil/sub")) == 0);
	plan_refused(&f, evil, "sub");
	CHECK(entries(outside) == 0);
	CHECK(!exists(evil, "a.txt")); /* planning wrote nothing */

	/* ---- the same symlink appearing between plan and merge is not followed */
	char *race = join(tmp, "race");
	mkdir_at(tmp, "race");
	mkdir_at(race, "sub");
	CHECK(afs_uploads_plan(f.a, f.ix, race, &p, msg, sizeof(msg)) == AFS_OK);
	if (p) {
		enum afs_err err;

		CHECK(rmdir(join(tmp, "race/sub")) == 0);
		CHECK(symlink(outside, join(tmp, "race/sub")) == 0);
		msg[0] = '\0';
		err = afs_uploads_merge(p, f.a, f.ix, NULL, NULL, msg, sizeof(msg));
		CHECK(err != AFS_OK); /* it stops at the first error ... */
		CHECK(err == AFS_OK || msg[0] != '\0'); /* ... and says where */
		CHECK(entries(outside) == 0);           /* nothing written through the link */
		CHECK(lst(race, "sub", &st) == 0 && S_ISLNK(st.st_mode));
		CHECK(strays(race) == 0);
		afs_uploads_plan_free(p);
		p = NULL;
	}

	/* ---- the snapshot's reads: the replaced file as planned, and nothing
	 * else once it, or a directory above it, has been swapped */
	swapped_reads(&f, tmp, outside);

	/* ---- "sub" is a regular file: refused */
	char *flat = join(tmp, "flat");
	mkdir_at(tmp, "flat");
	put(flat, "sub", "not a dir\n", 0644, T_A);
	plan_refused(&f, flat, "sub");
	CHECK(same(flat, "sub", "not a dir\n", 10));

	/* ---- a directory where the archive has a file: refused */
	char *dirfile = join(tmp, "dirfile");
	mkdir_at(tmp, "dirfile");
	mkdir_at(dirfile, "a.txt");
	plan_refused(&f, dirfile, "a.txt");

	/* ---- a symlink where the archive has a file: refused */
	char *lnkfile = join(tmp, "lnkfile");
	mkdir_at(tmp, "lnkfile");
	put(outside, "target", "t\n", 0644, T_A);
	CHECK(symlink(join(tmp, "outside/target"), join(tmp, "lnkfile/a.txt")) == 0);
	plan_refused(&f, lnkfile, "a.txt");
	CHECK(same(outside, "target", "t\n", 2));
	CHECK(unlink(join(tmp, "outside/target")) == 0);

	/* ---- the uploads root must exist */
	plan_refused(&f, join(tmp, "no-such-dir"), NULL);

	/* ---- remove never follows a symlink, nor leaves the root by a path */
	put(outside, "victim", "v\n", 0644, T_A);
	{
		const char *through[] = { "sub/victim" };
		left = 0;
		afs_uploads_remove(evil, through, 1, &left);
		CHECK(same(outside, "victim", "v\n", 2));
		CHECK(lst(evil, "sub", &st) == 0 && S_ISLNK(st.st_mode));
	}
	{
		char *abs = join(tmp, "outside/victim");
		const char *escapes[] = { "../outside/victim", "x/../../outside/victim", abs, "./victim", "", "a//b", "a/" };

		mkdir_at(tmp, "inner");
		left = 0;
		CHECK(afs_uploads_remove(join(tmp, "inner"), escapes, 7, &left) == AFS_E_IO && left == 7);
		CHECK(same(outside, "victim", "v\n", 2));
	}
	close_fx(&f);

	/* ---- archives with a symlink, fifo or device below uploads/ are refused */
	struct tu_entry lk[] = {
		{ "uploads/ok.txt", "ok", 2, 0, S_IFREG | 0644, T_A },
		{ "uploads/dir/link", "/etc/passwd", 11, 0, 0120777, T_A },
	};
	f = open_fx(tu_zip("link.zip", lk, 2));
	char *empty = join(tmp, "empty");
	mkdir_at(tmp, "empty");
	plan_refused(&f, empty, "link");
	close_fx(&f);

	struct tu_entry ff[] = {
		{ "uploads/ok.txt", "ok", 2, 0, S_IFREG | 0644, T_A },
		{ "uploads/fifo", "", 0, 0, S_IFIFO | 0644, T_A },
	};
	f = open_fx(tu_zip("fifo.zip", ff, 2));
	plan_refused(&f, empty, "fifo");
	close_fx(&f);

	struct tu_entry dv[] = {
		{ "uploads/dev", "", 0, 0, S_IFCHR | 0644, T_A },
	};
	f = open_fx(tu_zip("dev.zip", dv, 1));
	plan_refused(&f, empty, "dev");
	close_fx(&f);
	CHECK(entries(empty) == 0);

	/* ---- a symlink outside uploads/ does not concern the merge
	 * (and an empty directory entry is created as a directory) */
	struct tu_entry top[] = {
		{ "link", "uploads/ok.txt", 14, 0, 0120777, T_A },
		{ "uploads/ok.txt", "ok", 2, 0, S_IFREG | 0644, T_A },
		{ "uploads/emptydir/", "", 0, 0, S_IFDIR | 0755, T_A },
	};
	f = open_fx(tu_zip("top.zip", top, 3));
	CHECK(afs_uploads_plan(f.a, f.ix, empty, &p, msg, sizeof(msg)) == AFS_OK);
	if (p) {
		CHECK(afs_uploads_created_count(p) == 2);
		if (afs_uploads_created_count(p) == 2) {
			CHECK(strcmp(afs_uploads_created(p, 0), "emptydir") == 0);
			CHECK(strcmp(afs_uploads_created(p, 1), "ok.txt") == 0);
		}
		CHECK(afs_uploads_replaced_count(p) == 0);
		CHECK(afs_uploads_bytes(p) == 2);
		CHECK(afs_uploads_merge(p, f.a, f.ix, NULL, NULL, msg, sizeof(msg)) == AFS_OK);
		CHECK(lst(empty, "emptydir", &st) == 0 && S_ISDIR(st.st_mode));
		CHECK(same(empty, "ok.txt", "ok", 2));
		CHECK(!exists(empty, "link"));
		CHECK(entries(empty) == 2);
		afs_uploads_plan_free(p);
	}
	/* a file where the archive has an (empty) directory: refused */
	char *dirclash = join(tmp, "dirclash");
	mkdir_at(tmp, "dirclash");
	put(dirclash, "emptydir", "file\n", 0644, T_A);
	plan_refused(&f, dirclash, "emptydir");
	close_fx(&f);

	/* ---- an entry that turns out corrupt while merging: the merge stops,
	 * files merged before stay, no half file and no temporary file remain */
	struct tu_entry bad[] = {
		{ "uploads/ok.txt", "ok", 2, 0, S_IFREG | 0644, T_A },
		{ "uploads/z/bad.bin", B, BIG, 1, S_IFREG | 0644, T_B },
	};
	char *badzip = tu_zip("bad.zip", bad, 2);
	CHECK(stat(badzip, &st) == 0 && st.st_size > 4096);
	tu_damage(badzip, (long)st.st_size / 2, 64); /* inside bad.bin's deflated bytes */
	f = open_fx(badzip);
	char *broken = join(tmp, "broken");
	mkdir_at(tmp, "broken");
	CHECK(afs_uploads_plan(f.a, f.ix, broken, &p, msg, sizeof(msg)) == AFS_OK);
	if (p) {
		enum afs_err err;

		msg[0] = '\0';
		err = afs_uploads_merge(p, f.a, f.ix, NULL, NULL, msg, sizeof(msg));
		CHECK(err != AFS_OK);
		CHECK(strstr(msg, "bad.bin") != NULL);
		CHECK(same(broken, "ok.txt", "ok", 2));
		CHECK(!exists(broken, "z/bad.bin"));
		CHECK(strays(broken) == 0);
		afs_uploads_plan_free(p);
		p = NULL;
	}
	close_fx(&f);

	free(B);
	free_pool();
	return tu_done("uploads");
}
