/* SPDX-License-Identifier: MIT */
/* The ZIP reader: libzip opens the archive and parses its central directory;
 * this module turns entries into plain values and serves raw entry bytes.
 *
 * Thread safety: libzip objects are not thread-safe, so every libzip call
 * below runs under a->lock.  Raw reads of compressed bytes do not take it:
 * libzip opens the entry (and checks its local header), and then the bytes
 * are read straight from the file or the remote object at the offset that
 * header gives, so that readers of one archive never wait for each other's
 * disk or network.  A decoded stream's read holds the lock while libzip
 * decodes one chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>
#include "afile.h"
#include "archive.h"
#include "remote.h"
#include "xdecode.h"
#include "inflate.h"

#define EXTRA_EXT_TIMESTAMP 0x5455 /* Info-ZIP extended timestamp */

struct afs_archive {
	zip_t *zip;
	pthread_mutex_t lock;
	uint64_t count;
	uint64_t file_size;
	int64_t file_mtime;
	uint8_t *past_eof;  /* bit per entry, see afs_archive_entry_past_eof(); NULL: none */
	uint8_t *nul_name;  /* bit per entry whose stated name holds a NUL byte; NULL: none */
	uint64_t prefix;    /* bytes of other data before the archive (afs_archive_prefix()) */
	uint32_t cdir_crc;  /* CRC-32 of the central directory's records (afs_archive_cdir_crc()) */
	uint64_t *local;    /* per entry: its local header's offset, as its central record states */
	int fd;             /* the descriptor libzip reads a local file through; -1 for a remote one */
	struct afs_remote *remote; /* a remote object's reader (remote.h); NULL for a local file */
};

struct afs_raw {
	struct afs_archive *a;
	zip_file_t *file;
	uint64_t index;
	bool decoded;  /* libzip decodes (afs_raw_open_decoded()) */
	bool direct;   /* compressed bytes read at data + pos, without libzip or the lock */
	uint64_t data, comp, pos; /* their offset in the archive, their size, the next byte */
	char why[320]; /* afs_raw_why(); may name a remote archive's URL */
};

static enum afs_err map_zip_error(int ze)
{
	switch (ze) {
	case ZIP_ER_MEMORY: return AFS_E_NOMEM;
	case ZIP_ER_NOZIP:
	case ZIP_ER_INCONS:
	case ZIP_ER_EOF: return AFS_E_NOTZIP;
	case ZIP_ER_CRC:
	case ZIP_ER_COMPRESSED_DATA: return AFS_E_CORRUPT;
	case ZIP_ER_COMPNOTSUPP:
	case ZIP_ER_ENCRNOTSUPP: return AFS_E_UNSUPPORTED;
	default: return AFS_E_IO;
	}
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

#define EOCD_LEN 22
#define EOCD64_LOC_LEN 20
#define EOCD64_LEN 56
#define CDIR_LEN 46
#define LOCAL_LEN 30
#define CDIR_MAX_REC (CDIR_LEN + 3 * 0xffff)
#define CDIR_BUF (1024 * 1024)
#define TAIL_MAX (EOCD_LEN + 0xffff + EOCD64_LOC_LEN)
#define EXTRA_UNICODE_PATH 0x7075 /* Info-ZIP Unicode path: libzip shows its name instead */

/* The bytes libzip reads as the archive: [base, base + size) of the file
 * fd, or of the remote object rem when it is not NULL.  base is not 0 when
 * other data (a self-extracting stub) precedes an archive whose offsets
 * count from its own start. */
struct span {
	int fd;
	struct afs_remote *rem;
	uint64_t base, size;
};

/* Reads n bytes at offset off of the span; false past its end or on error. */
static bool span_read(const struct span *s, void *buf, size_t n, uint64_t off)
{
	if (off > s->size || n > s->size - off)
		return false;
	if (s->rem)
		return afs_remote_pread(s->rem, buf, n, s->base + off) == AFS_OK;
	return pread(s->fd, buf, n, (off_t)(s->base + off)) == (ssize_t)n;
}

/* What an end-of-central-directory record states. */
struct cdir_end {
	uint64_t at;       /* offset of the record that ends the directory (the ZIP64 one when present) */
	uint64_t entries;  /* the directory's entry count */
	uint64_t off, len; /* its stated offset and size */
	bool zip64;
};

/* Reads the last TAIL_MAX bytes (or fewer) of s into tail: their count,
 * and their offset in *tbase; 0 on error. */
static size_t read_tail(const struct span *s, unsigned char *tail, uint64_t *tbase)
{
	size_t n = s->size < TAIL_MAX ? (size_t)s->size : TAIL_MAX;

	*tbase = s->size - n;
	return span_read(s, tail, n, *tbase) ? n : 0;
}

/* Reads the end record whose signature would be at tail[i] (offset
 * tbase + i of s).  As libzip does, a ZIP64 locator right before it makes
 * the ZIP64 record the one that counts: where the locator says, or, with
 * adjacent set (offsets that may not count from the span's start), right
 * before the locator, where every writer puts it.  false when there is no
 * such record. */
static bool read_end(const struct span *s, const unsigned char *tail, size_t i, uint64_t tbase, bool adjacent,
		     struct cdir_end *e)
{
	const unsigned char *r = tail + i, *loc = r - EOCD64_LOC_LEN;
	unsigned char rec[EOCD64_LEN];
	uint64_t at64;

	if (le32(r) != 0x06054b50)
		return false;
	*e = (struct cdir_end){ .at = tbase + i, .entries = le16(r + 10), .len = le32(r + 12), .off = le32(r + 16) };
	if (i < EOCD64_LOC_LEN || le32(loc) != 0x07064b50)
		return true;
	if (adjacent && e->at < EOCD64_LOC_LEN + EOCD64_LEN)
		return false;
	at64 = adjacent ? e->at - EOCD64_LOC_LEN - EOCD64_LEN : le64(loc + 8);
	if (!span_read(s, rec, EOCD64_LEN, at64) || le32(rec) != 0x06064b50)
		return false;
	*e = (struct cdir_end){ .at = at64, .entries = le64(rec + 32), .len = le64(rec + 40), .off = le64(rec + 48),
				.zip64 = true };
	return true;
}

/* How many bytes of other data (a self-extracting stub) precede an
 * archive whose offsets count from its own start, found as Info-ZIP's
 * unzip finds them: a central directory ends where its end record begins,
 * so the archive starts at that record's offset less the directory's size
 * and stated offset, and the directory must begin with a record there.
 * 0 when no end record in the file's tail says so. */
static uint64_t find_prefix(int fd, struct afs_remote *rem, uint64_t fsize)
{
	struct span s = { fd, rem, 0, fsize };
	unsigned char *tail = malloc(TAIL_MAX), sig[4];
	uint64_t tbase, start = 0;
	size_t n = tail ? read_tail(&s, tail, &tbase) : 0;
	struct cdir_end e;

	for (size_t i = n >= EOCD_LEN ? n - EOCD_LEN + 1 : 0; i-- > 0 && start == 0;) {
		if (!read_end(&s, tail, i, tbase, true, &e) || e.len == 0 || e.off > e.at || e.len > e.at - e.off)
			continue;
		start = e.at - e.len - e.off;
		if (!span_read(&s, sig, 4, start + e.off) || le32(sig) != 0x02014b50)
			start = 0;
	}
	free(tail);
	return start;
}

/* The local header offset and compressed size of one central-directory
 * record, ZIP64 extra field applied. */
static void cdir_ranges(const unsigned char *r, uint64_t *local, uint64_t *comp)
{
	uint16_t name = le16(r + 28), extra = le16(r + 30);
	const unsigned char *x = r + CDIR_LEN + name, *end = x + extra;
	uint64_t size = le32(r + 24);

	*comp = le32(r + 20);
	*local = le32(r + 42);
	while (end - x >= 4) {
		uint16_t id = le16(x), dlen = le16(x + 2);
		const unsigned char *d = x + 4, *dend = d + dlen;

		if (dlen > end - d)
			break;
		if (id == 0x0001) {
			if (size == 0xffffffff && dend - d >= 8)
				d += 8;
			if (*comp == 0xffffffff && dend - d >= 8) {
				*comp = le64(d);
				d += 8;
			}
			if (*local == 0xffffffff && dend - d >= 8)
				*local = le64(d);
			break;
		}
		x = dend;
	}
}

/* True when the name of central-directory record r, or its Info-ZIP
 * Unicode path, holds a NUL byte: the C string libzip gives ends there,
 * short of the name the record states. */
static bool name_holds_nul(const unsigned char *r)
{
	uint16_t name = le16(r + 28), extra = le16(r + 30);
	const unsigned char *x = r + CDIR_LEN + name, *end = x + extra;

	if (memchr(r + CDIR_LEN, 0, name))
		return true;
	while (end - x >= 4) {
		uint16_t id = le16(x), dlen = le16(x + 2);
		const unsigned char *d = x + 4;

		if (dlen > end - d)
			break;
		if (id == EXTRA_UNICODE_PATH && dlen > 5 && memchr(d + 5, 0, dlen - 5)) /* version, CRC, name */
			return true;
		x = d + dlen;
	}
	return false;
}

/* Sets bit i of the per-entry bitmap *bits (allocated on first use). */
static enum afs_err mark(uint8_t **bits, uint64_t count, uint64_t i)
{
	if (!*bits && !(*bits = calloc(count / 8 + 1, 1)))
		return AFS_E_NOMEM;
	(*bits)[i / 8] |= (uint8_t)(1u << (i % 8));
	return AFS_OK;
}

static bool marked(const uint8_t *bits, uint64_t count, uint64_t i)
{
	return bits && i < count && (bits[i / 8] >> (i % 8) & 1);
}

/* Records what entry i's central-directory record r says that libzip does
 * not: data past the end of the span, a NUL byte in the name. */
static enum afs_err mark_record(struct afs_archive *a, const struct span *s, const unsigned char *r, uint64_t i)
{
	enum afs_err err = AFS_OK;
	uint64_t local, comp;

	cdir_ranges(r, &local, &comp);
	a->local[i] = local;
	if (local > s->size || s->size - local < LOCAL_LEN || s->size - local - LOCAL_LEN < comp)
		err = mark(&a->past_eof, a->count, i);
	if (err == AFS_OK && name_holds_nul(r))
		err = mark(&a->nul_name, a->count, i);
	return err;
}

/* Walks the central directory that e states, in order as libzip numbers
 * the entries, through a buffer of CDIR_BUF bytes (a record is at most
 * CDIR_LEN + 3 * 65535), marking each entry (mark_record).  *followed is
 * set when a->count records fill exactly the stated size, as libzip read
 * them. */
static enum afs_err walk_cdir(struct afs_archive *a, const struct span *s, const struct cdir_end *e, bool *followed)
{
	enum afs_err err = AFS_OK;
	unsigned char *buf = malloc(CDIR_BUF);
	uint64_t done = 0; /* bytes of the directory consumed before buf */
	size_t have = 0, pos = 0; /* bytes in buf, and the next record's place */

	*followed = false;
	a->cdir_crc = 0;
	if (!a->local)
		a->local = malloc((a->count ? a->count : 1) * sizeof(*a->local));
	if (!buf || !a->local) {
		free(buf);
		return AFS_E_NOMEM;
	}
	for (uint64_t i = 0; i < a->count && err == AFS_OK; i++) {
		const unsigned char *r;
		size_t len;

		if (have - pos < CDIR_MAX_REC && done + have < e->len) { /* refill */
			size_t want = CDIR_BUF - (have - pos);

			memmove(buf, buf + pos, have - pos);
			done += pos;
			have -= pos;
			pos = 0;
			if (want > e->len - done - have)
				want = (size_t)(e->len - done - have);
			if (!span_read(s, buf + have, want, e->off + done + have))
				goto out;
			have += want;
		}
		r = buf + pos;
		if (have - pos < CDIR_LEN || le32(r) != 0x02014b50)
			goto out;
		len = CDIR_LEN + (size_t)le16(r + 28) + le16(r + 30) + le16(r + 32);
		if (have - pos < len)
			goto out;
		err = mark_record(a, s, r, i);
		a->cdir_crc = afs_crc32(a->cdir_crc, r, len);
		pos += len;
	}
	*followed = err == AFS_OK && done + pos == e->len;
out:
	free(buf);
	return err;
}

/* Reads, beside libzip, the central directory libzip read, record by
 * record, for what libzip does not tell (mark_record).  The directory is
 * the one an end record in the span's tail states, the last one first,
 * whose entry count agrees with libzip's (modulo 65536 without ZIP64, as
 * Info-ZIP writes more entries) and whose records can be followed.
 * AFS_E_NOTZIP, with msg, when none can: the directory is not what it
 * says it is, and names libzip shows could hide what the records hold. */
static enum afs_err check_cdir(struct afs_archive *a, const struct span *s, char *msg, size_t msglen)
{
	unsigned char *tail = malloc(TAIL_MAX);
	uint64_t tbase;
	size_t n = tail ? read_tail(s, tail, &tbase) : 0;
	enum afs_err err = tail ? AFS_E_NOTZIP : AFS_E_NOMEM;
	bool followed = false;
	struct cdir_end e;

	for (size_t i = n >= EOCD_LEN ? n - EOCD_LEN + 1 : 0; i-- > 0 && !followed && err == AFS_E_NOTZIP;) {
		if (!read_end(s, tail, i, tbase, false, &e) ||
		    e.entries != (e.zip64 ? a->count : a->count & 0xffff) || e.off > e.at || e.len > e.at - e.off)
			continue;
		err = walk_cdir(a, s, &e, &followed);
		if (err == AFS_OK && !followed) { /* another end record, maybe: forget this one's marks */
			free(a->past_eof);
			free(a->nul_name);
			a->past_eof = a->nul_name = NULL;
			err = AFS_E_NOTZIP;
		}
	}
	free(tail);
	if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
	else if (err != AFS_OK)
		snprintf(msg, msglen, "the central directory does not read record by record as its end record states");
	return err;
}

uint32_t afs_archive_cdir_crc(const struct afs_archive *a)
{
	return a->cdir_crc;
}

bool afs_archive_entry_past_eof(const struct afs_archive *a, uint64_t i)
{
	return marked(a->past_eof, a->count, i);
}

uint64_t afs_archive_prefix(const struct afs_archive *a)
{
	return a->prefix;
}

void afs_archive_init_process(void)
{
	if (!getenv("TZ"))
		setenv("TZ", ":/etc/localtime", 0);
	tzset();
}

/* Opens, read-only with libzip, the archive that starts prefix bytes into
 * the file fd (0: at its start): the offsets the archive states then count
 * from there.  fd becomes the archive's (libzip reads it through a stream
 * and closes it with the archive) and is closed here on error, so an open
 * never needs more than one descriptor.  NULL, with libzip's error code in
 * *ze, on error. */
static zip_t *zip_open_at(int fd, uint64_t prefix, int *ze)
{
	FILE *fp = fdopen(fd, "rb");
	zip_source_t *src = NULL;
	zip_t *z = NULL;
	zip_error_t zerr;

	zip_error_init(&zerr);
	if (!fp) {
		zip_error_set(&zerr, ZIP_ER_OPEN, errno);
		close(fd);
	} else if (!(src = zip_source_filep_create(fp, prefix, 0, &zerr))) { /* 0: to the end */
		fclose(fp);
	} else if (!(z = zip_open_from_source(src, ZIP_RDONLY, &zerr))) {
		zip_source_free(src); /* closes fp */
	}
	*ze = zip_error_code_zip(&zerr);
	zip_error_fini(&zerr);
	return z;
}

/* Opens path again for the second try of open_zip: -1 unless it still is
 * the file st describes. */
static int reopen_same(const char *path, const struct stat *st)
{
	struct stat now;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && (fstat(fd, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The end of an open of a->zip (NULL: libzip failed with ze): AFS_OK, or
 * the error with msg saying why. */
static enum afs_err zip_opened(struct afs_archive *a, int ze, char *msg, size_t msglen)
{
	zip_error_t zerr;
	enum afs_err err;

	if (!a->zip) {
		zip_error_init_with_code(&zerr, ze);
		err = map_zip_error(ze);
		snprintf(msg, msglen, "%s", err == AFS_E_NOTZIP ? "not a ZIP archive, or truncated"
			 : ze == ZIP_ER_READ && a->remote ? "reading the object failed" : zip_error_strerror(&zerr));
		zip_error_fini(&zerr);
		return err;
	}
	if (zip_get_num_entries(a->zip, 0) < 0) {
		snprintf(msg, msglen, "cannot read the central directory");
		return AFS_E_NOTZIP;
	}
	return AFS_OK;
}

/* Opens a->zip from fd, the file path that st describes: the file as it
 * is, or, when libzip finds no archive there, the archive after a
 * self-extracting stub (find_prefix; libzip takes the offsets an archive
 * states as offsets in the file, so it reads a stub's archive only when
 * they were adjusted, as `zip -A` does).  fd is consumed (zip_open_at);
 * *live is the descriptor libzip reads, open until the archive is freed,
 * or -1.  Sets a->prefix; msg says why on error. */
static enum afs_err open_zip(struct afs_archive *a, const char *path, int fd, const struct stat *st, int *live,
			     char *msg, size_t msglen)
{
	zip_error_t zerr;
	int ze = 0;

	a->zip = zip_open_at(fd, 0, &ze);
	*live = a->zip ? fd : -1;
	if (!a->zip && (ze == ZIP_ER_NOZIP || ze == ZIP_ER_INCONS) && (fd = reopen_same(path, st)) >= 0) {
		a->prefix = find_prefix(fd, NULL, (uint64_t)st->st_size);
		if (a->prefix == 0) {
			close(fd);
		} else {
			a->zip = zip_open_at(fd, a->prefix, &ze);
			*live = a->zip ? fd : -1;
			if (!a->zip) {
				zip_error_init_with_code(&zerr, ze);
				snprintf(msg, msglen,
					 "not a ZIP archive, nor one after the %llu bytes of other data before it: %s",
					 (unsigned long long)a->prefix, zip_error_strerror(&zerr));
				zip_error_fini(&zerr);
				return map_zip_error(ze);
			}
		}
	}
	return zip_opened(a, ze, msg, msglen);
}

/* The libzip source of a remote archive: [base, base + size) of the
 * object, read through its block cache (remote.h).  libzip calls it with
 * the archive's mutex held. */
struct rsrc {
	struct afs_remote *r;
	uint64_t base, size, pos;
	zip_error_t err;
};

static zip_int64_t rsrc_read(struct rsrc *s, void *data, zip_uint64_t len)
{
	uint64_t n = s->size - s->pos < len ? s->size - s->pos : len;

	if (n > INT64_MAX)
		n = INT64_MAX;
	if (n && afs_remote_pread(s->r, data, (size_t)n, s->base + s->pos) != AFS_OK) {
		zip_error_set(&s->err, ZIP_ER_READ, EIO);
		return -1;
	}
	s->pos += n;
	return (zip_int64_t)n;
}

static zip_int64_t rsrc_stat(struct rsrc *s, void *data, zip_uint64_t len)
{
	zip_stat_t *st = data;

	if (len < sizeof(*st)) {
		zip_error_set(&s->err, ZIP_ER_INVAL, 0);
		return -1;
	}
	zip_stat_init(st);
	st->size = s->size;
	st->mtime = (time_t)afs_remote_mtime(s->r);
	st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
	return sizeof(*st);
}

/* The zip_source_callback of a remote archive (libzip's commands for a
 * seekable read-only source). */
static zip_int64_t rsrc_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct rsrc *s = ud;
	zip_int64_t pos;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		s->pos = 0;
		return 0;
	case ZIP_SOURCE_READ: return rsrc_read(s, data, len);
	case ZIP_SOURCE_CLOSE: return 0;
	case ZIP_SOURCE_STAT: return rsrc_stat(s, data, len);
	case ZIP_SOURCE_ERROR: return zip_error_to_data(&s->err, data, len);
	case ZIP_SOURCE_SEEK:
		pos = zip_source_seek_compute_offset(s->pos, s->size, data, len, &s->err);
		if (pos < 0)
			return -1;
		s->pos = (uint64_t)pos;
		return 0;
	case ZIP_SOURCE_TELL: return (zip_int64_t)s->pos;
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
						      ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
						      ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL, ZIP_SOURCE_SUPPORTS, -1);
	case ZIP_SOURCE_FREE:
		zip_error_fini(&s->err);
		free(s);
		return 0;
	default:
		zip_error_set(&s->err, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

/* Opens, read-only with libzip, the archive that starts prefix bytes into
 * the remote object r; NULL, with libzip's error code in *ze, on error. */
static zip_t *zip_open_remote(struct afs_remote *r, uint64_t prefix, int *ze)
{
	struct rsrc *s = calloc(1, sizeof(*s));
	zip_source_t *src = NULL;
	zip_t *z = NULL;
	zip_error_t zerr;

	zip_error_init(&zerr);
	if (!s) {
		zip_error_set(&zerr, ZIP_ER_MEMORY, 0);
	} else {
		*s = (struct rsrc){ .r = r, .base = prefix, .size = afs_remote_size(r) - prefix };
		zip_error_init(&s->err);
		if (!(src = zip_source_function_create(rsrc_cb, s, &zerr)))
			free(s);
		else if (!(z = zip_open_from_source(src, ZIP_RDONLY, &zerr)))
			zip_source_free(src);
	}
	*ze = zip_error_code_zip(&zerr);
	zip_error_fini(&zerr);
	return z;
}

/* open_zip() for a remote object: a->remote as it is, or the archive
 * after a self-extracting stub. */
static enum afs_err open_zip_remote(struct afs_archive *a, char *msg, size_t msglen)
{
	int ze = 0;

	a->zip = zip_open_remote(a->remote, 0, &ze);
	if (!a->zip && (ze == ZIP_ER_NOZIP || ze == ZIP_ER_INCONS) &&
	    (a->prefix = find_prefix(-1, a->remote, a->file_size)) != 0)
		a->zip = zip_open_remote(a->remote, a->prefix, &ze);
	return zip_opened(a, ze, msg, msglen);
}

/* Frees what a failed open left in a. */
static void discard(struct afs_archive *a)
{
	if (a->zip)
		zip_discard(a->zip);
	afs_remote_free(a->remote);
	free(a->past_eof);
	free(a->nul_name);
	free(a->local);
	free(a);
}

/* afs_archive_open() of a remote object: its size and Last-Modified as the
 * file's, its ETag in the directory's CRC-32 (the identity of seek points
 * kept on disk, pointfile.h). */
static enum afs_err open_remote(const char *url, struct afs_archive **out, char *msg, size_t msglen)
{
	struct afs_archive *a = calloc(1, sizeof(*a));
	const char *etag;
	enum afs_err err;

	if (!a) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	a->fd = -1;
	err = afs_remote_open(url, &a->remote, msg, msglen);
	if (err == AFS_OK) {
		a->file_size = afs_remote_size(a->remote);
		a->file_mtime = afs_remote_mtime(a->remote);
		err = open_zip_remote(a, msg, msglen);
	}
	if (err == AFS_OK) {
		struct span s = { -1, a->remote, a->prefix, a->file_size - a->prefix };

		a->count = (uint64_t)zip_get_num_entries(a->zip, 0);
		err = check_cdir(a, &s, msg, msglen);
		etag = afs_remote_etag(a->remote);
		a->cdir_crc = afs_crc32(a->cdir_crc, etag, strlen(etag));
	}
	if (err != AFS_OK) {
		discard(a);
		return err;
	}
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return AFS_OK;
}

/* The refusal of a file that cannot be an archive: a directory, another
 * kind of file, or an empty one. */
static enum afs_err not_a_file(const struct stat *st, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "%s, not a ZIP archive",
		 S_ISDIR(st->st_mode) ? "is a directory" : !S_ISREG(st->st_mode) ? "not a regular file" : "empty file");
	return AFS_E_NOTZIP;
}

enum afs_err afs_archive_open(const char *path, struct afs_archive **out, char *msg, size_t msglen)
{
	struct afs_archive *a = NULL;
	enum afs_err err = AFS_OK;
	struct stat st;
	int fd;

	*out = NULL;
	if (afs_remote_url(path))
		return open_remote(path, out, msg, msglen);
	if (stat(path, &st) != 0) {
		snprintf(msg, msglen, "%s", strerror(errno));
		return AFS_E_IO;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) /* refused before anything opens a device */
		return not_a_file(&st, msg, msglen);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(msg, msglen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return AFS_E_IO;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) { /* replaced since the stat() */
		close(fd);
		return not_a_file(&st, msg, msglen);
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(msg, msglen, "out of memory");
		close(fd);
		return AFS_E_NOMEM;
	}
	a->file_size = (uint64_t)st.st_size;
	a->file_mtime = st.st_mtim.tv_sec;
	err = open_zip(a, path, fd, &st, &fd, msg, msglen);
	a->fd = fd;
	if (err == AFS_OK) {
		struct span s = { fd, NULL, a->prefix, a->file_size - a->prefix };

		a->count = (uint64_t)zip_get_num_entries(a->zip, 0);
		err = check_cdir(a, &s, msg, msglen);
	}
	if (err != AFS_OK) { /* fd is closed with a->zip, or was by open_zip */
		discard(a);
		return err;
	}
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return AFS_OK;
}

void afs_archive_free(struct afs_archive *a)
{
	if (!a)
		return;
	zip_discard(a->zip); /* read-only: nothing to write back */
	afs_remote_free(a->remote);
	pthread_mutex_destroy(&a->lock);
	free(a->past_eof);
	free(a->nul_name);
	free(a->local);
	free(a);
}

uint64_t afs_archive_count(const struct afs_archive *a)
{
	return a->count;
}

uint64_t afs_archive_file_size(const struct afs_archive *a)
{
	return a->file_size;
}

int64_t afs_archive_file_mtime(const struct afs_archive *a)
{
	return a->file_mtime;
}

/* The mtime of the extended-timestamp extra field, if entry i has one. */
static bool ext_mtime(zip_t *z, zip_uint64_t i, int64_t *mtime)
{
	zip_uint16_t len = 0;
	const zip_uint8_t *d = zip_file_extra_field_get_by_id(z, i, EXTRA_EXT_TIMESTAMP, 0, &len, ZIP_FL_CENTRAL);

	if (!d || len < 5 || !(d[0] & 1))
		return false;
	*mtime = (int32_t)((uint32_t)d[1] | (uint32_t)d[2] << 8 | (uint32_t)d[3] << 16 | (uint32_t)d[4] << 24);
	return true;
}

enum afs_err afs_archive_entry(struct afs_archive *a, uint64_t i, struct afs_entry_info *out)
{
	enum afs_err err = AFS_OK;
	zip_stat_t st;
	zip_uint8_t opsys = 0;
	zip_uint32_t attr = 0;

	if (i >= a->count)
		return AFS_E_INVAL;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&a->lock);
	zip_stat_init(&st);
	if (zip_stat_index(a->zip, i, 0, &st) != 0) {
		err = map_zip_error(zip_error_code_zip(zip_get_error(a->zip)));
		goto out;
	}
	if (!(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE)) {
		err = AFS_E_NOTZIP;
		goto out;
	}
	out->name = st.name;
	out->name_nul = marked(a->nul_name, a->count, i);
	out->size = st.size;
	out->comp_size = st.comp_size;
	out->crc = (st.valid & ZIP_STAT_CRC) ? st.crc : 0;
	out->method = (st.valid & ZIP_STAT_COMP_METHOD) ? (uint16_t)st.comp_method : AFS_METHOD_STORE;
	out->encrypted = (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE;
	out->encryption = out->encrypted ? st.encryption_method : ZIP_EM_NONE;
	if (!ext_mtime(a->zip, i, &out->mtime))
		out->mtime = (st.valid & ZIP_STAT_MTIME) ? (int64_t)st.mtime : 0;
	if (zip_file_get_external_attributes(a->zip, i, 0, &opsys, &attr) == 0) {
		if (opsys == ZIP_OPSYS_UNIX)
			out->mode = attr >> 16;
		else if (attr & 0x10) /* MS-DOS directory attribute */
			out->mode = S_IFDIR;
	}
out:
	pthread_mutex_unlock(&a->lock);
	return err;
}

const char *afs_method_name(uint16_t m)
{
	switch (m) {
	case ZIP_CM_STORE: return "store";
	case ZIP_CM_SHRINK: return "shrink";
	case ZIP_CM_REDUCE_1:
	case ZIP_CM_REDUCE_2:
	case ZIP_CM_REDUCE_3:
	case ZIP_CM_REDUCE_4: return "reduce";
	case ZIP_CM_IMPLODE: return "implode";
	case ZIP_CM_DEFLATE: return "deflate";
	case ZIP_CM_DEFLATE64: return "deflate64";
	case ZIP_CM_PKWARE_IMPLODE: return "pkware-implode";
	case ZIP_CM_BZIP2: return "bzip2";
	case ZIP_CM_LZMA: return "lzma";
	case ZIP_CM_TERSE: return "terse";
	case ZIP_CM_LZ77: return "lz77";
	case ZIP_CM_LZMA2: return "lzma2";
	case 93: return "zstd"; /* ZIP_CM_ZSTD, from libzip 1.8 */
	case ZIP_CM_XZ: return "xz";
	case ZIP_CM_JPEG: return "jpeg";
	case ZIP_CM_WAVPACK: return "wavpack";
	case ZIP_CM_PPMD: return "ppmd";
	case 99: return "aes"; /* WinZip AES without its extra field */
	}
	return NULL;
}

const char *afs_encryption_name(uint16_t e)
{
	switch (e) {
	case ZIP_EM_TRAD_PKWARE: return "ZipCrypto";
	case ZIP_EM_AES_128: return "AES-128";
	case ZIP_EM_AES_192: return "AES-192";
	case ZIP_EM_AES_256: return "AES-256";
	}
	return e >= 0x6600 && e < 0x6900 ? "PKWARE strong encryption" : "an unknown encryption";
}

bool afs_method_libzip(uint16_t m)
{
	return m != AFS_METHOD_STORE && m != AFS_METHOD_DEFLATE && m != ZIP_CM_DEFLATE64 &&
	       zip_compression_method_supported(m, 0);
}

bool afs_method_decodable(uint16_t m)
{
	return m == AFS_METHOD_STORE || m == AFS_METHOD_DEFLATE || afs_method_libzip(m) || afs_xdec_handles(m);
}


/* The bytes of the archive: the span libzip reads. */
static struct span archive_span(const struct afs_archive *a)
{
	return (struct span){ a->fd, a->remote, a->prefix, a->file_size - a->prefix };
}

/* Sets r up to read its compressed bytes itself (r->direct), from the data
 * offset entry r->index's local header gives; comp: their size, as libzip
 * reads it.  Left to libzip when the header cannot be read or the data
 * does not fit in the archive, so that libzip's read says what is wrong. */
static void direct_setup(struct afs_raw *r, uint64_t comp)
{
	struct span s = archive_span(r->a);
	uint64_t local = r->a->local[r->index], data;
	unsigned char h[LOCAL_LEN];

	if (!span_read(&s, h, LOCAL_LEN, local) || le32(h) != 0x04034b50)
		return;
	data = local + LOCAL_LEN + le16(h + 26) + le16(h + 28);
	if (data > s.size || comp > s.size - data)
		return;
	r->data = data;
	r->comp = comp;
	r->direct = true;
}

/* Opens entry i with libzip's flags (ZIP_FL_COMPRESSED: the raw bytes). */
static enum afs_err raw_open(struct afs_archive *a, uint64_t i, zip_flags_t flags, struct afs_raw **out)
{
	struct afs_raw *r;
	enum afs_err err = AFS_OK;
	zip_stat_t st;

	*out = NULL;
	if (i >= a->count)
		return AFS_E_INVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return AFS_E_NOMEM;
	r->a = a;
	r->index = i;
	r->decoded = !(flags & ZIP_FL_COMPRESSED);
	zip_stat_init(&st);
	pthread_mutex_lock(&a->lock);
	r->file = zip_fopen_index(a->zip, i, flags);
	if (!r->file)
		err = map_zip_error(zip_error_code_zip(zip_get_error(a->zip)));
	else if (!r->decoded && zip_stat_index(a->zip, i, 0, &st) != 0)
		st.valid = 0;
	pthread_mutex_unlock(&a->lock);
	if (err != AFS_OK) {
		free(r);
		return err;
	}
	if (!r->decoded && (st.valid & ZIP_STAT_COMP_SIZE))
		direct_setup(r, st.comp_size);
	*out = r;
	return AFS_OK;
}

enum afs_err afs_raw_open(struct afs_archive *a, uint64_t i, struct afs_raw **out)
{
	return raw_open(a, i, ZIP_FL_COMPRESSED, out);
}

enum afs_err afs_raw_open_decoded(struct afs_archive *a, uint64_t i, struct afs_raw **out)
{
	return raw_open(a, i, 0, out);
}

const char *afs_raw_why(const struct afs_raw *r)
{
	return r->why;
}

/* The error of a failed zip_fread() on r (the archive's mutex held): what
 * it found in r->why, and the error for it.  A decoded stream's data
 * errors (libzip's CRC-32 and size checks at the end, a decoder's
 * complaint) are corrupt data. */
static enum afs_err read_failed(struct afs_raw *r)
{
	zip_error_t *ze = zip_file_get_error(r->file);

	switch (zip_error_code_zip(ze)) {
	case ZIP_ER_CRC:
		snprintf(r->why, sizeof(r->why), "CRC-32 mismatch");
		return AFS_E_CORRUPT;
	case ZIP_ER_INCONS:
		snprintf(r->why, sizeof(r->why), "the decoded data is not of the size the archive states");
		return r->decoded ? AFS_E_CORRUPT : map_zip_error(ZIP_ER_INCONS);
	case ZIP_ER_COMPRESSED_DATA:
		snprintf(r->why, sizeof(r->why), "malformed compressed data");
		return AFS_E_CORRUPT;
	default:
		snprintf(r->why, sizeof(r->why), "%s", zip_error_strerror(ze));
		return map_zip_error(zip_error_code_zip(ze));
	}
}

/* afs_raw_read() of a direct reader: no libzip, no lock. */
static enum afs_err direct_read(struct afs_raw *r, void *buf, size_t len, size_t *got)
{
	struct span s = archive_span(r->a);
	size_t n = r->comp - r->pos < len ? (size_t)(r->comp - r->pos) : len;

	if (n && !span_read(&s, buf, n, r->data + r->pos)) {
		if (r->a->remote)
			snprintf(r->why, sizeof(r->why), "reading %s failed", afs_remote_shown(r->a->remote));
		else
			snprintf(r->why, sizeof(r->why), "reading the archive failed");
		return AFS_E_IO;
	}
	r->pos += n;
	*got = n;
	return AFS_OK;
}

enum afs_err afs_raw_read(struct afs_raw *r, void *buf, size_t len, size_t *got)
{
	uint64_t failures;
	zip_int64_t n;
	enum afs_err err = AFS_OK;

	*got = 0;
	if (r->direct)
		return direct_read(r, buf, len, got);
	if (r->decoded && len > AFS_RAW_DECODED_CHUNK)
		len = AFS_RAW_DECODED_CHUNK;
	pthread_mutex_lock(&r->a->lock);
	failures = r->a->remote ? afs_remote_failures(r->a->remote) : 0;
	n = zip_fread(r->file, buf, len);
	if (n < 0 && r->a->remote && afs_remote_failures(r->a->remote) != failures) {
		/* the transfer failed, not the data: libzip calls it truncated */
		snprintf(r->why, sizeof(r->why), "reading %s failed", afs_remote_shown(r->a->remote));
		err = AFS_E_IO;
	} else if (n < 0) {
		err = read_failed(r);
	}
	pthread_mutex_unlock(&r->a->lock);
	if (err == AFS_OK)
		*got = (size_t)n;
	return err;
}

enum afs_err afs_raw_seek(struct afs_raw *r, uint64_t off)
{
	enum afs_err err = AFS_OK;

	if (off > INT64_MAX || r->decoded)
		return AFS_E_INVAL;
	if (r->direct) {
		if (off > r->comp)
			return AFS_E_INVAL;
		r->pos = off;
		return AFS_OK;
	}
	pthread_mutex_lock(&r->a->lock);
	if (zip_fseek(r->file, (zip_int64_t)off, SEEK_SET) != 0)
		err = AFS_E_INVAL;
	pthread_mutex_unlock(&r->a->lock);
	return err;
}

void afs_raw_close(struct afs_raw *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->a->lock);
	zip_fclose(r->file);
	pthread_mutex_unlock(&r->a->lock);
	free(r);
}

/* ------------------------------------------------------------ the writer */

struct afs_zipw {
	zip_t *zip;
	char *path;
	enum afs_err err; /* sticky: the first failed add */
	char msg[256];
	enum afs_err src_err; /* the first failure of an opener's entry while zip_close() writes */
	char src_msg[512];
};

/* The libzip source of an afs_zipw_add_opener() entry: it opens its
 * descriptor only when libzip opens the source, during zip_close(), one
 * entry at a time. */
struct lazy {
	struct afs_zipw *w;
	afs_zipw_opener open;
	const void *ctx;
	size_t i;
	uint64_t size, done;
	int64_t mtime;
	int fd;
	zip_error_t error;
};

enum afs_err afs_zipw_open(const char *path, struct afs_zipw **out, char *msg, size_t msglen)
{
	struct afs_zipw *w = calloc(1, sizeof(*w));
	enum afs_err err;
	zip_error_t zerr;
	int ze = 0, fd;

	*out = NULL;
	if (!w || !(w->path = strdup(path))) {
		free(w);
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	/* libzip writes a temporary file with the mode of the file it replaces
	 * (0666 & ~umask when there is none): an empty 0600 file first keeps
	 * every byte private from the moment it exists. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(msg, msglen, "%s", strerror(errno));
		err = errno == EEXIST ? AFS_E_CONFLICT : errno == ENOSPC ? AFS_E_NOSPC : AFS_E_IO;
		goto fail;
	}
	close(fd);
	w->zip = zip_open(path, ZIP_TRUNCATE, &ze);
	if (!w->zip) {
		zip_error_init_with_code(&zerr, ze);
		snprintf(msg, msglen, "%s", zip_error_strerror(&zerr));
		zip_error_fini(&zerr);
		unlink(path);
		err = AFS_E_IO;
		goto fail;
	}
	*out = w;
	return AFS_OK;
fail:
	free(w->path);
	free(w);
	return err;
}

/* Adds source src (consumed, even on error) as entry name. */
static enum afs_err zipw_add(struct afs_zipw *w, const char *name, zip_source_t *src, uint32_t mode, int64_t mtime)
{
	zip_int64_t i;

	if (w->err != AFS_OK) {
		zip_source_free(src);
		return w->err;
	}
	if (!src) {
		w->err = AFS_E_IO;
		snprintf(w->msg, sizeof(w->msg), "%s: %s", name, zip_strerror(w->zip));
		return w->err;
	}
	i = zip_file_add(w->zip, name, src, ZIP_FL_ENC_UTF_8);
	if (i < 0) {
		zip_source_free(src);
		w->err = AFS_E_IO;
		snprintf(w->msg, sizeof(w->msg), "%s: %s", name, zip_strerror(w->zip));
		return w->err;
	}
	if (zip_set_file_compression(w->zip, (zip_uint64_t)i, ZIP_CM_DEFLATE, 1) != 0 ||
	    zip_file_set_external_attributes(w->zip, (zip_uint64_t)i, 0, ZIP_OPSYS_UNIX, mode << 16) != 0 ||
	    zip_file_set_mtime(w->zip, (zip_uint64_t)i, (time_t)mtime, 0) != 0) {
		w->err = AFS_E_IO;
		snprintf(w->msg, sizeof(w->msg), "%s: %s", name, zip_strerror(w->zip));
	}
	return w->err;
}

enum afs_err afs_zipw_add_buffer(struct afs_zipw *w, const char *name, const void *data, size_t len,
				 uint32_t mode, int64_t mtime)
{
	void *copy = malloc(len ? len : 1);
	zip_source_t *src;

	if (!copy)
		return w->err = AFS_E_NOMEM;
	memcpy(copy, data, len);
	src = zip_source_buffer(w->zip, copy, len, 1);
	if (!src)
		free(copy);
	return zipw_add(w, name, src, mode, mtime);
}

/* Records the first failure of a lazy entry, for afs_zipw_close(); sets
 * libzip's error of the source to ze. */
static zip_int64_t lazy_fail(struct lazy *l, enum afs_err err, int ze, int sys, const char *msg)
{
	if (l->w->src_err == AFS_OK) {
		l->w->src_err = err;
		snprintf(l->w->src_msg, sizeof(l->w->src_msg), "%s", msg);
	}
	zip_error_set(&l->error, ze, sys);
	return -1;
}

/* ZIP_SOURCE_READ: up to len bytes, never past l->size; the end of the
 * descriptor before l->size is an error. */
static zip_int64_t lazy_read(struct lazy *l, void *data, zip_uint64_t len)
{
	char msg[256];
	ssize_t got;

	if (len > l->size - l->done)
		len = l->size - l->done;
	if (len == 0)
		return 0;
	do
		got = read(l->fd, data, len);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		snprintf(msg, sizeof(msg), "reading an entry's content: %s", strerror(errno));
		return lazy_fail(l, AFS_E_IO, ZIP_ER_READ, errno, msg);
	}
	if (got == 0) {
		snprintf(msg, sizeof(msg), "an entry's content ended after %llu of %llu bytes: it changed while read",
			 (unsigned long long)l->done, (unsigned long long)l->size);
		return lazy_fail(l, AFS_E_CONFLICT, ZIP_ER_READ, 0, msg);
	}
	l->done += (uint64_t)got;
	return got;
}

/* The zip_source_callback of a lazy entry (libzip's calling sequence:
 * SUPPORTS at creation; STAT, then OPEN, READs and CLOSE while zip_close()
 * writes the entry; ERROR after a -1; FREE once). */
static zip_int64_t lazy_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct lazy *l = ud;
	char msg[256] = "";
	zip_stat_t *st;
	enum afs_err err;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		l->done = 0;
		err = l->open(l->ctx, l->i, &l->fd, msg, sizeof(msg));
		if (err != AFS_OK) {
			l->fd = -1;
			return lazy_fail(l, err, ZIP_ER_OPEN, 0, msg);
		}
		return 0;
	case ZIP_SOURCE_READ:
		return lazy_read(l, data, len);
	case ZIP_SOURCE_CLOSE:
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		return 0;
	case ZIP_SOURCE_STAT:
		st = data;
		zip_stat_init(st);
		st->size = l->size;
		st->mtime = (time_t)l->mtime;
		st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
		return sizeof(*st);
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&l->error, data, len);
	case ZIP_SOURCE_FREE:
		if (l->fd >= 0)
			close(l->fd);
		zip_error_fini(&l->error);
		free(l);
		return 0;
	case ZIP_SOURCE_SUPPORTS:
		return ZIP_SOURCE_SUPPORTS_READABLE;
	default:
		zip_error_set(&l->error, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

enum afs_err afs_zipw_add_opener(struct afs_zipw *w, const char *name, uint64_t size, uint32_t mode,
				 int64_t mtime, afs_zipw_opener open, const void *ctx, size_t i)
{
	struct lazy *l = calloc(1, sizeof(*l));
	zip_source_t *src;

	if (!l)
		return w->err = AFS_E_NOMEM;
	*l = (struct lazy){ .w = w, .open = open, .ctx = ctx, .i = i, .size = size, .mtime = mtime, .fd = -1 };
	zip_error_init(&l->error);
	src = zip_source_function(w->zip, lazy_cb, l);
	if (!src) {
		zip_error_fini(&l->error);
		free(l);
	}
	return zipw_add(w, name, src, mode, mtime);
}

enum afs_err afs_zipw_close(struct afs_zipw *w, char *msg, size_t msglen)
{
	enum afs_err err = w->err;

	if (err != AFS_OK) {
		snprintf(msg, msglen, "%s", w->msg);
		zip_discard(w->zip);
	} else if (zip_close(w->zip) != 0) {
		err = zip_error_code_zip(zip_get_error(w->zip)) == ZIP_ER_WRITE &&
		      zip_error_code_system(zip_get_error(w->zip)) == ENOSPC ? AFS_E_NOSPC : AFS_E_IO;
		snprintf(msg, msglen, "%s", zip_strerror(w->zip));
		if (w->src_err != AFS_OK) { /* an opener's entry failed: its reason, not libzip's */
			err = w->src_err;
			snprintf(msg, msglen, "%s", w->src_msg);
		}
		zip_discard(w->zip);
		unlink(w->path);
	} else if ((err = afs_fsync_path(w->path)) != AFS_OK) { /* libzip renamed its file into place */
		snprintf(msg, msglen, "fsync: %s", strerror(errno));
		unlink(w->path);
	}
	free(w->path);
	free(w);
	return err;
}

void afs_zipw_discard(struct afs_zipw *w)
{
	if (!w)
		return;
	zip_discard(w->zip);
	unlink(w->path); /* the empty placeholder */
	free(w->path);
	free(w);
}
