/* SPDX-License-Identifier: MIT */
/* Seek points kept on disk between mounts (seekidx.h uses them): one file
 * per deflated entry, in a cache directory of the user's own
 * ($XDG_CACHE_HOME/archfs, else ~/.cache/archfs, or --index-dir), named
 * after the archive's identity and the entry's number.
 *
 * The identity is what makes a file belong to an archive: the archive
 * file's size and mtime, its entry count and the CRC-32 of its central
 * directory's records; and of the entry its number, sizes and CRC-32.  A
 * file is written whole to a temporary file and renamed into place (0600,
 * afile.h), and read whole: magic, version, identity, a CRC-32 of the
 * whole file, and every point checked (offsets increasing and inside the
 * entry, at most 7 bits, window lengths and packed sizes within bounds)
 * before any of it is used.  A file that fails any check is not used, and
 * the caller says so once; the windows are unpacked to exactly their
 * length when a point is used (seekidx.c), so a file that passes its checks
 * but lies cannot make a read run past a buffer, only fail or, written
 * with intent by the user the directory belongs to, give other bytes.
 *
 * Layout (little-endian): "ARCHFSPT", u32 version (1), u32 points; the
 * archive: u64 size, i64 mtime, u32 directory CRC-32, u32 0, u64 entries;
 * the entry: u64 number, u64 size, u64 compressed size, u32 CRC-32, u32 0;
 * per point: u64 out, u64 in, u8 bits, u8 prime, u16 0, u32 window
 * length, u32 packed length, the packed window; then u32 CRC-32 of all
 * that came before.
 */
#ifndef AFS_POINTFILE_H
#define AFS_POINTFILE_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

/* One seek point (seekidx.h): the decoder restarts at compressed offset
 * in, the last bits bits of the byte before it (prime's top ones) first,
 * with the wlen bytes of output before out (all of them when out is less
 * than 32 KiB, else 32 KiB) as its window, packed in zwin[0..zlen). */
struct afs_seekpoint {
	uint64_t out;
	uint64_t in;
	uint8_t bits;
	uint8_t prime;
	uint32_t wlen;
	uint32_t zlen;
	unsigned char *zwin;
};

/* What a points file belongs to. */
struct afs_pointkey {
	uint64_t file_size;
	int64_t file_mtime;
	uint32_t cdir_crc;
	uint64_t entries;
	uint64_t entry;
	uint64_t size;
	uint64_t comp_size;
	uint32_t crc;
};

/* Opens the cache directory dir (NULL: $XDG_CACHE_HOME/archfs, else
 * $HOME/.cache/archfs), making it (0700, and its parents) when missing.
 * It must be a directory (not a symlink) of this user's that no one else
 * may write to; one of the user's with wider modes is narrowed to 0700.
 * Returns its descriptor, or -1 with why. */
int afs_pointdir_open(const char *dir, char *why, size_t whylen);

/* The name of k's file in the directory (a single path component). */
void afs_pointfile_name(const struct afs_pointkey *k, char *buf, size_t len);

/* Writes pts[0..n) as k's file in the directory open at dfd, atomically. */
enum afs_err afs_pointfile_save(int dfd, const struct afs_pointkey *k, const struct afs_seekpoint *pts, size_t n);

/* Reads k's file: AFS_E_NOENT when there is none; AFS_E_CORRUPT, with
 * why, for one that does not check out (or is larger than max_bytes);
 * else *pts (free with afs_seekpoints_free()) and *n. */
enum afs_err afs_pointfile_load(int dfd, const struct afs_pointkey *k, size_t max_bytes, struct afs_seekpoint **pts,
				size_t *n, char *why, size_t whylen);

void afs_seekpoints_free(struct afs_seekpoint *pts, size_t n);

#endif
