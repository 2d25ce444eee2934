/* SPDX-License-Identifier: MIT */
/* Path -> place: what a path of a mount names, its attributes, its link
 * target, its listing and what may be done with it, without FUSE.  The
 * FUSE callbacks (ops.c) resolve, call these and map the error with
 * afs_errno(); the unit tests call them without mounting.
 *
 * Paths are as FUSE gives them: "/" or "/a/b", no trailing slash.  A
 * single-archive mount shows its archive at "/"; a backups directory shows
 * "/" (the top), "/latest" and "/NAME/..." inside archive NAME (backups.h).
 *
 * Thread safety: every function may be called from any thread; the mount
 * is read-only and the backups directory and views lock themselves.
 */
#ifndef AFS_RESOLVE_H
#define AFS_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "err.h"
#include "mount.h"
#include "vfiles.h"

enum afs_place_kind {
	AFS_PL_TOP,     /* the top of a backups directory */
	AFS_PL_LATEST,  /* its `latest` link (which may name nothing yet) */
	AFS_PL_ARCHIVE, /* an archive's directory, not opened: attributes from its file */
	AFS_PL_VFILE,   /* a control or status file of a view */
	AFS_PL_NODE,    /* a file, directory or symlink of a view's index */
};

/* A resolved path.  In directory mode it holds a reference to its view
 * (backups.h), so the view stays valid, even when its archive leaves the
 * directory, until afs_place_release(). */
struct afs_place {
	enum afs_place_kind kind;
	struct afs_view *view; /* VFILE and NODE; after an error, the archive the path led into, if any */
	enum afs_vfile vfile;  /* VFILE: which one */
	uint32_t node;         /* NODE: its id in view->index */
	struct stat file;      /* ARCHIVE: the stat of the archive's file */
};

enum afs_resolve_how {
	AFS_RESOLVE_LOOK, /* "/NAME" is AFS_PL_ARCHIVE: its attributes do not open the archive */
	AFS_RESOLVE_OPEN, /* "/NAME" is the root of archive NAME, opened now if not yet */
};

/* Resolves path in m.  In directory mode a name not known yet makes the
 * backups directory be scanned again, and "/NAME/..." opens archive NAME
 * on first use.  Errors: AFS_E_NOENT (no such name), AFS_E_NOTDIR (a
 * component under a file), or the error of an archive that cannot be
 * opened (afs_backups_view()).  pl is always written: on error its kind is
 * meaningless and pl->view is the archive the path led into, or NULL.
 * Every call is followed by one afs_place_release(m, pl), whatever it
 * returned. */
enum afs_err afs_resolve(const struct afs_mount *m, const char *path, enum afs_resolve_how how,
			 struct afs_place *pl);

/* Gives back the view pl holds (directory mode) and clears pl->view. */
void afs_place_release(const struct afs_mount *m, struct afs_place *pl);

/* Gives back a view taken from a place (an open file keeps its place's
 * view until it is released); NULL is a no-op. */
void afs_mount_put_view(const struct afs_mount *m, struct afs_view *v);

/* Fills *st for pl: the owner is the mounting user; the top, archive
 * directories 0755 (mtime of the mount, of the archive file), `latest` a
 * symlink 0777 sized as its target (AFS_E_NOENT while there is no
 * archive), control and status files their mode with size 0 and the
 * mount's mtime, index nodes their mode, size and mtime from the archive.
 * Directories have 2 links, everything else 1. */
enum afs_err afs_place_stat(const struct afs_mount *m, const struct afs_place *pl, struct stat *st);

/* Readlink of pl: the NUL-terminated target into buf (cut to size - 1
 * bytes).  AFS_E_INVAL when size is 0 or pl is not a symlink; `latest`
 * names the newest archive (AFS_E_NOENT when none); a symlink node's
 * target is its entry's content (a read error of it otherwise). */
enum afs_err afs_place_readlink(const struct afs_mount *m, const struct afs_place *pl, char *buf, size_t size);

/* Calls fn for every entry of directory pl with its name and attributes:
 * ".", "..", then the top's `latest` (while there is an archive) and its
 * archives in name order, or an archive directory's control and status
 * files (at its root) and children (entries a control file shadows left
 * out).  fn returns nonzero when it has no room: the listing stops with
 * AFS_E_NOMEM.  AFS_E_NOTDIR for anything else but a directory.  fn runs
 * holding the backups directory's lock for the top: it must not call into
 * the mount. */
enum afs_err afs_place_list(const struct afs_mount *m, const struct afs_place *pl,
			    int (*fn)(void *ctx, const char *name, const struct stat *st), void *ctx);

/* Whether uid may write .control: the mounting user and root. */
bool afs_mount_may_control(const struct afs_mount *m, uid_t uid);

/* access(2) of pl for mask (R_OK, W_OK, X_OK) by uid: AFS_E_ROFS for a
 * write but to .control, AFS_E_ACCES to read or execute .control, to
 * write it but as its owner or root, or to execute a status file. */
enum afs_err afs_place_access(const struct afs_mount *m, const struct afs_place *pl, int mask, uid_t uid);

/* Whether uid may open pl with open(2) flags: AFS_E_ISDIR for the top,
 * `latest` and archive directories; .control only for writing, by its
 * owner or root (else AFS_E_ACCES); the others only for reading without
 * O_TRUNC (AFS_E_ROFS; O_TRUNC is allowed on status files, a no-op). */
enum afs_err afs_place_may_open(const struct afs_mount *m, const struct afs_place *pl, int flags, uid_t uid);

/* Extended attribute name of pl into buf (size 0: only its length) and its
 * length into *len: user.archfs.crc32, .compressed_size and .method (the
 * method's name, afs_method_name(), or its number) of non-directory index
 * nodes.  AFS_E_NODATA for anything else,
 * AFS_E_RANGE when size is too small. */
enum afs_err afs_place_getxattr(const struct afs_place *pl, const char *name, char *buf, size_t size,
				size_t *len);

/* The names of pl's extended attributes, NUL-separated, into buf (size 0:
 * only the length) and their length into *len, 0 when it has none.
 * AFS_E_RANGE when size is too small. */
enum afs_err afs_place_listxattr(const struct afs_place *pl, char *buf, size_t size, size_t *len);

/* The size of what statfs reports for pl, resolved with AFS_RESOLVE_OPEN
 * (successfully or not): the nodes and file size of the archive its path
 * led into (even to a name missing there), else the count and total size
 * of the archives of the backups directory (the top, `latest`, an archive
 * that cannot be opened).  AFS_E_NOENT when there is neither. */
enum afs_err afs_place_totals(const struct afs_mount *m, const struct afs_place *pl, uint64_t *files,
			      uint64_t *bytes);

#endif
