/* SPDX-License-Identifier: MIT */
/* Seek points on disk (pointfile.h): one file per entry, written whole and
 * renamed into place, read whole and checked before use. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "afile.h"
#include "inflate.h"
#include "pointfile.h"
#include "seekidx.h"

#define MAGIC "ARCHFSPT"
#define VERSION 1
#define HEAD_LEN 80  /* magic, version, count, the archive, the entry */
#define POINT_LEN 28 /* a point before its packed window */
#define WINDOW 32768

int afs_pointdir_open(const char *dir, char *why, size_t whylen)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char path[4096];
	struct stat st;
	int n, fd;

	if (dir)
		n = snprintf(path, sizeof(path), "%s", dir);
	else if (xdg && xdg[0] == '/')
		n = snprintf(path, sizeof(path), "%s/archfs", xdg);
	else if (home && home[0] == '/')
		n = snprintf(path, sizeof(path), "%s/.cache/archfs", home);
	else {
		snprintf(why, whylen, "neither XDG_CACHE_HOME nor HOME names a directory");
		return -1;
	}
	if (n < 0 || (size_t)n >= sizeof(path) || !path[0]) {
		snprintf(why, whylen, "the directory's name is too long");
		return -1;
	}
	/* make it and its parents: 0700 each, as mkdir -p -m 0700 would */
	for (char *p = path + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST) {
				snprintf(why, whylen, "cannot make %s: %s", path, strerror(errno));
				return -1;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(why, whylen, "%s is not a directory of this user's", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) && fchmod(fd, 0700) != 0) {
		snprintf(why, whylen, "cannot make %s private (0700): %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void afs_pointfile_name(const struct afs_pointkey *k, char *buf, size_t len)
{
	snprintf(buf, len, "%016" PRIx64 "-%016" PRIx64 "-%08" PRIx32 "-%" PRIu64 ".points", k->file_size,
		 (uint64_t)k->file_mtime, k->cdir_crc, k->entry);
}

static unsigned char *put(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static uint64_t get(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static unsigned char *put_head(unsigned char *p, const struct afs_pointkey *k, size_t n)
{
	memcpy(p, MAGIC, 8);
	p = put(p + 8, VERSION, 4);
	p = put(p, n, 4);
	p = put(p, k->file_size, 8);
	p = put(p, (uint64_t)k->file_mtime, 8);
	p = put(p, k->cdir_crc, 4);
	p = put(p, 0, 4);
	p = put(p, k->entries, 8);
	p = put(p, k->entry, 8);
	p = put(p, k->size, 8);
	p = put(p, k->comp_size, 8);
	p = put(p, k->crc, 4);
	return put(p, 0, 4);
}

enum afs_err afs_pointfile_save(int dfd, const struct afs_pointkey *k, const struct afs_seekpoint *pts, size_t n)
{
	size_t len = HEAD_LEN + 4;
	struct afs_afile f;
	unsigned char *buf, *p;
	enum afs_err err;
	char name[128];

	if (n > AFS_SEEK_MAX_POINTS)
		return AFS_E_INVAL;
	for (size_t i = 0; i < n; i++)
		len += POINT_LEN + pts[i].zlen;
	buf = malloc(len);
	if (!buf)
		return AFS_E_NOMEM;
	p = put_head(buf, k, n);
	for (size_t i = 0; i < n; i++) {
		p = put(p, pts[i].out, 8);
		p = put(p, pts[i].in, 8);
		*p++ = pts[i].bits;
		*p++ = pts[i].prime;
		p = put(p, 0, 2);
		p = put(p, pts[i].wlen, 4);
		p = put(p, pts[i].zlen, 4);
		memcpy(p, pts[i].zwin, pts[i].zlen);
		p += pts[i].zlen;
	}
	put(p, afs_crc32(0, buf, len - 4), 4);
	afs_pointfile_name(k, name, sizeof(name));
	err = afs_afile_hold(&f, dfd, name);
	if (err == AFS_OK) {
		err = afs_write_all(f.fd, buf, len);
		if (err == AFS_OK)
			err = afs_afile_commit(&f);
		else
			afs_afile_rollback(&f);
	}
	free(buf);
	return err;
}

void afs_seekpoints_free(struct afs_seekpoint *pts, size_t n)
{
	if (!pts)
		return;
	for (size_t i = 0; i < n; i++)
		free(pts[i].zwin);
	free(pts);
}

static enum afs_err bad(char *why, size_t whylen, const char *what)
{
	snprintf(why, whylen, "%s", what);
	return AFS_E_CORRUPT;
}

/* Checks buf[0..len) (the whole file) against k and takes its points. */
static enum afs_err parse(const unsigned char *buf, size_t len, const struct afs_pointkey *k,
			  struct afs_seekpoint **out, size_t *nout, char *why, size_t whylen)
{
	unsigned char head[HEAD_LEN];
	const unsigned char *p = buf + HEAD_LEN, *end = buf + len - 4;
	struct afs_seekpoint *pts;
	uint64_t n, prev_out = 0, prev_in = 0;

	if (len < HEAD_LEN + 4 || memcmp(buf, MAGIC, 8) != 0)
		return bad(why, whylen, "not a points file");
	if (get(buf + 8, 4) != VERSION)
		return bad(why, whylen, "a points file of another version");
	if (get(end, 4) != afs_crc32(0, buf, len - 4))
		return bad(why, whylen, "its checksum does not match (damaged or cut short)");
	n = get(buf + 12, 4);
	put_head(head, k, (size_t)n);
	if (memcmp(head, buf, HEAD_LEN) != 0)
		return bad(why, whylen, "it belongs to another archive or entry");
	if (n > AFS_SEEK_MAX_POINTS)
		return bad(why, whylen, "too many points");
	pts = calloc(n ? n : 1, sizeof(*pts));
	if (!pts)
		return AFS_E_NOMEM;
	for (uint64_t i = 0; i < n; i++) {
		struct afs_seekpoint *q = &pts[i];
		uint64_t wlen, zlen;

		if ((size_t)(end - p) < POINT_LEN)
			goto bad_point;
		q->out = get(p, 8);
		q->in = get(p + 8, 8);
		q->bits = p[16];
		q->prime = p[17];
		wlen = get(p + 20, 4);
		zlen = get(p + 24, 4);
		if (q->out <= prev_out || q->out >= k->size || q->in < prev_in || q->in > k->comp_size ||
		    q->bits > 7 || (q->bits && q->in == 0) || (uint8_t)(q->prime << q->bits) != 0 || get(p + 18, 2) != 0 ||
		    wlen != (q->out < WINDOW ? q->out : WINDOW) || zlen == 0 || zlen > afs_window_bound((size_t)wlen) ||
		    (size_t)(end - p) - POINT_LEN < zlen)
			goto bad_point;
		q->wlen = (uint32_t)wlen;
		q->zlen = (uint32_t)zlen;
		q->zwin = malloc(zlen);
		if (!q->zwin) {
			afs_seekpoints_free(pts, n);
			return AFS_E_NOMEM;
		}
		memcpy(q->zwin, p + POINT_LEN, zlen);
		p += POINT_LEN + zlen;
		prev_out = q->out;
		prev_in = q->in;
	}
	if (p != end)
		goto bad_point;
	*out = pts;
	*nout = (size_t)n;
	return AFS_OK;
bad_point:
	afs_seekpoints_free(pts, n);
	return bad(why, whylen, "a point does not fit the entry");
}

enum afs_err afs_pointfile_load(int dfd, const struct afs_pointkey *k, size_t max_bytes, struct afs_seekpoint **pts,
				size_t *n, char *why, size_t whylen)
{
	char name[128];
	struct stat st;
	unsigned char *buf;
	size_t len, done = 0;
	enum afs_err err;
	int fd;

	*pts = NULL;
	*n = 0;
	afs_pointfile_name(k, name, sizeof(name));
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return AFS_E_NOENT;
		snprintf(why, whylen, "cannot open it: %s", strerror(errno));
		return AFS_E_CORRUPT;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return bad(why, whylen, "not a regular file of this user's");
	}
	if ((uint64_t)st.st_size > max_bytes || (uint64_t)st.st_size > SIZE_MAX) {
		close(fd);
		return bad(why, whylen, "larger than the points it may hold");
	}
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return AFS_E_NOMEM;
	}
	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	close(fd);
	err = done == len ? parse(buf, len, k, pts, n, why, whylen) : bad(why, whylen, "cannot read it whole");
	free(buf);
	return err;
}
