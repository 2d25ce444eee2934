/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "inodes.h"

struct rec {
	struct rec *next; /* in its hash chain */
	uint64_t nlookup;
	uint64_t hash;
	size_t len;
	int marked;
	void *data;    /* afs_inodes_ref_data()'s, freed with the record */
	unsigned pins; /* afs_inodes_pin() holds: freed at the last unpin once forgotten */
	bool dead;     /* forgotten, out of the table, pinned */
	char path[]; /* NUL-terminated */
};

struct afs_inodes {
	pthread_mutex_t mu;
	void (*free_data)(void *data);
	struct rec **slots; /* chains; nslots a power of two */
	size_t nslots, count;
};

static uint64_t hash_of(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	/* FNV's low bits, which pick the slot, mix only the characters' low
	 * bits: fold the high bits in (MurmurHash3's finaliser) */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* Frees r and its data.  mu held (or the table going). */
static void rec_free(struct afs_inodes *t, struct rec *r)
{
	if (r->data && t->free_data)
		t->free_data(r->data);
	free(r);
}

struct afs_inodes *afs_inodes_new(void (*free_data)(void *data))
{
	struct afs_inodes *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->nslots = 1024;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->free_data = free_data;
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void afs_inodes_free(struct afs_inodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nslots; i++)
		while (t->slots[i]) {
			struct rec *r = t->slots[i];

			t->slots[i] = r->next;
			rec_free(t, r);
		}
	free(t->slots);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static bool is_root(const char *path, size_t len)
{
	return len == 1 && path[0] == '/';
}

/* Doubles the table past 3/4 full; a failure leaves longer chains. */
static void grow(struct afs_inodes *t)
{
	size_t n = t->nslots * 2;
	struct rec **s = calloc(n, sizeof(*s));

	if (!s)
		return;
	for (size_t i = 0; i < t->nslots; i++)
		while (t->slots[i]) {
			struct rec *r = t->slots[i];

			t->slots[i] = r->next;
			r->next = s[r->hash & (n - 1)];
			s[r->hash & (n - 1)] = r;
		}
	free(t->slots);
	t->slots = s;
	t->nslots = n;
}

static struct rec **find(struct afs_inodes *t, const char *path, size_t len, uint64_t h)
{
	struct rec **p = &t->slots[h & (t->nslots - 1)];

	while (*p && !((*p)->hash == h && (*p)->len == len && memcmp((*p)->path, path, len) == 0))
		p = &(*p)->next;
	return p;
}

uint64_t afs_inodes_ref(struct afs_inodes *t, const char *path, size_t len)
{
	return afs_inodes_ref_data(t, path, len, NULL, NULL);
}

uint64_t afs_inodes_ref_data(struct afs_inodes *t, const char *path, size_t len, void *data, int *fresh)
{
	uint64_t h = hash_of(path, len), ino = 0;
	struct rec **p, *r;

	if (fresh)
		*fresh = 0;
	if (is_root(path, len))
		return AFS_ROOT_INO;
	pthread_mutex_lock(&t->mu);
	p = find(t, path, len, h);
	r = *p;
	if (!r && (r = malloc(sizeof(*r) + len + 1))) {
		r->next = NULL;
		r->nlookup = 0;
		r->marked = 0;
		r->data = data;
		if (fresh)
			*fresh = 1;
		r->pins = 0;
		r->dead = false;
		r->hash = h;
		r->len = len;
		memcpy(r->path, path, len);
		r->path[len] = '\0';
		*p = r;
		if (++t->count > t->nslots / 4 * 3)
			grow(t);
	}
	if (r) {
		r->nlookup++;
		ino = (uint64_t)(uintptr_t)r;
	}
	pthread_mutex_unlock(&t->mu);
	return ino;
}

void afs_inodes_forget(struct afs_inodes *t, uint64_t ino, uint64_t n)
{
	struct rec *r = (struct rec *)(uintptr_t)ino, **p;

	if (ino == AFS_ROOT_INO || !ino)
		return;
	pthread_mutex_lock(&t->mu);
	if (r->nlookup > n) {
		r->nlookup -= n;
	} else {
		p = find(t, r->path, r->len, r->hash);
		if (*p == r) {
			*p = r->next;
			t->count--;
			if (r->pins)
				r->dead = true; /* the last unpin frees it */
			else
				rec_free(t, r);
		}
	}
	pthread_mutex_unlock(&t->mu);
}

char *afs_inodes_path(struct afs_inodes *t, uint64_t ino, const char *name)
{
	size_t nlen = name ? strlen(name) : 0, plen;
	const char *path;
	char *out;

	if (name && (nlen == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
		return NULL;
	pthread_mutex_lock(&t->mu);
	if (ino == AFS_ROOT_INO) {
		path = "/";
		plen = 1;
	} else {
		path = ((struct rec *)(uintptr_t)ino)->path;
		plen = strnlen(path, ((struct rec *)(uintptr_t)ino)->len); /* a key's path ends at a NUL */
	}
	if (name && plen == 1)
		plen = 0; /* "/" + name */
	out = malloc(plen + (name ? nlen + 1 : 0) + 1);
	if (out) {
		memcpy(out, path, plen);
		if (name) {
			out[plen] = '/';
			memcpy(out + plen + 1, name, nlen);
			plen += nlen + 1;
		}
		out[plen] = '\0';
	}
	pthread_mutex_unlock(&t->mu);
	return out;
}

uint64_t afs_inodes_pin(struct afs_inodes *t, const char *path, size_t len)
{
	uint64_t ino = 0;
	struct rec *r;

	if (is_root(path, len))
		return 0;
	pthread_mutex_lock(&t->mu);
	r = *find(t, path, len, hash_of(path, len));
	if (r) {
		r->pins++;
		ino = (uint64_t)(uintptr_t)r;
	}
	pthread_mutex_unlock(&t->mu);
	return ino;
}

void afs_inodes_unpin(struct afs_inodes *t, uint64_t ino)
{
	struct rec *r = (struct rec *)(uintptr_t)ino;

	if (!ino || ino == AFS_ROOT_INO)
		return;
	pthread_mutex_lock(&t->mu);
	if (--r->pins == 0 && r->dead)
		rec_free(t, r);
	pthread_mutex_unlock(&t->mu);
}

void *afs_inodes_data(struct afs_inodes *t, uint64_t ino)
{
	void *d;

	if (!ino || ino == AFS_ROOT_INO)
		return NULL;
	pthread_mutex_lock(&t->mu);
	d = ((struct rec *)(uintptr_t)ino)->data;
	pthread_mutex_unlock(&t->mu);
	return d;
}

int afs_inodes_mark(struct afs_inodes *t, uint64_t ino, int on)
{
	int was = 1;

	if (ino == AFS_ROOT_INO || !ino)
		return was;
	pthread_mutex_lock(&t->mu);
	was = ((struct rec *)(uintptr_t)ino)->marked;
	((struct rec *)(uintptr_t)ino)->marked = on;
	pthread_mutex_unlock(&t->mu);
	return was;
}

size_t afs_inodes_under(struct afs_inodes *t, const char *path, size_t len, uint64_t *inos, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->nslots; i++)
		for (struct rec *r = t->slots[i]; r; r = r->next)
			if (r->len >= len && memcmp(r->path, path, len) == 0 &&
			    (r->len == len || r->path[len] == '/' || is_root(path, len))) {
				if (n < max)
					inos[n] = (uint64_t)(uintptr_t)r;
				r->marked = 0;
				n++;
			}
	pthread_mutex_unlock(&t->mu);
	return n;
}

size_t afs_inodes_count(struct afs_inodes *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}
