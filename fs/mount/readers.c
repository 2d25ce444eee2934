/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include "readers.h"
#include "stream.h"

struct slot {
	struct afs_view *v; /* NULL: free */
	uint32_t node;
	struct afs_stream *s;
	uint64_t used; /* the tick of its last read */
	bool busy;     /* a read is using it */
};

struct afs_readers {
	pthread_mutex_t mu;
	struct slot *slots;
	size_t max;
	uint64_t tick;
};

struct afs_readers *afs_readers_new(size_t max)
{
	struct afs_readers *r = calloc(1, sizeof(*r));

	if (!r || !(r->slots = calloc(max ? max : 1, sizeof(*r->slots)))) {
		free(r);
		return NULL;
	}
	r->max = max ? max : 1;
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void afs_readers_free(struct afs_readers *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->max; i++)
		afs_stream_close(r->slots[i].s);
	free(r->slots);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* An idle slot of (v, node), the most recently used, marked busy; NULL
 * when there is none.  mu held. */
static struct slot *take(struct afs_readers *r, struct afs_view *v, uint32_t node)
{
	struct slot *best = NULL;

	for (size_t i = 0; i < r->max; i++) {
		struct slot *s = &r->slots[i];

		if (s->v == v && s->node == node && !s->busy && (!best || s->used > best->used))
			best = s;
	}
	if (best)
		best->busy = true;
	return best;
}

/* A slot for a new stream: a free one, else the least recently used idle
 * one, whose stream goes to *old to be closed without mu; NULL when every
 * slot is busy.  mu held. */
static struct slot *room(struct afs_readers *r, struct afs_stream **old)
{
	struct slot *lru = NULL;

	*old = NULL;
	for (size_t i = 0; i < r->max; i++) {
		struct slot *s = &r->slots[i];

		if (!s->v)
			return s;
		if (!s->busy && (!lru || s->used < lru->used))
			lru = s;
	}
	if (lru) {
		*old = lru->s;
		lru->v = NULL;
		lru->s = NULL;
	}
	return lru;
}

enum afs_err afs_readers_pread(struct afs_readers *r, struct afs_view *v, uint32_t node, void *buf, size_t len,
			       uint64_t off, size_t *got, char *why, size_t whylen)
{
	struct afs_stream *s = NULL, *old = NULL;
	struct slot *sl;
	enum afs_err err;

	*got = 0;
	pthread_mutex_lock(&r->mu);
	sl = take(r, v, node);
	if (sl)
		s = sl->s;
	pthread_mutex_unlock(&r->mu);
	if (!s) {
		err = afs_stream_open_shared(v->archive, v->index, node, v->seek, &s);
		if (err != AFS_OK) {
			snprintf(why, whylen, "%s", afs_stream_error(NULL, err));
			return err;
		}
	}
	err = afs_stream_pread(s, buf, len, off, got);
	if (err != AFS_OK)
		snprintf(why, whylen, "%s", afs_stream_error(s, err));
	pthread_mutex_lock(&r->mu);
	if (err != AFS_OK && err != AFS_E_NOMEM) { /* sticky: the next read starts afresh */
		if (sl) {
			sl->v = NULL;
			sl->s = NULL;
			sl->busy = false;
		}
		old = s;
	} else {
		if (!sl && (sl = room(r, &old))) {
			sl->v = v;
			sl->node = node;
			sl->s = s;
		} else if (!sl) {
			old = s; /* every slot busy: not kept */
		}
		if (sl) {
			sl->busy = false;
			sl->used = ++r->tick;
		}
	}
	pthread_mutex_unlock(&r->mu);
	afs_stream_close(old);
	return err;
}

size_t afs_readers_count(struct afs_readers *r)
{
	size_t n = 0;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->max; i++)
		n += r->slots[i].v != NULL;
	pthread_mutex_unlock(&r->mu);
	return n;
}
