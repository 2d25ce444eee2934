/* SPDX-License-Identifier: MIT */
/* struct fuse_lowlevel_ops: an inode's path (inodes.h), resolve it, call the
 * core, map the error. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include "backups.h"
#include "index.h"
#include "inodes.h"
#include "job.h"
#include "log.h"
#include "readers.h"
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
	struct afs_stream *stream;
	bool logged;         /* its sticky error has been logged */
	enum afs_vfile vfile;
	struct afs_job *job; /* .control: the job its commands go to */
	struct afs_vlog log; /* .log */
	char *text;          /* the other status files */
	size_t len;
	char *path;          /* for its log line */
	struct afs_place pl; /* what it opened; its view is held until the release */
};

/* Every open file, so that those the kernel never released are freed at
 * the end: an unmount drops the releases still queued. */
struct afs_openfiles {
	pthread_mutex_t mu;
	struct handle *head;
};

/* The session's state, its user data. */
struct afs_ll {
	struct afs_mount *m;
	struct afs_inodes *inodes;
	struct fuse_session *se;
	struct afs_openfiles open;
	bool push; /* small files' content goes to the kernel at their open */
	/* No-open mode (a single archive, a kernel that supports it): the
	 * kernel opens files itself and reads with no handle, through
	 * readers.  A status file's name is looked up afresh at every open
	 * and names an inode for its content as of then (struct vver): the
	 * inode's content never changes, so whoever opened it reads one
	 * version to its end, as a renamed-over file on a disk. */
	bool no_open;
	_Atomic int64_t files_until; /* listings give files' attributes until then (ms, CLOCK_MONOTONIC) */
	atomic_uchar *logged; /* no-open mode: the nodes whose read error was logged, one byte each */
	struct afs_readers *readers;
	pthread_mutex_t vmu;
	struct vlatest {
		uint64_t gen;          /* the latest version's number */
		char *text;            /* its content (text files) */
		size_t len;
		uint64_t log_end;      /* .log: the end of the job's log then */
		bool made;             /* a version exists */
		struct timespec mtime; /* when it appeared */
	} vlatest[AFS_VF_COUNT];
	/* No-open mode: the pusher thread stores small files ahead of a
	 * reader in the kernel's cache (push_ahead()). */
	pthread_t pusher;
	bool pusher_running, pusher_stop;
	pthread_mutex_t pmu;
	pthread_cond_t pcv;
	uint32_t push_from; /* the node whose following siblings to push; AFS_NONE: none */
	/* No-opendir mode (with no-open): the kernel opens directories
	 * itself and keeps their listings, which then refresh no attributes.
	 * Two kinds of listing must go (enum dstate, one byte a node):
	 *   - one made while files were not wanted (files_wanted()): it has
	 *     no files' attributes, and a reader of files would look each one
	 *     up;
	 *   - one whose files were read by request: the kernel takes their
	 *     access times for stale after such a read, and would ask for
	 *     the attributes of each at its next stat.
	 * The pusher drops them from the kernel's cache (drop_listings()).
	 * The last listing made stays for the next part of the same
	 * directory (lmu). */
	bool no_opendir;
	atomic_uchar *dstate;
	/* Under pmu: listings for the pusher to drop, those of the
	 * directories queued, or all there are to drop (a scan of dstate). */
	uint32_t *dropq;
	size_t ndrop, capdrop;
	bool drop_scan;
	pthread_mutex_t lmu;
	fuse_ino_t last_ino;
	struct dirh *last;
	/* Directories opened through OPENDIR (under open.mu), freed at the
	 * end like open files: an unmount drops the releases still queued. */
	struct dirh *dirs;
};

/* What the kernel keeps of a directory's listing, as far as archfs knows
 * (struct afs_ll, no-opendir mode). */
enum dstate {
	DS_NONE,   /* nothing, or a listing archfs has no reason to drop */
	DS_LISTED, /* a listing with files' attributes */
	DS_BARE,   /* a listing without them: to drop when files are wanted */
	DS_DROP,   /* a listing to drop now */
};

static void *pusher_main(void *arg);

/* What one push ahead stores at most: files, and bytes. */
#define PUSH_AHEAD_FILES 256
#define PUSH_AHEAD_BYTES (4u << 20)

/* How long after a file was looked up or read listings keep giving files'
 * attributes (readdirplus), in ms: see files_wanted(). */
#define FILE_ATTRS_MS 2000

/* Streams kept for reads without a handle. */
#define READERS_MAX 32

/* Files up to this size are read whole when opened and their content
 * handed to the kernel's page cache with the open's answer: a copy of many
 * small files then waits for one request per file, not two. */
#define PUSH_MAX (128u << 10)

static struct afs_ll *ll_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Frees h, an open file no longer listed. */
static void handle_free(struct afs_mount *m, struct handle *h)
{
	afs_stream_close(h->stream);
	afs_mount_put_view(m, h->pl.view); /* may close an archive gone from its directory */
	pthread_mutex_destroy(&h->lock);
	free(h->text);
	free(h->path);
	free(h);
}

static void list_open(struct afs_openfiles *o, struct handle *h)
{
	pthread_mutex_lock(&o->mu);
	h->next = o->head;
	if (o->head)
		o->head->prev = h;
	o->head = h;
	pthread_mutex_unlock(&o->mu);
}

static void unlist_open(struct afs_openfiles *o, struct handle *h)
{
	pthread_mutex_lock(&o->mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		o->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&o->mu);
}


/* One version of a status file in no-open mode: the data of its inode. */
struct vver {
	enum afs_vfile vf;
	struct afs_job *job;
	char *text; /* text files: the content */
	size_t len;
	struct afs_vlog log; /* .log: the job's log span at the lookup */
	struct timespec mtime;
};

static void vver_free(void *data)
{
	struct vver *v = data;

	free(v->text);
	free(v);
}

/* No-open mode: the entry of status file pl (not .control): an inode for
 * its content now, the latest version's when that did not change, with
 * attributes that never change (size, and as mtime when the content
 * appeared); the name is not cached, so the next open looks it up again. */
static enum afs_err vfile_entry(struct afs_ll *ll, const char *path, const struct afs_place *pl,
				struct fuse_entry_param *e)
{
	struct vlatest *L = &ll->vlatest[pl->vfile];
	struct vver *v = calloc(1, sizeof(*v));
	char key[64];
	size_t plen = strlen(path);
	int fresh = 0;
	bool changed;

	if (!v || plen + 1 + sizeof(uint64_t) > sizeof(key)) {
		free(v);
		return AFS_E_NOMEM;
	}
	v->vf = pl->vfile;
	v->job = pl->view->job;
	if (v->vf == AFS_VF_LOG) {
		afs_vfile_log_open(v->job, &v->log);
		v->len = (size_t)(v->log.end - v->log.start);
	} else if (!(v->text = afs_vfile_read(v->job, v->vf, &v->len))) {
		free(v);
		return AFS_E_NOMEM;
	}
	pthread_mutex_lock(&ll->vmu);
	if (v->vf == AFS_VF_LOG)
		changed = !L->made || L->log_end != v->log.end;
	else
		changed = !L->made || L->len != v->len || memcmp(L->text, v->text, v->len) != 0;
	if (changed) {
		char *copy = v->text ? malloc(v->len + 1) : NULL;
		struct timespec now;

		if (v->text && !copy) {
			pthread_mutex_unlock(&ll->vmu);
			vver_free(v);
			return AFS_E_NOMEM;
		}
		if (copy)
			memcpy(copy, v->text, v->len + 1);
		free(L->text);
		L->text = copy;
		L->len = v->len;
		L->log_end = v->log.end;
		L->made = true;
		L->gen++;
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec < L->mtime.tv_sec || (now.tv_sec == L->mtime.tv_sec && now.tv_nsec <= L->mtime.tv_nsec)) {
			now = L->mtime; /* another content, another mtime */
			if (++now.tv_nsec == 1000000000) {
				now.tv_sec++;
				now.tv_nsec = 0;
			}
		}
		L->mtime = now;
	}
	v->mtime = L->mtime;
	memcpy(key, path, plen + 1); /* the path, its NUL, the version: another inode per version */
	memcpy(key + plen + 1, &L->gen, sizeof(L->gen));
	pthread_mutex_unlock(&ll->vmu);
	e->attr.st_size = (off_t)v->len;
	e->attr.st_mtim = v->mtime;
	e->attr.st_ctim = v->mtime;
	e->ino = afs_inodes_ref_data(ll->inodes, key, plen + 1 + sizeof(uint64_t), v, &fresh);
	if (!fresh) {
		struct vver *had = afs_inodes_data(ll->inodes, e->ino);

		if (had) { /* the version's own attributes (a log span may differ in its start) */
			e->attr.st_size = (off_t)had->len;
			e->attr.st_mtim = had->mtime;
			e->attr.st_ctim = had->mtime;
		}
		vver_free(v);
	}
	e->attr.st_ino = e->ino;
	e->attr_timeout = CACHE_TIMEOUT; /* the version never changes */
	e->entry_timeout = 0;            /* the name does */
	return e->ino ? AFS_OK : AFS_E_NOMEM;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Listings carry attributes, but a file's entry with attributes costs the
 * kernel an inode (find over 200,000 entries: a second of system time, five
 * times the walk without); a reader of files (cp -r, ls -l, du, tar) looks
 * them up or reads them, a walk (find, ls -R) does not.  So listings give
 * files' attributes while files are being looked up or read, and
 * directories' always: cp -r looks up the files of its first directory
 * and gets the rest from listings; find gets cheap ones. */
static void want_drop(struct afs_ll *ll, uint32_t dir);

static void files_wanted(struct afs_ll *ll)
{
	int64_t now = now_ms();

	if (atomic_exchange(&ll->files_until, now + FILE_ATTRS_MS) <= now && ll->dstate)
		want_drop(ll, AFS_NONE); /* from now on listings give files' attributes: drop those that did not */
}

/* No-opendir mode: the kernel keeps dir's listing (see struct afs_ll),
 * made with files' attributes or not (bare). */
static void dir_listed(struct afs_ll *ll, uint32_t dir, bool bare)
{
	if (!ll->dstate)
		return;
	atomic_store(&ll->dstate[dir], bare ? DS_BARE : DS_LISTED);
	if (bare && now_ms() < ll->files_until) { /* files became wanted while it was made */
		atomic_store(&ll->dstate[dir], DS_DROP);
		want_drop(ll, dir);
	}
}

/* No-opendir mode: a file of dir was read by request. */
static void dir_file_read(struct afs_ll *ll, uint32_t dir)
{
	unsigned char s;

	if (!ll->dstate || (s = atomic_load(&ll->dstate[dir])) == DS_NONE || s == DS_DROP)
		return;
	if (atomic_compare_exchange_strong(&ll->dstate[dir], &s, DS_DROP))
		want_drop(ll, dir);
}

static uid_t caller(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid;
}

/* The path of ino (with name: of its child name), or NULL after replying
 * the error. */
static char *path_of(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char *p = afs_inodes_path(ll_of(req)->inodes, ino, name);

	if (!p)
		fuse_reply_err(req, name && (!*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
					     strcmp(name, "..") == 0) ? ENOENT : ENOMEM);
	return p;
}

/* The hook of afs_backups_on_replaced(): the kernel may hold attributes
 * and pages of archive name[0..len)'s paths as the file it replaced had
 * them (for a day: CACHE_TIMEOUT, and keep_cache).  Drops them for every
 * path under the archive's directory that the kernel knows, before the
 * lookup that opened it answers, so that no read mixes the two.  Paths
 * only the old file had answer ENOENT when used. */
static void forget_replaced(void *ctx, const char *name, size_t len, struct afs_view *v)
{
	struct afs_ll *ll = ctx;
	char *dir = malloc(len + 2);
	uint64_t *inos = NULL;
	size_t n = 0, max = 64;

	(void)v;
	if (!dir)
		return;
	dir[0] = '/';
	memcpy(dir + 1, name, len);
	dir[len + 1] = '\0';
	for (;; max = n) { /* the numbers first, the notices outside the table's lock */
		uint64_t *grown = realloc(inos, max * sizeof(*inos));

		if (!grown)
			break;
		inos = grown;
		n = afs_inodes_under(ll->inodes, dir, len + 1, inos, max);
		if (n <= max)
			break;
	}
	for (size_t i = 0; inos && i < n && i < max; i++)
		fuse_lowlevel_notify_inval_inode(ll->se, inos[i], 0, 0); /* -ENOENT: the kernel dropped it */
	free(inos);
	free(dir);
}

static void afs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct afs_ll *ll = userdata;

	/* One read at a time per handle, in increasing offset order: inflating
	 * is sequential, so out-of-order readahead would force restarts. */
	conn->want &= ~FUSE_CAP_ASYNC_READ;
	/* Listings carry every entry's attributes, always: a tree walk or
	 * cp -r then needs no lookup per file. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* A single archive never changes: the kernel may open its files
	 * itself (no OPEN, RELEASE, nor a handle to keep) and keep their pages
	 * across opens.  Directory mode keeps opens: an open file of an
	 * archive that leaves the directory reads on through its handle. */
	ll->no_open = !ll->m->backups && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	if (ll->no_open)
		ll->logged = calloc(afs_index_count(ll->m->view->index), 1); /* NULL: a line a failed read */
	/* Nothing here changes under the kernel but through the notices archfs
	 * sends (a replaced archive; a status file's versions are inodes of
	 * their own): no attribute check on every read. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* O_TRUNC as a SETATTR (refused but on .control), not as an open flag
	 * that no-open mode would never see. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	if (ll->no_open) /* its own thread: never in the way of the loop's */
		ll->pusher_running = pthread_create(&ll->pusher, NULL, pusher_main, ll) == 0;
	/* And the kernel may open its directories itself and keep their
	 * listings: a walk then costs a directory the requests of its listing
	 * alone, and a second walk none.  The pusher drops the listings that
	 * must go (struct afs_ll). */
	ll->no_opendir = ll->pusher_running && (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
			 (ll->dstate = calloc(afs_index_count(ll->m->view->index), 1));
	if (ll->m->backups)
		afs_backups_on_replaced(ll->m->backups, forget_replaced, ll);
}

static void dirs_free_all(struct afs_ll *ll);

/* The end of the session: frees the open files and directories the kernel
 * never released. */
static void afs_destroy(void *userdata)
{
	struct afs_ll *ll = userdata;

	if (ll->pusher_running) {
		pthread_mutex_lock(&ll->pmu);
		ll->pusher_stop = true;
		pthread_cond_signal(&ll->pcv);
		pthread_mutex_unlock(&ll->pmu);
		pthread_join(ll->pusher, NULL);
		ll->pusher_running = false;
	}

	while (ll->open.head) {
		struct handle *h = ll->open.head;

		ll->open.head = h->next;
		handle_free(ll->m, h);
	}
	dirs_free_all(ll);
}

/* Attributes of path into e, its number counted; AFS_E_NOMEM when no
 * number could be made. */
static enum afs_err entry_of(struct afs_ll *ll, const char *path, struct fuse_entry_param *e)
{
	struct afs_place pl;
	enum afs_err err = afs_resolve(ll->m, path, AFS_RESOLVE_LOOK, &pl);

	memset(e, 0, sizeof(*e));
	if (err == AFS_OK)
		err = afs_place_stat(ll->m, &pl, &e->attr);
	if (err == AFS_OK && ll->no_open && pl.kind == AFS_PL_VFILE && pl.vfile != AFS_VF_CONTROL) {
		err = vfile_entry(ll, path, &pl, e);
		afs_place_release(ll->m, &pl);
		return err;
	}
	/* .control in no-open mode: one byte, so that a read reaches archfs
	 * and fails EACCES as an open for reading does, not an empty file */
	if (err == AFS_OK && ll->no_open && pl.kind == AFS_PL_VFILE)
		e->attr.st_size = 1;
	afs_place_release(ll->m, &pl);
	if (err == AFS_OK && !(e->ino = afs_inodes_ref(ll->inodes, path, strlen(path))))
		err = AFS_E_NOMEM;
	e->attr.st_ino = e->ino;
	e->attr_timeout = CACHE_TIMEOUT;
	e->entry_timeout = CACHE_TIMEOUT;
	return err;
}

static void afs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct afs_ll *ll = ll_of(req);
	struct fuse_entry_param e;
	char *path = path_of(req, parent, name);
	enum afs_err err;

	if (!path)
		return;
	err = entry_of(ll, path, &e);
	free(path);
	if (err == AFS_E_NOENT && !ll->m->backups) { /* a backups directory gains archives: not cached */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (err == AFS_OK && !S_ISDIR(e.attr.st_mode))
		files_wanted(ll);
	if (err != AFS_OK)
		fuse_reply_err(req, afs_errno(err));
	else if (fuse_reply_entry(req, &e) != 0)
		afs_inodes_forget(ll->inodes, e.ino, 1); /* the kernel never got it */
}

static void afs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	afs_inodes_forget(ll_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void afs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		afs_inodes_forget(ll_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void afs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct afs_ll *ll = ll_of(req);
	struct afs_place pl;
	struct stat st;
	char *path = path_of(req, ino, NULL);
	enum afs_err err;

	if (!path)
		return;
	if (fi && fi->fh) { /* an open file: what it opened, even if its archive has left since */
		struct handle *h = (struct handle *)(uintptr_t)fi->fh;

		free(path);
		err = afs_place_stat(ll->m, &h->pl, &st);
		st.st_ino = ino;
		if (err != AFS_OK)
			fuse_reply_err(req, afs_errno(err));
		else
			fuse_reply_attr(req, &st, CACHE_TIMEOUT);
		return;
	}
	err = afs_resolve(ll->m, path, AFS_RESOLVE_LOOK, &pl);
	if (err == AFS_OK)
		err = afs_place_stat(ll->m, &pl, &st);
	if (err == AFS_OK && ll->no_open && pl.kind == AFS_PL_VFILE) {
		struct vver *v = afs_inodes_data(ll->inodes, ino);

		if (v) { /* a status file's version */
			st.st_size = (off_t)v->len;
			st.st_mtim = v->mtime;
			st.st_ctim = v->mtime;
		} else if (pl.vfile == AFS_VF_CONTROL) {
			st.st_size = 1;
		}
	}
	afs_place_release(ll->m, &pl);
	free(path);
	st.st_ino = ino;
	if (err != AFS_OK)
		fuse_reply_err(req, afs_errno(err));
	else
		fuse_reply_attr(req, &st, CACHE_TIMEOUT);
}

/* The place of ino (resolved how), or an error after replying it. */
static enum afs_err place_of(fuse_req_t req, fuse_ino_t ino, enum afs_resolve_how how, struct afs_place *pl,
			     char **path)
{
	enum afs_err err;

	*path = path_of(req, ino, NULL);
	if (!*path) {
		memset(pl, 0, sizeof(*pl));
		return AFS_E_NOMEM;
	}
	err = afs_resolve(ll_of(req)->m, *path, how, pl);
	if (err != AFS_OK) {
		afs_place_release(ll_of(req)->m, pl); /* before the reply frees req */
		free(*path);
		*path = NULL;
		fuse_reply_err(req, afs_errno(err));
	}
	return err;
}

static void afs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct afs_place pl;
	char *path;

	struct afs_ll *ll = ll_of(req);
	enum afs_err err;

	if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) != AFS_OK)
		return;
	err = afs_place_access(ll->m, &pl, mask, caller(req));
	afs_place_release(ll->m, &pl);
	free(path);
	fuse_reply_err(req, afs_errno(err));
}

static void afs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4096];
	struct afs_place pl;
	char *path;
	enum afs_err err;

	if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) != AFS_OK)
		return;
	err = afs_place_readlink(ll_of(req)->m, &pl, buf, sizeof(buf));
	afs_place_release(ll_of(req)->m, &pl);
	free(path);
	if (err != AFS_OK)
		fuse_reply_err(req, afs_errno(err));
	else
		fuse_reply_readlink(req, buf);
}

/* A directory's listing, made when it is read from its start: each entry's
 * name and attributes.  Entries given with attributes (readdirplus) count
 * a lookup of their path. */
struct dirent_rec {
	char *name;
	struct stat st;
};

struct dirh {
	pthread_mutex_t lock;
	char *path;
	char *pbuf;        /* path without a trailing "/" ("" for the root), then room for "/name" */
	size_t plen, pcap;
	struct dirent_rec *ents;
	size_t n, cap;
	bool listed;
	uint32_t node; /* no-opendir mode: its node */
	bool bare;     /* an entry of the listing went without attributes */
	struct dirh *prev, *next; /* opened ones: struct afs_ll's dirs */
};

static int dir_add(void *ctx, const char *name, const struct stat *st)
{
	struct dirh *d = ctx;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dirent_rec *g = realloc(d->ents, cap * sizeof(*g));

		if (!g)
			return 1;
		d->ents = g;
		d->cap = cap;
	}
	if (!(d->ents[d->n].name = strdup(name)))
		return 1;
	d->ents[d->n++].st = *st;
	return 0;
}

static void dir_clear(struct dirh *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	d->n = 0;
	d->listed = false;
}

static void dir_free(struct dirh *d)
{
	if (!d)
		return;
	dir_clear(d);
	free(d->ents);
	free(d->pbuf);
	free(d->path);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* A directory handle for ino, not yet listed; NULL after replying the
 * error. */
static struct dirh *dir_new(fuse_req_t req, fuse_ino_t ino)
{
	struct dirh *d = calloc(1, sizeof(*d));

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	if (!(d->path = path_of(req, ino, NULL))) {
		free(d);
		return NULL;
	}
	d->plen = strcmp(d->path, "/") == 0 ? 0 : strlen(d->path);
	d->pcap = d->plen + 256;
	if (!(d->pbuf = malloc(d->pcap))) {
		free(d->path);
		free(d);
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	memcpy(d->pbuf, d->path, d->plen);
	d->pbuf[d->plen] = '/';
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

static void dirs_link(struct afs_ll *ll, struct dirh *d)
{
	pthread_mutex_lock(&ll->open.mu);
	d->next = ll->dirs;
	if (ll->dirs)
		ll->dirs->prev = d;
	ll->dirs = d;
	pthread_mutex_unlock(&ll->open.mu);
}

static void dirs_unlink(struct afs_ll *ll, struct dirh *d)
{
	pthread_mutex_lock(&ll->open.mu);
	if (d->prev)
		d->prev->next = d->next;
	else
		ll->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&ll->open.mu);
}

/* Frees the opened directories the kernel never released. */
static void dirs_free_all(struct afs_ll *ll)
{
	while (ll->dirs) {
		struct dirh *d = ll->dirs;

		ll->dirs = d->next;
		dir_free(d);
	}
}

static void afs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d;

	if (ll_of(req)->no_opendir) { /* from now on the kernel opens directories itself */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!(d = dir_new(req, ino)))
		return;
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	dirs_link(ll_of(req), d);
	if (fuse_reply_open(req, fi) != 0) {
		dirs_unlink(ll_of(req), d);
		dir_free(d);
	}
}

static void afs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	dirs_unlink(ll_of(req), d);
	dir_free(d);
	fuse_reply_err(req, 0);
}

/* No-opendir mode: the handle of ino for a listing without one, the last
 * one made if it is ino's and the listing goes on from where it was
 * (off > 0), else a new one.  Called and left with lmu held; NULL after
 * replying the error. */
static struct dirh *dir_of_ino(fuse_req_t req, fuse_ino_t ino, off_t off)
{
	struct afs_ll *ll = ll_of(req);

	if (ll->last && ll->last_ino == ino && off > 0) {
		/* a number forgotten is made again for another path */
		char *path = afs_inodes_path(ll->inodes, ino, NULL);
		bool same = path && strcmp(path, ll->last->path) == 0;

		free(path);
		if (same)
			return ll->last;
	}
	dir_free(ll->last);
	ll->last = dir_new(req, ino);
	ll->last_ino = ll->last ? ino : 0;
	return ll->last;
}

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	struct afs_ll *ll = ll_of(req);
	bool files = now_ms() < ll->files_until;
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf;
	size_t pos = 0;
	enum afs_err err = AFS_OK;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!(buf = malloc(size ? size : 1))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!d) { /* no-opendir mode */
		pthread_mutex_lock(&ll->lmu);
		if (!(d = dir_of_ino(req, ino, off))) {
			pthread_mutex_unlock(&ll->lmu);
			free(buf);
			return;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (off == 0 || !d->listed) { /* from the start: the directory as it is now */
		struct afs_place pl;

		dir_clear(d);
		err = afs_resolve(ll->m, d->path, AFS_RESOLVE_OPEN, &pl);
		d->node = pl.node;
		d->bare = false;
		if (err == AFS_OK)
			err = afs_place_list(ll->m, &pl, dir_add, d);
		afs_place_release(ll->m, &pl);
		d->listed = err == AFS_OK;
	}
	for (size_t i = (size_t)off; err == AFS_OK && i < d->n; i++) {
		struct dirent_rec *r = &d->ents[i];
		size_t need;

		if (!plus) {
			struct stat st = r->st;

			st.st_ino = 0xffffffffu; /* FUSE_UNKNOWN_INO: an entry with d_ino 0 is a hole to readdir(3) */
			need = fuse_add_direntry(req, buf + pos, size - pos, r->name, &st, (off_t)i + 1);
		} else {
			struct fuse_entry_param e = { .attr = r->st };

			if (!S_ISDIR(r->st.st_mode) && !files && !(ll->no_open && d->plen == 0 &&
								       afs_vfile_named(r->name) != AFS_VF_NONE)) {
				e.ino = 0; /* the name and type alone: no inode for the kernel to make */
				e.attr.st_ino = 0xffffffffu;
				d->bare = true;
			} else if (!is_dot(r->name)) { /* the kernel keeps no lookup of . and .. */
				size_t nlen = strlen(r->name);
				char *path;

				/* measure first: a number is counted only for an entry sent */
				if (fuse_add_direntry_plus(req, NULL, 0, r->name, &e, 0) > size - pos)
					break;
				if (d->plen + 1 + nlen + 1 > d->pcap) {
					size_t cap = d->plen + nlen + 64;
					char *g = realloc(d->pbuf, cap);

					if (!g) {
						err = AFS_E_NOMEM;
						break;
					}
					d->pbuf = g;
					d->pcap = cap;
				}
				path = d->pbuf; /* the directory's path, then "/name" */
				memcpy(path + d->plen + 1, r->name, nlen + 1);
				if (ll->no_open && d->plen == 0 && afs_vfile_named(r->name) != AFS_VF_NONE) {
					/* a status file: its version now, as a lookup gives */
					enum afs_err verr = entry_of(ll, path, &e);

					if (verr != AFS_OK) {
						err = verr;
						break;
					}
				} else {
					e.ino = afs_inodes_ref(ll->inodes, path, d->plen + 1 + nlen);
					if (!e.ino) {
						err = AFS_E_NOMEM;
						break;
					}
					e.attr.st_ino = e.ino;
					e.attr_timeout = CACHE_TIMEOUT;
					e.entry_timeout = CACHE_TIMEOUT;
				}
			}
			need = fuse_add_direntry_plus(req, buf + pos, size - pos, r->name, &e, (off_t)i + 1);
		}
		if (need > size - pos)
			break;
		pos += need;
	}
	if (!fi->fh && d->listed && plus)
		dir_listed(ll, d->node, d->bare);
	pthread_mutex_unlock(&d->lock);
	if (!fi->fh)
		pthread_mutex_unlock(&ll->lmu);
	if (err != AFS_OK && pos == 0)
		fuse_reply_err(req, afs_errno(err));
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void afs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void afs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
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
	h->pl = *pl;
	pl->view = NULL;
	*out = h;
	return AFS_OK;
}

/* Reads all size bytes of h and stores them in the kernel's cache of ino
 * (the open's answer keeps the cache).  Nothing when the read fails: the
 * file's READ then fails and logs as any other. */
static void push_content(struct afs_ll *ll, fuse_ino_t ino, struct handle *h, size_t size)
{
	char *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (buf && size && afs_stream_pread(h->stream, buf, size, 0, &got) == AFS_OK && got == size) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

		bv.buf[0].mem = buf;
		fuse_lowlevel_notify_store(ll->se, ino, 0, &bv, 0);
	}
	free(buf);
}

static void afs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct afs_ll *ll = ll_of(req);
	uint64_t size = UINT64_MAX;
	struct handle *h = NULL;
	struct afs_place pl;
	char *path;
	enum afs_err err;

	if (ll->no_open) { /* from now on the kernel opens files itself */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (place_of(req, ino, AFS_RESOLVE_OPEN, &pl, &path) != AFS_OK)
		return;
	err = afs_place_may_open(ll->m, &pl, fi->flags, caller(req));
	if (err == AFS_OK && pl.kind == AFS_PL_NODE) {
		const struct afs_node *n = afs_index_node(pl.view->index, pl.node);

		size = S_ISREG(n->mode) ? n->size : UINT64_MAX;
	}
	if (err == AFS_OK)
		err = handle_new(&pl, &h);
	afs_place_release(ll->m, &pl);
	if (err != AFS_OK) {
		free(path);
		fuse_reply_err(req, afs_errno(err));
		return;
	}
	h->path = path;
	if (ll->push && size <= PUSH_MAX && afs_inodes_mark(ll->inodes, ino, 1) == 0)
		push_content(ll, ino, h, (size_t)size);
	list_open(&ll->open, h);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = h->vfile != AFS_VF_NONE; /* every open sees the state afresh */
	fi->keep_cache = h->vfile == AFS_VF_NONE;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) { /* the open was interrupted */
		unlist_open(&ll->open, h);
		handle_free(ll->m, h);
	}
}

/* Up to size bytes of h at off into buf; the count, or -errno. */
static int handle_read(struct handle *h, char *buf, size_t size, off_t off)
{
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
		afs_log(AFS_LOG_ERR, "%s: %s", h->path + 1, afs_stream_error(h->stream, err));
		h->logged = err != AFS_E_NOMEM;
	}
	pthread_mutex_unlock(&h->lock);
	return err == AFS_OK ? (int)got : -afs_errno(err);
}


/* Stores node's content (a small regular file) in the kernel's cache of
 * ino.  The kernel must know ino: it is pinned. */
static void push_node(struct afs_ll *ll, struct afs_view *v, uint32_t node, uint64_t ino, size_t size)
{
	struct afs_stream *st = NULL;
	char *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (buf && afs_stream_open_shared(v->archive, v->index, node, v->seek, &st) == AFS_OK &&
	    afs_stream_pread(st, buf, size, 0, &got) == AFS_OK && got == size) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

		bv.buf[0].mem = buf;
		fuse_lowlevel_notify_store(ll->se, ino, 0, &bv, 0);
	}
	afs_stream_close(st);
	free(buf);
}

/* Pushes the small regular files that follow node in its directory (the
 * order listings give), those the kernel knows and has not been given
 * yet, up to PUSH_AHEAD_FILES or PUSH_AHEAD_BYTES: a reader going through
 * the directory in that order (cp -r, tar, rsync) then finds them cached
 * and sends no READ.  A file whose read fails is left to its READ. */
static void push_ahead(struct afs_ll *ll, uint32_t node)
{
	struct afs_view *v = ll->m->view;
	size_t files = 0, bytes = 0, looked = 0;
	char *path = NULL;
	size_t cap = 0;

	for (uint32_t id = afs_index_node(v->index, node)->next_sibling;
	     id != AFS_NONE && files < PUSH_AHEAD_FILES && bytes < PUSH_AHEAD_BYTES && looked < 4 * PUSH_AHEAD_FILES;
	     id = afs_index_node(v->index, id)->next_sibling) {
		const struct afs_node *n = afs_index_node(v->index, id);
		const char *sub = afs_index_path(v->index, id);
		size_t need = strlen(sub) + 2;
		uint64_t ino;

		looked++;
		if (!S_ISREG(n->mode) || n->size > PUSH_MAX || n->size == 0)
			continue;
		if (need > cap) {
			char *g = realloc(path, need);

			if (!g)
				break;
			path = g;
			cap = need;
		}
		snprintf(path, cap, "/%s", sub);
		if (!(ino = afs_inodes_pin(ll->inodes, path, need - 1)))
			continue; /* the kernel does not know it: nothing to fill */
		if (afs_inodes_mark(ll->inodes, ino, 1) == 0) {
			push_node(ll, v, id, ino, (size_t)n->size);
			files++;
			bytes += (size_t)n->size;
		}
		afs_inodes_unpin(ll->inodes, ino);
		pthread_mutex_lock(&ll->pmu);
		bool newer = ll->push_from != AFS_NONE || ll->pusher_stop;
		pthread_mutex_unlock(&ll->pmu);
		if (newer)
			break; /* a later read asks for another place: go there */
	}
	free(path);
}

/* Drops the kernel's listing of directory node id if it must go: if it is
 * to drop now, or made without files' attributes while files are wanted.
 * path: a buffer for its path, grown as needed. */
static void drop_listing(struct afs_ll *ll, uint32_t id, bool files, char **path, size_t *cap)
{
	const struct afs_index *ix = ll->m->view->index;
	unsigned char s = atomic_load(&ll->dstate[id]);
	const char *sub;
	size_t need;
	uint64_t ino;

	if (!(s == DS_DROP || (s == DS_BARE && files)) || !atomic_compare_exchange_strong(&ll->dstate[id], &s, DS_NONE))
		return;
	sub = id == 0 ? "" : afs_index_path(ix, id);
	need = strlen(sub) + 2;
	if (need > *cap) {
		char *g = realloc(*path, need);

		if (!g)
			return;
		*path = g;
		*cap = need;
	}
	snprintf(*path, *cap, "/%s", sub);
	if ((ino = afs_inodes_pin(ll->inodes, *path, need - 1))) { /* else the kernel forgot it */
		fuse_lowlevel_notify_inval_inode(ll->se, ino, 0, 0);
		afs_inodes_unpin(ll->inodes, ino);
	}
}

/* Drops the kernel's cached listings that must go (struct afs_ll): those
 * of the directories queued, or every one there is to drop.  Called and
 * left with pmu held. */
static void drop_listings(struct afs_ll *ll)
{
	uint32_t *q = ll->dropq;
	size_t n = ll->ndrop, cap = 0;
	bool scan = ll->drop_scan, files = now_ms() < ll->files_until;
	char *path = NULL;

	ll->dropq = NULL;
	ll->ndrop = ll->capdrop = 0;
	ll->drop_scan = false;
	pthread_mutex_unlock(&ll->pmu);
	if (scan)
		for (uint32_t id = 0; id < afs_index_count(ll->m->view->index); id++)
			drop_listing(ll, id, files, &path, &cap);
	for (size_t i = 0; i < n; i++)
		drop_listing(ll, q[i], files, &path, &cap);
	free(path);
	free(q);
	pthread_mutex_lock(&ll->pmu);
}

static void *pusher_main(void *arg)
{
	struct afs_ll *ll = arg;

	pthread_mutex_lock(&ll->pmu);
	while (!ll->pusher_stop) {
		uint32_t node = ll->push_from;

		if (ll->drop_scan || ll->ndrop) {
			drop_listings(ll);
			continue;
		}
		if (node == AFS_NONE) {
			pthread_cond_wait(&ll->pcv, &ll->pmu);
			continue;
		}
		ll->push_from = AFS_NONE;
		pthread_mutex_unlock(&ll->pmu);
		push_ahead(ll, node);
		pthread_mutex_lock(&ll->pmu);
	}
	pthread_mutex_unlock(&ll->pmu);
	return NULL;
}

/* Asks the pusher to drop dir's listing, or (AFS_NONE) every one there
 * is to drop. */
static void want_drop(struct afs_ll *ll, uint32_t dir)
{
	pthread_mutex_lock(&ll->pmu);
	if (dir != AFS_NONE && ll->ndrop == ll->capdrop) {
		size_t cap = ll->capdrop ? ll->capdrop * 2 : 64;
		uint32_t *g = realloc(ll->dropq, cap * sizeof(*g));

		if (g) {
			ll->dropq = g;
			ll->capdrop = cap;
		}
	}
	if (dir != AFS_NONE && ll->ndrop < ll->capdrop)
		ll->dropq[ll->ndrop++] = dir;
	else
		ll->drop_scan = true; /* every one, or out of memory for the queue */
	pthread_cond_signal(&ll->pcv);
	pthread_mutex_unlock(&ll->pmu);
}

/* A READ of small file node missed the cache: push what follows it. */
static void want_push(struct afs_ll *ll, uint32_t node)
{
	if (!ll->pusher_running)
		return;
	pthread_mutex_lock(&ll->pmu);
	ll->push_from = node;
	pthread_cond_signal(&ll->pcv);
	pthread_mutex_unlock(&ll->pmu);
}

/* No-open mode: up to size bytes of pl (inode ino) at off into buf; the
 * count, or -errno.  A status file's inode gives its version's content
 * (.log: the log's span at its lookup, read from the job's buffer);
 * .control is not for reading. */
static int place_read(struct afs_ll *ll, fuse_ino_t ino, const struct afs_place *pl, const char *path, char *buf,
		      size_t size, off_t off)
{
	size_t got = 0;
	enum afs_err err = AFS_OK;

	if (off < 0)
		return -EINVAL;
	if (pl->kind == AFS_PL_NODE) {
		char why[256];

		const struct afs_node *n = afs_index_node(pl->view->index, pl->node);

		err = afs_readers_pread(ll->readers, pl->view, pl->node, buf, size, (uint64_t)off, &got, why,
					sizeof(why));
		/* one line an entry: the kernel retries a failed page alone, and
		 * every read of it fails the same way */
		if (err != AFS_OK && err != AFS_E_NOMEM && (!ll->logged || !atomic_exchange(&ll->logged[pl->node], 1)))
			afs_log(AFS_LOG_ERR, "%s: %s", path + 1, why);
		if (err == AFS_OK && n->size <= PUSH_MAX)
			want_push(ll, pl->node);
		if (err == AFS_OK)
			dir_file_read(ll, n->parent);
	} else if (pl->kind != AFS_PL_VFILE) {
		err = AFS_E_ISDIR;
	} else if (pl->vfile == AFS_VF_CONTROL) {
		err = AFS_E_ACCES;
	} else {
		struct vver *v = afs_inodes_data(ll->inodes, ino);

		if (!v) {
			err = AFS_E_NOENT; /* not a version: cannot happen but through a stale inode */
		} else if (v->vf == AFS_VF_LOG) {
			pthread_mutex_lock(&ll->vmu); /* the span's skip count */
			got = afs_vfile_log_read(v->job, &v->log, buf, size, (uint64_t)off);
			pthread_mutex_unlock(&ll->vmu);
		} else if ((uint64_t)off < v->len) {
			got = v->len - (size_t)off < size ? v->len - (size_t)off : size;
			memcpy(buf, v->text + off, got);
		}
	}
	return err == AFS_OK ? (int)got : -afs_errno(err);
}

static void afs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	int n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!h) { /* no-open mode */
		struct afs_ll *ll = ll_of(req);
		struct afs_place pl;
		char *path;

		if (place_of(req, ino, AFS_RESOLVE_OPEN, &pl, &path) != AFS_OK) {
			free(buf);
			return;
		}
		files_wanted(ll);
		n = place_read(ll, ino, &pl, path, buf, size, off);
		afs_place_release(ll->m, &pl);
		free(path);
	} else {
		files_wanted(ll_of(req));
		n = handle_read(h, buf, size, off);
	}
	if (n < 0)
		fuse_reply_err(req, -n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void afs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)ino;
	unlist_open(&ll_of(req)->open, h);
	handle_free(ll_of(req)->m, h);
	fuse_reply_err(req, 0);
}

static void afs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct afs_ll *ll = ll_of(req);
	uint64_t files = 0, bytes = 0;
	struct afs_place pl;
	struct statvfs sv;
	char *path = path_of(req, ino, NULL);
	enum afs_err err;

	if (!path)
		return;
	afs_resolve(ll->m, path, AFS_RESOLVE_OPEN, &pl); /* a failure counts the whole directory */
	err = afs_place_totals(ll->m, &pl, &files, &bytes);
	afs_place_release(ll->m, &pl);
	free(path);
	if (err != AFS_OK) {
		fuse_reply_err(req, afs_errno(err));
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (bytes + 4095) / 4096;
	sv.f_files = files;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* An xattr answer: its length when size is 0, else its bytes. */
static void reply_xattr(fuse_req_t req, enum afs_err err, const char *buf, size_t size, size_t len)
{
	if (err != AFS_OK)
		fuse_reply_err(req, afs_errno(err));
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
}

static void afs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct afs_place pl;
	char *path, *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	enum afs_err err;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) == AFS_OK) {
		err = afs_place_getxattr(&pl, name, buf, size, &len);
		afs_place_release(ll_of(req)->m, &pl);
		free(path);
		reply_xattr(req, err, buf, size, len);
	}
	free(buf);
}

static void afs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct afs_place pl;
	char *path, *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	enum afs_err err;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) == AFS_OK) {
		err = afs_place_listxattr(&pl, buf, size, &len);
		afs_place_release(ll_of(req)->m, &pl);
		free(path);
		reply_xattr(req, err, buf, size, len);
	}
	free(buf);
}

/* `echo restore > .control` truncates before it writes: a no-op there;
 * every other change of attributes is refused, whatever the file. */
static void afs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct afs_ll *ll = ll_of(req);
	struct afs_place pl;
	struct stat st;
	char *path;
	bool control;

	(void)attr;
	(void)fi;
	if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) != AFS_OK)
		return;
	control = pl.kind == AFS_PL_VFILE && pl.vfile == AFS_VF_CONTROL && afs_place_stat(ll->m, &pl, &st) == AFS_OK;
	afs_place_release(ll->m, &pl);
	free(path);
	if (!control || (to_set & ~FUSE_SET_ATTR_SIZE) || !(to_set & FUSE_SET_ATTR_SIZE)) {
		fuse_reply_err(req, EROFS);
	} else if (!afs_mount_may_control(ll->m, caller(req))) {
		fuse_reply_err(req, EACCES);
	} else {
		st.st_ino = ino;
		fuse_reply_attr(req, &st, CACHE_TIMEOUT);
	}
}

/* One command per write to .control; anything else is read-only. */
static void afs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct afs_job *job = h && h->vfile == AFS_VF_CONTROL ? h->job : NULL;
	enum afs_err err;

	(void)off;
	if (!h) { /* no-open mode: which file, from its inode */
		struct afs_place pl;
		char *path;

		if (place_of(req, ino, AFS_RESOLVE_LOOK, &pl, &path) != AFS_OK)
			return;
		if (pl.kind == AFS_PL_VFILE && pl.vfile == AFS_VF_CONTROL)
			job = pl.view->job; /* the mount's own view: it outlives the call */
		afs_place_release(ll_of(req)->m, &pl);
		free(path);
	}
	if (!job) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!afs_mount_may_control(ll_of(req)->m, caller(req))) {
		fuse_reply_err(req, EACCES);
		return;
	}
	err = afs_vfile_control(job, buf, size);
	if (err != AFS_OK)
		fuse_reply_err(req, afs_errno(err));
	else
		fuse_reply_write(req, size);
}

/* Every other modifying call: the archive never changes. */
static void rofs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
	(void)p, (void)n, (void)m, (void)d;
	fuse_reply_err(req, EROFS);
}
static void rofs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	(void)p, (void)n, (void)m;
	fuse_reply_err(req, EROFS);
}
static void rofs_name(fuse_req_t req, fuse_ino_t p, const char *n)
{
	(void)p, (void)n;
	fuse_reply_err(req, EROFS);
}
static void rofs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	(void)l, (void)p, (void)n;
	fuse_reply_err(req, EROFS);
}
static void rofs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int f)
{
	(void)p, (void)n, (void)np, (void)nn, (void)f;
	fuse_reply_err(req, EROFS);
}
static void rofs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
	(void)i, (void)np, (void)nn;
	fuse_reply_err(req, EROFS);
}
static void rofs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *fi)
{
	(void)p, (void)n, (void)m, (void)fi;
	fuse_reply_err(req, EROFS);
}
static void rofs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f)
{
	(void)i, (void)n, (void)v, (void)s, (void)f;
	fuse_reply_err(req, EROFS);
}
static void rofs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
	(void)i, (void)n;
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops afs_ll_ops = {
	.init = afs_init,
	.destroy = afs_destroy,
	.lookup = afs_lookup,
	.forget = afs_forget,
	.forget_multi = afs_forget_multi,
	.getattr = afs_getattr,
	.setattr = afs_setattr,
	.access = afs_access,
	.readlink = afs_readlink,
	.opendir = afs_opendir,
	.readdir = afs_readdir,
	.readdirplus = afs_readdirplus,
	.releasedir = afs_releasedir,
	.open = afs_open,
	.read = afs_read,
	.write = afs_write,
	.release = afs_release,
	.statfs = afs_statfs,
	.getxattr = afs_getxattr,
	.listxattr = afs_listxattr,
	.mknod = rofs_mknod,
	.mkdir = rofs_mkdir,
	.unlink = rofs_name,
	.rmdir = rofs_name,
	.symlink = rofs_symlink,
	.rename = rofs_rename,
	.link = rofs_link,
	.create = rofs_create,
	.setxattr = rofs_setxattr,
	.removexattr = rofs_removexattr,
};

struct afs_ll *afs_ll_new(struct afs_mount *m)
{
	struct afs_ll *ll = calloc(1, sizeof(*ll));

	if (!ll || !(ll->inodes = afs_inodes_new(vver_free)) || !(ll->readers = afs_readers_new(READERS_MAX))) {
		if (ll)
			afs_inodes_free(ll->inodes);
		free(ll);
		return NULL;
	}
	ll->m = m;
	pthread_mutex_init(&ll->open.mu, NULL);
	pthread_mutex_init(&ll->vmu, NULL);
	pthread_mutex_init(&ll->pmu, NULL);
	pthread_mutex_init(&ll->lmu, NULL);
	pthread_cond_init(&ll->pcv, NULL);
	ll->push_from = AFS_NONE;
	return ll;
}

struct fuse_session *afs_ll_session(struct afs_ll *ll, struct fuse_args *args, bool threads)
{
	/* A push waits for the pages it fills, which another reader's READ may
	 * hold: only with other threads to answer that READ. */
	ll->push = threads;
	ll->se = fuse_session_new(args, &afs_ll_ops, sizeof(afs_ll_ops), ll);
	return ll->se;
}

void afs_ll_free(struct afs_ll *ll)
{
	if (!ll)
		return;
	while (ll->open.head) { /* a session that never ran its destroy */
		struct handle *h = ll->open.head;

		ll->open.head = h->next;
		handle_free(ll->m, h);
	}
	dirs_free_all(ll);
	pthread_mutex_destroy(&ll->open.mu);
	pthread_mutex_destroy(&ll->vmu);
	pthread_mutex_destroy(&ll->pmu);
	pthread_mutex_destroy(&ll->lmu);
	pthread_cond_destroy(&ll->pcv);
	dir_free(ll->last);
	free((void *)ll->dstate);
	free(ll->dropq);
	for (int v = 0; v < AFS_VF_COUNT; v++)
		free(ll->vlatest[v].text);
	afs_readers_free(ll->readers);
	free((void *)ll->logged);
	afs_inodes_free(ll->inodes);
	free(ll);
}
