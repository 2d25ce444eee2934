/* SPDX-License-Identifier: MIT */
/* Path -> place, and what a mount shows of each place: no FUSE here. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "archive.h"
#include "backups.h"
#include "index.h"
#include "resolve.h"
#include "seekidx.h"
#include "stream.h"
#include "view.h"

static const char xattr_names[] = "user.archfs.crc32\0user.archfs.compressed_size\0user.archfs.method";
/* and a deflated file's: what this mount inflated for it, its seek points */
static const char xattr_deflate_names[] = "user.archfs.inflated\0user.archfs.seek_points";

/* The place of sub ("/" or "/a/b") inside view v. */
static enum afs_err resolve_in(struct afs_view *v, const char *sub, struct afs_place *pl)
{
	pl->view = v;
	pl->vfile = afs_vfile_lookup(sub);
	if (pl->vfile != AFS_VF_NONE) {
		pl->kind = AFS_PL_VFILE;
		return AFS_OK;
	}
	pl->kind = AFS_PL_NODE;
	return afs_index_lookup(v->index, sub, &pl->node);
}

/* "/NAME" (how LOOK) or "/NAME..." of a backups directory, name[0..len). */
static enum afs_err find_archive(struct afs_backups *b, const char *name, size_t len, bool look,
				 struct afs_place *pl)
{
	return look ? afs_backups_stat(b, name, len, &pl->file) : afs_backups_view(b, name, len, &pl->view);
}

enum afs_err afs_resolve(const struct afs_mount *m, const char *path, enum afs_resolve_how how,
			 struct afs_place *pl)
{
	const char *name = path + 1;
	size_t len = strcspn(name, "/");
	bool look = !name[len] && how == AFS_RESOLVE_LOOK;
	enum afs_err err;

	memset(pl, 0, sizeof(*pl));
	if (!m->backups)
		return resolve_in(m->view, path, pl);
	if (len == 0) {
		pl->kind = AFS_PL_TOP;
		return AFS_OK;
	}
	if (!name[len] && strcmp(name, AFS_BACKUPS_LATEST) == 0) {
		pl->kind = AFS_PL_LATEST;
		return AFS_OK;
	}
	err = find_archive(m->backups, name, len, look, pl);
	if (err == AFS_E_NOENT) { /* an archive copied in since the last scan? */
		afs_backups_refresh(m->backups);
		err = find_archive(m->backups, name, len, look, pl);
	}
	if (err != AFS_OK || look) {
		pl->kind = AFS_PL_ARCHIVE;
		return err;
	}
	return resolve_in(pl->view, name[len] ? name + len : "/", pl);
}

void afs_mount_put_view(const struct afs_mount *m, struct afs_view *v)
{
	if (m->backups)
		afs_backups_put(m->backups, v);
}

void afs_place_release(const struct afs_mount *m, struct afs_place *pl)
{
	afs_mount_put_view(m, pl->view);
	pl->view = NULL;
}

/* What every place shares: owner, block size, one link, atime and ctime
 * equal to the mtime t. */
static void stat_init(const struct afs_mount *m, mode_t mode, struct timespec t, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_blksize = 4096;
	st->st_mtim = t;
	st->st_atim = t;
	st->st_ctim = t;
}

static void node_stat(const struct afs_mount *m, const struct afs_index *ix, uint32_t id, struct stat *st)
{
	const struct afs_node *n = afs_index_node(ix, id);

	stat_init(m, n->mode, (struct timespec){ .tv_sec = (time_t)n->mtime }, st);
	st->st_size = (off_t)n->size;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
}

/* A control or status file's mode: .status and .log (the target's paths,
 * the job's log) are the owner's only when other users may enter. */
static mode_t vfile_mode(const struct afs_mount *m, enum afs_vfile v)
{
	mode_t mode = afs_vfile_mode(v);

	return m->others && (v == AFS_VF_STATUS || v == AFS_VF_LOG) ? mode & ~(mode_t)044 : mode;
}

enum afs_err afs_place_stat(const struct afs_mount *m, const struct afs_place *pl, struct stat *st)
{
	struct timespec mounted = { .tv_sec = m->mounted_at };
	char name[NAME_MAX + 1];

	switch (pl->kind) {
	case AFS_PL_TOP:
		stat_init(m, S_IFDIR | 0755, mounted, st);
		return AFS_OK;
	case AFS_PL_LATEST:
		afs_backups_refresh(m->backups);
		if (afs_backups_latest(m->backups, name, sizeof(name)) != AFS_OK)
			return AFS_E_NOENT;
		stat_init(m, S_IFLNK | 0777, mounted, st);
		st->st_size = (off_t)strlen(name);
		return AFS_OK;
	case AFS_PL_ARCHIVE:
		stat_init(m, S_IFDIR | 0755, pl->file.st_mtim, st);
		return AFS_OK;
	case AFS_PL_VFILE:
		stat_init(m, vfile_mode(m, pl->vfile), mounted, st);
		return AFS_OK; /* size 0: they are read with direct_io */
	case AFS_PL_NODE:
		node_stat(m, pl->view->index, pl->node, st);
		return AFS_OK;
	}
	return AFS_E_INVAL;
}

enum afs_err afs_place_readlink(const struct afs_mount *m, const struct afs_place *pl, char *buf, size_t size)
{
	struct afs_stream *s;
	size_t got = 0;
	enum afs_err err;

	if (size == 0)
		return AFS_E_INVAL;
	if (pl->kind == AFS_PL_LATEST) {
		afs_backups_refresh(m->backups);
		return afs_backups_latest(m->backups, buf, size);
	}
	if (pl->kind != AFS_PL_NODE || !S_ISLNK(afs_index_node(pl->view->index, pl->node)->mode))
		return AFS_E_INVAL;
	err = afs_stream_open(pl->view->archive, pl->view->index, pl->node, &s);
	if (err != AFS_OK)
		return err;
	err = afs_stream_pread(s, buf, size - 1, 0, &got);
	afs_stream_close(s);
	if (err == AFS_OK)
		buf[got] = '\0';
	return err;
}

/* The top of a backups directory lists its archives, each a directory with
 * its file's mtime. */
struct top_list {
	const struct afs_mount *m;
	int (*fn)(void *ctx, const char *name, const struct stat *st);
	void *ctx;
	int full;
};

static int list_archive(void *ctx, const char *name, const struct stat *file)
{
	struct top_list *t = ctx;
	struct stat st;

	stat_init(t->m, S_IFDIR | 0755, file->st_mtim, &st);
	return t->full = t->fn(t->ctx, name, &st);
}

static enum afs_err list_top(const struct afs_mount *m, int (*fn)(void *ctx, const char *name, const struct stat *st),
			     void *ctx)
{
	struct top_list t = { .m = m, .fn = fn, .ctx = ctx };
	struct afs_place latest = { .kind = AFS_PL_LATEST };
	struct stat st;

	afs_backups_refresh(m->backups);
	stat_init(m, S_IFDIR | 0755, (struct timespec){ .tv_sec = m->mounted_at }, &st);
	if (fn(ctx, ".", &st) || fn(ctx, "..", &st))
		return AFS_E_NOMEM;
	if (afs_place_stat(m, &latest, &st) == AFS_OK && fn(ctx, AFS_BACKUPS_LATEST, &st))
		return AFS_E_NOMEM;
	afs_backups_each(m->backups, list_archive, &t);
	return t.full ? AFS_E_NOMEM : AFS_OK;
}

enum afs_err afs_place_list(const struct afs_mount *m, const struct afs_place *pl,
			    int (*fn)(void *ctx, const char *name, const struct stat *st), void *ctx)
{
	const struct afs_index *ix;
	uint32_t id = pl->node;
	struct stat st;

	if (pl->kind == AFS_PL_TOP)
		return list_top(m, fn, ctx);
	if (pl->kind != AFS_PL_NODE || !S_ISDIR(afs_index_node(pl->view->index, id)->mode))
		return AFS_E_NOTDIR;
	ix = pl->view->index;
	node_stat(m, ix, id, &st);
	if (fn(ctx, ".", &st))
		return AFS_E_NOMEM;
	node_stat(m, ix, afs_index_node(ix, id)->parent, &st);
	if (fn(ctx, "..", &st))
		return AFS_E_NOMEM;
	for (int v = AFS_VF_CONTROL; id == 0 && v < AFS_VF_COUNT; v++) {
		stat_init(m, vfile_mode(m, v), (struct timespec){ .tv_sec = m->mounted_at }, &st);
		if (fn(ctx, afs_vfile_name(v), &st))
			return AFS_E_NOMEM;
	}
	for (uint32_t c = afs_index_node(ix, id)->first_child; c != AFS_NONE; c = afs_index_node(ix, c)->next_sibling) {
		if (id == 0 && afs_vfile_named(afs_index_name(ix, c)) != AFS_VF_NONE)
			continue; /* shadowed by a control file */
		node_stat(m, ix, c, &st);
		if (fn(ctx, afs_index_name(ix, c), &st))
			return AFS_E_NOMEM;
	}
	return AFS_OK;
}

bool afs_mount_may_control(const struct afs_mount *m, uid_t uid)
{
	return uid == 0 || uid == m->uid;
}

enum afs_err afs_place_access(const struct afs_mount *m, const struct afs_place *pl, int mask, uid_t uid)
{
	if (pl->kind == AFS_PL_VFILE && pl->vfile == AFS_VF_CONTROL) {
		if ((mask & (R_OK | X_OK)) || ((mask & W_OK) && !afs_mount_may_control(m, uid)))
			return AFS_E_ACCES;
		return AFS_OK;
	}
	if (mask & W_OK)
		return AFS_E_ROFS;
	if (pl->kind == AFS_PL_VFILE && (mask & X_OK))
		return AFS_E_ACCES;
	return AFS_OK;
}

enum afs_err afs_place_may_open(const struct afs_mount *m, const struct afs_place *pl, int flags, uid_t uid)
{
	int acc = flags & O_ACCMODE;

	if (pl->kind != AFS_PL_VFILE && pl->kind != AFS_PL_NODE)
		return AFS_E_ISDIR;
	if (pl->kind == AFS_PL_VFILE && pl->vfile == AFS_VF_CONTROL)
		return acc == O_RDONLY || !afs_mount_may_control(m, uid) ? AFS_E_ACCES : AFS_OK;
	if (acc != O_RDONLY || (pl->kind == AFS_PL_NODE && (flags & O_TRUNC)))
		return AFS_E_ROFS;
	return AFS_OK;
}

/* The node's attributes: none for directories, control and status files. */
static const struct afs_node *xattr_node(const struct afs_place *pl)
{
	const struct afs_node *n;

	if (pl->kind != AFS_PL_NODE)
		return NULL;
	n = afs_index_node(pl->view->index, pl->node);
	return S_ISDIR(n->mode) ? NULL : n;
}

/* A deflated file's seek points known, or bytes inflated for it, by this
 * mount (0 before its first read). */
static uint64_t seek_stat(const struct afs_place *pl, bool points)
{
	struct afs_seekidx *x = afs_seekreg_peek(pl->view->seek, pl->node);

	if (!x)
		return 0;
	return points ? afs_seekidx_points(x) : afs_seekidx_inflated(x);
}

enum afs_err afs_place_getxattr(const struct afs_place *pl, const char *name, char *buf, size_t size,
				size_t *len)
{
	const struct afs_node *n = xattr_node(pl);
	char value[32];
	int got = -1;

	*len = 0;
	if (!n)
		return AFS_E_NODATA;
	if (strcmp(name, "user.archfs.crc32") == 0)
		got = snprintf(value, sizeof(value), "%08" PRIx32, n->crc);
	else if (strcmp(name, "user.archfs.compressed_size") == 0)
		got = snprintf(value, sizeof(value), "%" PRIu64, n->comp_size);
	else if (strcmp(name, "user.archfs.method") == 0 && afs_method_name(n->method))
		got = snprintf(value, sizeof(value), "%s", afs_method_name(n->method));
	else if (strcmp(name, "user.archfs.method") == 0)
		got = snprintf(value, sizeof(value), "%u", n->method);
	else if (n->method == AFS_METHOD_DEFLATE && strcmp(name, "user.archfs.inflated") == 0)
		got = snprintf(value, sizeof(value), "%" PRIu64, seek_stat(pl, false));
	else if (n->method == AFS_METHOD_DEFLATE && strcmp(name, "user.archfs.seek_points") == 0)
		got = snprintf(value, sizeof(value), "%" PRIu64, seek_stat(pl, true));
	if (got < 0)
		return AFS_E_NODATA;
	*len = (size_t)got;
	if (size == 0)
		return AFS_OK;
	if (*len > size)
		return AFS_E_RANGE;
	memcpy(buf, value, *len);
	return AFS_OK;
}

enum afs_err afs_place_listxattr(const struct afs_place *pl, char *buf, size_t size, size_t *len)
{
	const struct afs_node *n = xattr_node(pl);
	bool deflated = n && n->method == AFS_METHOD_DEFLATE;

	*len = n ? sizeof(xattr_names) + (deflated ? sizeof(xattr_deflate_names) : 0) : 0;
	if (size == 0 || *len == 0)
		return AFS_OK;
	if (size < *len)
		return AFS_E_RANGE;
	memcpy(buf, xattr_names, sizeof(xattr_names));
	if (deflated)
		memcpy(buf + sizeof(xattr_names), xattr_deflate_names, sizeof(xattr_deflate_names));
	return AFS_OK;
}

enum afs_err afs_place_totals(const struct afs_mount *m, const struct afs_place *pl, uint64_t *files,
			      uint64_t *bytes)
{
	if (pl->view) {
		*files = afs_index_count(pl->view->index);
		*bytes = afs_archive_file_size(pl->view->archive);
		return AFS_OK;
	}
	if (!m->backups)
		return AFS_E_NOENT;
	afs_backups_totals(m->backups, files, bytes);
	return AFS_OK;
}
