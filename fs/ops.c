/* SPDX-License-Identifier: MIT */
/* struct fuse_operations: path -> core -> -errno.  No archive logic here. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include "archive.h"
#include "backups.h"
#include "index.h"
#include "log.h"
#include "ops.h"
#include "stream.h"
#include "vfiles.h"
#include "view.h"

/* Archives never change, so the kernel may keep names and attributes long. */
#define CACHE_TIMEOUT 86400.0

/* One open file.  The kernel may send reads of one handle from several
 * threads; the lock keeps the stream's position consistent.  A control or
 * status file's handle holds its content as of the open instead. */
struct handle {
	pthread_mutex_t lock;
	struct afs_stream *stream;
	bool logged;         /* its sticky error has been logged */
	enum afs_vfile vfile;
	struct afs_job *job; /* .control: the job its commands go to */
	char *text;
	size_t len;
};

/* What a FUSE path names.  A single-archive mount has only PL_IN. */
struct place {
	enum { PL_TOP, PL_LATEST, PL_ARCHIVE, PL_IN } kind;
	struct afs_view *v; /* PL_IN: the archive */
	const char *sub;    /* PL_IN: the path inside it, "/..." */
	const char *name;   /* PL_ARCHIVE: the archive's name (len bytes) */
	size_t len;
};

static struct afs_mount *mount_of(void)
{
	return fuse_get_context()->private_data;
}

/* Resolves path.  In directory mode "/" is PL_TOP, "/latest" PL_LATEST,
 * and "/NAME..." leads into archive NAME, opened on first use; "/NAME"
 * itself is PL_ARCHIVE when open is false (its attributes come from the
 * archive file's stat, without opening it), else PL_IN at "/".  A name not
 * known yet makes the directory be scanned again. */
static int resolve(const char *path, bool open, struct place *pl)
{
	struct afs_mount *m = mount_of();
	const char *name = path + 1;
	size_t len = strcspn(name, "/");
	enum afs_err err;
	struct stat st;

	memset(pl, 0, sizeof(*pl));
	pl->kind = PL_IN;
	if (!m->backups) {
		pl->v = m->view;
		pl->sub = path;
		return 0;
	}
	pl->name = name;
	pl->len = len;
	if (len == 0) {
		pl->kind = PL_TOP;
		return 0;
	}
	if (!name[len] && strcmp(name, AFS_BACKUPS_LATEST) == 0) {
		pl->kind = PL_LATEST;
		return 0;
	}
	if (!name[len] && !open) {
		pl->kind = PL_ARCHIVE;
		err = afs_backups_stat(m->backups, name, len, &st);
	} else {
		err = afs_backups_view(m->backups, name, len, &pl->v);
		pl->sub = name[len] ? name + len : "/";
	}
	if (err == AFS_E_NOENT) {
		afs_backups_refresh(m->backups);
		err = pl->kind == PL_ARCHIVE ? afs_backups_stat(m->backups, name, len, &st)
					     : afs_backups_view(m->backups, name, len, &pl->v);
	}
	return err == AFS_OK ? 0 : -afs_errno(err);
}

static void fill_stat(const struct afs_mount *m, const struct afs_index *ix, uint32_t id, struct stat *st)
{
	const struct afs_node *n = afs_index_node(ix, id);

	memset(st, 0, sizeof(*st));
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_size = (off_t)n->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_mtim.tv_sec = n->mtime;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void *afs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->entry_timeout = CACHE_TIMEOUT;
	cfg->attr_timeout = CACHE_TIMEOUT;
	/* a backups directory gains archives: a name not there may come */
	cfg->negative_timeout = mount_of()->backups ? 0 : CACHE_TIMEOUT;
	/* One read at a time per handle, in increasing offset order: inflating
	 * is sequential, so out-of-order readahead would force restarts. */
	conn->want &= ~FUSE_CAP_ASYNC_READ;
	return mount_of();
}

/* The control and status files: size 0 (they are read with direct_io). */
static void fill_vstat(const struct afs_mount *m, enum afs_vfile v, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = afs_vfile_mode(v);
	st->st_nlink = 1;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_blksize = 4096;
	st->st_mtim.tv_sec = m->mounted_at;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* The top of a backups directory, an archive's directory in it (from the
 * archive file's stat) and the `latest` link. */
static int fill_dirmode_stat(const struct afs_mount *m, const struct place *pl, struct stat *st)
{
	struct stat file;
	char name[NAME_MAX + 1];

	memset(st, 0, sizeof(*st));
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_blksize = 4096;
	st->st_nlink = 2;
	st->st_mode = S_IFDIR | 0755;
	st->st_mtim.tv_sec = m->mounted_at;
	if (pl->kind == PL_ARCHIVE) {
		if (afs_backups_stat(m->backups, pl->name, pl->len, &file) != AFS_OK)
			return -ENOENT;
		st->st_mtim = file.st_mtim;
	} else if (pl->kind == PL_LATEST) {
		afs_backups_refresh(m->backups);
		if (afs_backups_latest(m->backups, name, sizeof(name)) != AFS_OK)
			return -ENOENT;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(name);
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	return 0;
}

/* The mounting user and root may write .control. */
static bool may_control(const struct afs_mount *m)
{
	uid_t uid = fuse_get_context()->uid;

	return uid == 0 || uid == m->uid;
}

static int afs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct afs_mount *m = mount_of();
	struct place pl;
	enum afs_vfile v;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, false, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind != PL_IN)
		return fill_dirmode_stat(m, &pl, st);
	v = afs_vfile_lookup(pl.sub);
	if (v != AFS_VF_NONE) {
		fill_vstat(m, v, st);
		return 0;
	}
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	fill_stat(m, pl.v->index, id, st);
	return 0;
}

static int afs_access(const char *path, int mask)
{
	struct place pl;
	enum afs_vfile v;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, false, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind != PL_IN)
		return (mask & W_OK) ? -EROFS : 0;
	v = afs_vfile_lookup(pl.sub);
	if (v == AFS_VF_CONTROL)
		return (mask & (R_OK | X_OK)) ? -EACCES : (mask & W_OK) && !may_control(mount_of()) ? -EACCES : 0;
	if (v != AFS_VF_NONE)
		return (mask & W_OK) ? -EROFS : (mask & X_OK) ? -EACCES : 0;
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	return (mask & W_OK) ? -EROFS : 0;
}

/* What the top of a backups directory lists: its archives and `latest`. */
struct top_fill {
	const struct afs_mount *m;
	void *buf;
	fuse_fill_dir_t fill;
	enum fuse_fill_dir_flags plus;
};

static int fill_archive(void *ctx, const char *name, const struct stat *file)
{
	struct top_fill *t = ctx;
	struct place pl = { .kind = PL_TOP };
	struct stat st;

	fill_dirmode_stat(t->m, &pl, &st);
	st.st_mtim = st.st_atim = st.st_ctim = file->st_mtim;
	return t->fill(t->buf, name, &st, 0, t->plus);
}

static int readdir_top(struct afs_mount *m, void *buf, fuse_fill_dir_t fill, enum fuse_fill_dir_flags plus)
{
	struct top_fill t = { .m = m, .buf = buf, .fill = fill, .plus = plus };
	struct place top = { .kind = PL_TOP }, latest = { .kind = PL_LATEST };
	struct stat st;

	afs_backups_refresh(m->backups);
	fill_dirmode_stat(m, &top, &st);
	fill(buf, ".", &st, 0, plus);
	fill(buf, "..", &st, 0, plus);
	if (fill_dirmode_stat(m, &latest, &st) == 0)
		fill(buf, AFS_BACKUPS_LATEST, &st, 0, plus);
	afs_backups_each(m->backups, fill_archive, &t);
	return 0;
}

static int afs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	struct afs_mount *m = mount_of();
	enum fuse_fill_dir_flags plus = (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0;
	const struct afs_index *ix;
	struct place pl;
	struct stat st;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, true, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind == PL_TOP)
		return readdir_top(m, buf, fill, plus);
	if (pl.kind != PL_IN)
		return -ENOTDIR;
	ix = pl.v->index;
	err = afs_index_lookup(ix, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	if (!S_ISDIR(afs_index_node(ix, id)->mode))
		return -ENOTDIR;
	fill_stat(m, ix, id, &st);
	fill(buf, ".", &st, 0, plus);
	fill_stat(m, ix, afs_index_node(ix, id)->parent, &st);
	fill(buf, "..", &st, 0, plus);
	for (int v = AFS_VF_CONTROL; id == 0 && v < AFS_VF_COUNT; v++) {
		fill_vstat(m, v, &st);
		fill(buf, afs_vfile_name(v), &st, 0, plus);
	}
	for (uint32_t c = afs_index_node(ix, id)->first_child; c != AFS_NONE; c = afs_index_node(ix, c)->next_sibling) {
		if (id == 0 && afs_vfile_named(afs_index_name(ix, c)) != AFS_VF_NONE)
			continue; /* shadowed by a control file */
		fill_stat(m, ix, c, &st);
		if (fill(buf, afs_index_name(ix, c), &st, 0, plus))
			return -ENOMEM;
	}
	return 0;
}

/* Opens a control or status file: .control for writing by the mounting
 * user or root, the others for reading, their content fixed at open. */
static int open_vfile(struct afs_mount *m, struct afs_job *job, enum afs_vfile v, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct handle *h;

	if (v == AFS_VF_CONTROL && (acc == O_RDONLY || !may_control(m)))
		return -EACCES;
	if (v != AFS_VF_CONTROL && acc != O_RDONLY)
		return -EROFS;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->vfile = v;
	h->job = job;
	if (v != AFS_VF_CONTROL && !(h->text = afs_vfile_read(job, v, &h->len))) {
		free(h);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	return 0;
}

static int afs_open(const char *path, struct fuse_file_info *fi)
{
	struct afs_mount *m = mount_of();
	struct handle *h;
	struct place pl;
	enum afs_vfile v;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, true, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind != PL_IN)
		return -EISDIR;
	v = afs_vfile_lookup(pl.sub);
	if (v != AFS_VF_NONE)
		return open_vfile(m, pl.v->job, v, fi);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	err = afs_stream_open_shared(pl.v->archive, pl.v->index, id, pl.v->seek, &h->stream);
	if (err != AFS_OK) {
		free(h);
		return -afs_errno(err);
	}
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;
	return 0;
}

static int afs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	size_t got = 0;
	enum afs_err err;

	if (off < 0)
		return -EINVAL;
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

	afs_stream_close(h->stream);
	pthread_mutex_destroy(&h->lock);
	free(h->text);
	free(h);
	return 0;
}

static int afs_readlink(const char *path, char *buf, size_t size)
{
	struct afs_mount *m = mount_of();
	struct afs_stream *s;
	struct place pl;
	size_t got = 0;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, false, &pl);

	if (rc != 0)
		return rc;
	if (size == 0 || pl.kind == PL_TOP || pl.kind == PL_ARCHIVE)
		return -EINVAL;
	if (pl.kind == PL_LATEST) {
		afs_backups_refresh(m->backups);
		err = afs_backups_latest(m->backups, buf, size);
		return err == AFS_OK ? 0 : -afs_errno(err);
	}
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	if (!S_ISLNK(afs_index_node(pl.v->index, id)->mode))
		return -EINVAL;
	err = afs_stream_open(pl.v->archive, pl.v->index, id, &s);
	if (err == AFS_OK) {
		err = afs_stream_pread(s, buf, size - 1, 0, &got);
		afs_stream_close(s);
	}
	if (err != AFS_OK)
		return -afs_errno(err);
	buf[got] = '\0';
	return 0;
}

static int afs_statfs(const char *path, struct statvfs *sv)
{
	struct afs_mount *m = mount_of();
	uint64_t files, bytes;
	struct place pl;

	if (resolve(path, true, &pl) == 0 && pl.kind == PL_IN) {
		bytes = afs_archive_file_size(pl.v->archive);
		files = afs_index_count(pl.v->index);
	} else if (m->backups) {
		afs_backups_totals(m->backups, &files, &bytes); /* the top, or an archive that cannot be opened */
	} else {
		return -ENOENT;
	}
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_blocks = (bytes + 4095) / 4096;
	sv->f_files = files;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY;
	return 0;
}

/* The value of xattr name of node n into buf; its length, or -1 if none. */
static int xattr_value(const struct afs_node *n, const char *name, char *buf, size_t len)
{
	if (S_ISDIR(n->mode))
		return -1;
	if (strcmp(name, "user.archfs.crc32") == 0)
		return snprintf(buf, len, "%08" PRIx32, n->crc);
	if (strcmp(name, "user.archfs.compressed_size") == 0)
		return snprintf(buf, len, "%" PRIu64, n->comp_size);
	if (strcmp(name, "user.archfs.method") == 0)
		return snprintf(buf, len, "%s", n->method == AFS_METHOD_STORE ? "store" : "deflate");
	return -1;
}

static int afs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct place pl;
	char buf[32];
	uint32_t id;
	enum afs_err err;
	int len, rc = resolve(path, false, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind != PL_IN || afs_vfile_lookup(pl.sub) != AFS_VF_NONE)
		return -ENODATA;
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	len = xattr_value(afs_index_node(pl.v->index, id), name, buf, sizeof(buf));
	if (len < 0)
		return -ENODATA;
	if (size == 0)
		return len;
	if ((size_t)len > size)
		return -ERANGE;
	memcpy(value, buf, (size_t)len);
	return len;
}

static int afs_listxattr(const char *path, char *list, size_t size)
{
	static const char names[] = "user.archfs.crc32\0user.archfs.compressed_size\0user.archfs.method";
	struct place pl;
	uint32_t id;
	enum afs_err err;
	int rc = resolve(path, false, &pl);

	if (rc != 0)
		return rc;
	if (pl.kind != PL_IN || afs_vfile_lookup(pl.sub) != AFS_VF_NONE)
		return 0;
	err = afs_index_lookup(pl.v->index, pl.sub, &id);
	if (err != AFS_OK)
		return -afs_errno(err);
	if (S_ISDIR(afs_index_node(pl.v->index, id)->mode))
		return 0;
	if (size == 0)
		return sizeof(names);
	if (size < sizeof(names))
		return -ERANGE;
	memcpy(list, names, sizeof(names));
	return sizeof(names);
}

/* Every modifying call: the archive never changes. */
static int rofs_path(const char *path) { return -EROFS; }
static int rofs_mode(const char *path, mode_t mode) { return -EROFS; }
static int rofs_two(const char *from, const char *to) { return -EROFS; }
static int rofs_rename(const char *from, const char *to, unsigned int flags) { return -EROFS; }
static int rofs_mknod(const char *path, mode_t mode, dev_t dev) { return -EROFS; }
static int rofs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) { return -EROFS; }
static int rofs_chown(const char *path, uid_t u, gid_t g, struct fuse_file_info *fi) { return -EROFS; }
/* `echo restore > .control` truncates before it writes: a no-op there. */
static int afs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct place pl;

	if (resolve(path, false, &pl) != 0 || pl.kind != PL_IN || afs_vfile_lookup(pl.sub) != AFS_VF_CONTROL)
		return -EROFS;
	return may_control(mount_of()) ? 0 : -EACCES;
}
static int rofs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) { return -EROFS; }
static int rofs_create(const char *path, mode_t mode, struct fuse_file_info *fi) { return -EROFS; }
/* One command per write to .control; anything else is read-only. */
static int afs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct afs_mount *m = mount_of();
	enum afs_err err;

	if (!h || h->vfile != AFS_VF_CONTROL)
		return -EROFS;
	if (!may_control(m))
		return -EACCES;
	err = afs_vfile_control(h->job, buf, size);
	return err == AFS_OK ? (int)size : -afs_errno(err);
}
static int rofs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	return -EROFS;
}
static int rofs_removexattr(const char *path, const char *name) { return -EROFS; }

const struct fuse_operations afs_fuse_ops = {
	.init = afs_init,
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
