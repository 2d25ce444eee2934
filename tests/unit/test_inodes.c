/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/mount/inodes.c: numbers follow the kernel's lookups. */
#include <stdlib.h>
#include <string.h>
#include "inodes.h"
#include "testutil.h"

static int path_is(struct afs_inodes *t, uint64_t ino, const char *name, const char *want)
{
	char *p = afs_inodes_path(t, ino, name);
	int ok = p && strcmp(p, want) == 0;

	free(p);
	return ok;
}

int main(void)
{
	struct afs_inodes *t = afs_inodes_new(free);
	uint64_t a, b, c, under[8];
	char name[32];

	CHECK(t != NULL);
	CHECK(afs_inodes_ref(t, "/", 1) == AFS_ROOT_INO);
	CHECK(path_is(t, AFS_ROOT_INO, NULL, "/"));
	CHECK(path_is(t, AFS_ROOT_INO, "uploads", "/uploads"));
	a = afs_inodes_ref(t, "/uploads", 8);
	CHECK(a > AFS_ROOT_INO);
	CHECK(path_is(t, a, NULL, "/uploads"));
	CHECK(path_is(t, a, "x.txt", "/uploads/x.txt"));
	/* bad names give no path */
	CHECK(afs_inodes_path(t, a, "") == NULL);
	CHECK(afs_inodes_path(t, a, ".") == NULL);
	CHECK(afs_inodes_path(t, a, "..") == NULL);
	CHECK(afs_inodes_path(t, a, "a/b") == NULL);
	/* the same path, the same number, counted twice */
	CHECK(afs_inodes_ref(t, "/uploads/xyz", 8) == a);
	CHECK(afs_inodes_count(t) == 1);
	b = afs_inodes_ref(t, "/uploads/x.txt", 14);
	c = afs_inodes_ref(t, "/uploadsx", 9);
	CHECK(b != a && c != a && b != c);
	/* under: the path itself and below it, not a sibling sharing a prefix */
	CHECK(afs_inodes_under(t, "/uploads", 8, under, 8) == 2);
	CHECK((under[0] == a && under[1] == b) || (under[0] == b && under[1] == a));
	CHECK(afs_inodes_under(t, "/uploads", 8, under, 1) == 2);
	CHECK(afs_inodes_under(t, "/", 1, under, 8) == 3);
	/* forgetting: one of two lookups keeps it, the second drops it */
	afs_inodes_forget(t, a, 1);
	CHECK(path_is(t, a, NULL, "/uploads"));
	afs_inodes_forget(t, a, 1);
	CHECK(afs_inodes_count(t) == 2);
	CHECK(afs_inodes_under(t, "/uploads", 8, under, 8) == 1 && under[0] == b);
	afs_inodes_forget(t, AFS_ROOT_INO, 5); /* the root is never forgotten */
	CHECK(path_is(t, AFS_ROOT_INO, NULL, "/"));
	afs_inodes_forget(t, b, 3); /* more than it had */
	afs_inodes_forget(t, c, 1);
	CHECK(afs_inodes_count(t) == 0);
	/* many: the table grows and keeps every number */
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "/d/%d", i);
		CHECK(afs_inodes_ref(t, name, strlen(name)) != 0);
	}
	CHECK(afs_inodes_count(t) == 5000);
	snprintf(name, sizeof(name), "/d/%d", 4321);
	a = afs_inodes_ref(t, name, strlen(name));
	CHECK(path_is(t, a, NULL, "/d/4321"));
	CHECK(afs_inodes_count(t) == 5000);
	/* keys: the same path with more bytes after a NUL is another number,
	 * with its own data, freed with it; its path is the path */
	{
		static const char k1[] = "/.status\0\1\0\0\0", k2[] = "/.status\0\2\0\0\0";
		int fresh = 0;
		char *d1 = malloc(4), *d2 = malloc(4);

		a = afs_inodes_ref_data(t, k1, sizeof(k1) - 1, d1, &fresh);
		CHECK(a && fresh && afs_inodes_data(t, a) == d1);
		b = afs_inodes_ref_data(t, k1, sizeof(k1) - 1, d2, &fresh);
		CHECK(b == a && !fresh && afs_inodes_data(t, a) == d1);
		c = afs_inodes_ref_data(t, k2, sizeof(k2) - 1, d2, &fresh);
		CHECK(c != a && fresh && afs_inodes_data(t, c) == d2);
		CHECK(path_is(t, a, NULL, "/.status") && path_is(t, c, NULL, "/.status"));
		afs_inodes_forget(t, a, 2); /* frees d1 (ASan would tell) */
		CHECK(afs_inodes_data(t, c) == d2);
	}
	afs_inodes_free(t); /* frees what is left, d2 with it */
	return tu_done("inodes");
}
