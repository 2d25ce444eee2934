/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/privdir.c: private directories for staged files,
 * made in a directory every user may write to (1777), with symlinks
 * planted where a staged file would go. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "privdir.h"
#include "testutil.h"

/* "a/b" in one of 16 rotating buffers: keep a result only for a few calls. */
static char *join(const char *a, const char *b)
{
	static char buf[16][4096];
	static int next;
	char *out = buf[next++ % 16];

	/* a path past the buffer is a test bug: fail loudly, not truncate */
	if ((size_t)snprintf(out, sizeof(buf[0]), "%s/%s", a, b) >= sizeof(buf[0]))
		abort();
	return out;
}

/* Made, used and removed in a shared (1777) directory: 0700, ours, files
 * 0600 and new, and nothing left. */
static void case_lifecycle(const char *shared)
{
	struct afs_privdir d = AFS_PRIVDIR_INIT;
	char msg[256] = "", *file;
	struct stat st;
	int fd = -1, old = umask(0777);

	CHECK(afs_privdir_make(&d, shared, ".app.db.archfs-", msg, sizeof(msg)) == AFS_OK);
	umask(old);
	CHECK(d.path && strncmp(d.path, join(shared, ".app.db.archfs-"), strlen(join(shared, ".app.db.archfs-"))) == 0);
	CHECK(lstat(d.path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
	      st.st_uid == geteuid());
	CHECK(afs_privdir_create(&d, "stage.db", &fd) == AFS_OK && fd >= 0);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_size == 0);
	CHECK(write(fd, "x", 1) == 1);
	if (fd >= 0)
		close(fd);
	/* a name that exists is never opened again: O_EXCL */
	CHECK(afs_privdir_create(&d, "stage.db", NULL) == AFS_E_IO && errno == EEXIST);
	CHECK(afs_privdir_create(&d, "a/b", NULL) == AFS_E_INVAL);
	file = afs_privdir_file(&d, "stage.db");
	CHECK(file && strcmp(file, join(d.path, "stage.db")) == 0);
	free(file);
	/* journals a library adds beside its file go with the directory */
	CHECK(afs_privdir_create(&d, "stage.db-journal", NULL) == AFS_OK);
	CHECK(afs_privdir_remove(&d));
	CHECK(d.path == NULL && d.fd == -1 && d.parent == -1);
	CHECK(tu_entries(shared) == 0);
	CHECK(afs_privdir_remove(&d)); /* a no-op on an empty one */
}

/* A symlink where a staged file would go is not followed, and its target
 * is neither created nor removed. */
static void case_symlink_planted(const char *shared)
{
	struct afs_privdir d = AFS_PRIVDIR_INIT;
	char msg[256] = "", *victim = join(shared, "victim");

	CHECK(afs_privdir_make(&d, shared, ".x.archfs-", msg, sizeof(msg)) == AFS_OK);
	CHECK(symlink(victim, join(d.path, "pagesize.db")) == 0);
	CHECK(afs_privdir_create(&d, "pagesize.db", NULL) == AFS_E_IO && errno == EEXIST);
	CHECK(access(victim, F_OK) != 0);
	/* removing it removes the link, never what it points to */
	CHECK(close(open(victim, O_WRONLY | O_CREAT, 0600)) == 0);
	CHECK(afs_privdir_remove(&d));
	CHECK(access(victim, F_OK) == 0);
	CHECK(unlink(victim) == 0 && tu_entries(shared) == 0);
}

/* The directory renamed away and a symlink put in its place (what the
 * owner of the parent could do): removal empties our directory, leaves the
 * symlink's target alone and says it failed. */
static void case_swapped(const char *shared)
{
	struct afs_privdir d = AFS_PRIVDIR_INIT;
	char msg[256] = "", elsewhere[4200], moved[4200], was[4200];

	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", shared);
	snprintf(moved, sizeof(moved), "%s/moved", shared);
	CHECK(mkdir(elsewhere, 0755) == 0);
	CHECK(close(open(join(elsewhere, "stage.db"), O_WRONLY | O_CREAT, 0600)) == 0);
	CHECK(afs_privdir_make(&d, shared, ".y.archfs-", msg, sizeof(msg)) == AFS_OK);
	snprintf(was, sizeof(was), "%s", d.path);
	CHECK(afs_privdir_create(&d, "stage.db", NULL) == AFS_OK);
	CHECK(rename(was, moved) == 0 && symlink(elsewhere, was) == 0);
	CHECK(!afs_privdir_remove(&d));
	CHECK(access(join(elsewhere, "stage.db"), F_OK) == 0);
	CHECK(tu_entries(moved) == 0); /* emptied through its descriptor */
	CHECK(rmdir(moved) == 0 && unlink(was) == 0);
	CHECK(unlink(join(elsewhere, "stage.db")) == 0 && rmdir(elsewhere) == 0);
	CHECK(tu_entries(shared) == 0);
}

/* Leftovers of a killed run: only a private directory of this user is
 * removed, with its files; a symlink, another user's or a shared directory
 * is left alone. */
static void case_remove_at(const char *shared)
{
	int dfd = open(shared, O_RDONLY | O_DIRECTORY);
	char mine[4200], open_dir[4200], link[4200], theirs[4200];

	snprintf(mine, sizeof(mine), "%s/.db.archfs-aaaaaa", shared);
	snprintf(open_dir, sizeof(open_dir), "%s/.db.archfs-bbbbbb", shared);
	snprintf(link, sizeof(link), "%s/.db.archfs-cccccc", shared);
	snprintf(theirs, sizeof(theirs), "%s/.db.archfs-dddddd", shared);
	CHECK(mkdir(mine, 0700) == 0 && close(open(join(mine, "stage.db"), O_WRONLY | O_CREAT, 0600)) == 0);
	CHECK(symlink("x", join(mine, "stage.db-journal")) == 0);
	CHECK(mkdir(open_dir, 0755) == 0 && close(open(join(open_dir, "f"), O_WRONLY | O_CREAT, 0600)) == 0);
	CHECK(symlink(open_dir, link) == 0);
	CHECK(mkdir(theirs, 0700) == 0);
	if (geteuid() == 0)
		CHECK(chown(theirs, 65534, 65534) == 0);
	CHECK(afs_privdir_remove_at(dfd, ".db.archfs-aaaaaa") && access(mine, F_OK) != 0);
	CHECK(!afs_privdir_remove_at(dfd, ".db.archfs-bbbbbb") && access(join(open_dir, "f"), F_OK) == 0);
	CHECK(!afs_privdir_remove_at(dfd, ".db.archfs-cccccc") && access(join(open_dir, "f"), F_OK) == 0);
	if (geteuid() == 0)
		CHECK(!afs_privdir_remove_at(dfd, ".db.archfs-dddddd") && access(theirs, F_OK) == 0);
	CHECK(!afs_privdir_remove_at(dfd, ".db.archfs-none"));
	close(dfd);
}

int main(void)
{
	const char *dir = tu_tmpdir();
	char shared[4096], msg[256] = "";
	struct afs_privdir d = AFS_PRIVDIR_INIT;

	snprintf(shared, sizeof(shared), "%s/shared", dir);
	CHECK(mkdir(shared, 0755) == 0 && chmod(shared, 01777) == 0);
	case_lifecycle(shared);
	case_symlink_planted(shared);
	case_swapped(shared);
	case_remove_at(shared);
	/* a parent that does not exist: nothing made, the reason said */
	CHECK(afs_privdir_make(&d, join(dir, "missing"), ".z-", msg, sizeof(msg)) == AFS_E_IO && d.path == NULL);
	CHECK(strstr(msg, "missing") != NULL);
	return tu_done("privdir");
}
