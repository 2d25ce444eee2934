/* SPDX-License-Identifier: MIT */
/* The block cache of remote objects: a chained hash table of blocks and a
 * doubly linked list in use order, bounded in bytes. */
#include <stdlib.h>
#include "bcache.h"

#define BUCKETS 4096 /* a power of two: 64 MiB of 1 MiB blocks is 64 of them */

struct blk {
	uint64_t key;
	void *data;
	size_t len;
	struct blk *hnext;       /* in its bucket */
	struct blk *prev, *next; /* in use order: head the most recent */
};

struct afs_bcache {
	size_t cap, bytes, count;
	struct blk *head, *tail;
	struct blk *tab[BUCKETS];
};

static size_t bucket(uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 52) & (BUCKETS - 1);
}

struct afs_bcache *afs_bcache_new(size_t cap)
{
	struct afs_bcache *c = calloc(1, sizeof(*c));

	if (c)
		c->cap = cap;
	return c;
}

static struct blk *find(const struct afs_bcache *c, uint64_t key)
{
	struct blk *b = c->tab[bucket(key)];

	while (b && b->key != key)
		b = b->hnext;
	return b;
}

static void unlink_lru(struct afs_bcache *c, struct blk *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		c->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		c->tail = b->prev;
	b->prev = b->next = NULL;
}

static void push_front(struct afs_bcache *c, struct blk *b)
{
	b->prev = NULL;
	b->next = c->head;
	if (c->head)
		c->head->prev = b;
	c->head = b;
	if (!c->tail)
		c->tail = b;
}

/* Takes b out of the table and the list and frees it. */
static void drop(struct afs_bcache *c, struct blk *b)
{
	struct blk **p = &c->tab[bucket(b->key)];

	while (*p != b)
		p = &(*p)->hnext;
	*p = b->hnext;
	unlink_lru(c, b);
	c->bytes -= b->len;
	c->count--;
	free(b->data);
	free(b);
}

const void *afs_bcache_get(struct afs_bcache *c, uint64_t key, size_t *len)
{
	struct blk *b = find(c, key);

	if (!b)
		return NULL;
	unlink_lru(c, b);
	push_front(c, b);
	*len = b->len;
	return b->data;
}

bool afs_bcache_has(const struct afs_bcache *c, uint64_t key)
{
	return find(c, key) != NULL;
}

enum afs_err afs_bcache_put(struct afs_bcache *c, uint64_t key, void *data, size_t len)
{
	struct blk *b = find(c, key);

	if (b)
		drop(c, b);
	b = malloc(sizeof(*b));
	if (!b) {
		free(data);
		return AFS_E_NOMEM;
	}
	*b = (struct blk){ .key = key, .data = data, .len = len, .hnext = c->tab[bucket(key)] };
	c->tab[bucket(key)] = b;
	push_front(c, b);
	c->bytes += len;
	c->count++;
	while (c->bytes > c->cap && c->tail != b)
		drop(c, c->tail);
	return AFS_OK;
}

size_t afs_bcache_bytes(const struct afs_bcache *c)
{
	return c->bytes;
}

size_t afs_bcache_count(const struct afs_bcache *c)
{
	return c->count;
}

void afs_bcache_free(struct afs_bcache *c)
{
	if (!c)
		return;
	while (c->head)
		drop(c, c->head);
	free(c);
}
