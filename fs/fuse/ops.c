/* SPDX-License-Identifier: MIT */
/* struct fuse_operations: resolve the path, call the core, map the error. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include "backups.h"
#include "index.h"
#include "log.h"
#include "ops.h"
#include "resolve.h"
#include "stream.h"
#include "vfiles.h"
#include "view.h"

/* Archives never change, so the kernel may keep names and attributes long. */
#define CACHE_TIMEOUT 86400.0

/* One open file.  The kernel may send reads of one handle from several
 * threads; the lock keeps the stream's position (and a .log reader's)
 * consistent.  A status file's handle holds its content as of the open,
 * but .log's, which is read from the job's log at each read (up to 1 MiB:
 * no copy per open).  The handle keeps its archive's view open (directory
 * mode: a reference) until it is released. */
struct handle {
	pthread_mutex_t lock;
	struct handle *prev, *next; /* in the mount's open files */
	struct afs_view *view;
	struct afs_stream *stream;
	bool logged;         /* its sticky error has been logged */
	enum afs_vfile vfile;
	struct afs_job *job; /* .control: the job its commands go to */
	struct afs_vlog log; /* .log */
	char *text;          /* the other status files */
	size_t len;
};

/* Every open file, so that those the kernel never released are freed at
 * the end: an unmount drops the releases still queued. */
struct afs_openfiles {
	pthread_mutex_t mu;
	struct handle *head;
};

static struct afs_mount *mount_of(void)
{
	return fuse_get_context()->private_data;
}

/* Frees h, an open file no longer listed. */
static void handle_free(struct afs_mount *m, struct handle *h)
{
	afs_stream_close(h->stream);
	afs_mount_put_view(m, h->view); /* may close an archive gone from its directory */
	pthread_mutex_destroy(&h->lock);
	free(h->text);
	free(h);
}

static void list_open(struct afs_openfiles *o, struct handle *h)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	h->next = o->head;
	if (o->head)
		o->head->prev = h;
	o->head = h;
	pthread_mutex_unlock(&o->mu);
}

static void unlist_open(struct afs_openfiles *o, struct handle *h)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		o->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&o->mu);
}

static uid_t caller(void)
{
	return fuse_get_context()->uid;
}

/* The hook of afs_backups_on_replaced(): the kernel may hold attributes
 * and pages of archive name[0..len)'s paths as the file it replaced had
 * them (for a day: CACHE_TIMEOUT, and keep_cache).  Drops them for every
 * path of the new file (and the archive's directory) that the kernel
 * knows, before the lookup that opened it answers, so that no read mixes
 * the two.  Paths only the old file had answer ENOENT when used. */
static void forget_replaced(void *ctx, const char *name, size_t len, struct afs_view *v)
{
	struct fuse *f = ctx;
	char *path = NULL;
	size_t cap = 0;

	for (uint32_t id = 0; id < afs_index_count(v->index); id++) {
		const char *sub = afs_index_path(v->index, id);
		size_t need = len + strlen(sub) + 3;

		if (need > cap) {
			char *grown = realloc(path, need);

			if (!grown)
				break;
			path = grown;
			cap = need;
		}
		snprintf(path, cap, "/%.*s%s%s", (int)len, name, *sub ? "/" : "", sub);
		fuse_invalidate_path(f, path); /* -ENOENT for a path the kernel does not know */
	}
	free(path);
}

static void *afs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct afs_mount *m = mount_of();

	cfg->entry_timeout = CACHE_TIMEOUT;
	cfg->attr_timeout = CACHE_TIMEOUT;
	/* a backups directory gains archives: a name not there may come */
	cfg->negative_timeout = mount_of()->backups ? 0 : CACHE_TIMEOUT;
	/* One read at a time per handle, in increasing offset order: inflating
	 * is sequential, so out-of-order readahead would force restarts. */
	conn->want &= ~FUSE_CAP_ASYNC_READ;
	m->open = calloc(1, sizeof(*m->open)); /* without it, files are simply not listed */
	if (m->open)
		pthread_mutex_init(&m->open->mu, NULL);
	if (m->backups)
		afs_backups_on_replaced(m->backups, forget_replaced, fuse_get_context()->fuse);
	return m;
}

/* The end of the session: frees the open files the kernel never released. */
static void afs_destroy(void *private_data)
{
	struct afs_mount *m = private_data;
	struct afs_openfiles *o = m->open;

	if (!o)
		return;
	while (o->head) {
		struct handle *h = o->head;

		o->head = h->next;
		handle_free(m, h);
	}
	pthread_mutex_destroy(&o->mu);
	free(o);
	m->open = NULL;
}

static int afs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct afs_place pl;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl);

	if (err == AFS_OK)
		err = afs_place_stat(mount_of(), &pl, st);
	afs_place_release(mount_of(), &pl);
	return -afs_errno(err);
}

static int afs_access(const char *path, int mask)
{
	struct afs_place pl;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl);

	if (err == AFS_OK)
		err = afs_place_access(mount_of(), &pl, mask, caller());
	afs_place_release(mount_of(), &pl);
	return -afs_errno(err);
}

/* afs_place_list() into FUSE's directory buffer. */
struct dir_fill {
	void *buf;
	fuse_fill_dir_t fill;
	enum fuse_fill_dir_flags plus;
};

static int dir_fill(void *ctx, const char *name, const struct stat *st)
{
	struct dir_fill *d = ctx;

	return d->fill(d->buf, name, st, 0, d->plus);
}

static int afs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	struct dir_fill d = { buf, fill, (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0 };
	struct afs_place pl;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_OPEN, &pl);

	if (err == AFS_OK)
		err = afs_place_list(mount_of(), &pl, dir_fill, &d);
	afs_place_release(mount_of(), &pl);
	return -afs_errno(err);
}

/* A handle for pl, whose opening afs_place_may_open() allowed: a stream of
 * a node, a reader of .log, or the content of another status file as of
 * now.  It takes over pl's view (pl->view is then NULL). */
static enum afs_err handle_new(struct afs_place *pl, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));
	enum afs_err err = AFS_OK;

	*out = NULL;
	if (!h)
		return AFS_E_NOMEM;
	h->vfile = pl->kind == AFS_PL_VFILE ? pl->vfile : AFS_VF_NONE;
	h->job = pl->view->job;
	if (pl->kind == AFS_PL_NODE)
		err = afs_stream_open_shared(pl->view->archive, pl->view->index, pl->node, pl->view->seek, &h->stream);
	else if (h->vfile == AFS_VF_LOG)
		afs_vfile_log_open(h->job, &h->log);
	else if (h->vfile != AFS_VF_CONTROL && !(h->text = afs_vfile_read(h->job, h->vfile, &h->len)))
		err = AFS_E_NOMEM;
	if (err != AFS_OK) {
		free(h);
		return err;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->view = pl->view;
	pl->view = NULL;
	*out = h;
	return AFS_OK;
}

static int afs_open(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = NULL;
	struct afs_place pl;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_OPEN, &pl);

	if (err == AFS_OK)
		err = afs_place_may_open(mount_of(), &pl, fi->flags, caller());
	if (err == AFS_OK)
		err = handle_new(&pl, &h);
	afs_place_release(mount_of(), &pl);
	if (err != AFS_OK)
		return -afs_errno(err);
	list_open(mount_of()->open, h);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = h->vfile != AFS_VF_NONE; /* every open sees the state afresh */
	fi->keep_cache = h->vfile == AFS_VF_NONE;
	return 0;
}

static int afs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	size_t got = 0;
	enum afs_err err;

	if (off < 0)
		return -EINVAL;
	if (h->vfile == AFS_VF_LOG) {
		pthread_mutex_lock(&h->lock);
		got = afs_vfile_log_read(h->job, &h->log, buf, size, (uint64_t)off);
		pthread_mutex_unlock(&h->lock);
		return (int)got;
	}
	if (h->vfile != AFS_VF_NONE) {
		if ((uint64_t)off >= h->len)
			return 0;
		if (size > h->len - (size_t)off)
			size = h->len - (size_t)off;
		memcpy(buf, h->text + off, size);
		return (int)size;
	}
	pthread_mutex_lock(&h->lock);
	err = afs_stream_pread(h->stream, buf, size, (uint64_t)off, &got);
	if (err != AFS_OK && !h->logged) { /* the library logs nothing: one line a handle */
		afs_log(AFS_LOG_ERR, "%s: %s", path + 1, afs_stream_error(h->stream, err));
		h->logged = err != AFS_E_NOMEM;
	}
	pthread_mutex_unlock(&h->lock);
	return err == AFS_OK ? (int)got : -afs_errno(err);
}

static int afs_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	unlist_open(mount_of()->open, h);
	handle_free(mount_of(), h);
	return 0;
}

static int afs_readlink(const char *path, char *buf, size_t size)
{
	struct afs_place pl;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl);

	if (err == AFS_OK)
		err = afs_place_readlink(mount_of(), &pl, buf, size);
	afs_place_release(mount_of(), &pl);
	return -afs_errno(err);
}

static int afs_statfs(const char *path, struct statvfs *sv)
{
	uint64_t files = 0, bytes = 0;
	struct afs_place pl;
	enum afs_err err;

	afs_resolve(mount_of(), path, AFS_RESOLVE_OPEN, &pl); /* a failure counts the whole directory */
	err = afs_place_totals(mount_of(), &pl, &files, &bytes);
	afs_place_release(mount_of(), &pl);
	if (err != AFS_OK)
		return -afs_errno(err);
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_blocks = (bytes + 4095) / 4096;
	sv->f_files = files;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY;
	return 0;
}

static int afs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct afs_place pl;
	size_t len = 0;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl);

	if (err == AFS_OK)
		err = afs_place_getxattr(&pl, name, value, size, &len);
	afs_place_release(mount_of(), &pl);
	return err == AFS_OK ? (int)len : -afs_errno(err);
}

static int afs_listxattr(const char *path, char *list, size_t size)
{
	struct afs_place pl;
	size_t len = 0;
	enum afs_err err = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl);

	if (err == AFS_OK)
		err = afs_place_listxattr(&pl, list, size, &len);
	afs_place_release(mount_of(), &pl);
	return err == AFS_OK ? (int)len : -afs_errno(err);
}

/* `echo restore > .control` truncates before it writes: a no-op there;
 * everything else is read-only, whatever the path. */
static int afs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct afs_place pl;
	bool control = afs_resolve(mount_of(), path, AFS_RESOLVE_LOOK, &pl) == AFS_OK && pl.kind == AFS_PL_VFILE &&
		       pl.vfile == AFS_VF_CONTROL;

	afs_place_release(mount_of(), &pl);
	if (!control)
		return -EROFS;
	return afs_mount_may_control(mount_of(), caller()) ? 0 : -EACCES;
}

/* One command per write to .control; anything else is read-only. */
static int afs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	enum afs_err err;

	if (!h || h->vfile != AFS_VF_CONTROL)
		return -EROFS;
	if (!afs_mount_may_control(mount_of(), caller()))
		return -EACCES;
	err = afs_vfile_control(h->job, buf, size);
	return err == AFS_OK ? (int)size : -afs_errno(err);
}

/* Every other modifying call: the archive never changes. */
static int rofs_path(const char *path) { return -EROFS; }
static int rofs_mode(const char *path, mode_t mode) { return -EROFS; }
static int rofs_two(const char *from, const char *to) { return -EROFS; }
static int rofs_rename(const char *from, const char *to, unsigned int flags) { return -EROFS; }
static int rofs_mknod(const char *path, mode_t mode, dev_t dev) { return -EROFS; }
static int rofs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) { return -EROFS; }
static int rofs_chown(const char *path, uid_t u, gid_t g, struct fuse_file_info *fi) { return -EROFS; }
static int rofs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) { return -EROFS; }
static int rofs_create(const char *path, mode_t mode, struct fuse_file_info *fi) { return -EROFS; }
static int rofs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	return -EROFS;
}
static int rofs_removexattr(const char *path, const char *name) { return -EROFS; }

const struct fuse_operations afs_fuse_ops = {
	.init = afs_init,
	.destroy = afs_destroy,
	.getattr = afs_getattr,
	.access = afs_access,
	.readdir = afs_readdir,
	.open = afs_open,
	.read = afs_read,
	.release = afs_release,
	.readlink = afs_readlink,
	.statfs = afs_statfs,
	.getxattr = afs_getxattr,
	.listxattr = afs_listxattr,
	.mknod = rofs_mknod,
	.mkdir = rofs_mode,
	.unlink = rofs_path,
	.rmdir = rofs_path,
	.symlink = rofs_two,
	.rename = rofs_rename,
	.link = rofs_two,
	.chmod = rofs_chmod,
	.chown = rofs_chown,
	.truncate = afs_truncate,
	.utimens = rofs_utimens,
	.create = rofs_create,
	.write = afs_write,
	.setxattr = rofs_setxattr,
	.removexattr = rofs_removexattr,
};
