/* SPDX-License-Identifier: MIT */
/* A backups directory: one view per *.zip archive, opened on first use,
 * closed when the least recently used of too many open, or once its
 * archive has left the directory, and only when nothing uses it.
 *
 * Locking: mu guards the list, every item's fields, the LRU, the counts
 * and every view's bookkeeping (refs, gone, next).  An archive is opened
 * outside mu: its item is marked opening (which keeps the item allocated
 * even if a scan drops it from the list), others asking for the same
 * archive wait on the condition variable opened, and every other call goes
 * on.  Views are closed outside mu too (closing waits for the job's thread
 * and the archive's mutex).  Lock order: mu, then a job's lock (to see
 * whether it runs); no lock of b is held while calling afs_view_open(),
 * afs_view_free() or the test hook.
 *
 * A view's lifetime: a lookup takes a reference (refs) and its caller puts
 * it back; an item holds its view without a reference, and is then in the
 * LRU, most recently looked up first.  When the archive leaves the
 * directory or its file is replaced, a scan moves the view to the gone
 * list; a view gone is closed when it is idle: no reference and no command
 * of its job running (a restore reads the archive).  The last put closes
 * it, or, when its job was what kept it, the next refresh after the job
 * ends.  A listed view is closed by the LRU (trim()) when more than
 * max_open are open and it is idle and its job has nothing to show
 * (quiet()); its item then opens the file again on the next lookup, and
 * builds its index anew (docs/architecture.md, Directory mode, says why
 * the index is not kept).
 *
 * Descriptors: nopen counts the views not closed (listed, gone, being
 * opened), each holding libzip's descriptor of its file.  An open past
 * max_fds, or one for which the process has no descriptor left (probed
 * with open() first), fails with AFS_E_MFILE or AFS_E_NFILE for that call
 * only: such a failure is not remembered against the archive. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "backupname.h"
#include "backups.h"
#include "inflate.h"
#include "job.h"
#include "log.h"
#include "remote.h"
#include "view.h"

struct item {
	char *name;            /* the file name without ".zip" */
	char *path;            /* dir/name.zip */
	struct stat st;        /* the file, at the last scan */
	struct afs_view *view; /* NULL until first used */
	enum afs_err failed;   /* why the last open failed; AFS_OK when it did not */
	struct stat failed_st; /* the file as it was then */
	bool shown;            /* in the directory at the last scan */
	bool shown_once;       /* st is set */
	bool opening;          /* a thread is opening it, without mu */
	bool dropped;          /* gone from the list while opening: the opener frees it */
	struct item *newer, *older; /* in the LRU while view is set */
	struct stat opened;    /* the file the last view was opened from */
	bool was_opened;       /* opened is set */
};

struct afs_backups {
	pthread_mutex_t mu;
	pthread_cond_t opened; /* an open has ended (with mu) */
	char *dir;                 /* without a trailing '/' */
	char *list_url;            /* an S3 prefix's URL (remote.h), listed at each refresh; NULL: a directory */
	struct timespec dir_mtime; /* at the last scan */
	struct timespec scanned_at; /* when the last scan began (CLOCK_REALTIME) */
	struct item **items;       /* sorted by name */
	size_t n, cap;
	struct afs_view *gone;     /* views of archives gone or replaced, not idle yet: linked by next */
	struct item *lru_new, *lru_old; /* the items with a view, most recently looked up first */
	size_t nopen;              /* views not closed yet: listed, gone and being opened */
	size_t max_open;           /* the LRU closes idle views past this many */
	size_t max_fds;            /* never more views open than this */
	bool short_logged;         /* a lookup lacked a descriptor; logged once until an open succeeds */
	bool warned_latest; /* about a latest.zip, once */
	const struct afs_target *target;
	struct afs_seekreg *pool;
	void (*on_log)(void *ctx, const char *line);
	void (*on_open)(void *ctx, const char *name); /* the test hook */
	void *on_open_ctx;
	void (*on_replaced)(void *ctx, const char *name, size_t len, struct afs_view *v);
	void *on_replaced_ctx;
};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int cmp_name(const char *a, const char *b, size_t blen)
{
	int c = strncmp(a, b, blen);

	return c ? c : (a[blen] != '\0');
}

/* The item named name[0..len), or NULL with *pos where it would go. */
static struct item *find(const struct afs_backups *b, const char *name, size_t len, size_t *pos)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_name(b->items[mid]->name, name, len);

		if (c == 0)
			return b->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

static struct item *insert(struct afs_backups *b, size_t pos, const char *file, size_t len)
{
	struct item *it = calloc(1, sizeof(*it));

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct item **items = realloc(b->items, cap * sizeof(*items));

		if (!items) {
			free(it);
			return NULL;
		}
		b->items = items;
		b->cap = cap;
	}
	if (!it || !(it->name = strndup(file, len)) || asprintf(&it->path, "%s/%s", b->dir, file) < 0) {
		if (it)
			free(it->name);
		free(it);
		return NULL;
	}
	memmove(b->items + pos + 1, b->items + pos, (b->n - pos) * sizeof(*b->items));
	b->items[pos] = it;
	b->n++;
	return it;
}

/* Whether v may be closed: nobody holds it and its job runs no command
 * (a job in a final state has at most its thread's last log line left,
 * which closing waits for).  mu held. */
static bool idle(struct afs_view *v)
{
	enum afs_state st;
	unsigned percent;

	if (v->refs > 0)
		return false;
	afs_job_peek(v->job, &st, &percent);
	return st == AFS_ST_IDLE || st == AFS_ST_DONE || st == AFS_ST_FAILED || st == AFS_ST_CANCELLED;
}

/* Whether the LRU may close v: idle, and its job has neither run nor
 * refused a command, so that nothing its .status and .log show would be
 * lost (a job made anew shows the same).  A finished restore keeps its
 * archive open, with its outcome readable.  mu held. */
static bool quiet(struct afs_view *v)
{
	enum afs_state st;
	unsigned percent;
	char *error;

	if (v->refs > 0)
		return false;
	afs_job_peek(v->job, &st, &percent);
	if (st != AFS_ST_IDLE)
		return false;
	error = afs_job_error(v->job);
	free(error);
	return error == NULL;
}

static void lru_unlink(struct afs_backups *b, struct item *it)
{
	if (it->newer)
		it->newer->older = it->older;
	else if (b->lru_new == it)
		b->lru_new = it->older;
	if (it->older)
		it->older->newer = it->newer;
	else if (b->lru_old == it)
		b->lru_old = it->newer;
	it->newer = it->older = NULL;
}

/* Puts it, which has a view, first in the LRU.  mu held. */
static void lru_touch(struct afs_backups *b, struct item *it)
{
	if (b->lru_new == it)
		return;
	lru_unlink(b, it);
	it->older = b->lru_new;
	if (b->lru_new)
		b->lru_new->newer = it;
	b->lru_new = it;
	if (!b->lru_old)
		b->lru_old = it;
}

/* v is no longer reachable by name (its archive left the directory, or
 * its file was replaced): on the gone list until it is idle.  mu held. */
static void let_go(struct afs_backups *b, struct afs_view *v)
{
	v->gone = true;
	v->next = b->gone;
	b->gone = v;
}

/* it's view leaves it for the gone list.  mu held. */
static void detach(struct afs_backups *b, struct item *it)
{
	lru_unlink(b, it);
	let_go(b, it->view);
	it->view = NULL;
}

/* Moves v to *closing (linked by next), no longer counted as open. */
static void to_close(struct afs_backups *b, struct afs_view *v, struct afs_view **closing)
{
	v->next = *closing;
	*closing = v;
	b->nopen--;
}

/* Moves the idle views of the gone list to *closing.  mu held. */
static void sweep(struct afs_backups *b, struct afs_view **closing)
{
	for (struct afs_view **pv = &b->gone; *pv;) {
		struct afs_view *v = *pv;

		if (!idle(v)) {
			pv = &v->next;
			continue;
		}
		*pv = v->next;
		to_close(b, v, closing);
	}
}

/* Moves the views of the least recently used items that quiet() lets go
 * to *closing until at most keep are open (or none is left to close);
 * their items open their files again when next looked up.  mu held. */
static void trim(struct afs_backups *b, size_t keep, struct afs_view **closing)
{
	struct item *it = b->lru_old;

	while (it && b->nopen > keep) {
		struct item *newer = it->newer;

		if (quiet(it->view)) {
			lru_unlink(b, it);
			to_close(b, it->view, closing);
			it->view = NULL;
		}
		it = newer;
	}
}

/* Closes the views of a list sweep() made; mu not held. */
static void close_list(struct afs_view *v)
{
	while (v) {
		struct afs_view *next = v->next;

		afs_view_free(v);
		v = next;
	}
}

static void item_free(struct item *it)
{
	free(it->name);
	free(it->path);
	free(it);
}

/* Names of archives a scan found gone or replaced (malloc'd). */
struct left {
	char **names;
	size_t n, cap;
};

static void left_add(struct left *l, const char *name)
{
	if (!l)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **g = realloc(l->names, cap * sizeof(*g));

		if (!g)
			return; /* out of memory: the kernel keeps its cache of it */
		l->names = g;
		l->cap = cap;
	}
	if ((l->names[l->n] = strdup(name)))
		l->n++;
}

/* Notes file (of kind, its name len bytes without ".zip"), found by a
 * scan as st, in the list; the caller holds b->mu. */
static void note_file(struct afs_backups *b, const char *file, enum afs_backupname_kind kind, size_t len,
		      const struct stat *st, struct left *left)
{
	size_t pos = 0;
	struct item *it;

	if (kind == AFS_BACKUPNAME_LATEST) {
		if (!b->warned_latest)
			afs_log(AFS_LOG_WARN, "%s/%s: not shown: '" AFS_BACKUPS_LATEST "' names the newest archive",
				b->dir, file);
		b->warned_latest = true;
		return;
	}
	it = find(b, file, len, &pos);
	if (!it && !(it = insert(b, pos, file, len)))
		return; /* out of memory: not shown this time */
	if (it->shown_once && !same_file(&it->st, st))
		left_add(left, it->name);
	if (it->view && !same_file(&it->st, st))
		detach(b, it); /* replaced under the same name: new lookups see the new file */
	it->st = *st;
	it->shown = true;
	it->shown_once = true;
}

/* Reads the directory's entries into the list (note_file()). */
static enum afs_err scan_dir(struct afs_backups *b, struct left *left, char *msg, size_t msglen)
{
	struct dirent *de;
	struct stat dst;
	DIR *d;

	if (stat(b->dir, &dst) != 0 || !(d = opendir(b->dir))) {
		snprintf(msg, msglen, "%s", strerror(errno));
		return AFS_E_IO;
	}
	b->dir_mtime = dst.st_mtim;
	while ((de = readdir(d))) {
		size_t len = 0;
		enum afs_backupname_kind kind = afs_backupname_kind(de->d_name, &len);
		struct stat st;

		if (kind != AFS_BACKUPNAME_NONE && fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
			note_file(b, de->d_name, kind, len, &st, left);
	}
	closedir(d);
	return AFS_OK;
}

struct listing {
	struct afs_backups *b;
	struct left *left;
};

/* One object of an S3 prefix's listing: shown as a file of its size and
 * Last-Modified time, its ETag (hashed) standing for the inode, so that an
 * object replaced under the same name is a file replaced. */
static void on_object(void *ctx, const struct afs_remote_obj *o)
{
	struct listing *l = ctx;
	size_t len = 0;
	enum afs_backupname_kind kind = afs_backupname_kind(o->name, &len);
	struct stat st = { .st_mode = S_IFREG | 0444, .st_size = (off_t)o->size, .st_nlink = 1 };

	if (kind == AFS_BACKUPNAME_NONE)
		return;
	st.st_ino = afs_crc32(0, o->etag, strlen(o->etag));
	st.st_mtim.tv_sec = (time_t)o->mtime;
	note_file(l->b, o->name, kind, len, &st, l->left);
}

/* Reads the directory, or lists the S3 prefix, into the list, noting in
 * left (when not NULL) the archives gone or replaced since the last scan;
 * the caller holds b->mu. */
static enum afs_err scan(struct afs_backups *b, struct left *left, char *msg, size_t msglen)
{
	struct listing l = { b, left };
	enum afs_err err;
	size_t k = 0;

	clock_gettime(CLOCK_REALTIME, &b->scanned_at);
	for (size_t i = 0; i < b->n; i++)
		b->items[i]->shown = false;
	err = b->list_url ? afs_remote_list(b->list_url, on_object, &l, msg, msglen) : scan_dir(b, left, msg, msglen);
	if (err != AFS_OK) {
		for (size_t i = 0; i < b->n; i++)
			b->items[i]->shown = true; /* the list stays as it was */
		return err;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];

		if (it->shown) {
			b->items[k++] = it;
			continue;
		}
		left_add(left, it->name);
		if (it->view)
			detach(b, it);
		if (it->opening) {
			it->dropped = true; /* its opener still uses it */
			continue;
		}
		item_free(it);
	}
	b->n = k;
	return AFS_OK;
}

enum afs_err afs_backups_new(const char *dir, const struct afs_target *t, struct afs_seekreg *pool,
			     void (*on_log)(void *ctx, const char *line), struct afs_backups **out, char *msg,
			     size_t msglen)
{
	struct afs_backups *b = calloc(1, sizeof(*b));
	enum afs_err err;

	*out = NULL;
	if (!b || !(b->dir = strdup(dir)) || (afs_remote_is_prefix(dir) && !(b->list_url = strdup(dir)))) {
		if (b)
			free(b->dir);
		free(b);
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	if (b->list_url && strlen(b->dir) > 5 && b->dir[strlen(b->dir) - 1] == '/')
		b->dir[strlen(b->dir) - 1] = '\0'; /* s3://BUCKET/PREFIX: items are PREFIX/NAME.zip */
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->opened, NULL);
	b->target = t;
	b->pool = pool;
	b->on_log = on_log;
	b->max_open = AFS_BACKUPS_MAX_OPEN;
	b->max_fds = SIZE_MAX;
	err = scan(b, NULL, msg, msglen);
	if (err != AFS_OK) {
		afs_backups_free(b);
		return err;
	}
	*out = b;
	return AFS_OK;
}

void afs_backups_free(struct afs_backups *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		afs_view_free(b->items[i]->view);
		item_free(b->items[i]);
	}
	close_list(b->gone);
	free(b->items);
	free(b->dir);
	free(b->list_url);
	pthread_cond_destroy(&b->opened);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* Whether the directory may have changed since the last scan: its mtime
 * moved, or the scan began so soon after the mtime it saw that a later
 * change could carry the same timestamp (file systems stamp with a clock
 * of a few milliseconds' grain; a second is ample). */
static bool stale(const struct afs_backups *b, const struct stat *st)
{
	const struct timespec *m = &b->dir_mtime, *s = &b->scanned_at;
	double since = (double)(s->tv_sec - m->tv_sec) + (double)(s->tv_nsec - m->tv_nsec) / 1e9;

	return st->st_mtim.tv_sec != m->tv_sec || st->st_mtim.tv_nsec != m->tv_nsec || since < 1.0;
}

void afs_backups_refresh(struct afs_backups *b)
{
	void (*on_replaced)(void *ctx, const char *name, size_t len, struct afs_view *v);
	struct afs_view *closing = NULL;
	struct left left = { 0 };
	struct stat st;
	char msg[256];

	pthread_mutex_lock(&b->mu);
	if (b->list_url || stat(b->dir, &st) != 0 || stale(b, &st)) { /* a prefix: listed each time */
		if (scan(b, &left, msg, sizeof(msg)) != AFS_OK)
			afs_log(AFS_LOG_WARN, "%s: %s", b->dir, msg); /* the list stays as it was */
	}
	sweep(b, &closing);
	trim(b, b->max_open, &closing);
	on_replaced = b->on_replaced;
	pthread_mutex_unlock(&b->mu);
	close_list(closing);
	for (size_t i = 0; i < left.n; i++) {
		if (on_replaced)
			on_replaced(b->on_replaced_ctx, left.names[i], strlen(left.names[i]), NULL);
		free(left.names[i]);
	}
	free(left.names);
}

void afs_backups_put(struct afs_backups *b, struct afs_view *v)
{
	struct afs_view *closing = NULL;

	if (!v)
		return;
	pthread_mutex_lock(&b->mu);
	if (v->refs > 0)
		v->refs--;
	if (v->gone && v->refs == 0)
		sweep(b, &closing);
	if (v->refs == 0 && b->nopen > b->max_open) /* what kept it open past the LRU's bound is gone */
		trim(b, b->max_open, &closing);
	pthread_mutex_unlock(&b->mu);
	close_list(closing);
}

void afs_backups_each(struct afs_backups *b, int (*fn)(void *ctx, const char *name, const struct stat *st),
		      void *ctx)
{
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < b->n; i++) {
		if (fn(ctx, b->items[i]->name, &b->items[i]->st) != 0)
			break;
	}
	pthread_mutex_unlock(&b->mu);
}

enum afs_err afs_backups_latest(struct afs_backups *b, char *buf, size_t len)
{
	const struct item *best = NULL;
	struct afs_backup_age best_age = { 0 };

	pthread_mutex_lock(&b->mu); /* the items are in name order, as the rule takes them */
	for (size_t i = 0; i < b->n; i++) {
		const struct item *it = b->items[i];
		struct afs_backup_age age = afs_backupname_age(it->name, it->st.st_mtim.tv_sec);

		if (!best || afs_backupname_newer(age, best_age)) {
			best = it;
			best_age = age;
		}
	}
	if (best)
		snprintf(buf, len, "%s", best->name);
	pthread_mutex_unlock(&b->mu);
	return best ? AFS_OK : AFS_E_NOENT;
}

enum afs_err afs_backups_stat(struct afs_backups *b, const char *name, size_t len, struct stat *st)
{
	struct item *it;

	pthread_mutex_lock(&b->mu);
	it = find(b, name, len, NULL);
	if (it)
		*st = it->st;
	pthread_mutex_unlock(&b->mu);
	return it ? AFS_OK : AFS_E_NOENT;
}

/* The item of name[0..len) with no open in progress: waits for one; the
 * caller holds b->mu.  NULL when there is no such archive. */
static struct item *find_settled(struct afs_backups *b, const char *name, size_t len)
{
	struct item *it;

	while ((it = find(b, name, len, NULL)) && it->opening)
		pthread_cond_wait(&b->opened, &b->mu); /* the list may change meanwhile: look again */
	return it;
}

/* The error for an open(2) that failed with e. */
static enum afs_err open_errno(int e)
{
	switch (e) {
	case EMFILE: return AFS_E_MFILE;
	case ENFILE: return AFS_E_NFILE;
	case ENOENT: return AFS_E_NOENT;
	case ENOMEM: return AFS_E_NOMEM;
	default: return AFS_E_IO;
	}
}

/* Whether err says that a descriptor was lacking, not what the archive is. */
static bool no_fd(enum afs_err err)
{
	return err == AFS_E_MFILE || err == AFS_E_NFILE;
}

/* Sees that a descriptor can be had and which file path names now (*st),
 * by opening it for a moment: 0 or the errno of the failure. */
static int probe(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), e = 0;

	if (fd < 0)
		return errno;
	if (fstat(fd, st) != 0)
		e = errno;
	close(fd);
	return e;
}

/* Probes path; when no descriptor is left, closes one idle view of the
 * LRU (if any) and tries once more.  Logs a failure but for a lack of
 * descriptors (the caller logs that once) and a file gone.  mu not held. */
static enum afs_err probe_room(struct afs_backups *b, const char *path, struct stat *st)
{
	struct afs_view *closing = NULL;
	int e = probe(path, st);

	if (e == EMFILE || e == ENFILE) {
		pthread_mutex_lock(&b->mu);
		trim(b, b->nopen - 1, &closing);
		pthread_mutex_unlock(&b->mu);
		if (closing) {
			close_list(closing);
			e = probe(path, st);
		}
	}
	if (e && e != EMFILE && e != ENFILE && e != ENOENT)
		afs_log(AFS_LOG_ERR, "%s: %s", path, strerror(e));
	return e ? open_errno(e) : AFS_OK;
}

/* Logs a lookup that lacked a descriptor, once until an open succeeds
 * again.  mu held. */
static void log_short(struct afs_backups *b, const char *path, enum afs_err err)
{
	if (b->short_logged)
		return;
	b->short_logged = true;
	afs_log(AFS_LOG_ERR, "%s: not opened: %s (%zu archives open; lookups into archives not open answer so "
		"until descriptors are free)", path, afs_strerror(err), b->nopen);
}

/* Opens the file of it into *out; logs why not, but a lack of
 * descriptors (the caller logs that once).  mu not held. */
static enum afs_err open_view(struct afs_backups *b, struct item *it, struct afs_view **out)
{
	enum afs_err err;
	char msg[512];

	err = afs_view_open(it->path, b->target, b->pool, b->on_log, out, msg, sizeof(msg));
	if (err == AFS_OK)
		return AFS_OK;
	if (err != AFS_E_NOMEM && !b->list_url) {
		struct stat st;
		enum afs_err again = open_errno(probe(it->path, &st));

		if (no_fd(again))
			return again; /* short of descriptors, not a bad archive: not logged as one */
	}
	afs_log(AFS_LOG_ERR, "%s: %s", it->path, msg);
	return err;
}

/* Keeps v, just opened from the file *now, in it, first in the LRU; the
 * item takes the file's stat (the directory's entry is refreshed when the
 * file changed since the scan).  But when a scan meanwhile dropped the
 * item or saw its file change from *scanned, v is gone.  Returns whether
 * the item was last opened from another file.  mu held. */
static bool keep_view(struct afs_backups *b, struct item *it, struct afs_view *v, const struct stat *scanned,
		      const struct stat *now)
{
	bool replaced = it->was_opened && !same_file(&it->opened, now);

	it->opened = *now;
	it->was_opened = true;
	b->short_logged = false;
	if (it->dropped || !same_file(&it->st, scanned)) {
		let_go(b, v);
		return replaced;
	}
	it->view = v;
	lru_touch(b, it);
	it->st = *now;
	return replaced;
}

/* Opens the archive of it, marked opening and counted in nopen, without
 * holding b->mu (held on entry and on return), after closing the views of
 * closing; the file was *st when the lookup began.  Keeps the view in it,
 * first in the LRU, with the caller's reference, unless a scan meanwhile
 * saw the file replaced or gone: then the view is gone (closed when its
 * caller puts it back) and the next lookup opens the file anew.  The item
 * takes the stat of the file opened: a file replaced since the last scan
 * is shown as it is now.  A failure for lack of a descriptor, or of a file
 * gone meanwhile, is not remembered.  *replaced tells whether the item
 * was last opened from another file. */
static enum afs_err open_item(struct afs_backups *b, struct item *it, const struct stat *st,
			      struct afs_view *closing, struct afs_view **out, bool *replaced)
{
	void (*hook)(void *ctx, const char *name) = b->on_open;
	void *hook_ctx = b->on_open_ctx;
	struct stat scanned = it->st, now = *st;
	enum afs_err err;

	pthread_mutex_unlock(&b->mu);
	close_list(closing);
	if (hook)
		hook(hook_ctx, it->name);
	if (!b->list_url) /* an object holds no descriptor */
		err = probe_room(b, it->path, &now);
	else
		err = AFS_OK;
	if (err == AFS_OK)
		err = open_view(b, it, out);
	pthread_mutex_lock(&b->mu);
	it->opening = false;
	if (!no_fd(err) && err != AFS_E_NOENT) {
		it->failed = err;
		it->failed_st = now;
	}
	if (*out) {
		(*out)->refs = 1;
		*replaced = keep_view(b, it, *out, &scanned, &now);
	} else {
		b->nopen--;
		if (no_fd(err))
			log_short(b, it->path, err);
	}
	if (it->dropped)
		item_free(it);
	pthread_cond_broadcast(&b->opened);
	return err;
}

/* Makes room for one more open view: closes least recently used idle
 * views into *closing while max_open or more are open.  AFS_E_MFILE when
 * max_fds are open and none can be closed.  mu held. */
static enum afs_err make_room(struct afs_backups *b, struct afs_view **closing)
{
	trim(b, b->max_open - 1, closing);
	return b->nopen >= b->max_fds ? AFS_E_MFILE : AFS_OK;
}

enum afs_err afs_backups_view(struct afs_backups *b, const char *name, size_t len, struct afs_view **out)
{
	void (*on_replaced)(void *ctx, const char *name, size_t len, struct afs_view *v) = NULL;
	struct afs_view *closing = NULL;
	enum afs_err err = AFS_OK;
	bool replaced = false;
	struct item *it;
	struct stat st;

	*out = NULL;
	pthread_mutex_lock(&b->mu);
	it = find_settled(b, name, len);
	if (!it) {
		err = AFS_E_NOENT;
		goto out;
	}
	if (it->view) {
		*out = it->view;
		it->view->refs++;
		lru_touch(b, it);
		goto out;
	}
	if (b->list_url) {
		st = it->st; /* as the last listing showed it: the open checks its ETag from then on */
	} else if (stat(it->path, &st) != 0) {
		err = AFS_E_NOENT; /* gone since the last scan */
		goto out;
	}
	if (it->failed != AFS_OK && same_file(&it->failed_st, &st)) {
		err = it->failed;
		goto out;
	}
	err = make_room(b, &closing);
	if (err != AFS_OK) {
		log_short(b, it->path, err);
		goto out;
	}
	/* One open per archive: a second caller for it waits in find_settled()
	 * instead of building the same index twice. */
	it->opening = true;
	b->nopen++;
	err = open_item(b, it, &st, closing, out, &replaced);
	closing = NULL;
	if (replaced && *out)
		on_replaced = b->on_replaced;
out:
	pthread_mutex_unlock(&b->mu);
	close_list(closing);
	if (on_replaced)
		on_replaced(b->on_replaced_ctx, name, len, *out);
	return err;
}

void afs_backups_limit(struct afs_backups *b, size_t max_open, size_t max_fds)
{
	struct afs_view *closing = NULL;

	pthread_mutex_lock(&b->mu);
	b->max_fds = max_fds ? max_fds : 1;
	b->max_open = max_open ? max_open : 1;
	if (b->max_open > b->max_fds)
		b->max_open = b->max_fds;
	trim(b, b->max_open, &closing);
	pthread_mutex_unlock(&b->mu);
	close_list(closing);
}

size_t afs_backups_open_count(struct afs_backups *b)
{
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = b->nopen;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void afs_backups_on_open(struct afs_backups *b, void (*fn)(void *ctx, const char *name), void *ctx)
{
	pthread_mutex_lock(&b->mu);
	b->on_open = fn;
	b->on_open_ctx = ctx;
	pthread_mutex_unlock(&b->mu);
}

void afs_backups_on_replaced(struct afs_backups *b,
			     void (*fn)(void *ctx, const char *name, size_t len, struct afs_view *v), void *ctx)
{
	pthread_mutex_lock(&b->mu);
	b->on_replaced = fn;
	b->on_replaced_ctx = ctx;
	pthread_mutex_unlock(&b->mu);
}

void afs_backups_totals(struct afs_backups *b, uint64_t *count, uint64_t *bytes)
{
	pthread_mutex_lock(&b->mu);
	*count = b->n;
	*bytes = 0;
	for (size_t i = 0; i < b->n; i++)
		*bytes += (uint64_t)b->items[i]->st.st_size;
	pthread_mutex_unlock(&b->mu);
}
