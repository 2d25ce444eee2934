/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/archive/remote.c and bcache.c: the pure parts (URL,
 * Content-Range, INI and S3 address parsing, redaction, cache eviction),
 * then reads against a small HTTP server on loopback in a thread of this
 * program: bytes, read-ahead, an object changed under a reader (412, and
 * a server that ignores If-Match), missing and refused objects, and an
 * archive opened by URL. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "archive.h"
#include "bcache.h"
#include "cli.h"
#include "remote.h"
#include "testutil.h"

static void test_pure(void)
{
	uint64_t a, b, t;
	char out[512], bucket[64], key[256];

	CHECK(afs_remote_url("https://h/a.zip") && afs_remote_url("http://h/a") && afs_remote_url("s3://b/k"));
	CHECK(!afs_remote_url("/tmp/a.zip") && !afs_remote_url("s3:/b/k") && !afs_remote_url("ftp://h/a"));
	CHECK(strcmp(afs_remote_redact("https://u:pw@h:1/p/a.zip?X-Amz-Signature=s#f", out, sizeof(out)),
		     "https://h:1/p/a.zip") == 0);
	CHECK(strcmp(afs_remote_redact("s3://b/k.zip", out, sizeof(out)), "s3://b/k.zip") == 0);
	CHECK(strcmp(afs_remote_redact("/srv/b/a?b#c.zip", out, sizeof(out)), "/srv/b/a?b#c.zip") == 0);
	CHECK(afs_remote_parse_content_range("bytes 0-99/1234", &a, &b, &t) && a == 0 && b == 99 && t == 1234);
	CHECK(afs_remote_parse_content_range("bytes 5-5/6\r\n", &a, &b, &t) && a == 5 && b == 5 && t == 6);
	CHECK(!afs_remote_parse_content_range("bytes */1234", &a, &b, &t));
	CHECK(!afs_remote_parse_content_range("bytes 9-5/20", &a, &b, &t));
	CHECK(!afs_remote_parse_content_range("bytes 0-20/20", &a, &b, &t));
	CHECK(!afs_remote_parse_content_range("items 0-1/20", &a, &b, &t));
	CHECK(!afs_remote_parse_content_range("bytes 0-1/20x", &a, &b, &t));

	const char *ini = "# comment\n[default]\naws_access_key_id = AKID1\n aws_secret_access_key=S1 \n"
			  "[ prof ]\n; other\naws_access_key_id=AKID2\n[profile prof]\nregion = eu-west-3\r\n";
	CHECK(afs_remote_ini_get(ini, "default", "aws_access_key_id", out, sizeof(out)) && strcmp(out, "AKID1") == 0);
	CHECK(afs_remote_ini_get(ini, "default", "aws_secret_access_key", out, sizeof(out)) && strcmp(out, "S1") == 0);
	CHECK(afs_remote_ini_get(ini, "prof", "aws_access_key_id", out, sizeof(out)) && strcmp(out, "AKID2") == 0);
	CHECK(!afs_remote_ini_get(ini, "prof", "aws_secret_access_key", out, sizeof(out)));
	CHECK(afs_remote_ini_get(ini, "profile prof", "region", out, sizeof(out)) && strcmp(out, "eu-west-3") == 0);
	CHECK(!afs_remote_ini_get(ini, "default", "aws_access_key_id", out, 3)); /* too long */
	CHECK(!afs_remote_ini_get(ini, "nope", "region", out, sizeof(out)));

	CHECK(afs_remote_parse_s3("s3://bk/dir/a.zip", bucket, sizeof(bucket), key, sizeof(key)) == AFS_OK &&
	      strcmp(bucket, "bk") == 0 && strcmp(key, "dir/a.zip") == 0);
	CHECK(afs_remote_parse_s3("s3://bk/dir/", bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_UNSUPPORTED);
	CHECK(afs_remote_parse_s3("s3://bk", bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_UNSUPPORTED);
	CHECK(afs_remote_parse_s3("s3:///k", bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_INVAL);
	CHECK(afs_remote_parse_s3("s3://b k/k", bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_INVAL);
	CHECK(afs_remote_parse_s3("s3://bk/a\nb", bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_INVAL);

	CHECK(afs_remote_s3_address("http://127.0.0.1:4569/", "us-east-1", "bk", "a dir/x+y.zip", out, sizeof(out)) &&
	      strcmp(out, "http://127.0.0.1:4569/bk/a%20dir/x%2By.zip") == 0);
	CHECK(afs_remote_s3_address(NULL, "eu-west-3", "bk", "k.zip", out, sizeof(out)) &&
	      strcmp(out, "https://bk.s3.eu-west-3.amazonaws.com/k.zip") == 0);
	CHECK(afs_remote_s3_address(NULL, "us-east-1", "my.bk", "k.zip", out, sizeof(out)) &&
	      strcmp(out, "https://s3.us-east-1.amazonaws.com/my.bk/k.zip") == 0);
	CHECK(!afs_remote_s3_address(NULL, "us-east-1", "bk", "k.zip", out, 20));

	char argv1[] = "https://u:pw@h/a.zip?X-Amz-Signature=abc", argv2[] = "/tmp/a?b.zip";
	afs_cli_mask_url(argv1);
	afs_cli_mask_url(argv2);
	CHECK(strcmp(argv1, "https://u:xx@h/a.zip?xxxxxxxxxxxxxxxxxxx") == 0 && strcmp(argv2, "/tmp/a?b.zip") == 0);
}

static void *block(char c, size_t n)
{
	char *p = malloc(n);

	memset(p, c, n);
	return p;
}

static void test_bcache(void)
{
	struct afs_bcache *c = afs_bcache_new(300);
	const char *d;
	size_t len;

	CHECK(afs_bcache_put(c, 1, block('a', 100), 100) == AFS_OK);
	CHECK(afs_bcache_put(c, 2, block('b', 100), 100) == AFS_OK);
	CHECK(afs_bcache_put(c, 3, block('c', 100), 100) == AFS_OK);
	CHECK(afs_bcache_bytes(c) == 300 && afs_bcache_count(c) == 3);
	CHECK((d = afs_bcache_get(c, 1, &len)) && len == 100 && d[99] == 'a'); /* 1 is now the most recent */
	CHECK(afs_bcache_put(c, 4, block('d', 100), 100) == AFS_OK);        /* evicts 2, the least recent */
	CHECK(!afs_bcache_has(c, 2) && afs_bcache_has(c, 1) && afs_bcache_has(c, 3) && afs_bcache_has(c, 4));
	CHECK(afs_bcache_put(c, 3, block('C', 50), 50) == AFS_OK); /* replaced, not doubled */
	CHECK(afs_bcache_bytes(c) == 250 && (d = afs_bcache_get(c, 3, &len)) && len == 50 && d[0] == 'C');
	CHECK(afs_bcache_put(c, 9, block('z', 1000), 1000) == AFS_OK); /* larger than the cap: kept alone */
	CHECK(afs_bcache_count(c) == 1 && afs_bcache_has(c, 9) && afs_bcache_bytes(c) == 1000);
	afs_bcache_free(c);
}

/* ---- a small HTTP server: one object, ranges, ETag, If-Match ---- */

struct srv {
	int lfd, port;
	unsigned char *data;
	size_t size;
	char etag[32];
	bool ignore_if_match; /* answer with the current ETag whatever If-Match says */
	char last_path[512];  /* of the last request */
	int status;           /* non-zero: answer every request with it */
	int requests;
	pthread_mutex_t mu;
	pthread_t th;
	volatile bool stop;
	/* requests whose range starts in [hold_lo, hold_hi) wait, outside mu,
	 * until hold_hi is set to 0; held counts those waiting (under hold_mu) */
	uint64_t hold_lo, hold_hi;
	int held, conns;
	pthread_mutex_t hold_mu;
	pthread_cond_t hold_cv;
};

static void send_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* The value of header name in req, copied to out ("" when absent). */
static void header(const char *req, const char *name, char *out, size_t outlen)
{
	const char *h = strcasestr(req, name);

	out[0] = '\0';
	if (h)
		sscanf(h + strlen(name), " %63[^\r\n]", out);
	(void)outlen;
}

/* Waits while a request for a range starting at a is to be held. */
static void hold(struct srv *s, const char *range)
{
	unsigned long long a = strtoull(range, NULL, 10);

	pthread_mutex_lock(&s->hold_mu);
	if (range[0] && range[0] != '-' && a >= s->hold_lo && a < s->hold_hi) {
		s->held++;
		pthread_cond_broadcast(&s->hold_cv);
		while (a >= s->hold_lo && a < s->hold_hi)
			pthread_cond_wait(&s->hold_cv, &s->hold_mu);
		s->held--;
	}
	pthread_mutex_unlock(&s->hold_mu);
}

static void answer(struct srv *s, int fd, const char *req)
{
	char range[64], im[64], head[512];
	unsigned long long a = 0, b;
	int n;

	header(req, "\nRange: bytes=", range, sizeof(range));
	hold(s, range);
	pthread_mutex_lock(&s->mu);
	s->requests++;
	sscanf(req, "GET %511s", s->last_path);
	if (strstr(req, "list-type=2") && !s->status) { /* a listing: two pages */
		bool second = strstr(req, "continuation-token=T%2B1") != NULL;
		const char *page = second
			? "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			  "<IsTruncated>false</IsTruncated><Contents><Key>p/b_20251121_101502.zip</Key>"
			  "<LastModified>2025-11-21T10:15:02.000Z</LastModified><ETag>&quot;e2&quot;</ETag><Size>77</Size>"
			  "</Contents></ListBucketResult>"
			: "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			  "<IsTruncated>true</IsTruncated><NextContinuationToken>T+1</NextContinuationToken>"
			  "<Contents><Key>p/</Key><Size>0</Size></Contents>"
			  "<Contents><Key>p/a.zip</Key><LastModified>2025-11-20T10:15:02.000Z</LastModified>"
			  "<ETag>&quot;e1&quot;</ETag><Size>1234</Size></Contents>"
			  "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes></ListBucketResult>";

		n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			     strlen(page));
		send_all(fd, head, (size_t)n);
		send_all(fd, page, strlen(page));
		pthread_mutex_unlock(&s->mu);
		return;
	}
	header(req, "\nIf-Match:", im, sizeof(im));
	b = s->size - 1;
	if (range[0] == '-')
		a = s->size - (strtoull(range + 1, NULL, 10) < s->size ? strtoull(range + 1, NULL, 10) : s->size);
	else if (range[0])
		sscanf(range, "%llu-%llu", &a, &b);
	if (s->status) {
		n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", s->status);
		send_all(fd, head, (size_t)n);
	} else if (im[0] && !s->ignore_if_match && strcmp(im, s->etag) != 0) {
		send_all(fd, "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 74);
	} else {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 206 Partial Content\r\nETag: %s\r\nContent-Range: bytes %llu-%llu/%zu\r\n"
			     "Content-Length: %llu\r\nConnection: close\r\n\r\n", s->etag, a, b, s->size, b - a + 1);
		send_all(fd, head, (size_t)n);
		send_all(fd, s->data + a, (size_t)(b - a + 1));
	}
	pthread_mutex_unlock(&s->mu);
}

struct conn {
	struct srv *s;
	int fd;
};

/* One connection, on a thread of its own: a held request does not stop
 * the others. */
static void *serve_conn(void *ud)
{
	struct conn *c = ud;
	struct srv *s = c->s;
	int fd = c->fd;
	char req[4096];
	size_t have = 0;

	free(c);
	while (have < sizeof(req) - 1) {
		ssize_t r = recv(fd, req + have, sizeof(req) - 1 - have, 0);

		if (r <= 0)
			break;
		have += (size_t)r;
		req[have] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[have] = '\0';
	answer(s, fd, req);
	close(fd);
	pthread_mutex_lock(&s->hold_mu);
	s->conns--;
	pthread_cond_broadcast(&s->hold_cv);
	pthread_mutex_unlock(&s->hold_mu);
	return NULL;
}

static void *serve(void *ud)
{
	struct srv *s = ud;

	while (!s->stop) {
		struct pollfd p = { s->lfd, POLLIN, 0 };
		struct conn *c;
		pthread_t th;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		if (!(c = malloc(sizeof(*c)))) {
			close(fd);
			continue;
		}
		*c = (struct conn){ s, fd };
		pthread_mutex_lock(&s->hold_mu);
		s->conns++;
		pthread_mutex_unlock(&s->hold_mu);
		if (pthread_create(&th, NULL, serve_conn, c) == 0) {
			pthread_detach(th);
		} else {
			close(fd);
			free(c);
			pthread_mutex_lock(&s->hold_mu);
			s->conns--;
			pthread_mutex_unlock(&s->hold_mu);
		}
	}
	return NULL;
}

static void srv_start(struct srv *s, const void *data, size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->data = malloc(size);
	memcpy(s->data, data, size);
	s->size = size;
	snprintf(s->etag, sizeof(s->etag), "\"v1\"");
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->hold_mu, NULL);
	pthread_cond_init(&s->hold_cv, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s->lfd, 16) == 0);
	getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	pthread_create(&s->th, NULL, serve, s);
}

/* Replaces the object: new bytes, a new ETag. */
static void srv_replace(struct srv *s, const char *etag)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->size; i++)
		s->data[i] ^= 0x5a;
	snprintf(s->etag, sizeof(s->etag), "%s", etag);
	pthread_mutex_unlock(&s->mu);
}

static void srv_stop(struct srv *s)
{
	s->stop = true;
	pthread_join(s->th, NULL);
	pthread_mutex_lock(&s->hold_mu);
	while (s->conns)
		pthread_cond_wait(&s->hold_cv, &s->hold_mu);
	pthread_mutex_unlock(&s->hold_mu);
	close(s->lfd);
	free(s->data);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->hold_mu);
	pthread_cond_destroy(&s->hold_cv);
}

static int srv_requests(struct srv *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->requests;
	pthread_mutex_unlock(&s->mu);
	return n;
}

#define OBJ (3 * AFS_REMOTE_BLOCK + 12345)

static void test_reads(const unsigned char *data)
{
	struct srv s;
	struct afs_remote *r = NULL;
	unsigned char *buf = malloc(OBJ);
	char url[128], msg[256];
	uint64_t reqs, bytes;

	srv_start(&s, data, OBJ);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/obj.zip", s.port);
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_OK);
	if (!r)
		goto out;
	CHECK(afs_remote_size(r) == OBJ && strcmp(afs_remote_etag(r), "\"v1\"") == 0);
	CHECK(srv_requests(&s) == 1); /* size, ETag and the tail in one request */
	CHECK(afs_remote_pread(r, buf, 100, OBJ - 100) == AFS_OK && memcmp(buf, data + OBJ - 100, 100) == 0);
	CHECK(srv_requests(&s) == 1); /* from the open's tail */
	for (size_t off = 0; off < OBJ; off += 65536) { /* sequential, as a reader streams an entry */
		size_t n = OBJ - off < 65536 ? OBJ - off : 65536;

		CHECK(afs_remote_pread(r, buf + off, n, off) == AFS_OK);
	}
	CHECK(memcmp(buf, data, OBJ) == 0);
	CHECK(srv_requests(&s) <= 1 + 3); /* 4 blocks, the last from the tail or read ahead */
	CHECK(afs_remote_pread(r, buf, 10, AFS_REMOTE_BLOCK - 5) == AFS_OK &&
	      memcmp(buf, data + AFS_REMOTE_BLOCK - 5, 10) == 0); /* across two blocks */
	CHECK(afs_remote_pread(r, buf, 2, OBJ - 1) == AFS_E_INVAL);
	afs_remote_stats(r, &reqs, &bytes);
	CHECK(reqs == (uint64_t)srv_requests(&s) && bytes >= OBJ);
	afs_remote_free(r);
	r = NULL;

	/* replaced under a reader: 412, and every read after fails, cached or not */
	afs_remote_init_process(&(struct afs_remote_opts){ .cache_bytes = AFS_REMOTE_BLOCK });
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_OK);
	CHECK(r && afs_remote_pread(r, buf, 10, 0) == AFS_OK && memcmp(buf, data, 10) == 0);
	srv_replace(&s, "\"v2\"");
	CHECK(r && afs_remote_pread(r, buf, 10, 2 * AFS_REMOTE_BLOCK + 1) == AFS_E_IO);
	CHECK(r && afs_remote_pread(r, buf, 10, 0) == AFS_E_IO);
	afs_remote_free(r);
	r = NULL;

	/* a server that ignores If-Match: the answer's ETag tells */
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_OK);
	CHECK(r && afs_remote_pread(r, buf, 10, 0) == AFS_OK && buf[0] == (data[0] ^ 0x5a));
	s.ignore_if_match = true;
	srv_replace(&s, "\"v3\"");
	CHECK(r && afs_remote_pread(r, buf, 10, 2 * AFS_REMOTE_BLOCK) == AFS_E_IO);
	afs_remote_free(r);
	r = NULL;

	s.status = 404;
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_E_NOENT && !r && strstr(msg, "404"));
	s.status = 403;
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_E_ACCES && !r && strstr(msg, "403"));
	afs_remote_init_process(NULL);
out:
	srv_stop(&s);
	free(buf);
}

static atomic_int prefetch_ends, prefetch_ending;

/* Ends a background fetch's thread late: afs_remote_free() must wait. */
static void slow_prefetch_end(void)
{
	atomic_fetch_add(&prefetch_ending, 1);
	usleep(100000);
	atomic_fetch_add(&prefetch_ends, 1);
	atomic_fetch_sub(&prefetch_ending, 1);
}

/* A long sequential read: the bytes, and read-ahead (in one range and on
 * a thread of its own) fetching several blocks per request; the object's
 * free waits for the end of that thread (one left running past the
 * process's exit handlers leaks its OpenSSL per-thread state). */
static void test_sequential(void)
{
	size_t size = 20 * AFS_REMOTE_BLOCK + 7;
	unsigned char *data = malloc(size), *buf = malloc(size);
	struct afs_remote *r = NULL;
	char url[128], msg[256];
	struct srv s;

	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 31 + (i >> 16));
	srv_start(&s, data, size);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/seq.zip", s.port);
	afs_remote_set_background(true);
	afs_remote_set_prefetch_end_hook(slow_prefetch_end);
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_OK);
	for (size_t off = 0; r && off < size; off += 65536)
		CHECK(afs_remote_pread(r, buf + off, size - off < 65536 ? size - off : 65536, off) == AFS_OK);
	CHECK(memcmp(buf, data, size) == 0);
	CHECK(srv_requests(&s) <= 11); /* 20 blocks, at least 2 per fetch after the first */
	afs_remote_free(r); /* waits for the end of a background fetch's thread */
	CHECK(atomic_load(&prefetch_ends) > 0 && atomic_load(&prefetch_ending) == 0);
	afs_remote_set_prefetch_end_hook(NULL);
	afs_remote_set_background(false);
	srv_stop(&s);
	free(data);
	free(buf);
}

/* Two readers going on block after block in two halves of the object,
 * turn and turn about: each keeps its own read-ahead (one streak for the
 * object would start again at every turn: a request per block). */
static void test_two_streams(void)
{
	size_t half = 10 * AFS_REMOTE_BLOCK, chunk = 256 * 1024;
	unsigned char *buf = malloc(chunk), *data = tu_data(2 * half, 11);
	struct afs_remote *r = NULL;
	char url[128], msg[256];
	struct srv s;

	srv_start(&s, data, 2 * half);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/two.zip", s.port);
	CHECK(afs_remote_open(url, &r, msg, sizeof(msg)) == AFS_OK);
	for (size_t off = 0; r && off < half; off += chunk) {
		CHECK(afs_remote_pread(r, buf, chunk, off) == AFS_OK && memcmp(buf, data + off, chunk) == 0);
		CHECK(afs_remote_pread(r, buf, chunk, half + off) == AFS_OK && memcmp(buf, data + half + off, chunk) == 0);
	}
	/* per half: blocks 0-1, 2-5, 6-9 (10-11, 12-15, 16-19), after the open */
	CHECK(srv_requests(&s) <= 1 + 2 * 3 + 2);
	afs_remote_free(r);
	srv_stop(&s);
	free(buf);
	free(data);
}

static void on_obj(void *ctx, const struct afs_remote_obj *o)
{
	char *seen = ctx;
	size_t n = strlen(seen);

	snprintf(seen + n, 512 - n, "%s|%llu|%lld|%s;", o->name, (unsigned long long)o->size, (long long)o->mtime,
		 o->etag);
}

/* An S3 prefix's listing: every page, objects right under the prefix only. */
static void test_list(void)
{
	struct srv s;
	char endpoint[64], seen[512] = "", msg[256];

	srv_start(&s, "x", 1);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
	afs_remote_init_process(&(struct afs_remote_opts){ .s3_endpoint = endpoint });
	CHECK(afs_remote_is_prefix("s3://bk/p/") && afs_remote_is_prefix("s3://bk") && !afs_remote_is_prefix("s3://bk/a.zip"));
	CHECK(afs_remote_list("s3://bk/p/", on_obj, seen, msg, sizeof(msg)) == AFS_OK);
	CHECK(strcmp(seen, "a.zip|1234|1763633702|\"e1\";b_20251121_101502.zip|77|1763720102|\"e2\";") == 0);
	CHECK(srv_requests(&s) == 2);
	CHECK(strncmp(s.last_path, "/bk/?continuation-token=T%2B1&delimiter=%2F&list-type=2&prefix=p%2F", 68) == 0);
	s.status = 404;
	CHECK(afs_remote_list("s3://bk/p/", on_obj, seen, msg, sizeof(msg)) == AFS_E_NOENT);
	CHECK(afs_remote_list("s3://bk/p/a.zip", on_obj, seen, msg, sizeof(msg)) == AFS_E_INVAL);
	afs_remote_init_process(NULL);
	srv_stop(&s);
}

/* An archive opened by URL reads as the same file opened by path. */
static void test_archive(void)
{
	static char content[200000];
	struct tu_entry e[] = { { "a.txt", "hello", 5, 0, 0100644, 0 }, { "big.bin", content, sizeof(content), 1, 0100600, 0 } };
	char *path = tu_zip("r.zip", e, 2), url[128], msg[256];
	struct afs_archive *a = NULL;
	struct afs_raw *raw = NULL;
	struct afs_entry_info info;
	FILE *f = fopen(path, "rb");
	unsigned char *zip = malloc(1 << 20), got[8];
	size_t zlen = fread(zip, 1, 1 << 20, f), n = 0;
	struct srv s;

	fclose(f);
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (char)(i * 7);
	srv_start(&s, zip, zlen);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/r.zip", s.port);
	CHECK(afs_archive_open(url, &a, msg, sizeof(msg)) == AFS_OK);
	if (a) {
		CHECK(afs_archive_count(a) == 2 && afs_archive_file_size(a) == zlen);
		CHECK(afs_archive_entry(a, 0, &info) == AFS_OK && strcmp(info.name, "a.txt") == 0);
		CHECK(afs_raw_open(a, 0, &raw) == AFS_OK && afs_raw_read(raw, got, sizeof(got), &n) == AFS_OK &&
		      n == 5 && memcmp(got, "hello", 5) == 0);
		afs_raw_close(raw);
		afs_archive_free(a);
	}
	s.status = 404;
	CHECK(afs_archive_open(url, &a, msg, sizeof(msg)) == AFS_E_NOENT && !a);
	srv_stop(&s);
	free(zip);
}

/* Waits (10 s at most) until n requests are held; false if they are not. */
static bool srv_wait_held(struct srv *s, int n)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&s->hold_mu);
	while (s->held < n && pthread_cond_timedwait(&s->hold_cv, &s->hold_mu, &until) == 0)
		;
	ok = s->held >= n;
	pthread_mutex_unlock(&s->hold_mu);
	return ok;
}

static void srv_release(struct srv *s)
{
	pthread_mutex_lock(&s->hold_mu);
	s->hold_lo = s->hold_hi = 0;
	pthread_cond_broadcast(&s->hold_cv);
	pthread_mutex_unlock(&s->hold_mu);
}

/* One read of len bytes at off of entry i, on a thread of its own. */
struct bg_read {
	struct afs_archive *a;
	uint64_t i, off;
	size_t len;
	unsigned char buf[4096];
	enum afs_err err;
	atomic_bool done;
	pthread_t th;
};

static void *bg_read_run(void *ud)
{
	struct bg_read *b = ud;
	struct afs_raw *raw = NULL;
	size_t n = 0;

	b->err = afs_raw_open(b->a, b->i, &raw);
	if (b->err == AFS_OK)
		b->err = afs_raw_seek(raw, b->off);
	if (b->err == AFS_OK)
		b->err = afs_raw_read(raw, b->buf, b->len, &n);
	if (b->err == AFS_OK && n != b->len)
		b->err = AFS_E_IO;
	afs_raw_close(raw);
	atomic_store(&b->done, true);
	return NULL;
}

/* Waits (10 s at most) until b is done. */
static bool bg_wait(struct bg_read *b)
{
	for (int i = 0; i < 10000 && !atomic_load(&b->done); i++)
		usleep(1000);
	return atomic_load(&b->done);
}

/* Readers of one remote archive do not wait for each other's transfers:
 * while the server holds the fetch of one entry's bytes, another entry of
 * the same archive opens and reads. */
static void test_parallel_readers(void)
{
	size_t big = 6 * AFS_REMOTE_BLOCK, zlen;
	unsigned char *content = tu_data(big, 7), *zip;
	struct tu_entry e[] = { { "big.bin", content, big, 0, 0100644, 0 }, { "small.txt", "world", 5, 0, 0100644, 0 } };
	char *path = tu_zip("par.zip", e, 2), url[128], msg[256];
	struct bg_read *ra = calloc(1, sizeof(*ra)), *rb = calloc(1, sizeof(*rb));
	struct afs_archive *a = NULL;
	FILE *f = fopen(path, "rb");
	struct srv s;

	zip = malloc(big + 65536);
	zlen = fread(zip, 1, big + 65536, f);
	fclose(f);
	srv_start(&s, zip, zlen);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/par.zip", s.port);
	CHECK(afs_archive_open(url, &a, msg, sizeof(msg)) == AFS_OK);
	if (!a)
		goto out;
	pthread_mutex_lock(&s.hold_mu);
	s.hold_lo = 3 * AFS_REMOTE_BLOCK; /* a fetch of big.bin's fourth block: after what the open */
	s.hold_hi = 4 * AFS_REMOTE_BLOCK; /* (the end) and the local header (the start) fetched */
	pthread_mutex_unlock(&s.hold_mu);
	*ra = (struct bg_read){ .a = a, .i = 0, .off = 3 * AFS_REMOTE_BLOCK, .len = 4096 };
	*rb = (struct bg_read){ .a = a, .i = 1, .off = 0, .len = 5 };
	pthread_create(&ra->th, NULL, bg_read_run, ra);
	CHECK(srv_wait_held(&s, 1));
	pthread_create(&rb->th, NULL, bg_read_run, rb);
	CHECK(bg_wait(rb)); /* a reader holding the archive's lock over its fetch stops this one */
	CHECK(rb->err == AFS_OK && memcmp(rb->buf, "world", 5) == 0);
	CHECK(!atomic_load(&ra->done));
	srv_release(&s);
	pthread_join(ra->th, NULL);
	pthread_join(rb->th, NULL);
	CHECK(ra->err == AFS_OK && memcmp(ra->buf, content + 3 * AFS_REMOTE_BLOCK, 4096) == 0);
	afs_archive_free(a);
out:
	srv_release(&s);
	srv_stop(&s);
	free(ra);
	free(rb);
	free(zip);
	free(content);
}

int main(void)
{
	unsigned char *data = malloc(OBJ);

	afs_remote_init_process(NULL);
	for (size_t i = 0; i < OBJ; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	test_pure();
	test_bcache();
	test_reads(data);
	test_sequential();
	test_two_streams();
	test_list();
	test_archive();
	test_parallel_readers();
	free(data);
	return tu_done("remote");
}
