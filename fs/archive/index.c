/* SPDX-License-Identifier: MIT */
/* The immutable path tree of an archive: built once at mount, read-only after.
 *
 * Memory: one struct afs_node (56 bytes) per file or directory, every path
 * once in a NUL-separated pool, and an open-addressing hash table keyed by
 * full path (8 bytes per slot: node id and 32 bits of the path's hash, so a
 * probe touches a node only when the hashes agree; at most half full).
 *
 * Thread safety: nothing changes after afs_index_build() returns, so any
 * number of threads may read an index at once without locks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "index.h"

#define NAME_MAX_COMPONENT 255
#define PATH_MAX_LEN 4095

struct afs_index {
	struct afs_node *nodes;
	uint32_t count, cap;
	char *pool;
	size_t pool_len, pool_cap;
	struct slot *slots; /* size is a power of two */
	uint32_t slot_mask;
};

struct slot {
	uint32_t id;  /* node id, AFS_NONE when empty */
	uint32_t tag; /* the high 32 bits of the path's hash */
};

/* Per-build scratch: the last child of each directory, to keep archive order. */
struct builder {
	struct afs_index *ix;
	uint32_t *last_child;
	uint32_t last_dir; /* the parent of the previous entry: archives list a directory's files together */
	size_t last_dir_len; /* its path length; 0 when none yet */
	int64_t dir_mtime;
	char *msg;
	size_t msglen;
};

#define HASH_INIT 1469598103934665603ULL /* FNV-1a: a prefix's hash is a step of the whole's */

static inline uint64_t hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 1099511628211ULL;
}

static uint64_t hash_path(const char *s, size_t len)
{
	uint64_t h = HASH_INIT;

	for (size_t i = 0; i < len; i++)
		h = hash_step(h, (unsigned char)s[i]);
	return h;
}

/* The slot holding path[0..len), whose hash is h, or the empty slot where
 * it would go. */
static struct slot *find_slot(const struct afs_index *ix, const char *path, size_t len, uint64_t h)
{
	uint32_t i = (uint32_t)h & ix->slot_mask, tag = (uint32_t)(h >> 32);

	for (;;) {
		struct slot *s = &ix->slots[i];
		if (s->id == AFS_NONE)
			return s;
		if (s->tag == tag) {
			const char *p = ix->pool + ix->nodes[s->id].path;
			if (memcmp(p, path, len) == 0 && p[len] == '\0')
				return s;
		}
		i = (i + 1) & ix->slot_mask;
	}
}

/* A table of at least 2 * n slots, all empty. */
static enum afs_err alloc_slots(struct afs_index *ix, uint64_t n)
{
	uint64_t size = 64;

	while (size < 2 * n)
		size *= 2;
	if (size > UINT32_MAX / 2 + 1)
		return AFS_E_RANGE;
	ix->slots = malloc((size_t)size * sizeof(*ix->slots));
	if (!ix->slots)
		return AFS_E_NOMEM;
	memset(ix->slots, 0xff, (size_t)size * sizeof(*ix->slots));
	ix->slot_mask = (uint32_t)(size - 1);
	return AFS_OK;
}

/* Doubles the table, hashing every path again (a tag keeps only the high
 * bits).  The table starts at twice the entry count, so this happens only
 * when synthesised directories push it past half full. */
static enum afs_err grow_slots(struct afs_index *ix)
{
	struct slot *old = ix->slots;
	uint64_t old_size = (uint64_t)ix->slot_mask + 1;
	enum afs_err err = alloc_slots(ix, old_size);

	if (err != AFS_OK) {
		ix->slots = old;
		return err;
	}
	for (uint64_t i = 0; i < old_size; i++) {
		if (old[i].id == AFS_NONE)
			continue;
		const char *p = ix->pool + ix->nodes[old[i].id].path;
		size_t len = strlen(p);
		*find_slot(ix, p, len, hash_path(p, len)) = old[i];
	}
	free(old);
	return AFS_OK;
}

/* Appends a node for path[0..len), whose hash is h, under parent; returns
 * its id in *id. */
static enum afs_err add_node(struct builder *b, const char *path, size_t len, uint64_t h, uint32_t parent,
			     uint32_t *id)
{
	struct afs_index *ix = b->ix;
	struct afs_node *n;
	const char *slash;

	if (ix->count == ix->cap) {
		uint32_t cap = ix->cap ? ix->cap * 2 : 64;
		if (cap <= ix->cap || cap >= AFS_NONE)
			return AFS_E_RANGE;
		struct afs_node *nodes = realloc(ix->nodes, (size_t)cap * sizeof(*nodes));
		uint32_t *last = realloc(b->last_child, (size_t)cap * sizeof(*last));
		if (nodes)
			ix->nodes = nodes;
		if (last)
			b->last_child = last;
		if (!nodes || !last)
			return AFS_E_NOMEM;
		ix->cap = cap;
	}
	if (ix->pool_len + len + 1 > ix->pool_cap) {
		size_t cap = ix->pool_cap ? ix->pool_cap : 4096;
		while (cap < ix->pool_len + len + 1)
			cap *= 2;
		if (cap > UINT32_MAX)
			return AFS_E_RANGE;
		char *pool = realloc(ix->pool, cap);
		if (!pool)
			return AFS_E_NOMEM;
		ix->pool = pool;
		ix->pool_cap = cap;
	}
	if ((uint64_t)(ix->count + 1) * 2 > (uint64_t)ix->slot_mask + 1) {
		enum afs_err err = grow_slots(ix);
		if (err != AFS_OK)
			return err;
	}
	*id = ix->count++;
	n = &ix->nodes[*id];
	memset(n, 0, sizeof(*n));
	n->path = (uint32_t)ix->pool_len;
	memcpy(ix->pool + ix->pool_len, path, len);
	ix->pool[ix->pool_len + len] = '\0';
	ix->pool_len += len + 1;
	slash = memrchr(path, '/', len);
	n->base = slash ? (uint16_t)(slash - path + 1) : 0;
	n->entry = AFS_NONE;
	n->first_child = AFS_NONE;
	n->next_sibling = AFS_NONE;
	n->parent = parent;
	n->mode = S_IFDIR | 0755;
	n->mtime = b->dir_mtime;
	b->last_child[*id] = AFS_NONE;
	*find_slot(ix, path, len, h) = (struct slot){ .id = *id, .tag = (uint32_t)(h >> 32) };
	if (*id != 0) {
		struct afs_node *p = &ix->nodes[parent];
		if (b->last_child[parent] == AFS_NONE)
			p->first_child = *id;
		else
			ix->nodes[b->last_child[parent]].next_sibling = *id;
		b->last_child[parent] = *id;
	}
	return AFS_OK;
}

enum afs_err afs_index_check_name(const char *name)
{
	size_t len = strlen(name);
	const char *p = name, *end;

	if (len > 0 && name[len - 1] == '/')
		len--; /* a directory entry */
	/* "uploads//" would end in an empty component: nothing may follow
	 * the last separator but the one a directory entry ends with */
	if (len == 0 || len > PATH_MAX_LEN || name[0] == '/' || name[len - 1] == '/')
		return AFS_E_BADNAME;
	end = name + len;
	while (p < end) {
		const char *q = memchr(p, '/', (size_t)(end - p));
		size_t clen = q ? (size_t)(q - p) : (size_t)(end - p);
		if (clen == 0 || clen > NAME_MAX_COMPONENT)
			return AFS_E_BADNAME;
		if ((clen == 1 && p[0] == '.') || (clen == 2 && p[0] == '.' && p[1] == '.'))
			return AFS_E_BADNAME;
		p += clen + 1;
	}
	return AFS_OK;
}

/* The mode archfs shows for an entry whose archive mode is raw. */
static uint16_t shown_mode(uint32_t raw, bool is_dir)
{
	uint32_t perm = raw & 0777; /* setuid, setgid and sticky dropped */

	if (is_dir)
		return (uint16_t)(S_IFDIR | (raw ? perm : 0755));
	if (S_ISLNK(raw))
		return (uint16_t)(S_IFLNK | 0777);
	return (uint16_t)(S_IFREG | (raw ? perm : 0644)); /* bare modes, devices and fifos: regular */
}

static enum afs_err fail(struct builder *b, enum afs_err err, const char *name, const char *why)
{
	snprintf(b->msg, b->msglen, "entry '%s': %s", name, why);
	return err;
}

/* Ensures every proper prefix of path[0..len) is a directory node; the
 * deepest one's id goes to *parent. */
static enum afs_err add_parents(struct builder *b, const char *name, size_t len, uint32_t *parent)
{
	struct afs_index *ix = b->ix;
	const char *slash = memrchr(name, '/', len);
	size_t dlen = slash ? (size_t)(slash - name) : 0;
	uint64_t h = HASH_INIT;
	uint32_t cur = 0;

	if (dlen == 0) {
		*parent = 0;
		return AFS_OK;
	}
	if (b->last_dir_len == dlen && memcmp(ix->pool + ix->nodes[b->last_dir].path, name, dlen) == 0) {
		*parent = b->last_dir;
		return AFS_OK;
	}
	for (size_t i = 0; i <= dlen; i++) {
		if (name[i] == '/') {
			uint32_t id = find_slot(ix, name, i, h)->id;
			if (id == AFS_NONE) {
				enum afs_err err = add_node(b, name, i, h, cur, &id);
				if (err != AFS_OK)
					return err;
			} else if (!S_ISDIR(ix->nodes[id].mode)) {
				return fail(b, AFS_E_CONFLICT, name, "a parent path is also a file");
			}
			cur = id;
		}
		h = hash_step(h, (unsigned char)name[i]);
	}
	b->last_dir = cur;
	b->last_dir_len = dlen;
	*parent = cur;
	return AFS_OK;
}

static enum afs_err add_entry(struct builder *b, uint64_t i, const struct afs_entry_info *e)
{
	struct afs_index *ix = b->ix;
	size_t len = strlen(e->name);
	bool is_dir = (len > 0 && e->name[len - 1] == '/') || S_ISDIR(e->mode);
	uint32_t parent, id;
	enum afs_err err;
	uint64_t h;

	if (e->name_nul)
		return fail(b, AFS_E_BADNAME, e->name, "unsafe name (the name it states holds a NUL byte)");
	if (afs_index_check_name(e->name) != AFS_OK)
		return fail(b, AFS_E_BADNAME, e->name, "unsafe name (absolute, '..', '.', empty or overlong component)");
	if (e->size > INT64_MAX || e->comp_size > INT64_MAX) /* no file offset reaches past 2^63 - 1 */
		return fail(b, AFS_E_RANGE, e->name, e->size > INT64_MAX ? "unsafe size (it states more than 2^63 - 1 bytes)"
									  : "unsafe compressed size (it states more than 2^63 - 1 bytes)");
	if (e->name[len - 1] == '/')
		len--;
	err = add_parents(b, e->name, len, &parent);
	if (err != AFS_OK)
		return err;
	h = hash_path(e->name, len);
	id = find_slot(ix, e->name, len, h)->id;
	if (id != AFS_NONE) {
		struct afs_node *n = &ix->nodes[id];
		if (!is_dir || n->entry != AFS_NONE)
			return fail(b, AFS_E_CONFLICT, e->name,
				    S_ISDIR(n->mode) && !is_dir ? "a file is also a directory" : "duplicate entry name");
	} else {
		err = add_node(b, e->name, len, h, parent, &id);
		if (err != AFS_OK)
			return err;
	}
	struct afs_node *n = &ix->nodes[id];
	n->entry = (uint32_t)i;
	n->mode = shown_mode(e->mode, is_dir);
	n->mtime = e->mtime;
	n->method = e->method;
	n->encryption = e->encryption;
	if (!is_dir) {
		n->size = e->size;
		n->comp_size = e->comp_size;
		n->crc = e->crc;
	}
	return AFS_OK;
}

/* Gives back the slack of the arrays grown by doubling; the index is
 * immutable from here on.  A failed realloc keeps the larger array. */
static void shrink(struct afs_index *ix)
{
	struct afs_node *nodes = realloc(ix->nodes, (size_t)ix->count * sizeof(*nodes));
	char *pool = realloc(ix->pool, ix->pool_len);

	if (nodes) {
		ix->nodes = nodes;
		ix->cap = ix->count;
	}
	if (pool) {
		ix->pool = pool;
		ix->pool_cap = ix->pool_len;
	}
}

enum afs_err afs_index_build(struct afs_archive *a, struct afs_index **out, char *msg, size_t msglen)
{
	struct builder b = { .dir_mtime = afs_archive_file_mtime(a), .msg = msg, .msglen = msglen };
	uint64_t count = afs_archive_count(a);
	enum afs_err err = AFS_OK;
	uint32_t root;

	*out = NULL;
	msg[0] = '\0';
	if (count >= AFS_NONE / 2) {
		snprintf(msg, msglen, "too many entries (%llu)", (unsigned long long)count);
		return AFS_E_RANGE;
	}
	b.ix = calloc(1, sizeof(*b.ix));
	if (!b.ix) {
		err = AFS_E_NOMEM;
		goto out;
	}
	err = alloc_slots(b.ix, count + 1);
	if (err != AFS_OK)
		goto out;
	err = add_node(&b, "", 0, HASH_INIT, 0, &root);
	for (uint64_t i = 0; err == AFS_OK && i < count; i++) {
		struct afs_entry_info e;
		err = afs_archive_entry(a, i, &e);
		if (err == AFS_OK)
			err = add_entry(&b, i, &e);
		else
			snprintf(msg, msglen, "cannot read entry %llu of the central directory", (unsigned long long)i);
	}
out:
	free(b.last_child);
	if (err != AFS_OK) {
		if (!msg[0])
			snprintf(msg, msglen, "%s", afs_strerror(err));
		afs_index_free(b.ix);
		return err;
	}
	shrink(b.ix);
	*out = b.ix;
	return AFS_OK;
}

void afs_index_free(struct afs_index *ix)
{
	if (!ix)
		return;
	free(ix->nodes);
	free(ix->pool);
	free(ix->slots);
	free(ix);
}

enum afs_err afs_index_lookup(const struct afs_index *ix, const char *path, uint32_t *id)
{
	size_t len;

	while (*path == '/')
		path++;
	len = strlen(path);
	*id = find_slot(ix, path, len, hash_path(path, len))->id;
	if (*id != AFS_NONE)
		return AFS_OK;
	/* Not found: ENOTDIR when some prefix is a file, as a real tree says. */
	uint64_t h = HASH_INIT;
	for (size_t i = 0; i < len; i++) {
		if (path[i] == '/') {
			uint32_t p = find_slot(ix, path, i, h)->id;
			if (p == AFS_NONE)
				break;
			if (!S_ISDIR(ix->nodes[p].mode))
				return AFS_E_NOTDIR;
		}
		h = hash_step(h, (unsigned char)path[i]);
	}
	return AFS_E_NOENT;
}

const struct afs_node *afs_index_node(const struct afs_index *ix, uint32_t id)
{
	return &ix->nodes[id];
}

uint32_t afs_index_count(const struct afs_index *ix)
{
	return ix->count;
}

const char *afs_index_path(const struct afs_index *ix, uint32_t id)
{
	return ix->pool + ix->nodes[id].path;
}

const char *afs_index_name(const struct afs_index *ix, uint32_t id)
{
	return ix->pool + ix->nodes[id].path + ix->nodes[id].base;
}

size_t afs_index_memory(const struct afs_index *ix)
{
	return sizeof(*ix) + (size_t)ix->cap * sizeof(*ix->nodes) + ix->pool_cap +
	       ((size_t)ix->slot_mask + 1) * sizeof(*ix->slots);
}
