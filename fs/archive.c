/* SPDX-License-Identifier: MIT */
/* The ZIP reader: libzip opens the archive and parses its central directory;
 * this module turns entries into plain values and serves raw entry bytes.
 *
 * Thread safety: libzip objects are not thread-safe, so every libzip call
 * below runs under a->lock.  Raw reads hold the lock only while libzip
 * copies compressed bytes out of the file; inflating happens outside it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>
#include "archive.h"

#define EXTRA_EXT_TIMESTAMP 0x5455 /* Info-ZIP extended timestamp */

struct afs_archive {
	zip_t *zip;
	pthread_mutex_t lock;
	uint64_t count;
	uint64_t file_size;
	int64_t file_mtime;
};

struct afs_raw {
	struct afs_archive *a;
	zip_file_t *file;
	uint64_t index;
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

enum afs_err afs_archive_open(const char *path, struct afs_archive **out, char *msg, size_t msglen)
{
	struct afs_archive *a = NULL;
	enum afs_err err = AFS_OK;
	struct stat st;
	zip_error_t zerr;
	int ze = 0;

	*out = NULL;
	if (stat(path, &st) != 0) {
		snprintf(msg, msglen, "%s", strerror(errno));
		return AFS_E_IO;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(msg, msglen, "is a directory, not a ZIP archive");
		return AFS_E_NOTZIP;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(msg, msglen, "%s, not a ZIP archive", st.st_size == 0 ? "empty file" : "not a regular file");
		return AFS_E_NOTZIP;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	a->zip = zip_open(path, ZIP_RDONLY, &ze);
	if (!a->zip) {
		zip_error_init_with_code(&zerr, ze);
		err = map_zip_error(ze);
		snprintf(msg, msglen, "%s", err == AFS_E_NOTZIP ? "not a ZIP archive, or truncated" : zip_error_strerror(&zerr));
		zip_error_fini(&zerr);
		goto out;
	}
	if (zip_get_num_entries(a->zip, 0) < 0) {
		snprintf(msg, msglen, "cannot read the central directory");
		err = AFS_E_NOTZIP;
		goto out;
	}
	a->count = (uint64_t)zip_get_num_entries(a->zip, 0);
	a->file_size = (uint64_t)st.st_size;
	a->file_mtime = st.st_mtim.tv_sec;
	pthread_mutex_init(&a->lock, NULL);
out:
	if (err != AFS_OK) {
		if (a->zip)
			zip_discard(a->zip);
		free(a);
		return err;
	}
	*out = a;
	return AFS_OK;
}

void afs_archive_free(struct afs_archive *a)
{
	if (!a)
		return;
	zip_discard(a->zip); /* read-only: nothing to write back */
	pthread_mutex_destroy(&a->lock);
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
	out->size = st.size;
	out->comp_size = st.comp_size;
	out->crc = (st.valid & ZIP_STAT_CRC) ? st.crc : 0;
	out->method = (st.valid & ZIP_STAT_COMP_METHOD) ? (uint16_t)st.comp_method : AFS_METHOD_STORE;
	out->encrypted = (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE;
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

enum afs_err afs_raw_open(struct afs_archive *a, uint64_t i, struct afs_raw **out)
{
	struct afs_raw *r;
	enum afs_err err = AFS_OK;

	*out = NULL;
	if (i >= a->count)
		return AFS_E_INVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return AFS_E_NOMEM;
	r->a = a;
	r->index = i;
	pthread_mutex_lock(&a->lock);
	r->file = zip_fopen_index(a->zip, i, ZIP_FL_COMPRESSED);
	if (!r->file)
		err = map_zip_error(zip_error_code_zip(zip_get_error(a->zip)));
	pthread_mutex_unlock(&a->lock);
	if (err != AFS_OK) {
		free(r);
		return err;
	}
	*out = r;
	return AFS_OK;
}

enum afs_err afs_raw_read(struct afs_raw *r, void *buf, size_t len, size_t *got)
{
	zip_int64_t n;
	enum afs_err err = AFS_OK;

	*got = 0;
	pthread_mutex_lock(&r->a->lock);
	n = zip_fread(r->file, buf, len);
	if (n < 0)
		err = map_zip_error(zip_error_code_zip(zip_file_get_error(r->file)));
	pthread_mutex_unlock(&r->a->lock);
	if (err == AFS_OK)
		*got = (size_t)n;
	return err;
}

enum afs_err afs_raw_seek(struct afs_raw *r, uint64_t off)
{
	enum afs_err err = AFS_OK;

	if (off > INT64_MAX)
		return AFS_E_INVAL;
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
