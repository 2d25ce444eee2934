/* SPDX-License-Identifier: MIT */
/* Private directories for staged files (privdir.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "privdir.h"

static void reset(struct afs_privdir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->parent >= 0)
		close(d->parent);
	free(d->path);
	free(d->name);
	*d = (struct afs_privdir)AFS_PRIVDIR_INIT;
}

/* Unlinks every entry of the directory open at fd (a duplicate is read, fd
 * stays open).  unlinkat never follows a symlink: it removes the link. */
static bool empty_dir(int fd)
{
	int dup_fd = dup(fd);
	DIR *dp = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *e;
	bool ok = dp != NULL;

	if (!dp) {
		if (dup_fd >= 0)
			close(dup_fd);
		return false;
	}
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && unlinkat(fd, e->d_name, 0) != 0)
			ok = false;
	closedir(dp);
	return ok;
}

/* True when st is a directory of this user that no one else may enter. */
static bool is_private(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && (st->st_mode & 077) == 0;
}

enum afs_err afs_privdir_make(struct afs_privdir *d, const char *parent, const char *prefix, char *msg,
			      size_t msglen)
{
	char *copy = NULL;
	struct stat st;
	enum afs_err err = AFS_E_NOMEM;
	int saved;

	*d = (struct afs_privdir)AFS_PRIVDIR_INIT;
	if (asprintf(&d->path, "%s/%sXXXXXX", parent, prefix) < 0) {
		d->path = NULL;
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	if (!mkdtemp(d->path)) {
		saved = errno;
		snprintf(msg, msglen, "cannot make a private directory in %s: %s", parent, strerror(saved));
		err = saved == ENOSPC || saved == EDQUOT ? AFS_E_NOSPC : AFS_E_IO;
		free(d->path);
		d->path = NULL;
		errno = saved;
		return err;
	}
	copy = strdup(d->path);
	d->name = copy ? strdup(basename(copy)) : NULL;
	free(copy);
	if (!d->name) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	/* the name was made by us a moment ago; what is open now is checked,
	 * not assumed (a rename in between would put something else there) */
	d->parent = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->parent >= 0)
		d->fd = openat(d->parent, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->fd < 0 || fstat(d->fd, &st) != 0) {
		saved = errno;
		snprintf(msg, msglen, "cannot open the private directory %s: %s", d->path, strerror(saved));
		err = AFS_E_IO;
		goto fail;
	}
	if (!is_private(&st)) {
		snprintf(msg, msglen, "%s is not the private directory archfs made (owner %lu, mode %04o)", d->path,
			 (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
		err = AFS_E_ACCES;
		goto fail;
	}
	if ((st.st_mode & 0700) != 0700 && fchmod(d->fd, 0700) != 0) { /* a umask took our own bits */
		saved = errno;
		snprintf(msg, msglen, "cannot make %s usable: %s", d->path, strerror(saved));
		err = AFS_E_IO;
		goto fail;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	return AFS_OK;
fail:
	saved = errno;
	if (d->fd >= 0) { /* only a directory that passed the check is ours to remove */
		if (fstat(d->fd, &st) == 0 && is_private(&st))
			unlinkat(d->parent, d->name, AT_REMOVEDIR);
	} else {
		rmdir(d->path); /* what mkdtemp made, still empty */
	}
	reset(d);
	errno = saved;
	return err;
}

enum afs_err afs_privdir_create(const struct afs_privdir *d, const char *name, int *fd)
{
	int f;

	if (fd)
		*fd = -1;
	if (d->fd < 0 || strchr(name, '/')) {
		errno = EINVAL;
		return AFS_E_INVAL;
	}
	f = openat(d->fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f < 0)
		return errno == ENOSPC || errno == EDQUOT ? AFS_E_NOSPC : AFS_E_IO;
	if (fd)
		*fd = f;
	else
		close(f);
	return AFS_OK;
}

char *afs_privdir_file(const struct afs_privdir *d, const char *name)
{
	char *out = NULL;

	if (!d->path || asprintf(&out, "%s/%s", d->path, name) < 0)
		return NULL;
	return out;
}

bool afs_privdir_remove(struct afs_privdir *d)
{
	struct stat st;
	bool ok = true;

	if (!d->path)
		return true;
	if (d->fd >= 0) {
		ok = empty_dir(d->fd);
		/* the name must still be our directory: unlinkat does not follow */
		if (fstatat(d->parent, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == d->dev &&
		    st.st_ino == d->ino)
			ok = unlinkat(d->parent, d->name, AT_REMOVEDIR) == 0 && ok;
		else
			ok = false;
	}
	reset(d);
	return ok;
}

bool afs_privdir_remove_at(int dfd, const char *name)
{
	struct stat st;
	bool ok;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0 || !is_private(&st)) {
		close(fd);
		return false;
	}
	ok = empty_dir(fd);
	close(fd);
	return unlinkat(dfd, name, AT_REMOVEDIR) == 0 && ok;
}
