/* SPDX-License-Identifier: MIT */
/* Fuzz target: a whole ZIP file in, opened and indexed as a mount does
 * (afs_archive_open, afs_index_build), then every entry and node looked at.
 * Besides crashes, it checks what the index promises: every node is found
 * again by its path, its parent is a directory whose path is its prefix,
 * every path stored for an entry passes afs_index_check_name(), and the
 * tree holds each node exactly once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "fuzzutil.h"
#include "index.h"

/* The node's place in the tree agrees with its path. */
static void check_node(const struct afs_index *ix, uint32_t id, uint64_t entries)
{
	const struct afs_node *n = afs_index_node(ix, id), *p = afs_index_node(ix, n->parent);
	const char *path = afs_index_path(ix, id), *name = afs_index_name(ix, id);
	const char *ppath = afs_index_path(ix, n->parent);
	size_t plen = strlen(ppath);
	char full[4200];
	uint32_t found;

	snprintf(full, sizeof(full), "/%s", path);
	FZ_ASSERT(afs_index_lookup(ix, full, &found) == AFS_OK && found == id, "node %u '%s'", id, path);
	FZ_ASSERT(S_ISDIR(p->mode), "parent of '%s' is not a directory", path);
	FZ_ASSERT(n->entry == AFS_NONE || n->entry < entries, "node '%s' names entry %u", path, n->entry);
	if (id == 0) {
		FZ_ASSERT(path[0] == '\0' && n->parent == 0, "root is '%s'", path);
		return;
	}
	FZ_ASSERT(afs_index_check_name(path) == AFS_OK, "unsafe path '%s' in the index", path);
	FZ_ASSERT(n->parent != id, "node '%s' is its own parent", path);
	FZ_ASSERT(strncmp(path, ppath, plen) == 0 && (plen == 0 || path[plen] == '/'), "'%s' under '%s'", path,
		  ppath);
	FZ_ASSERT(strcmp(name, path + (plen ? plen + 1 : 0)) == 0, "name '%s' of '%s'", name, path);
	FZ_ASSERT(!S_ISDIR(n->mode) ? n->first_child == AFS_NONE : n->size == 0, "node '%s' mode %o", path,
		  n->mode);
}

/* Walks the tree from the root: every node is reached once, and from its
 * own parent. */
static void check_tree(const struct afs_index *ix)
{
	uint32_t count = afs_index_count(ix), *stack = malloc((size_t)count * sizeof(*stack)), top = 0, seen = 0;
	unsigned char *mark = calloc(count, 1);

	FZ_ASSERT(stack && mark, "out of memory for %u nodes", count);
	stack[top++] = 0;
	mark[0] = 1;
	while (top > 0) {
		uint32_t id = stack[--top];

		seen++;
		for (uint32_t c = afs_index_node(ix, id)->first_child; c != AFS_NONE;
		     c = afs_index_node(ix, c)->next_sibling) {
			FZ_ASSERT(c < count && !mark[c], "node %u reached twice", c);
			FZ_ASSERT(afs_index_node(ix, c)->parent == id, "node %u listed under %u", c, id);
			mark[c] = 1;
			stack[top++] = c;
		}
	}
	FZ_ASSERT(seen == count, "%u of %u nodes in the tree", seen, count);
	free(stack);
	free(mark);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fz_file(data, size);
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	char msg[512];
	uint64_t count;

	if (!path || afs_archive_open(path, &a, msg, sizeof(msg)) != AFS_OK)
		return 0;
	count = afs_archive_count(a);
	for (uint64_t i = 0; i < count; i++) {
		struct afs_entry_info e;

		if (afs_archive_entry(a, i, &e) == AFS_OK)
			FZ_ASSERT(e.name != NULL, "entry %llu has no name", (unsigned long long)i);
		(void)afs_archive_entry_past_eof(a, i);
	}
	if (afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK) {
		uint32_t n = afs_index_count(ix);

		for (uint32_t id = 0; id < n; id++)
			check_node(ix, id, count);
		check_tree(ix);
		afs_index_free(ix);
	} else {
		FZ_ASSERT(msg[0] != '\0', "an index build failed without a reason");
	}
	afs_archive_free(a);
	return 0;
}
