/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/base/afile.c: atomic publication, rollback, write-all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "afile.h"
#include "testutil.h"

static char *slurp(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int main(void)
{
	const char *dir = tu_tmpdir();
	char path[4096], long_name[300];
	struct afs_afile f;
	struct stat st;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY), old, fds[2];

	/* a new file: invisible and 0600 while held, in place after commit */
	snprintf(path, sizeof(path), "%s/flag", dir);
	CHECK(afs_afile_hold(&f, dfd, "flag") == AFS_OK);
	CHECK(fstat(f.fd, &st) == 0 && (st.st_mode & 07777) == 0600);
	CHECK(afs_write_all(f.fd, "one\n", 4) == AFS_OK);
	CHECK(tu_entries(dir) == 0 && access(path, F_OK) != 0);
	CHECK(afs_afile_commit(&f) == AFS_OK && f.fd == -1);
	CHECK(strcmp(slurp(path), "one\n") == 0 && tu_entries(dir) == 1);

	/* replacing it: a reader of the old file keeps the old bytes */
	old = open(path, O_RDONLY);
	CHECK(afs_afile_hold_path(&f, path) == AFS_OK);
	CHECK(afs_write_all(f.fd, "two\n", 4) == AFS_OK && fchmod(f.fd, 0644) == 0);
	CHECK(afs_afile_commit(&f) == AFS_OK);
	CHECK(strcmp(slurp(path), "two\n") == 0 && tu_entries(dir) == 1);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
	{
		char b[8] = "";
		CHECK(read(old, b, sizeof(b)) == 4 && memcmp(b, "one\n", 4) == 0);
	}
	close(old);

	/* rolled back: the target unchanged, nothing left beside it */
	CHECK(afs_afile_hold(&f, dfd, "flag") == AFS_OK);
	CHECK(afs_write_all(f.fd, "three\n", 6) == AFS_OK);
	afs_afile_rollback(&f);
	afs_afile_rollback(&f); /* twice is harmless */
	CHECK(strcmp(slurp(path), "two\n") == 0 && tu_entries(dir) == 1);

	/* a rename that cannot happen (a directory is in the way) rolls back */
	snprintf(path, sizeof(path), "%s/sub", dir);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/sub/x", dir);
	CHECK(mkdir(path, 0755) == 0 && creat(strcat(path, "/y"), 0644) >= 0);
	CHECK(afs_afile_hold(&f, dfd, "sub") == AFS_OK);
	CHECK(afs_afile_commit(&f) == AFS_E_IO && f.fd == -1);
	CHECK(tu_entries(dir) == 2);

	/* bad names and directories */
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	CHECK(afs_afile_hold(&f, dfd, long_name) == AFS_E_INVAL);
	CHECK(afs_afile_hold(&f, dfd, "a/b") == AFS_E_INVAL);
	CHECK(afs_afile_hold_path(&f, "/nonexistent-dir/flag") == AFS_E_IO && errno == ENOENT);

	/* write-all: a full device says so, a pipe takes everything */
	old = open("/dev/full", O_WRONLY);
	CHECK(old >= 0 && afs_write_all(old, "x", 1) == AFS_E_NOSPC);
	close(old);
	CHECK(pipe(fds) == 0);
	{
		char big[60000], back[60000];
		size_t got = 0;

		memset(big, 'z', sizeof(big));
		CHECK(afs_write_all(fds[1], big, sizeof(big)) == AFS_OK);
		close(fds[1]);
		for (ssize_t n; (n = read(fds[0], back + got, sizeof(back) - got)) > 0;)
			got += (size_t)n;
		CHECK(got == sizeof(big) && memcmp(big, back, got) == 0);
		close(fds[0]);
	}
	snprintf(path, sizeof(path), "%s/flag", dir);
	CHECK(afs_fsync_path(path) == AFS_OK);
	CHECK(afs_fsync_path("/nonexistent-dir/flag") == AFS_E_IO);
	close(dfd);
	return tu_done("afile");
}
