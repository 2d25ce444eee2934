/* SPDX-License-Identifier: MIT */
/* The command line without libfuse: one table of archfs's options, read in
 * every form, the rest handed on to libfuse untouched. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"

enum kind { VALUE, FLAG };

struct opt {
	const char *name; /* with '-' between words */
	enum kind kind;
	size_t off;       /* of the const char * (VALUE) or bool (FLAG) in struct afs_args */
};

#define T(f) offsetof(struct afs_args, target.f)
static const struct opt opts[] = {
	{ "database", VALUE, T(database) },
	{ "uploads", VALUE, T(uploads) },
	{ "migrate", VALUE, T(migrate) },
	{ "flag-file", VALUE, T(flag_file) },
	{ "snapshot-dir", VALUE, T(snapshot_dir) },
	{ "pg-bindir", VALUE, T(pg_bindir) },
	{ "lock-wait", VALUE, T(lock_wait) },
	{ "seek-cache", VALUE, offsetof(struct afs_args, seek_cache) },
	{ "index-dir", VALUE, offsetof(struct afs_args, index_dir) },
	{ "max-open-archives", VALUE, offsetof(struct afs_args, max_open_archives) },
	{ "remote-cache", VALUE, offsetof(struct afs_args, remote_cache) },
	{ "s3-endpoint", VALUE, offsetof(struct afs_args, s3_endpoint) },
	{ "ca-file", VALUE, offsetof(struct afs_args, ca_file) },
	{ "no-snapshot", FLAG, T(no_snapshot) },
	{ "terminate-blockers", FLAG, T(terminate_blockers) },
	{ "create", FLAG, T(create) },
	{ "json", FLAG, offsetof(struct afs_args, json) },
};
#undef T

/* Access-time mount options that libfuse refuses: a read-only filesystem
 * never updates access times, so they change nothing and are dropped, and
 * an fstab line written like a disk's ("noatime,nodiratime", "relatime")
 * mounts. */
static const char *const atime_opts[] = {
	"diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
};

static bool atime_opt(const char *item)
{
	for (size_t i = 0; i < sizeof(atime_opts) / sizeof(atime_opts[0]); i++)
		if (strcmp(item, atime_opts[i]) == 0)
			return true;
	return false;
}

/* The option called name[0..len) ('_' matching '-'), or NULL. */
static const struct opt *find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const char *n = opts[i].name;
		size_t k = 0;

		while (k < len && n[k] && (name[k] == n[k] || (name[k] == '_' && n[k] == '-')))
			k++;
		if (k == len && !n[k])
			return &opts[i];
	}
	return NULL;
}

static char *keep(struct afs_args *a, char *s)
{
	if (!s)
		return NULL;
	if (a->nown == a->capown) {
		size_t cap = a->capown ? a->capown * 2 : 16;
		char **grown = realloc(a->own, cap * sizeof(*grown));

		if (!grown) {
			free(s);
			return NULL;
		}
		a->own = grown;
		a->capown = cap;
	}
	a->own[a->nown++] = s;
	return s;
}

static enum afs_err bad(struct afs_args *a, const char *why, const char *what)
{
	if (!a->bad[0])
		snprintf(a->bad, sizeof(a->bad), "%s '%s'%s", why, what,
			 strncmp(why, "unknown", 7) == 0 ? " (see archfs --help)" : "");
	return AFS_E_INVAL;
}

/* Stores value (NULL for none) into o, as spelled by the user in shown. */
static enum afs_err set(struct afs_args *a, const struct opt *o, const char *value, const char *shown)
{
	char *p = (char *)a + o->off;

	if (o->kind == FLAG) {
		if (value)
			return bad(a, "a value for the flag", shown);
		*(bool *)p = true;
		return AFS_OK;
	}
	if (!value)
		return bad(a, "no value for option", shown);
	if (!(*(const char **)p = keep(a, strdup(value))))
		return AFS_E_NOMEM;
	return AFS_OK;
}

static enum afs_err add_fuse(struct afs_args *a, const char *arg)
{
	char **grown = realloc(a->fuse, (size_t)(a->nfuse + 2) * sizeof(*grown));

	if (!grown)
		return AFS_E_NOMEM;
	a->fuse = grown;
	if (!(a->fuse[a->nfuse] = keep(a, strdup(arg))))
		return AFS_E_NOMEM;
	a->fuse[++a->nfuse] = NULL;
	return AFS_OK;
}

/* One -o list: archfs's items are taken, access-time ones dropped, the
 * others go on to libfuse as one "-o" list of their own, escapes kept. */
static enum afs_err olist(struct afs_args *a, const char *list)
{
	size_t n = strlen(list);
	char *item = malloc(n + 1), *rest = malloc(n + 1);
	size_t restlen = 0;
	enum afs_err err = AFS_OK;
	const char *p = list;

	if (!item || !rest) {
		err = AFS_E_NOMEM;
		goto out;
	}
	while (err == AFS_OK) {
		const char *start = p;
		size_t len = 0;
		const struct opt *o;
		char *eq;

		for (; *p && *p != ','; p++) { /* unescape "\," and "\\" */
			if (*p == '\\' && p[1])
				p++;
			item[len++] = *p;
		}
		item[len] = '\0';
		eq = strchr(item, '=');
		o = find(item, eq ? (size_t)(eq - item) : len);
		if (o) {
			err = set(a, o, eq ? eq + 1 : NULL, item);
		} else if (len > 0 && !atime_opt(item)) {
			if (restlen)
				rest[restlen++] = ',';
			memcpy(rest + restlen, start, (size_t)(p - start));
			restlen += (size_t)(p - start);
		}
		if (!*p)
			break;
		p++;
	}
	if (err == AFS_OK && restlen) {
		rest[restlen] = '\0';
		err = add_fuse(a, "-o");
		if (err == AFS_OK)
			err = add_fuse(a, rest);
	}
out:
	free(item);
	free(rest);
	return err;
}

enum afs_err afs_args_parse(struct afs_args *a, int argc, char *const argv[])
{
	enum afs_err err = AFS_OK;
	bool only_pos = false;

	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc && err != AFS_E_NOMEM; i++) {
		const char *arg = argv[i];

		if (only_pos || arg[0] != '-' || !arg[1]) {
			if (a->npos < AFS_ARGS_MAX_POS)
				a->pos[a->npos++] = keep(a, strdup(arg));
			else
				err = bad(a, "unexpected argument", arg);
			if (a->npos && !a->pos[a->npos - 1])
				err = AFS_E_NOMEM;
		} else if (strcmp(arg, "--") == 0) {
			only_pos = true;
		} else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			a->help = true;
		} else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
			a->version = true;
		} else if (strncmp(arg, "--", 2) == 0) {
			const char *eq = strchr(arg, '=');
			const struct opt *o = find(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));

			if (!o)
				err = bad(a, "unknown option", arg);
			else if (eq || o->kind == FLAG)
				err = set(a, o, eq ? eq + 1 : NULL, arg);
			else if (i + 1 < argc)
				err = set(a, o, argv[++i], arg);
			else
				err = set(a, o, NULL, arg);
		} else if (strncmp(arg, "-o", 2) == 0) {
			if (arg[2])
				err = olist(a, arg + 2);
			else if (i + 1 < argc)
				err = olist(a, argv[++i]);
			else
				err = bad(a, "no value for option", arg);
		} else {
			err = add_fuse(a, arg); /* -f, -d, -s: libfuse's */
		}
	}
	if (err == AFS_E_NOMEM)
		return err;
	return a->bad[0] ? AFS_E_INVAL : AFS_OK;
}

void afs_args_release(struct afs_args *a)
{
	for (size_t i = 0; i < a->nown; i++)
		free(a->own[i]);
	free(a->own);
	free(a->fuse);
	memset(a, 0, sizeof(*a));
}
