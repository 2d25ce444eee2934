/* SPDX-License-Identifier: MIT */
/* The cap on live decoders: a count, their bytes and a least-recently-used
 * list of the idle users holding some.  Decoders are freed outside the pool's lock (a
 * raw stream's close waits for the archive's mutex, which a read may hold
 * through a disk read). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "decpool.h"

struct afs_decpool {
	pthread_mutex_t mu;
	pthread_cond_t evicted;         /* an eviction has ended */
	struct afs_decuser *head, *tail; /* idle users holding decoders: most recent first */
	unsigned cap, live;
	size_t budget, bytes;
	unsigned long evictions;
};

struct afs_decpool *afs_decpool_new(unsigned cap)
{
	struct afs_decpool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->evicted, NULL);
	p->cap = cap ? cap : 1;
	p->budget = AFS_DECPOOL_BUDGET;
	return p;
}

void afs_decpool_free(struct afs_decpool *p)
{
	if (!p)
		return;
	pthread_cond_destroy(&p->evicted);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void afs_decpool_set_cap(struct afs_decpool *p, unsigned cap)
{
	pthread_mutex_lock(&p->mu);
	p->cap = cap ? cap : 1;
	pthread_mutex_unlock(&p->mu);
}

void afs_decpool_set_budget(struct afs_decpool *p, size_t bytes)
{
	pthread_mutex_lock(&p->mu);
	p->budget = bytes ? bytes : 1;
	pthread_mutex_unlock(&p->mu);
}

size_t afs_decpool_bytes(struct afs_decpool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->bytes;
	pthread_mutex_unlock(&p->mu);
	return n;
}

unsigned afs_decpool_live(struct afs_decpool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->live;
	pthread_mutex_unlock(&p->mu);
	return n;
}

unsigned long afs_decpool_evictions(struct afs_decpool *p)
{
	unsigned long n;

	pthread_mutex_lock(&p->mu);
	n = p->evictions;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* Takes u out of the idle list; mu held. */
static void unlist(struct afs_decpool *p, struct afs_decuser *u)
{
	if (!u->listed)
		return;
	if (u->prev)
		u->prev->next = u->next;
	else
		p->head = u->next;
	if (u->next)
		u->next->prev = u->prev;
	else
		p->tail = u->prev;
	u->prev = u->next = NULL;
	u->listed = false;
}

/* Waits until no eviction of u is running; mu held. */
static void settle(struct afs_decpool *p, struct afs_decuser *u)
{
	while (u->evicting)
		pthread_cond_wait(&p->evicted, &p->mu);
}

void afs_decpool_join(struct afs_decpool *p, struct afs_decuser *u, void (*evict)(struct afs_decuser *u))
{
	(void)p;
	*u = (struct afs_decuser){ .evict = evict };
}

void afs_decpool_enter(struct afs_decpool *p, struct afs_decuser *u)
{
	pthread_mutex_lock(&p->mu);
	settle(p, u);
	unlist(p, u);
	pthread_mutex_unlock(&p->mu);
}

/* Evicts the least recently used idle users until the count is within
 * the cap and the bytes within the budget, or none is left idle; mu held
 * (dropped while an evict callback runs). */
static void fit(struct afs_decpool *p)
{
	while ((p->live > p->cap || p->bytes > p->budget) && p->tail) {
		struct afs_decuser *v = p->tail;

		unlist(p, v);
		v->evicting = true; /* its next enter or leave waits for the end */
		p->live -= v->held;
		p->bytes -= v->bytes;
		v->held = 0;
		v->bytes = 0;
		p->evictions++;
		pthread_mutex_unlock(&p->mu);
		v->evict(v);
		pthread_mutex_lock(&p->mu);
		v->evicting = false;
		pthread_cond_broadcast(&p->evicted);
	}
}

void afs_decpool_take(struct afs_decpool *p, struct afs_decuser *u, size_t bytes)
{
	pthread_mutex_lock(&p->mu);
	u->held++;
	u->bytes += bytes;
	p->live++;
	p->bytes += bytes;
	fit(p);
	pthread_mutex_unlock(&p->mu);
}

void afs_decpool_grow(struct afs_decpool *p, struct afs_decuser *u, size_t bytes)
{
	pthread_mutex_lock(&p->mu);
	u->bytes += bytes;
	p->bytes += bytes;
	fit(p);
	pthread_mutex_unlock(&p->mu);
}

void afs_decpool_drop(struct afs_decpool *p, struct afs_decuser *u, unsigned n, size_t bytes)
{
	pthread_mutex_lock(&p->mu);
	n = n < u->held ? n : u->held;
	bytes = bytes < u->bytes ? bytes : u->bytes;
	u->held -= n;
	u->bytes -= bytes;
	p->live -= n;
	p->bytes -= bytes;
	pthread_mutex_unlock(&p->mu);
}

void afs_decpool_exit(struct afs_decpool *p, struct afs_decuser *u)
{
	pthread_mutex_lock(&p->mu);
	unlist(p, u);
	if (u->held > 0) {
		u->next = p->head;
		if (p->head)
			p->head->prev = u;
		else
			p->tail = u;
		p->head = u;
		u->listed = true;
	}
	pthread_mutex_unlock(&p->mu);
}

void afs_decpool_leave(struct afs_decpool *p, struct afs_decuser *u)
{
	pthread_mutex_lock(&p->mu);
	settle(p, u);
	unlist(p, u);
	p->live -= u->held;
	p->bytes -= u->bytes;
	u->held = 0;
	u->bytes = 0;
	pthread_mutex_unlock(&p->mu);
}

/* Freed decoder memory kept for the next decoder of the same size, so that
 * reading many small files one after another does not map, fault in and
 * unmap (with a TLB shootdown on every thread) each time: at most SPARES
 * blocks, the process's, like malloc's own free lists. */
#define SPARES 16

static struct {
	pthread_mutex_t mu;
	size_t n;
	struct spare {
		void *p;
		size_t len;
	} s[SPARES];
} spares = { .mu = PTHREAD_MUTEX_INITIALIZER };

void *afs_decmem_alloc(size_t len)
{
	void *p = NULL;

	pthread_mutex_lock(&spares.mu);
	for (size_t i = spares.n; i-- > 0;) {
		if (spares.s[i].len == len) {
			p = spares.s[i].p;
			spares.s[i] = spares.s[--spares.n];
			break;
		}
	}
	pthread_mutex_unlock(&spares.mu);
	if (p)
		return p;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void afs_decmem_free(void *p, size_t len)
{
	if (!p)
		return;
	pthread_mutex_lock(&spares.mu);
	if (spares.n < SPARES) {
		spares.s[spares.n++] = (struct spare){ p, len };
		p = NULL;
	}
	pthread_mutex_unlock(&spares.mu);
	if (p)
		munmap(p, len);
}

void *afs_decmem_zalloc(void *opaque, unsigned items, unsigned size)
{
	struct afs_decmem_region *r = opaque;
	size_t n = (size_t)items * size;

	n = (n + 15) & ~(size_t)15;
	if (n <= r->size - r->used) {
		void *p = r->base + r->used;

		r->used += n;
		return p;
	}
	return calloc(items, size);
}

void afs_decmem_zfree(void *opaque, void *p)
{
	struct afs_decmem_region *r = opaque;
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->base;

	if (a < b || a >= b + r->size)
		free(p); /* the region itself goes with the decoder's memory */
}
