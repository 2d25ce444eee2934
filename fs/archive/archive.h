/* SPDX-License-Identifier: MIT */
/* The ZIP reader: the only module that talks to libzip.
 *
 * It opens an archive once, reports each central-directory entry as a plain
 * value, and hands out raw (still compressed) byte streams of entries, and
 * decoded ones for the methods libzip decodes (bzip2, ...).
 *
 * Thread safety: a libzip archive is not thread-safe, so every libzip call
 * made through this module holds the archive's mutex.  Raw streams of
 * different entries may be used from different threads at once; each call
 * holds the mutex only for the copy out of the archive file, never while the
 * caller inflates (a decoded stream's call: for one chunk of libzip's
 * decoding).  One afs_raw must not be used by two threads at once.
 */
#ifndef AFS_ARCHIVE_H
#define AFS_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "err.h"

/* ZIP compression methods archfs decodes itself; afs_method_decodable()
 * says which others it decodes (xdecode.h, or libzip). */
#define AFS_METHOD_STORE 0
#define AFS_METHOD_DEFLATE 8

/* One central-directory entry, as the archive states it. */
struct afs_entry_info {
	const char *name;   /* as stored; owned by the archive, valid until afs_archive_free() */
	bool name_nul;      /* the stored name holds a NUL byte: name is not it (libzip up to 1.11
			     * shows a space there, later ones end the name there) */
	uint64_t size;      /* uncompressed size */
	uint64_t comp_size; /* compressed size */
	uint32_t crc;       /* CRC-32 of the uncompressed data */
	int64_t mtime;      /* the extended-timestamp mtime if present, else the DOS time (local time) */
	uint32_t mode;      /* Unix st_mode from the external attributes; 0 when the archive gives none */
	uint16_t method;    /* compression method */
	bool encrypted;
	uint16_t encryption; /* the encryption method (libzip's ZIP_EM_*), 0 when not encrypted */
};

/* The name of compression method m as archfs shows it ("store", "deflate",
 * "bzip2", "lzma", "xz", "zstd", "deflate64", ...), or NULL for a number
 * it does not know. */
const char *afs_method_name(uint16_t m);

/* The name of encryption method e ("ZipCrypto", "AES-256", ...); never NULL. */
const char *afs_encryption_name(uint16_t e);

/* True when archfs can decode method m: store and deflate itself (the
 * inflaters of inflate.h), LZMA, XZ and zstd with liblzma and libzstd
 * (xdecode.h), others through the decoders of the libzip it runs with
 * (afs_method_libzip()).  Never Deflate64, which libzip does not decode. */
bool afs_method_decodable(uint16_t m);

/* True when the libzip archfs runs with decodes method m, other than store
 * and deflate: then its decoder is the one used (afs_raw_open_decoded()).
 * Debian 12's libzip 1.7.3 decodes bzip2 only, being built without
 * liblzma and libzstd; libzip 1.8 or later built with them adds LZMA, XZ
 * and zstd.  Never Deflate64, which libzip does not decode. */
bool afs_method_libzip(uint16_t m);

struct afs_archive;

/* Call once at program start, before any thread exists.  libzip converts
 * every entry's DOS time with mktime(), and glibc reads /etc/localtime
 * again on each call while TZ is unset: one stat() per central-directory
 * entry, most of the open time of a 200,000-entry archive.  This sets TZ,
 * when unset, to the same system zone (":/etc/localtime"), which glibc
 * reads once.  Times come out the same either way. */
void afs_archive_init_process(void);

/* Opens the ZIP file at path and reads its central directory, with libzip
 * and once more record by record (for afs_archive_entry_past_eof() and
 * name_nul): a directory whose records do not follow each other as its end
 * record states is refused.  An archive after other data whose offsets
 * count from the archive's own start (a self-extracting stub that
 * `zip -A` did not adjust) is read from its start, found as Info-ZIP's
 * unzip finds it (afs_archive_prefix()).
 * A path that afs_remote_url() accepts (https://, http://, s3://) is a
 * remote object, read with range requests through a libzip source
 * (remote.h): its size and Last-Modified stand for the file's size and
 * mtime, and its ETag is folded into afs_archive_cdir_crc(); errors as
 * afs_remote_open() gives them (AFS_E_NOENT for a missing object, ...).
 * On success *out owns the open file; on error *out is NULL and msg holds a
 * one-line reason (without the path) of at most msglen bytes. */
enum afs_err afs_archive_open(const char *path, struct afs_archive **out, char *msg, size_t msglen);

/* Closes the archive; NULL is a no-op.  No afs_raw of it may remain open. */
void afs_archive_free(struct afs_archive *a);

/* Number of entries in the central directory. */
uint64_t afs_archive_count(const struct afs_archive *a);

/* Size in bytes and mtime of the archive file itself (read at open). */
uint64_t afs_archive_file_size(const struct afs_archive *a);
int64_t afs_archive_file_mtime(const struct afs_archive *a);

/* CRC-32 of the central directory's records, as read at open (for a
 * remote archive continued over its ETag): with the file's size and
 * mtime, what tells this archive from another (the seek points kept on
 * disk, pointfile.h). */
uint32_t afs_archive_cdir_crc(const struct afs_archive *a);

/* Fills *out with entry i (0 <= i < count).  AFS_E_INVAL for i out of range. */
enum afs_err afs_archive_entry(struct afs_archive *a, uint64_t i, struct afs_entry_info *out);

/* True when entry i's local header and compressed data cannot fit in the
 * archive file: its central-directory record points past the end.  libzip
 * reads a local header only when the entry is opened; afs_archive_open()
 * checks every entry's range at once, so such an entry is known before its
 * first read (which must then fail, cleanly). */
bool afs_archive_entry_past_eof(const struct afs_archive *a, uint64_t i);

/* Bytes of other data before the archive when its offsets count from its
 * own start (an unadjusted self-extracting stub); 0 otherwise, also for an
 * adjusted stub, whose offsets are the file's. */
uint64_t afs_archive_prefix(const struct afs_archive *a);

/* A raw byte stream over the compressed data of one entry. */
struct afs_raw;

/* Opens entry i's compressed bytes, positioned at 0. */
enum afs_err afs_raw_open(struct afs_archive *a, uint64_t i, struct afs_raw **out);

/* Reads up to len bytes; *got is 0 only at the end of the compressed data. */
enum afs_err afs_raw_read(struct afs_raw *r, void *buf, size_t len, size_t *got);

/* Moves to byte off of the compressed data (off <= comp_size). */
enum afs_err afs_raw_seek(struct afs_raw *r, uint64_t off);

/* Closes the stream; NULL is a no-op. */
void afs_raw_close(struct afs_raw *r);

/* A stream of entry i's uncompressed content as libzip's own decoders give
 * it (for an unencrypted entry whose method afs_method_libzip() accepts),
 * from offset 0 on and forward only: afs_raw_seek() fails on it.  Each
 * afs_raw_read() of it decodes at most AFS_RAW_DECODED_CHUNK bytes, holding
 * the archive's mutex for that chunk only, so that reads of other entries
 * interleave.  libzip checks the CRC-32 and the size when a read finds the
 * end of the data (the read that returns 0 bytes): a mismatch, like
 * malformed compressed data, is AFS_E_CORRUPT; afs_raw_why() says which. */
#define AFS_RAW_DECODED_CHUNK (32 * 1024)
enum afs_err afs_raw_open_decoded(struct afs_archive *a, uint64_t i, struct afs_raw **out);

/* What the last failed call on r found ("CRC-32 mismatch", "malformed
 * compressed data", libzip's message otherwise); "" before any failure. */
const char *afs_raw_why(const struct afs_raw *r);

/* A ZIP writer, for the pre-restore snapshots (entries deflated at level 1:
 * a snapshot is written while the operator waits).  The path holds an empty
 * 0600 file until afs_zipw_close() succeeds: libzip writes a temporary file
 * beside it, with that mode, and renames it into place; the file is then
 * fsync'd.  Every byte is 0600 from the moment it exists. */
struct afs_zipw;

/* Starts a new archive at path, which must not exist (AFS_E_CONFLICT). */
enum afs_err afs_zipw_open(const char *path, struct afs_zipw **out, char *msg, size_t msglen);

/* Adds an entry with a copy of len bytes of data. */
enum afs_err afs_zipw_add_buffer(struct afs_zipw *w, const char *name, const void *data, size_t len,
				 uint32_t mode, int64_t mtime);

/* Opens the content of an entry added with afs_zipw_add_opener(): returns
 * a readable descriptor positioned at its first byte in *fd (the writer
 * reads it and closes it), or an error and a one-line reason in msg. */
typedef enum afs_err (*afs_zipw_opener)(const void *ctx, size_t i, int *fd, char *msg, size_t msglen);

/* Adds an entry of exactly size bytes whose content comes from a
 * descriptor that open(ctx, i, ...) returns when afs_zipw_close() writes
 * this entry, and that is closed once it is read: the archive never holds
 * more than one such descriptor, and nothing is opened by path here.  ctx
 * must stay valid until the archive is closed or discarded.  Bytes past
 * size are not read; a descriptor that ends before size bytes fails the
 * archive (the content changed).  An opener's error, with its message,
 * becomes afs_zipw_close()'s. */
enum afs_err afs_zipw_add_opener(struct afs_zipw *w, const char *name, uint64_t size, uint32_t mode,
				 int64_t mtime, afs_zipw_opener open, const void *ctx, size_t i);

/* Writes the archive and frees w (also on error, when nothing is left at
 * the path and msg says why). */
enum afs_err afs_zipw_close(struct afs_zipw *w, char *msg, size_t msglen);

/* Abandons the archive: nothing is written; NULL is a no-op. */
void afs_zipw_discard(struct afs_zipw *w);

#endif
