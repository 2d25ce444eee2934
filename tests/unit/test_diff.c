/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/cli/diff.c's comparison, of the JSON lines of
 * `archfs diff --json` (restore/report.c) and of the backups directory's
 * name rules it shares with the mount (fs/archive/backupname.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "backupname.h"
#include "diff.h"
#include "report.h"
#include "testutil.h"

#define F(p, s, c) { .path = p, .size = s, .crc = c, .mode = S_IFREG | 0644 }
#define D(p, kids) { .path = p, .mode = S_IFDIR | 0755, .has_children = kids }

struct seen {
	char text[1024];
	int stop_after; /* 0: never stop */
	int n;
};

static int note(void *ctx, enum afs_diff_change c, const struct afs_diff_entry *old,
		const struct afs_diff_entry *new_)
{
	struct seen *s = ctx;
	size_t len = strlen(s->text);

	CHECK((c == AFS_DIFF_ADDED) == (old == NULL));
	CHECK((c == AFS_DIFF_REMOVED) == (new_ == NULL));
	snprintf(s->text + len, sizeof(s->text) - len, "%c %s;", "ADMT"[c], old ? old->path : new_->path);
	return ++s->n == s->stop_after ? 7 : 0;
}

static const char *diff(struct afs_diff_entry *o, size_t no, struct afs_diff_entry *n, size_t nn, const char *prefix,
			struct seen *s)
{
	afs_diff_sort(o, no);
	afs_diff_sort(n, nn);
	s->text[0] = '\0';
	s->n = 0;
	afs_diff_compare(o, no, n, nn, prefix, note, s);
	return s->text;
}

static void compare(void)
{
	/* given out of order: sorted by path first */
	struct afs_diff_entry o[] = {
		F("same", 10, 1),         F("gone", 3, 2),          F("crc", 5, 3),       F("size", 5, 4),
		F("a", 4, 5),             D("dir", 1),              F("dir/x", 1, 6),      D("empty", 0),
		F("mode", 1, 7),          D("d2f", 1),              F("d2f/y", 1, 8),      F("link", 4, 9),
		D("up", 1),               D("up/av", 1),            F("up/av/1.png", 9, 10), F("up/b.txt", 1, 11),
	};
	struct afs_diff_entry n[] = {
		F("up/av/1.png", 9, 99),  F("same", 10, 1),         F("crc", 5, 33),      F("size", 6, 4),
		D("a", 1),                F("a/x", 1, 12),          F("new", 1, 13),      F("mode", 1, 7),
		F("d2f", 1, 14),          F("link", 4, 9),          D("up", 1),           D("up/av", 1),
		F("up/b.txt", 1, 11),     D("dir", 1),              F("dir/x", 1, 6),     D("newempty", 0),
		D("newdir", 1),           F("newdir/f", 0, 0),
	};
	struct seen s = { 0 };

	n[7].mode = S_IFREG | 0600; /* "mode": permission bits only */
	n[9].mode = S_IFLNK | 0777; /* "link": a file became a symlink */
	CHECK(strcmp(diff(o, 16, n, 18, "", &s),
		     "T a;A a/x;M crc;T d2f;D d2f/y;D empty;D gone;T link;M mode;A new;A newdir/f;A newempty;"
		     "M size;M up/av/1.png;") == 0);
	/* PATH: a directory, a file, a prefix that is not a whole component */
	CHECK(strcmp(diff(o, 16, n, 18, "up/av", &s), "M up/av/1.png;") == 0);
	CHECK(strcmp(diff(o, 16, n, 18, "up", &s), "M up/av/1.png;") == 0);
	CHECK(strcmp(diff(o, 16, n, 18, "d2f", &s), "T d2f;D d2f/y;") == 0);
	CHECK(strcmp(diff(o, 16, n, 18, "crc", &s), "M crc;") == 0);
	CHECK(strcmp(diff(o, 16, n, 18, "cr", &s), "") == 0);
	CHECK(strcmp(diff(o, 16, n, 18, "same", &s), "") == 0);
	/* a side alone: everything added or removed, implied directories not listed */
	CHECK(strcmp(diff(o, 0, n, 18, "up", &s), "A up/av/1.png;A up/b.txt;") == 0);
	CHECK(strcmp(diff(o, 16, n, 0, "up", &s), "D up/av/1.png;D up/b.txt;") == 0);
	CHECK(strcmp(diff(o, 16, o, 16, "", &s), "") == 0);
	CHECK(strcmp(diff(NULL, 0, NULL, 0, "", &s), "") == 0);
	/* the callback stops the walk, and its value is returned */
	s.stop_after = 2;
	afs_diff_sort(o, 16);
	afs_diff_sort(n, 18);
	s.text[0] = '\0';
	s.n = 0;
	CHECK(afs_diff_compare(o, 16, n, 18, "", note, &s) == 7 && strcmp(s.text, "T a;A a/x;") == 0);
	/* paths sort by bytes: '.' (0x2e) before '/' (0x2f) */
	struct afs_diff_entry p[] = { F("a/x", 1, 1), F("a.b", 1, 1), F("a", 1, 1) };
	afs_diff_sort(p, 3);
	CHECK(strcmp(p[0].path, "a") == 0 && strcmp(p[1].path, "a.b") == 0 && strcmp(p[2].path, "a/x") == 0);
}

static void scope(void)
{
	CHECK(afs_diff_in_scope("anything", ""));
	CHECK(afs_diff_in_scope("uploads", "uploads"));
	CHECK(afs_diff_in_scope("uploads/a/b", "uploads/a"));
	CHECK(!afs_diff_in_scope("uploads/ab", "uploads/a"));
	CHECK(!afs_diff_in_scope("upload", "uploads"));
}

static void json(void)
{
	struct afs_diff_side o = { .type = "file", .mode = 0644, .size = 12, .crc = 0xab };
	struct afs_diff_side n = { .type = "symlink", .mode = 0777, .size = 5, .crc = 0xdeadbeef };
	char *j = afs_report_diff_entry("up/a\nb\t\"q\"", "type_changed", &o, &n);

	CHECK(j && strcmp(j, "{\"path\":\"up/a\\nb\\t\\\"q\\\"\",\"change\":\"type_changed\","
			    "\"old\":{\"type\":\"file\",\"mode\":\"0644\",\"size\":12,\"crc32\":\"000000ab\"},"
			    "\"new\":{\"type\":\"symlink\",\"mode\":\"0777\",\"size\":5,\"crc32\":\"deadbeef\"}}\n") == 0);
	free(j);
	j = afs_report_diff_entry("caf\xe9", "added", NULL, &o);
	CHECK(j && strstr(j, "{\"path\":\"caf\xef\xbf\xbd\",\"path_hex\":\"636166e9\",\"change\":\"added\",\"old\":null,"));
	free(j);
	j = afs_report_diff_entry("caf\xc3\xa9", "removed", &o, NULL);
	CHECK(j && strstr(j, "{\"path\":\"caf\xc3\xa9\",\"change\":\"removed\",") && strstr(j, "\"new\":null}\n"));
	free(j);
	j = afs_report_diff_summary(1, 2, 3, 4);
	CHECK(j && strcmp(j, "{\"summary\":{\"added\":1,\"removed\":2,\"modified\":3,\"type_changed\":4}}\n") == 0);
	free(j);
}

static void names(void)
{
	size_t len = 0;
	struct afs_backup_age a, b;

	CHECK(afs_backupname_kind("timetracker_backup_20261120_101502.zip", &len) == AFS_BACKUPNAME_ARCHIVE && len == 34);
	CHECK(afs_backupname_kind("x.zip.zip", &len) == AFS_BACKUPNAME_ARCHIVE && len == 5);
	CHECK(afs_backupname_kind("latest.zip", &len) == AFS_BACKUPNAME_LATEST);
	CHECK(afs_backupname_kind(".hidden.zip", &len) == AFS_BACKUPNAME_NONE);
	CHECK(afs_backupname_kind(".zip", &len) == AFS_BACKUPNAME_NONE);
	CHECK(afs_backupname_kind("notes.txt", &len) == AFS_BACKUPNAME_NONE);
	CHECK(afs_backupname_kind("x.ZIP", &len) == AFS_BACKUPNAME_NONE);
	/* the name's timestamp outranks a later mtime; then the later time; a tie goes to the later name */
	a = afs_backupname_age("timetracker_backup_20261120_101502", 2000000000);
	b = afs_backupname_age("timetracker_backup_20261121_090000", 1500000000);
	CHECK(a.named && b.named && a.at < b.at);
	CHECK(afs_backupname_newer(b, a) && !afs_backupname_newer(a, b));
	a = afs_backupname_age("copied-later", 2000000000);
	CHECK(!a.named && a.at == 2000000000 && !afs_backupname_newer(a, b) && afs_backupname_newer(b, a));
	CHECK(afs_backupname_newer(b, b));
}

int main(void)
{
	compare();
	scope();
	json();
	names();
	return tu_done("diff");
}
