/* SPDX-License-Identifier: MIT */
/* archfs diff: two central directories compared, one line per change. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "backupname.h"
#include "diff.h"
#include "index.h"
#include "log.h"
#include "report.h"

enum { EXIT_SAME = 0, EXIT_DIFFERENT = 1, EXIT_USAGE = 2, EXIT_TROUBLE = 3 };

#define USAGE "usage: archfs diff [--json] OLD.zip NEW.zip [PATH] | archfs diff [--json] BACKUP_DIR OLD NEW [PATH]"

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct afs_diff_entry *)a)->path, ((const struct afs_diff_entry *)b)->path);
}

void afs_diff_sort(struct afs_diff_entry *e, size_t n)
{
	if (n > 1)
		qsort(e, n, sizeof(*e), cmp_entry);
}

bool afs_diff_in_scope(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return n == 0 || (strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/'));
}

/* An entry on one side only is listed unless it is a directory implied by
 * the paths below it (which are listed themselves). */
static bool listed_alone(const struct afs_diff_entry *e)
{
	return !S_ISDIR(e->mode) || !e->has_children;
}

int afs_diff_compare(const struct afs_diff_entry *old, size_t nold, const struct afs_diff_entry *new_, size_t nnew,
		     const char *prefix, afs_diff_fn fn, void *ctx)
{
	size_t i = 0, j = 0;
	int rc = 0;

	while (rc == 0 && (i < nold || j < nnew)) {
		int c = i == nold ? 1 : j == nnew ? -1 : strcmp(old[i].path, new_[j].path);
		const struct afs_diff_entry *o = c <= 0 ? &old[i++] : NULL, *n = c >= 0 ? &new_[j++] : NULL;

		if (!afs_diff_in_scope(o ? o->path : n->path, prefix))
			continue;
		if (!n) {
			if (listed_alone(o))
				rc = fn(ctx, AFS_DIFF_REMOVED, o, NULL);
		} else if (!o) {
			if (listed_alone(n))
				rc = fn(ctx, AFS_DIFF_ADDED, NULL, n);
		} else if ((o->mode & S_IFMT) != (n->mode & S_IFMT)) {
			rc = fn(ctx, AFS_DIFF_TYPE, o, n);
		} else if (!S_ISDIR(o->mode) && (o->size != n->size || o->crc != n->crc || o->mode != n->mode)) {
			rc = fn(ctx, AFS_DIFF_MODIFIED, o, n);
		}
	}
	return rc;
}

/* One archive, opened and indexed, and its tree as diff entries. */
struct side {
	const char *name; /* as given, for messages */
	struct afs_archive *a;
	struct afs_index *ix;
	struct afs_diff_entry *e;
	size_t n;
};

static void side_release(struct side *s)
{
	free(s->e);
	afs_index_free(s->ix);
	afs_archive_free(s->a);
}

/* Opens the archive at path (the central directory only) into s.  On
 * error, says why in one line and returns false. */
static bool side_open(struct side *s, const char *path)
{
	char msg[512] = "";
	enum afs_err err;
	uint32_t count;

	s->name = path;
	err = afs_archive_open(path, &s->a, msg, sizeof(msg));
	if (err == AFS_OK)
		err = afs_index_build(s->a, &s->ix, msg, sizeof(msg));
	if (err != AFS_OK) {
		afs_log(AFS_LOG_ERR, "%s: %s", path, msg[0] ? msg : afs_strerror(err)); /* msg may name an entry */
		return false;
	}
	count = afs_index_count(s->ix);
	s->e = calloc(count ? count : 1, sizeof(*s->e));
	if (!s->e) {
		afs_log(AFS_LOG_ERR, "%s: out of memory", path);
		return false;
	}
	for (uint32_t id = 1; id < count; id++) { /* node 0 is the root */
		const struct afs_node *nd = afs_index_node(s->ix, id);

		s->e[s->n++] = (struct afs_diff_entry){
			.path = afs_index_path(s->ix, id),
			.size = S_ISDIR(nd->mode) ? 0 : nd->size,
			.crc = S_ISDIR(nd->mode) ? 0 : nd->crc,
			.mode = nd->mode,
			.has_children = nd->first_child != AFS_NONE,
		};
	}
	afs_diff_sort(s->e, s->n);
	return true;
}

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	default: return "file";
	}
}

struct out {
	bool json;
	uint64_t count[4]; /* by enum afs_diff_change */
	bool failed;       /* out of memory */
};

static void side_view(const struct afs_diff_entry *e, struct afs_diff_side *v)
{
	*v = (struct afs_diff_side){ .type = type_name(e->mode), .mode = e->mode & 07777, .size = e->size, .crc = e->crc };
}

static int show(void *ctx, enum afs_diff_change c, const struct afs_diff_entry *old, const struct afs_diff_entry *new_)
{
	static const char letter[] = { 'A', 'D', 'M', 'T' };
	static const char *const word[] = { "added", "removed", "modified", "type_changed" };
	struct out *o = ctx;
	const char *path = old ? old->path : new_->path;
	size_t len = strlen(path);
	char *text;

	o->count[c]++;
	if (o->json) {
		struct afs_diff_side ov, nv;

		if (old)
			side_view(old, &ov);
		if (new_)
			side_view(new_, &nv);
		text = afs_report_diff_entry(path, word[c], old ? &ov : NULL, new_ ? &nv : NULL);
		if (text)
			fputs(text, stdout);
	} else if ((text = malloc(4 * len + 1))) { /* an escape is at most 4 bytes a byte */
		printf("%c\t%s\n", letter[c], afs_log_escape(path, text, 4 * len + 1));
	}
	o->failed |= !text;
	free(text);
	return o->failed;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dir/file when file is an archive of the backups directory dir, as the
 * mount shows it (a regular file NAME.zip); else NULL. */
static char *archive_file(const char *dir, const char *file)
{
	struct stat st;
	size_t len;
	char *path;

	if (afs_backupname_kind(file, &len) != AFS_BACKUPNAME_ARCHIVE || asprintf(&path, "%s/%s", dir, file) < 0)
		return NULL;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		return path;
	free(path);
	return NULL;
}

/* The file of the backup that the mount of backups directory dir shows as
 * name (NAME, NAME.zip or latest) into *path (malloc'd).  Says why in one
 * line and returns false when there is none. */
static bool find_backup(const char *dir, const char *name, char **path)
{
	struct afs_backup_age best_age = { 0 };
	char **names = NULL, *best = NULL, *file;
	size_t n = 0, cap = 0, len;
	struct stat st;
	struct dirent *de;
	bool ok = false;
	DIR *d;

	*path = NULL;
	if (strcmp(name, AFS_BACKUPS_LATEST) != 0) {
		/* NAME as the mount shows it, else the file NAME.zip itself */
		if (!strchr(name, '/') && asprintf(&file, "%s.zip", name) >= 0) {
			*path = archive_file(dir, file);
			free(file);
			if (!*path)
				*path = archive_file(dir, name);
		}
		if (!*path)
			afs_log(AFS_LOG_ERR, "diff: %s: no backup named '%s'", dir, name);
		return *path != NULL;
	}
	if (!(d = opendir(dir))) {
		afs_log(AFS_LOG_ERR, "diff: %s: %s", dir, strerror(errno));
		return false;
	}
	while ((de = readdir(d))) {
		if (afs_backupname_kind(de->d_name, &len) != AFS_BACKUPNAME_ARCHIVE)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			char **g = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(*g));

			if (!g)
				goto nomem;
			names = g;
		}
		if (!(names[n] = strdup(de->d_name)))
			goto nomem;
		names[n++][len] = '\0'; /* the name shown */
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char zip[4096];
		struct afs_backup_age age;

		snprintf(zip, sizeof(zip), "%s.zip", names[i]);
		if (fstatat(dirfd(d), zip, &st, 0) != 0)
			continue; /* gone meanwhile */
		age = afs_backupname_age(names[i], st.st_mtim.tv_sec);
		if (!best || afs_backupname_newer(age, best_age)) {
			best = names[i];
			best_age = age;
		}
	}
	if (!best)
		afs_log(AFS_LOG_ERR, "diff: %s: no backup in it, so no '%s'", dir, name);
	else if (asprintf(path, "%s/%s.zip", dir, best) < 0)
		goto nomem;
	ok = best != NULL;
	goto out;
nomem:
	afs_log(AFS_LOG_ERR, "diff: out of memory");
	*path = NULL;
out:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ok;
}

/* Opens both archives and writes their differences within prefix. */
static int run(const char *old_path, const char *new_path, const char *prefix, bool json)
{
	struct side o = { 0 }, n = { 0 };
	struct out out = { .json = json };
	uint32_t id;
	int rc = EXIT_TROUBLE;

	if (!side_open(&o, old_path) || !side_open(&n, new_path))
		goto out;
	if (prefix[0]) {
		char *p = NULL;

		if (asprintf(&p, "/%s", prefix) < 0) {
			afs_log(AFS_LOG_ERR, "diff: out of memory");
			goto out;
		}
		if (afs_index_lookup(o.ix, p, &id) != AFS_OK && afs_index_lookup(n.ix, p, &id) != AFS_OK) {
			afs_log(AFS_LOG_ERR, "diff: '%s' is in neither archive", prefix);
			rc = EXIT_USAGE;
			free(p);
			goto out;
		}
		free(p);
	}
	afs_diff_compare(o.e, o.n, n.e, n.n, prefix, show, &out);
	if (json && !out.failed) {
		char *sum = afs_report_diff_summary(out.count[AFS_DIFF_ADDED], out.count[AFS_DIFF_REMOVED],
						    out.count[AFS_DIFF_MODIFIED], out.count[AFS_DIFF_TYPE]);

		if (sum)
			fputs(sum, stdout);
		out.failed = !sum;
		free(sum);
	}
	if (out.failed) {
		afs_log(AFS_LOG_ERR, "diff: out of memory");
		goto out;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		afs_log(AFS_LOG_ERR, "diff: writing the output: %s", strerror(errno));
		goto out;
	}
	rc = out.count[0] + out.count[1] + out.count[2] + out.count[3] ? EXIT_DIFFERENT : EXIT_SAME;
out:
	side_release(&o);
	side_release(&n);
	return rc;
}

int afs_diff_main(int argc, char *argv[])
{
	const char *pos[4], *prefix = "";
	char *old_path = NULL, *new_path = NULL, *pre = NULL;
	bool json = false, options = true;
	int npos = 0, rc = EXIT_USAGE, first;
	struct stat st;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && strcmp(a, "--") == 0) {
			options = false;
		} else if (options && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			printf("%s\n", USAGE);
			return EXIT_SAME;
		} else if (options && strcmp(a, "--json") == 0) {
			json = true;
		} else if (options && a[0] == '-' && a[1]) {
			/* named without its value: --database=URL may hold a password */
			afs_log(AFS_LOG_ERR, "diff: unknown option '%.*s' (%s)", (int)strcspn(a, "="), a, USAGE);
			return EXIT_USAGE;
		} else if (npos == 4) {
			afs_log(AFS_LOG_ERR, "diff: too many arguments (%s)", USAGE);
			return EXIT_USAGE;
		} else {
			pos[npos++] = a;
		}
	}
	if (npos < 2) {
		afs_log(AFS_LOG_ERR, "diff: %s", USAGE);
		return EXIT_USAGE;
	}
	/* BACKUP_DIR OLD NEW [PATH] when the first is a directory */
	if (stat(pos[0], &st) == 0 && S_ISDIR(st.st_mode)) {
		if (npos < 3) {
			afs_log(AFS_LOG_ERR, "diff: %s is a directory: name two backups in it (%s)", pos[0], USAGE);
			return EXIT_USAGE;
		}
		if (!find_backup(pos[0], pos[1], &old_path) || !find_backup(pos[0], pos[2], &new_path)) {
			rc = EXIT_TROUBLE;
			goto out;
		}
		first = 3;
	} else if (npos == 4) {
		afs_log(AFS_LOG_ERR, "diff: %s: not a directory of backups (%s)", pos[0], USAGE);
		return EXIT_USAGE;
	} else if (!(old_path = strdup(pos[0])) || !(new_path = strdup(pos[1]))) {
		afs_log(AFS_LOG_ERR, "diff: out of memory");
		rc = EXIT_TROUBLE;
		goto out;
	} else {
		first = 2;
	}
	if (npos > first) { /* PATH: leading and trailing slashes dropped, "." or "/" for everything */
		size_t len;

		if (!(pre = strdup(pos[first] + strspn(pos[first], "/")))) {
			afs_log(AFS_LOG_ERR, "diff: out of memory");
			rc = EXIT_TROUBLE;
			goto out;
		}
		for (len = strlen(pre); len > 0 && pre[len - 1] == '/'; len--)
			pre[len - 1] = '\0';
		prefix = strcmp(pre, ".") == 0 ? "" : pre;
	}
	rc = run(old_path, new_path, prefix, json);
out:
	free(pre);
	free(old_path);
	free(new_path);
	return rc;
}
