/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/index.c: names, the tree, lookups and refused archives. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "index.h"
#include "testutil.h"

static struct afs_index *build(const char *name, const struct tu_entry *e, size_t n, enum afs_err want)
{
	struct afs_archive *a = NULL;
	struct afs_index *ix = (void *)1;
	char msg[256] = "";

	CHECK(afs_archive_open(tu_zip(name, e, n), &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == want);
	if (want != AFS_OK)
		CHECK(ix == NULL && msg[0] != '\0');
	afs_archive_free(a); /* the index keeps no reference */
	return ix;
}

static uint32_t look(struct afs_index *ix, const char *path)
{
	uint32_t id = AFS_NONE;
	CHECK(afs_index_lookup(ix, path, &id) == AFS_OK);
	return id;
}

int main(void)
{
	const char *good[] = { "a", "a/b", "dir/", "café/x y.txt", "..a", "a..", ".hidden/x" };
	const char *badn[] = { "", "/abs", "a/../b", "..", "./a", "a/./b", "a//b", "../x", "a/..", "/",
			       "uploads//", "a/b//", "//" };
	char longc[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		CHECK(afs_index_check_name(good[i]) == AFS_OK);
	for (size_t i = 0; i < sizeof(badn) / sizeof(*badn); i++)
		CHECK(afs_index_check_name(badn[i]) == AFS_E_BADNAME);
	memset(longc, 'x', 256);
	longc[256] = '\0';
	CHECK(afs_index_check_name(longc) == AFS_E_BADNAME);
	longc[255] = '\0';
	CHECK(afs_index_check_name(longc) == AFS_OK);

	struct tu_entry e[] = {
		{ "manifest.json", "{}", 2, 1, 0600, 0 },
		{ "uploads/logos/a.png", "PNG", 3, 1, S_IFREG | 0644, 1700000000 },
		{ "uploads/logos/b.png", "PNG2", 4, 0, S_IFREG | 04755, 0 },
		{ "uploads/x/y/z.txt", "zz", 2, 1, 0, 0 },
		{ "uploads/empty/", "", 0, 0, S_IFDIR | 0700, 0 },
		{ "link", "uploads/logos/a.png", 19, 0, S_IFLNK | 0777, 0 },
	};
	struct afs_index *ix = build("good.zip", e, 6, AFS_OK);
	const struct afs_node *n;
	uint32_t id;

	CHECK(ix != NULL);
	/* root, manifest, uploads, logos, a, b, x, y, z, empty, link */
	CHECK(afs_index_count(ix) == 11);
	CHECK(afs_index_memory(ix) > 11 * sizeof(struct afs_node));
	CHECK(look(ix, "/") == 0 && strcmp(afs_index_path(ix, 0), "") == 0 && strcmp(afs_index_name(ix, 0), "") == 0);
	CHECK(S_ISDIR(afs_index_node(ix, 0)->mode));

	id = look(ix, "/uploads/logos/a.png");
	n = afs_index_node(ix, id);
	CHECK(n->mode == (S_IFREG | 0644) && n->size == 3 && n->mtime == 1700000000 && n->entry == 1);
	CHECK(strcmp(afs_index_path(ix, id), "uploads/logos/a.png") == 0 && strcmp(afs_index_name(ix, id), "a.png") == 0);
	CHECK(strcmp(afs_index_path(ix, n->parent), "uploads/logos") == 0);
	CHECK(afs_index_node(ix, look(ix, "/uploads/logos/b.png"))->mode == (S_IFREG | 0755)); /* setuid dropped */
	CHECK(afs_index_node(ix, look(ix, "/manifest.json"))->mode == (S_IFREG | 0600));     /* bare 0600 */
	CHECK(afs_index_node(ix, look(ix, "/uploads/x/y/z.txt"))->mode == (S_IFREG | 0644)); /* no attributes */
	CHECK(afs_index_node(ix, look(ix, "/link"))->mode == (S_IFLNK | 0777));
	n = afs_index_node(ix, look(ix, "/uploads/empty"));
	CHECK(n->mode == (S_IFDIR | 0700) && n->first_child == AFS_NONE && n->entry == 4);
	n = afs_index_node(ix, look(ix, "/uploads/x"));
	CHECK(n->mode == (S_IFDIR | 0755) && n->entry == AFS_NONE); /* synthesised */

	/* Children of uploads, in archive order. */
	const char *want[] = { "logos", "x", "empty" };
	size_t k = 0;
	for (uint32_t c = afs_index_node(ix, look(ix, "/uploads"))->first_child; c != AFS_NONE;
	     c = afs_index_node(ix, c)->next_sibling, k++)
		CHECK(k < 3 && strcmp(afs_index_name(ix, c), want[k]) == 0);
	CHECK(k == 3);

	CHECK(afs_index_lookup(ix, "/missing", &id) == AFS_E_NOENT);
	CHECK(afs_index_lookup(ix, "/uploads/missing/x", &id) == AFS_E_NOENT);
	CHECK(afs_index_lookup(ix, "/manifest.json/x", &id) == AFS_E_NOTDIR);
	CHECK(afs_index_lookup(ix, "/uploads/logos/a.png/deeper/still", &id) == AFS_E_NOTDIR);
	afs_index_free(ix);
	afs_index_free(NULL);

	/* Directories outnumbering entries (the hash table grows while
	 * building), and a directory's files split by another directory's. */
	char deep[200] = "";
	for (int i = 0; i < 60; i++)
		strcat(deep, i % 2 ? "b/" : "a/");
	strcat(deep, "f");
	struct tu_entry dg[] = {
		{ deep, "d", 1, 0, 0, 0 },
		{ "g/one", "1", 1, 0, 0, 0 },
		{ "g/two", "2", 1, 0, 0, 0 },
		{ "h/x", "x", 1, 0, 0, 0 },
		{ "g/three", "3", 1, 0, 0, 0 },
	};
	ix = build("deep.zip", dg, 5, AFS_OK);
	CHECK(ix != NULL && afs_index_count(ix) == 1 + 60 + 1 + 1 + 3 + 1 + 1);
	for (size_t i = 2; i <= strlen(deep); i += 2) {
		char prefix[200];
		snprintf(prefix, sizeof(prefix), "/%.*s", (int)i - 1, deep);
		CHECK(S_ISDIR(afs_index_node(ix, look(ix, prefix))->mode));
	}
	id = look(ix, deep);
	CHECK(afs_index_node(ix, id)->size == 1 && strcmp(afs_index_path(ix, id), deep) == 0);
	const char *gwant[] = { "one", "two", "three" };
	k = 0;
	for (uint32_t c = afs_index_node(ix, look(ix, "g"))->first_child; c != AFS_NONE;
	     c = afs_index_node(ix, c)->next_sibling, k++)
		CHECK(k < 3 && strcmp(afs_index_name(ix, c), gwant[k]) == 0 &&
		      afs_index_node(ix, c)->parent == look(ix, "g"));
	CHECK(k == 3);
	afs_index_free(ix);

	/* Refused archives. */
	struct tu_entry abs[] = { { "/etc/passwd", "r", 1, 0, 0, 0 } };
	struct tu_entry dd[] = { { "ok", "1", 1, 0, 0, 0 }, { "x/../../evil", "e", 1, 0, 0, 0 } };
	struct tu_entry fd[] = { { "a", "1", 1, 0, 0, 0 }, { "a/b", "2", 1, 0, 0, 0 } };
	struct tu_entry df[] = { { "a/b", "2", 1, 0, 0, 0 }, { "a", "1", 1, 0, 0, 0 } };
	struct tu_entry gf[] = { { "d/a", "1", 1, 0, 0, 0 }, { "d/b", "2", 1, 0, 0, 0 }, { "d/a/x", "3", 1, 0, 0, 0 } };
	CHECK(build("abs.zip", abs, 1, AFS_E_BADNAME) == NULL);
	CHECK(build("dd.zip", dd, 2, AFS_E_BADNAME) == NULL);
	CHECK(build("fd.zip", fd, 2, AFS_E_CONFLICT) == NULL);
	CHECK(build("df.zip", df, 2, AFS_E_CONFLICT) == NULL);
	CHECK(build("gf.zip", gf, 3, AFS_E_CONFLICT) == NULL);
	/* Duplicates: libzip's writer refuses them, so rename one entry in place. */
	struct tu_entry dup[] = { { "same", "1", 1, 0, 0, 0 }, { "samf", "2", 1, 0, 0, 0 } };
	char *p = tu_zip("dup.zip", dup, 2);
	CHECK(tu_patch_u32(p, 0x666d6173 /* "samf" */, 0x03000000 /* f -> e: "same" */) == 2);
	struct afs_archive *a = NULL;
	char msg[256];
	CHECK(afs_archive_open(p, &a, msg, sizeof(msg)) == AFS_OK);
	ix = (void *)1;
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_E_CONFLICT && ix == NULL && strstr(msg, "same"));
	afs_archive_free(a);
	/* A name with a NUL byte inside (libzip shows it otherwise): refused. */
	struct tu_entry nul[] = { { "ok", "1", 1, 0, 0, 0 }, { "uploads/a.txtZ../x", "2", 1, 0, 0, 0 } };
	p = tu_zip("nul.zip", nul, 2);
	CHECK(tu_patch_u32(p, 0x2e2e5a74 /* "tZ.." */, 0x00005a00 /* Z -> NUL */) == 2);
	CHECK(afs_archive_open(p, &a, msg, sizeof(msg)) == AFS_OK);
	ix = (void *)1;
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_E_BADNAME && ix == NULL);
	CHECK(strstr(msg, "entry 'uploads/a.txt") && strstr(msg, "NUL byte"));
	afs_archive_free(a);
	return tu_done("index");
}
