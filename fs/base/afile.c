/* SPDX-License-Identifier: MIT */
/* Atomic publication of files (temp file, fsync, rename, fsync the
 * directory) and the write-all loop: the one place every writer uses. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "afile.h"

static enum afs_err io_err(void)
{
	return errno == ENOSPC || errno == EDQUOT ? AFS_E_NOSPC : AFS_E_IO;
}

enum afs_err afs_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_err();
		p += n;
		len -= (size_t)n;
	}
	return AFS_OK;
}

enum afs_err afs_afile_hold(struct afs_afile *f, int dfd, const char *name)
{
	static unsigned counter;
	int n;

	f->fd = -1;
	f->dfd = dfd;
	f->own_dfd = false;
	f->named = false;
	if (strlen(name) >= sizeof(f->name) || strchr(name, '/')) {
		errno = EINVAL;
		return AFS_E_INVAL;
	}
	strcpy(f->name, name);
	/* the name is needed anyway: O_TMPFILE files are linked to it at commit */
	n = snprintf(f->tmp, sizeof(f->tmp), ".%.200s.archfs-%d-%u", name, (int)getpid(),
		     __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof(f->tmp)) {
		errno = EINVAL;
		return AFS_E_INVAL;
	}
	f->fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (f->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		f->fd = openat(dfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		f->named = f->fd >= 0;
	}
	return f->fd < 0 ? io_err() : AFS_OK;
}

enum afs_err afs_afile_hold_path(struct afs_afile *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	enum afs_err err;
	int dfd, saved;

	f->fd = -1;
	f->own_dfd = false;
	f->named = false;
	if (!dir)
		return AFS_E_NOMEM;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return io_err();
	err = afs_afile_hold(f, dfd, slash ? slash + 1 : path);
	if (err != AFS_OK) {
		saved = errno;
		close(dfd);
		errno = saved;
		return err;
	}
	f->own_dfd = true;
	return AFS_OK;
}

/* Links an O_TMPFILE file to f->tmp: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH,
 * the /proc path does not. */
static int link_tmp(struct afs_afile *f)
{
	char proc[64];

	if (linkat(f->fd, "", f->dfd, f->tmp, AT_EMPTY_PATH) == 0)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	return linkat(AT_FDCWD, proc, f->dfd, f->tmp, AT_SYMLINK_FOLLOW);
}

void afs_afile_rollback(struct afs_afile *f)
{
	int saved = errno;

	if (f->fd >= 0)
		close(f->fd);
	if (f->named)
		unlinkat(f->dfd, f->tmp, 0);
	if (f->own_dfd)
		close(f->dfd);
	f->fd = -1;
	f->named = false;
	f->own_dfd = false;
	errno = saved;
}

enum afs_err afs_afile_commit(struct afs_afile *f)
{
	enum afs_err err;

	if (fsync(f->fd) != 0 || (!f->named && link_tmp(f) != 0))
		goto fail;
	f->named = true;
	if (renameat(f->dfd, f->tmp, f->dfd, f->name) != 0)
		goto fail;
	f->named = false; /* the name is the target's now: nothing to remove */
	if (fsync(f->dfd) != 0)
		goto fail;
	afs_afile_rollback(f); /* closes what is open, removes nothing */
	return AFS_OK;
fail:
	err = io_err();
	afs_afile_rollback(f);
	return err;
}

enum afs_err afs_fsync_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	enum afs_err err = AFS_OK;
	int fd;

	if (!dir)
		return AFS_E_NOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		err = io_err();
	if (fd >= 0)
		close(fd);
	fd = err == AFS_OK ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (err == AFS_OK && (fd < 0 || fsync(fd) != 0))
		err = io_err();
	if (fd >= 0)
		close(fd);
	free(dir);
	return err;
}
