/* SPDX-License-Identifier: MIT */
/* Remote objects: an archive on an HTTP(S) server or in S3-compatible
 * storage, read with range requests (libcurl, the only includer of
 * <curl/curl.h>).  archive.c reads one through a libzip source.
 *
 * An object is opened with one request, a GET of its last 64 KiB, which
 * gives its size (Content-Range), ETag and Last-Modified, and the bytes of
 * its central directory's end.  Later reads go through a block cache
 * (AFS_REMOTE_BLOCK bytes per block, bounded in bytes, least recently used
 * evicted) and fetch a missing block with read-ahead for sequential reads:
 * a reader that goes on from block k-1 to k fetches k and the next ones in
 * one range, 2, 4 then 8 blocks, and, once allowed
 * (afs_remote_set_background()), a reader going on through blocks already
 * held starts the fetch of the next 8 on a thread of its own, so that the
 * transfer overlaps the reader's work.  Requests reuse pooled curl handles that
 * share DNS, TLS sessions and connections.  A request failing with a 5xx,
 * 429, a timeout or a connection error is tried again, 4 attempts in all,
 * 0.2, 0.4 and 0.8 s apart, but a timeout only twice; a transfer slower
 * than AFS_REMOTE_STALL_BPS bytes/s for AFS_REMOTE_STALL_S seconds times
 * out (libcurl's low-speed check).
 *
 * Every read sends If-Match with the ETag seen at open (If-Unmodified-Since
 * for a weak or missing ETag) and checks the answer's ETag, Last-Modified
 * and Content-Range: an object replaced or deleted since the open makes
 * that read and every later one fail with AFS_E_IO, logged once
 * ("URL: the object changed since it was opened"); bytes of two versions
 * are never mixed.
 *
 * S3 (s3://BUCKET/KEY): requests are signed with AWS SigV4 (libcurl's)
 * with the credentials the AWS tools take: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, else AWS_PROFILE's (or
 * "default") in AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials; the
 * region from AWS_REGION, AWS_DEFAULT_REGION, the profile's in
 * AWS_CONFIG_FILE or ~/.aws/config, else us-east-1.  With an endpoint
 * (--s3-endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) the address is
 * path-style, ENDPOINT/BUCKET/KEY; without, AWS's virtual-hosted
 * https://BUCKET.s3.REGION.amazonaws.com/KEY (path-style for a bucket name
 * with a dot).  No credentials: unsigned requests (a public bucket).
 * Secrets go into requests only: never into messages or logs, which name
 * an object by afs_remote_redact()'s form of its URL.
 *
 * HTTPS is verified against the system's CA store, or the one file of
 * --ca-file / ARCHFS_CA_FILE; verification is never turned off.
 *
 * Thread safety: afs_remote_init_process() runs once before any thread;
 * afs_remote_pread() and afs_remote_free() of different objects, and
 * pread() of one object, may run on any threads at once.
 */
#ifndef AFS_REMOTE_H
#define AFS_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define AFS_REMOTE_BLOCK (1024 * 1024)
#define AFS_REMOTE_CACHE_DEFAULT_MB 64
#define AFS_REMOTE_TAIL (64 * 1024)
#define AFS_REMOTE_STALL_S 5
#define AFS_REMOTE_STALL_BPS 1024

/* Settings for every remote object of the process (copied). */
struct afs_remote_opts {
	size_t cache_bytes;      /* block cache per object; 0: AFS_REMOTE_CACHE_DEFAULT_MB MiB */
	const char *s3_endpoint; /* NULL: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS */
	const char *ca_file;     /* NULL: ARCHFS_CA_FILE, else the system's CA store */
};

/* Call once at program start, before any thread exists (curl's global
 * initialisation); o may be NULL (the defaults), and may be given again
 * later, still before any thread, to change the settings. */
void afs_remote_init_process(const struct afs_remote_opts *o);

/* Allows (or stops) read-ahead on threads of the objects' own, off until
 * called: a daemon that opens its archive and then forks (fuse_daemonize)
 * must not leave such a thread behind in the parent.  Call it after the
 * fork, before reads begin on other threads. */
void afs_remote_set_background(bool on);

/* Test hook: called on a background fetch's thread once it is done with
 * its object, just before the thread ends (NULL: none).  afs_remote_free()
 * returns only after such threads have ended. */
void afs_remote_set_prefetch_end_hook(void (*end)(void));

/* True when s names a remote object: http://, https:// or s3://. */
bool afs_remote_url(const char *s);

/* Copies url to out (outlen > 0, always terminated) as messages show it:
 * without userinfo, query string or fragment; anything that is not a
 * remote URL (afs_remote_url()) as it is.  Returns out. */
char *afs_remote_redact(const char *url, char *out, size_t outlen);

struct afs_remote;

/* Opens the object url names (one request).  AFS_E_NOENT for a missing
 * object or bucket, AFS_E_ACCES when refused (401, 403), AFS_E_NOTZIP for
 * an empty object, AFS_E_UNSUPPORTED for an S3 prefix (a URL ending in
 * '/'), AFS_E_INVAL for a malformed URL, AFS_E_IO otherwise; msg then
 * holds a one-line reason without the URL.  On success *out is the object,
 * freed with afs_remote_free(). */
enum afs_err afs_remote_open(const char *url, struct afs_remote **out, char *msg, size_t msglen);

/* Frees r; NULL is a no-op.  No read of r may be running. */
void afs_remote_free(struct afs_remote *r);

/* The object's size, its Last-Modified time (0 when the server gave
 * none), its ETag ("" when none) and its URL as messages show it. */
uint64_t afs_remote_size(const struct afs_remote *r);
int64_t afs_remote_mtime(const struct afs_remote *r);
const char *afs_remote_etag(const struct afs_remote *r);
const char *afs_remote_shown(const struct afs_remote *r);

/* Reads exactly len bytes at off (off + len <= size).  AFS_E_IO when the
 * server fails or the object changed (sticky), AFS_E_INVAL past the end. */
enum afs_err afs_remote_pread(struct afs_remote *r, void *buf, size_t len, uint64_t off);

/* How many reads failed since the open: a reader of the archive tells
 * a failed transfer from bad data by it changing across a read. */
uint64_t afs_remote_failures(const struct afs_remote *r);

/* Counters since the open, for tests and benchmarks: requests made (open
 * and retries included) and bytes received. */
void afs_remote_stats(const struct afs_remote *r, uint64_t *requests, uint64_t *bytes);

/* One object of an S3 listing: its name under the prefix, size, Last
 * Modified time and ETag (valid for the callback only). */
struct afs_remote_obj {
	const char *name;
	uint64_t size;
	int64_t mtime;
	const char *etag;
};

typedef void (*afs_remote_list_fn)(void *ctx, const struct afs_remote_obj *o);

/* True when url names an S3 prefix, a directory of archives:
 * s3://BUCKET/PREFIX/ (ending in '/') or s3://BUCKET. */
bool afs_remote_is_prefix(const char *url);

/* Lists the objects right under the S3 prefix url (ListObjectsV2 with
 * delimiter '/', every page; those in "subdirectories" are left out),
 * calling fn for each.  Errors as afs_remote_open() gives them, with msg;
 * fn may have been called for a first page then. */
enum afs_err afs_remote_list(const char *url, afs_remote_list_fn fn, void *ctx, char *msg, size_t msglen);

/* ---- pure helpers, exposed for the unit tests ---- */

/* Parses a Content-Range value "bytes FIRST-LAST/TOTAL" (false for any
 * other form, "*" included, or LAST < FIRST or TOTAL <= LAST). */
bool afs_remote_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total);

/* Finds key in [section] of the INI text (AWS credentials and config
 * files: '#' and ';' comments, blanks around names and values ignored) and
 * copies its value to out.  False when absent or longer than outlen - 1. */
bool afs_remote_ini_get(const char *text, const char *section, const char *key, char *out, size_t outlen);

/* Splits s3://BUCKET/KEY: bucket and key copied (key still unencoded).
 * AFS_E_INVAL for a bad bucket name or a missing key, AFS_E_UNSUPPORTED
 * for a prefix (KEY empty or ending in '/'). */
enum afs_err afs_remote_parse_s3(const char *url, char *bucket, size_t blen, char *key, size_t klen);

/* The address of an S3 object: path-style under endpoint when given (a
 * trailing '/' of it ignored), else virtual-hosted at AWS in region; the
 * key percent-encoded but for its slashes.  False when it does not fit. */
bool afs_remote_s3_address(const char *endpoint, const char *region, const char *bucket, const char *key,
			   char *out, size_t outlen);

#endif
