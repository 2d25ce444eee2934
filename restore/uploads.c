/* SPDX-License-Identifier: MIT */
/* Safe merge of uploads/ into the live tree: plan (read-only checks), then
 * temp file + fsync + rename per file, walking with O_NOFOLLOW. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "afile.h"
#include "archive.h"
#include "index.h"
#include "stream.h"
#include "uploads.h"

#define PREFIX "uploads/"
#define COPY_CHUNK (256 * 1024)
#define SAFE_BITS (S_IRWXU | S_IRWXG | S_IROTH | S_IXOTH) /* no setuid/setgid/sticky/world-write */

struct item {
	char *rel;       /* below the root, e.g. "logos/a.png" */
	uint32_t node;
	bool is_dir;
	bool exists;     /* a live file (or directory) is there now */
	uint32_t live_mode;
	int64_t live_mtime;
	dev_t live_dev;  /* which file it is: the snapshot reads only that one */
	ino_t live_ino;
	uint64_t live_size;
};

struct afs_uplan {
	char *root;
	dev_t root_dev;   /* the root directory planning saw */
	ino_t root_ino;
	struct item *items;
	size_t n;
	size_t *replaced; /* indexes of items that replace a live file */
	size_t nreplaced;
	char **created;
	size_t ncreated;
	uint64_t bytes;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void afs_uploads_plan_free(struct afs_uplan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i].rel);
	for (size_t i = 0; i < p->ncreated; i++)
		free(p->created[i]);
	free(p->items);
	free(p->replaced);
	free(p->created);
	free(p->root);
	free(p);
}

static enum afs_err add_created(struct afs_uplan *p, const char *rel, size_t len)
{
	char **c = realloc(p->created, (p->ncreated + 1) * sizeof(*c));

	if (!c)
		return AFS_E_NOMEM;
	p->created = c;
	c[p->ncreated] = strndup(rel, len);
	if (!c[p->ncreated])
		return AFS_E_NOMEM;
	p->ncreated++;
	return AFS_OK;
}

/* Opens directory rel (len bytes of it) below the root fd, never following
 * a symlink.  -1 with errno set (ENOENT when a component is missing). */
static int open_dir(int rootfd, const char *rel, size_t len)
{
	char comp[256];
	int fd = dup(rootfd);

	for (size_t i = 0; fd >= 0 && i < len;) {
		size_t c = strcspn(rel + i, "/");
		int next;

		if (c > len - i)
			c = len - i;
		if (c >= sizeof(comp)) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, rel + i, c);
		comp[c] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
		i += c + 1;
	}
	return fd;
}

/* Checks one item against the live tree and records what it would create. */
static enum afs_err plan_item(struct afs_uplan *p, int rootfd, struct item *it, char *msg, size_t msglen)
{
	const char *rel = it->rel;
	struct stat st;
	int fd = dup(rootfd);
	enum afs_err err = AFS_OK;
	size_t i = 0;

	for (;;) {
		size_t c = strcspn(rel + i, "/");
		bool last = rel[i + c] == '\0';
		char *comp = strndup(rel + i, c);
		int next;

		if (!comp) {
			err = AFS_E_NOMEM;
			break;
		}
		if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			free(comp);
			if (errno != ENOENT) {
				snprintf(msg, msglen, "live uploads path '%.*s': %s", (int)(i + c), rel, strerror(errno));
				err = AFS_E_IO;
				break;
			}
			/* this component and everything below it are new */
			for (size_t j = i + c;; j += strcspn(rel + j + 1, "/") + 1) {
				if ((err = add_created(p, rel, j)) != AFS_OK || rel[j] == '\0')
					break;
			}
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			snprintf(msg, msglen, "live uploads path '%.*s' is a symbolic link; archfs never writes through one",
				 (int)(i + c), rel);
			err = AFS_E_BADNAME;
		} else if (!last && !S_ISDIR(st.st_mode)) {
			snprintf(msg, msglen, "live uploads path '%.*s' is not a directory but the archive has files below it",
				 (int)(i + c), rel);
			err = AFS_E_CONFLICT;
		} else if (last && it->is_dir != S_ISDIR(st.st_mode)) {
			snprintf(msg, msglen, "live uploads path '%s' is a %s, the archive has a %s", rel,
				 S_ISDIR(st.st_mode) ? "directory" : "non-directory", it->is_dir ? "directory" : "file");
			err = AFS_E_CONFLICT;
		} else if (last && !it->is_dir && !S_ISREG(st.st_mode)) {
			snprintf(msg, msglen, "live uploads path '%s' is not a regular file", rel);
			err = AFS_E_CONFLICT;
		}
		if (err != AFS_OK || last) {
			if (err == AFS_OK) {
				it->exists = true;
				it->live_mode = st.st_mode;
				it->live_mtime = st.st_mtim.tv_sec;
				it->live_dev = st.st_dev;
				it->live_ino = st.st_ino;
				it->live_size = (uint64_t)st.st_size;
			}
			free(comp);
			break;
		}
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		free(comp);
		close(fd);
		fd = next;
		if (fd < 0) {
			snprintf(msg, msglen, "live uploads path '%.*s': %s", (int)(i + c), rel, strerror(errno));
			return AFS_E_IO;
		}
		i += c + 1;
	}
	close(fd);
	return err;
}

enum afs_err afs_uploads_plan(struct afs_archive *a, const struct afs_index *ix, const char *root,
			      struct afs_uplan **out, char *msg, size_t msglen)
{
	struct afs_uplan *p = calloc(1, sizeof(*p));
	uint32_t count = afs_index_count(ix);
	enum afs_err err = AFS_OK;
	struct stat rst;
	int rootfd = -1;
	size_t k = 0;

	*out = NULL;
	if (!p || !(p->root = strdup(root)) || !(p->items = calloc(count, sizeof(*p->items)))) {
		err = AFS_E_NOMEM;
		goto out;
	}
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		snprintf(msg, msglen, "uploads directory %s: %s", root, strerror(errno));
		err = errno == ENOENT || errno == ENOTDIR ? AFS_E_NOENT : AFS_E_IO;
		goto out;
	}
	if (fstat(rootfd, &rst) != 0) {
		snprintf(msg, msglen, "uploads directory %s: %s", root, strerror(errno));
		err = AFS_E_IO;
		goto out;
	}
	p->root_dev = rst.st_dev;
	p->root_ino = rst.st_ino;
	for (uint32_t id = 1; id < count; id++) {
		const struct afs_node *n = afs_index_node(ix, id);
		const char *path = afs_index_path(ix, id);
		struct afs_entry_info e;
		struct item *it;

		if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
			continue;
		if (S_ISDIR(n->mode) && n->first_child != AFS_NONE)
			continue; /* created on the way to its files */
		if (S_ISLNK(n->mode)) {
			snprintf(msg, msglen, "archive entry '%s' is a symbolic link; uploads must be regular files", path);
			err = AFS_E_BADNAME;
			goto out;
		}
		if (n->entry != AFS_NONE && afs_archive_entry(a, n->entry, &e) == AFS_OK && (e.mode & S_IFMT) &&
		    !S_ISREG(e.mode) && !S_ISDIR(e.mode)) {
			snprintf(msg, msglen, "archive entry '%s' is a device or fifo; uploads must be regular files", path);
			err = AFS_E_BADNAME;
			goto out;
		}
		it = &p->items[k];
		it->rel = strdup(path + strlen(PREFIX));
		if (!it->rel) {
			err = AFS_E_NOMEM;
			goto out;
		}
		it->node = id;
		it->is_dir = S_ISDIR(n->mode);
		k++;
		p->n = k;
		if ((err = plan_item(p, rootfd, it, msg, msglen)) != AFS_OK)
			goto out;
		if (!it->is_dir)
			p->bytes += n->size;
	}
	p->replaced = calloc(p->n ? p->n : 1, sizeof(*p->replaced));
	if (!p->replaced) {
		err = AFS_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].exists && !p->items[i].is_dir)
			p->replaced[p->nreplaced++] = i;
	/* parents first, each path once */
	if (p->ncreated)
		qsort(p->created, p->ncreated, sizeof(*p->created), cmp_str);
	k = 0;
	for (size_t i = 0; i < p->ncreated; i++) {
		if (k && strcmp(p->created[k - 1], p->created[i]) == 0)
			free(p->created[i]);
		else
			p->created[k++] = p->created[i];
	}
	p->ncreated = k;
out:
	if (rootfd >= 0)
		close(rootfd);
	if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
	if (err != AFS_OK) {
		afs_uploads_plan_free(p);
		return err;
	}
	*out = p;
	return AFS_OK;
}

uint64_t afs_uploads_bytes(const struct afs_uplan *p)
{
	return p->bytes;
}

size_t afs_uploads_replaced_count(const struct afs_uplan *p)
{
	return p->nreplaced;
}

const char *afs_uploads_replaced(const struct afs_uplan *p, size_t i, uint32_t *mode, int64_t *mtime,
				 uint64_t *size)
{
	const struct item *it = &p->items[p->replaced[i]];

	*mode = it->live_mode;
	*mtime = it->live_mtime;
	*size = it->live_size;
	return it->rel;
}

/* Opens the uploads root into *rootfd; it must be the directory planning
 * saw (a root renamed away and replaced, by a symlink or otherwise, is
 * refused). */
static enum afs_err open_root(const struct afs_uplan *p, int *rootfd, char *msg, size_t msglen)
{
	struct stat st;

	*rootfd = open(p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*rootfd < 0 || fstat(*rootfd, &st) != 0) {
		snprintf(msg, msglen, "uploads directory %s: %s", p->root, strerror(errno));
		if (*rootfd >= 0)
			close(*rootfd);
		*rootfd = -1;
		return AFS_E_IO;
	}
	if (st.st_dev != p->root_dev || st.st_ino != p->root_ino) {
		snprintf(msg, msglen, "uploads directory %s changed since verify: refused", p->root);
		close(*rootfd);
		*rootfd = -1;
		return AFS_E_CONFLICT;
	}
	return AFS_OK;
}

/* What errno, after a failed walk or open with O_NOFOLLOW, says changed
 * since planning; NULL for an error that does not mean a change. */
static const char *changed_why(int e)
{
	if (e == ENOENT)
		return "it is gone";
	if (e == ELOOP || e == ENOTDIR)
		return "it, or a directory above it, is now a symbolic link or not a directory";
	return NULL;
}

enum afs_err afs_uploads_open_replaced(const struct afs_uplan *p, size_t i, int *fd, char *msg, size_t msglen)
{
	const struct item *it = &p->items[p->replaced[i]];
	const char *slash = strrchr(it->rel, '/');
	struct stat st;
	int rootfd, dfd, f = -1, e;
	enum afs_err err;

	*fd = -1;
	err = open_root(p, &rootfd, msg, msglen);
	if (err != AFS_OK)
		return err;
	dfd = open_dir(rootfd, it->rel, slash ? (size_t)(slash - it->rel) : 0);
	e = errno;
	if (dfd >= 0) {
		/* O_NONBLOCK: a fifo put in its place must not stall the open */
		f = openat(dfd, slash ? slash + 1 : it->rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		e = errno;
		close(dfd);
	}
	close(rootfd);
	if (f < 0) {
		const char *why = changed_why(e);

		if (!why) {
			snprintf(msg, msglen, "uploads/%s: %s", it->rel, strerror(e));
			return AFS_E_IO;
		}
		snprintf(msg, msglen, "uploads/%s changed since verify: refused (%s)", it->rel, why);
		return AFS_E_CONFLICT;
	}
	if (fstat(f, &st) != 0) {
		snprintf(msg, msglen, "uploads/%s: %s", it->rel, strerror(errno));
		err = AFS_E_IO;
	} else if (!S_ISREG(st.st_mode) || st.st_dev != it->live_dev || st.st_ino != it->live_ino ||
		   (uint64_t)st.st_size != it->live_size) {
		snprintf(msg, msglen, "uploads/%s changed since verify: refused (%s)", it->rel,
			 !S_ISREG(st.st_mode)					   ? "no longer a regular file"
			 : st.st_dev != it->live_dev || st.st_ino != it->live_ino ? "another file is in its place"
										  : "its size changed");
		err = AFS_E_CONFLICT;
	}
	if (err != AFS_OK) {
		close(f);
		return err;
	}
	*fd = f;
	return AFS_OK;
}

size_t afs_uploads_created_count(const struct afs_uplan *p)
{
	return p->ncreated;
}

const char *afs_uploads_created(const struct afs_uplan *p, size_t i)
{
	return p->created[i];
}

/* Gives directory name, just created in pfd, the owner and group of pfd,
 * as the application would have created it (when run as root; otherwise
 * it is ours already).  Not fatal: it then stays root's. */
static void own_like_parent(int pfd, const char *name)
{
	struct stat parent;
	int fd;

	if (geteuid() != 0 || fstat(pfd, &parent) != 0)
		return;
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fchown(fd, parent.st_uid, parent.st_gid) != 0) {
		/* not fatal, as for files (write_one) */
	}
	close(fd);
}

/* Opens directory rel[0, len) below rootfd, creating what is missing with
 * mode and the owner of the directory above it; never follows a symlink. */
static int open_or_create(int rootfd, const char *rel, size_t len, mode_t mode)
{
	int fd = open_dir(rootfd, rel, len);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	for (size_t start = 0; start < len;) {
		size_t c = strcspn(rel + start, "/");
		char comp[256];
		int pfd;

		if (c > len - start)
			c = len - start;
		if (c >= sizeof(comp)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, rel + start, c);
		comp[c] = '\0';
		pfd = open_dir(rootfd, rel, start ? start - 1 : 0);
		if (pfd < 0)
			return -1;
		if (mkdirat(pfd, comp, mode) == 0)
			own_like_parent(pfd, comp);
		else if (errno != EEXIST) {
			int e = errno;

			close(pfd);
			errno = e;
			return -1;
		}
		close(pfd);
		start += c + 1;
	}
	return open_dir(rootfd, rel, len);
}

/* Writes node id to a temporary file in dfd and publishes it as name
 * (afile.h): unnamed until its bytes, mode, mtime and owner are final and
 * synced, so a kill -9 while it is written leaves nothing behind. */
static enum afs_err write_one(int dfd, const char *name, struct afs_archive *a, const struct afs_index *ix,
			      uint32_t id, char *buf, void (*progress)(void *, uint64_t), void *ctx, char *msg,
			      size_t msglen)
{
	const struct afs_node *n = afs_index_node(ix, id);
	struct timespec ts[2] = { { n->mtime, 0 }, { n->mtime, 0 } };
	struct afs_stream *s = NULL;
	struct afs_afile f;
	struct stat old, dir;
	enum afs_err err;
	uint64_t off = 0;

	err = afs_afile_hold(&f, dfd, name);
	if (err != AFS_OK) {
		snprintf(msg, msglen, "creating a temporary file for %s: %s", name, strerror(errno));
		return err;
	}
	err = afs_stream_open(a, ix, id, &s);
	while (err == AFS_OK) {
		size_t got = 0;

		err = afs_stream_pread(s, buf, COPY_CHUNK, off, &got);
		if (err != AFS_OK) {
			snprintf(msg, msglen, "reading %s from the archive: %s", afs_index_path(ix, id), afs_stream_error(s, err));
			break;
		}
		if (got == 0)
			break;
		err = afs_write_all(f.fd, buf, got);
		if (err != AFS_OK) {
			snprintf(msg, msglen, "writing %s: %s", name, strerror(errno));
			goto out;
		}
		off += got;
		if (progress)
			progress(ctx, got);
	}
	if (err != AFS_OK)
		goto out;
	/* owner: the file replaced keeps its own, a new one takes the directory's */
	if (geteuid() == 0) {
		const struct stat *o = fstatat(dfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0 ? &old
				       : fstat(dfd, &dir) == 0				  ? &dir
											  : NULL;

		if (o && fchown(f.fd, o->st_uid, o->st_gid) != 0) {
			/* not fatal: the file stays owned by root */
		}
	}
	if (fchmod(f.fd, (n->mode & 07777) & SAFE_BITS) != 0 || futimens(f.fd, ts) != 0) {
		snprintf(msg, msglen, "finishing %s: %s", name, strerror(errno));
		err = errno == ENOSPC ? AFS_E_NOSPC : AFS_E_IO;
		goto out;
	}
	afs_stream_close(s);
	err = afs_afile_commit(&f);
	if (err != AFS_OK)
		snprintf(msg, msglen, "publishing %s: %s", name, strerror(errno));
	return err;
out:
	afs_stream_close(s);
	afs_afile_rollback(&f);
	return err;
}

enum afs_err afs_uploads_merge(const struct afs_uplan *p, struct afs_archive *a, const struct afs_index *ix,
			       void (*progress)(void *ctx, uint64_t bytes), void *ctx, char *msg, size_t msglen)
{
	char *buf = malloc(COPY_CHUNK);
	enum afs_err err = AFS_OK;
	int rootfd = -1;

	if (!buf) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	err = open_root(p, &rootfd, msg, msglen);
	if (err != AFS_OK)
		goto out;
	for (size_t i = 0; i < p->n && err == AFS_OK; i++) {
		const struct item *it = &p->items[i];
		const char *slash = strrchr(it->rel, '/');
		const char *name = slash ? slash + 1 : it->rel;
		int dfd;

		dfd = open_or_create(rootfd, it->rel, it->is_dir ? strlen(it->rel) : slash ? (size_t)(slash - it->rel) : 0,
				     0755);
		if (dfd < 0) {
			snprintf(msg, msglen, "live uploads directory of '%s': %s%s", it->rel, strerror(errno),
				 errno == ELOOP || errno == ENOTDIR ? " (a symlink or file is in the way)" : "");
			err = errno == ENOSPC ? AFS_E_NOSPC : AFS_E_IO;
			break;
		}
		if (!it->is_dir)
			err = write_one(dfd, name, a, ix, it->node, buf, progress, ctx, msg, msglen);
		if (err == AFS_OK && it->is_dir && fsync(dfd) != 0) { /* a file's commit synced dfd */
			snprintf(msg, msglen, "fsync of the directory of %s: %s", it->rel, strerror(errno));
			err = AFS_E_IO;
		}
		close(dfd);
	}
out:
	if (rootfd >= 0)
		close(rootfd);
	free(buf);
	return err;
}

enum afs_err afs_uploads_remove(const char *root, const char *const *paths, size_t n, size_t *left)
{
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*left = 0;
	if (rootfd < 0)
		return AFS_E_IO;
	for (size_t k = n; k-- > 0;) {
		const char *rel = paths[k], *slash = strrchr(rel, '/');
		const char *name = slash ? slash + 1 : rel;
		struct stat st;
		int dfd;

		/* confined below the root: no "..", ".", empty or absolute path */
		if (afs_index_check_name(rel) != AFS_OK || (slash && slash[1] == '\0')) {
			(*left)++;
			continue;
		}
		dfd = open_dir(rootfd, rel, slash ? (size_t)(slash - rel) : 0);
		if (dfd < 0) {
			if (errno != ENOENT)
				(*left)++;
			continue;
		}
		/* a directory that holds files the restore did not create stays */
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && errno != ENOTEMPTY &&
		    errno != EEXIST)
			(*left)++;
		close(dfd);
	}
	close(rootfd);
	return *left ? AFS_E_IO : AFS_OK;
}
