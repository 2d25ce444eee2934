/* SPDX-License-Identifier: MIT */
/* Remote objects read with HTTP range requests through libcurl (remote.h):
 * open, the block cache and read-ahead, retries, the ETag checks, S3
 * addressing and credentials.
 *
 * Thread safety: the process-wide state (g) is set before any thread by
 * afs_remote_init_process(); its handle pool is under g.pool_mu and the
 * curl share under one mutex per kind of shared data.  An object's cache,
 * blocks in flight, read-ahead state, sticky failure and counters are
 * under its mu; everything else in it is set at open and then only read.
 * No lock is held during a transfer: a thread that needs a block another
 * one is fetching waits on cv.
 */
#include <ctype.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <expat.h>
#include "bcache.h"
#include "log.h"
#include "remote.h"

#define POOL_MAX 16       /* idle curl handles kept */
#define ATTEMPTS 4        /* tries of one request: 0.2, 0.4, 0.8 s apart */
#define BACKOFF_MS 200
#define TIMEOUT_ATTEMPTS 2 /* of those, ending in a timeout */
#define CONNECT_TIMEOUT_S 10
#define RA_MAX 8          /* blocks fetched at once by read-ahead */
#define INFLIGHT_MAX 64
#define INI_MAX (1024 * 1024)
#define BODY_KEEP 1024    /* of an error answer, for S3's <Code> */
#define STREAMS 4         /* sequential readers told apart for read-ahead */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static struct {
	bool curl_ready;
	volatile bool background; /* afs_remote_set_background() */
	void (*volatile prefetch_end)(void); /* the test hook */
	size_t cache_bytes;
	char *endpoint, *ca_file;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL *idle[POOL_MAX];
	size_t nidle;
} g = { .pool_mu = PTHREAD_MUTEX_INITIALIZER };

/* A reader going on block after block, for read-ahead: the last block it
 * read, how many it read in a row, when it last read. */
struct stream {
	uint64_t last;
	unsigned streak;
	uint64_t used;
};

struct afs_remote {
	char *url;     /* as requested: may hold a presigned query string */
	char *prefix;  /* a listing's (afs_remote_list()): the key prefix, "" or ending in '/' */
	char shown[512];
	char *user, *pass; /* SigV4 key id and secret; NULL: unsigned */
	char sigv4[96];
	struct curl_slist *hdr_open, *hdr_read;
	uint64_t size;
	int64_t mtime;
	char etag[256], lastmod[64]; /* as the open's answer gave them; "" when not */
	unsigned char *tail;         /* the object's last tail_len bytes, from the open */
	size_t tail_len;
	uint64_t tail_off;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct afs_bcache *cache;             /* under mu */
	uint64_t inflight[INFLIGHT_MAX][2];   /* under mu: first block, count */
	size_t ninflight;
	struct stream streams[STREAMS];       /* under mu: read-ahead */
	uint64_t ticks;
	unsigned prefetching;                 /* under mu: background fetches running */
	pthread_t prefetch_th;                /* under mu: the last one, to join */
	bool prefetch_joinable;
	size_t cache_cap;
	bool gone;                            /* under mu: changed or deleted, logged */
	uint64_t requests, bytes;             /* under mu */
	uint64_t failures;                    /* under mu: afs_remote_failures() */
};

/* One answer. */
struct resp {
	long status;
	char etag[256], lastmod[64], crange[128];
	unsigned char *buf;
	size_t cap, got;
	size_t grow_max; /* a listing's: buf is malloc'd and grows up to this */
	bool overflow;
	char body[BODY_KEEP];
	size_t blen;
	char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------------ pure helpers */

bool afs_remote_url(const char *s)
{
	return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 || strncmp(s, "s3://", 5) == 0);
}

char *afs_remote_redact(const char *url, char *out, size_t outlen)
{
	const char *sch = strstr(url, "://"), *auth, *end, *at;
	size_t n;

	if (!afs_remote_url(url)) { /* a local path: any bytes, '?' and '#' included */
		snprintf(out, outlen, "%s", url);
		return out;
	}
	auth = sch + 3;
	end = auth + strcspn(auth, "/?#");
	at = auth;
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p + 1;
	n = strcspn(end, "?#");
	snprintf(out, outlen, "%.*s%.*s%.*s", (int)(auth - url), url, (int)(end - at), at, (int)n, end);
	return out;
}

bool afs_remote_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
	unsigned long long a, b, t;
	int used = 0;

	while (*v == ' ')
		v++;
	if (strncasecmp(v, "bytes ", 6) != 0)
		return false;
	v += 6;
	if (!isdigit((unsigned char)*v) || sscanf(v, "%llu-%llu/%llu%n", &a, &b, &t, &used) != 3)
		return false;
	for (v += used; *v == ' ' || *v == '\r' || *v == '\n'; v++)
		;
	if (*v || b < a || t <= b)
		return false;
	*first = a;
	*last = b;
	*total = t;
	return true;
}

/* text[0..len) with blanks trimmed at both ends, as a pointer and length. */
static const char *trim(const char *s, size_t *len)
{
	while (*len && isspace((unsigned char)*s)) {
		s++;
		(*len)--;
	}
	while (*len && isspace((unsigned char)s[*len - 1]))
		(*len)--;
	return s;
}

/* One line of an INI text: its section name, or key and value. */
static bool ini_line_matches(const char *line, size_t len, const char *key, char *out, size_t outlen)
{
	const char *eq = memchr(line, '=', len), *k, *v;
	size_t klen, vlen;

	if (!eq)
		return false;
	klen = (size_t)(eq - line);
	k = trim(line, &klen);
	vlen = len - (size_t)(eq + 1 - line);
	v = trim(eq + 1, &vlen);
	if (klen != strlen(key) || strncasecmp(k, key, klen) != 0 || vlen >= outlen)
		return false;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return true;
}

bool afs_remote_ini_get(const char *text, const char *section, const char *key, char *out, size_t outlen)
{
	bool in = false;

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		const char *line = trim(p, &len);

		if (len && line[0] == '[' && line[len - 1] == ']') {
			size_t slen = len - 2;
			const char *s = trim(line + 1, &slen);

			in = slen == strlen(section) && strncmp(s, section, slen) == 0;
		} else if (in && len && line[0] != '#' && line[0] != ';' &&
			   ini_line_matches(line, len, key, out, outlen)) {
			return true;
		}
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	return false;
}

enum afs_err afs_remote_parse_s3(const char *url, char *bucket, size_t blen, char *key, size_t klen)
{
	const char *b, *slash;
	size_t n;

	if (strncmp(url, "s3://", 5) != 0)
		return AFS_E_INVAL;
	b = url + 5;
	slash = strchr(b, '/');
	n = slash ? (size_t)(slash - b) : strlen(b);
	if (n == 0 || n > 255 || n >= blen || strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") < n)
		return AFS_E_INVAL;
	memcpy(bucket, b, n);
	bucket[n] = '\0';
	if (!slash || !slash[1] || slash[strlen(slash) - 1] == '/')
		return AFS_E_UNSUPPORTED; /* a bucket or a prefix: directory mode */
	for (const char *p = slash + 1; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return AFS_E_INVAL;
	if (strlen(slash + 1) >= klen)
		return AFS_E_INVAL;
	strcpy(key, slash + 1);
	return AFS_OK;
}

/* Appends key to out at *len, percent-encoded but for unreserved bytes and '/'. */
static bool encode_key(const char *key, char *out, size_t outlen, size_t *len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		bool plain = isalnum(*p) || strchr("-._~/", *p);

		if (*len + (plain ? 1 : 3) >= outlen)
			return false;
		if (plain) {
			out[(*len)++] = (char)*p;
		} else {
			out[(*len)++] = '%';
			out[(*len)++] = hex[*p >> 4];
			out[(*len)++] = hex[*p & 15];
		}
	}
	out[*len] = '\0';
	return true;
}

bool afs_remote_s3_address(const char *endpoint, const char *region, const char *bucket, const char *key,
			   char *out, size_t outlen)
{
	int n;
	size_t len;

	if (endpoint && *endpoint) {
		size_t e = strlen(endpoint);

		while (e && endpoint[e - 1] == '/')
			e--;
		n = snprintf(out, outlen, "%.*s/%s/", (int)e, endpoint, bucket);
	} else if (strchr(bucket, '.')) { /* a dotted name breaks the wildcard certificate */
		n = snprintf(out, outlen, "https://s3.%s.amazonaws.com/%s/", region, bucket);
	} else {
		n = snprintf(out, outlen, "https://%s.s3.%s.amazonaws.com/", bucket, region);
	}
	if (n < 0 || (size_t)n >= outlen)
		return false;
	len = (size_t)n;
	return encode_key(key, out, outlen, &len);
}

/* ------------------------------------------------------------ process state */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	pthread_mutex_lock(&g.share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
	pthread_mutex_unlock(&g.share_mu[d]);
}

static void curl_setup(void)
{
	if (g.curl_ready)
		return;
	g.curl_ready = true;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&g.share_mu[i], NULL);
	g.share = curl_share_init();
	if (!g.share)
		return;
	curl_share_setopt(g.share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(g.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(g.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(g.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	/* not CURL_LOCK_DATA_CONNECT: libcurl does not support a connection
	 * cache shared by threads that transfer at once (CURLSHOPT_SHARE);
	 * each pooled handle keeps its own connections between requests */
}

void afs_remote_init_process(const struct afs_remote_opts *o)
{
	curl_setup();
	free(g.endpoint);
	free(g.ca_file);
	g.endpoint = o && o->s3_endpoint ? strdup(o->s3_endpoint) : NULL;
	g.ca_file = o && o->ca_file ? strdup(o->ca_file) : NULL;
	g.cache_bytes = o && o->cache_bytes ? o->cache_bytes : (size_t)AFS_REMOTE_CACHE_DEFAULT_MB << 20;
}

void afs_remote_set_background(bool on)
{
	g.background = on;
}

void afs_remote_set_prefetch_end_hook(void (*end)(void))
{
	g.prefetch_end = end;
}

static CURL *handle_get(void)
{
	CURL *h = NULL;

	pthread_mutex_lock(&g.pool_mu);
	if (g.nidle)
		h = g.idle[--g.nidle];
	pthread_mutex_unlock(&g.pool_mu);
	return h ? h : curl_easy_init();
}

static void handle_put(CURL *h)
{
	pthread_mutex_lock(&g.pool_mu);
	if (g.nidle < POOL_MAX) {
		g.idle[g.nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&g.pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ------------------------------------------------------------ requests */

/* Copies the value of header line h (len bytes) into out when its name is name. */
static bool header_value(const char *h, size_t len, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name), vlen;
	const char *v;

	if (len <= n || strncasecmp(h, name, n) != 0 || h[n] != ':')
		return false;
	vlen = len - n - 1;
	v = trim(h + n + 1, &vlen);
	snprintf(out, outlen, "%.*s", (int)vlen, v);
	return true;
}

static size_t on_header(char *h, size_t size, size_t n, void *ud)
{
	struct resp *p = ud;
	size_t len = size * n;

	if (len >= 5 && strncmp(h, "HTTP/", 5) == 0) { /* a new answer (after a redirect): forget the last */
		p->etag[0] = p->lastmod[0] = p->crange[0] = '\0';
		return len;
	}
	if (!header_value(h, len, "etag", p->etag, sizeof(p->etag)) &&
	    !header_value(h, len, "last-modified", p->lastmod, sizeof(p->lastmod)))
		header_value(h, len, "content-range", p->crange, sizeof(p->crange));
	return len;
}

/* Keeps the body up to p->cap bytes (the range asked for); more aborts the
 * transfer.  The start of an error answer is kept apart (S3's <Code>). */
static size_t on_body(char *d, size_t size, size_t n, void *ud)
{
	struct resp *p = ud;
	size_t len = size * n, keep = len < BODY_KEEP - 1 - p->blen ? len : BODY_KEEP - 1 - p->blen;

	memcpy(p->body + p->blen, d, keep);
	p->blen += keep;
	p->body[p->blen] = '\0';
	if (len > p->cap - p->got && p->got + len <= p->grow_max) {
		size_t cap = p->cap * 2 > p->got + len ? p->cap * 2 : p->got + len;
		unsigned char *grown = realloc(p->buf, cap);

		if (grown) {
			p->buf = grown;
			p->cap = cap;
		}
	}
	if (len > p->cap - p->got) {
		p->overflow = true;
		return 0;
	}
	memcpy(p->buf + p->got, d, len);
	p->got += len;
	return len;
}

static void set_options(const struct afs_remote *r, CURL *h, const char *range, struct curl_slist *hdrs,
			struct resp *p)
{
	bool https = strncmp(r->url, "https://", 8) == 0;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, r->user ? 0L : 1L); /* a signed request is not redirected */
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
	curl_easy_setopt(h, CURLOPT_RANGE, range);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)AFS_REMOTE_STALL_BPS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)AFS_REMOTE_STALL_S);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "archfs/" AFS_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->errbuf);
	if (g.share)
		curl_easy_setopt(h, CURLOPT_SHARE, g.share);
	if (g.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, g.ca_file);
	if (r->user) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, r->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, r->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, r->pass);
	}
}

static bool retry_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static bool retry_status(long status)
{
	return status >= 500 || status == 429;
}

static void count(struct afs_remote *r, size_t bytes)
{
	pthread_mutex_lock(&r->mu);
	r->requests++;
	r->bytes += bytes;
	pthread_mutex_unlock(&r->mu);
}

/* One request for range with headers hdrs, tried ATTEMPTS times on
 * failures worth another try.  AFS_OK when an answer came (p->status says
 * which); AFS_E_IO, with msg, when none did. */
static enum afs_err request(struct afs_remote *r, const char *range, struct curl_slist *hdrs, struct resp *p,
			    char *msg, size_t msglen)
{
	CURLcode rc = CURLE_OK;
	int timeouts = 0;

	for (int i = 0; i < ATTEMPTS; i++) {
		CURL *h;

		if (i > 0) {
			struct timespec ts = { 0, (long)(BACKOFF_MS << (i - 1)) * 1000000L };

			nanosleep(&ts, NULL);
		}
		p->status = 0;
		p->got = p->blen = 0;
		p->overflow = false;
		p->etag[0] = p->lastmod[0] = p->crange[0] = p->errbuf[0] = p->body[0] = '\0';
		if (!(h = handle_get())) {
			snprintf(msg, msglen, "out of memory");
			return AFS_E_NOMEM;
		}
		set_options(r, h, range, hdrs, p);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->status);
		handle_put(h);
		count(r, p->got);
		if (rc == CURLE_WRITE_ERROR && p->overflow)
			rc = CURLE_OK; /* more than asked for: the caller tells */
		if ((rc == CURLE_OK && !retry_status(p->status)) || (rc != CURLE_OK && !retry_curl(rc)))
			break;
		if (rc == CURLE_OPERATION_TIMEDOUT && ++timeouts == TIMEOUT_ATTEMPTS)
			break; /* a stalled server: fail in seconds, not minutes */
	}
	if (rc != CURLE_OK) {
		snprintf(msg, msglen, "%s", p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc));
		return AFS_E_IO;
	}
	return AFS_OK;
}

/* What an error answer says: "HTTP 404" and S3's code when it gives one. */
static void describe(const struct resp *p, const char *what, char *msg, size_t msglen)
{
	const char *c = strstr(p->body, "<Code>"), *e = c ? strstr(c, "</Code>") : NULL;

	if (c && e && e - c - 6 < 64)
		snprintf(msg, msglen, "%s (HTTP %ld, %.*s)", what, p->status, (int)(e - c - 6), c + 6);
	else
		snprintf(msg, msglen, "%s (HTTP %ld)", what, p->status);
}

/* The error for an answer other than the one expected. */
static enum afs_err status_error(const struct resp *p, char *msg, size_t msglen)
{
	if (p->status == 404 || p->status == 410) {
		describe(p, "no such object or bucket", msg, msglen);
		return AFS_E_NOENT;
	}
	if (p->status == 401 || p->status == 403) {
		describe(p, "access refused", msg, msglen);
		return AFS_E_ACCES;
	}
	describe(p, "the server failed", msg, msglen);
	return AFS_E_IO;
}

/* ------------------------------------------------------------ S3 credentials */

/* Frees text read by read_small(), wiped first: it may hold secrets. */
static void free_wiped(char *text)
{
	if (text)
		memset(text, 0, strlen(text));
	free(text);
}

/* The whole of a small file, or NULL. */
static char *read_small(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(INI_MAX + 1);
	if (buf) {
		n = fread(buf, 1, INI_MAX, f);
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

/* env's file, else ~/.aws/name, read whole (NULL when there is none). */
static char *aws_file(const char *env, const char *name)
{
	const char *home = getenv("HOME");
	struct passwd *pw;
	char path[4096];

	if (getenv(env) && *getenv(env))
		return read_small(getenv(env));
	if ((!home || !*home) && (pw = getpwuid(geteuid())))
		home = pw->pw_dir;
	if (!home)
		return NULL;
	snprintf(path, sizeof(path), "%s/.aws/%s", home, name);
	return read_small(path);
}

static const char *env_or(const char *a, const char *b)
{
	const char *v = getenv(a);

	if (v && *v)
		return v;
	v = b ? getenv(b) : NULL;
	return v && *v ? v : NULL;
}

struct creds {
	char id[256], secret[256], token[4096], region[64];
};

/* Credentials and region as the AWS tools find them (remote.h). */
static void load_creds(struct creds *c)
{
	const char *profile = env_or("AWS_PROFILE", "AWS_DEFAULT_PROFILE"), *v;
	char section[300], *text;

	memset(c, 0, sizeof(*c));
	profile = profile ? profile : "default";
	if (env_or("AWS_ACCESS_KEY_ID", NULL) && env_or("AWS_SECRET_ACCESS_KEY", NULL)) {
		snprintf(c->id, sizeof(c->id), "%s", getenv("AWS_ACCESS_KEY_ID"));
		snprintf(c->secret, sizeof(c->secret), "%s", getenv("AWS_SECRET_ACCESS_KEY"));
		snprintf(c->token, sizeof(c->token), "%s", (v = env_or("AWS_SESSION_TOKEN", NULL)) ? v : "");
	} else if ((text = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"))) {
		if (!afs_remote_ini_get(text, profile, "aws_access_key_id", c->id, sizeof(c->id)) ||
		    !afs_remote_ini_get(text, profile, "aws_secret_access_key", c->secret, sizeof(c->secret)))
			c->id[0] = c->secret[0] = '\0';
		else
			afs_remote_ini_get(text, profile, "aws_session_token", c->token, sizeof(c->token));
		free_wiped(text);
	}
	if ((v = env_or("AWS_REGION", "AWS_DEFAULT_REGION"))) {
		snprintf(c->region, sizeof(c->region), "%s", v);
	} else if ((text = aws_file("AWS_CONFIG_FILE", "config"))) {
		snprintf(section, sizeof(section), strcmp(profile, "default") == 0 ? "%s" : "profile %s", profile);
		afs_remote_ini_get(text, section, "region", c->region, sizeof(c->region));
		free(text);
	}
	if (!c->region[0] || strspn(c->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(c->region))
		snprintf(c->region, sizeof(c->region), "us-east-1");
}

/* Adds "name: value" to *l. */
static bool add_header(struct curl_slist **l, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *h = malloc(n);
	struct curl_slist *grown;

	if (!h)
		return false;
	snprintf(h, n, "%s: %s", name, value);
	grown = curl_slist_append(*l, h);
	free(h);
	if (!grown)
		return false;
	*l = grown;
	return true;
}

/* Sets r's address, signing keys and the S3 headers of every request. */
static enum afs_err setup_s3(struct afs_remote *r, const char *url, bool list, char *msg, size_t msglen)
{
	char bucket[256], *key = malloc(strlen(url) + 1), *addr = malloc(3 * strlen(url) + 512);
	const char *endpoint = g.endpoint ? g.endpoint : env_or("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	struct creds *c = calloc(1, sizeof(*c));
	enum afs_err err = AFS_E_NOMEM;

	if (!key || !addr || !c)
		goto out;
	err = afs_remote_parse_s3(url, bucket, sizeof(bucket), key, strlen(url) + 1);
	if (list && err == AFS_E_UNSUPPORTED) { /* a listing: the bucket's address, the prefix kept */
		const char *slash = strchr(url + 5, '/');

		err = (r->prefix = strdup(slash ? slash + 1 : "")) ? AFS_OK : AFS_E_NOMEM;
		key[0] = '\0';
	} else if (list && err == AFS_OK) {
		err = AFS_E_INVAL;
	}
	if (err == AFS_E_INVAL && list) {
		snprintf(msg, msglen, "not an S3 prefix of the form s3://BUCKET/PREFIX/");
		goto out;
	}
	if (err != AFS_OK && err != AFS_E_NOMEM) {
		snprintf(msg, msglen, "%s", err == AFS_E_UNSUPPORTED
			 ? "an S3 prefix is a directory of archives (mount it): name one archive, s3://BUCKET/KEY.zip"
			 : "not an S3 address of the form s3://BUCKET/KEY");
		goto out;
	}
	load_creds(c);
	err = AFS_E_NOMEM;
	if (!afs_remote_s3_address(endpoint, c->region, bucket, key, addr, 3 * strlen(url) + 512) ||
	    !(r->url = strdup(addr)))
		goto out;
	if (c->id[0] && (!(r->user = strdup(c->id)) || !(r->pass = strdup(c->secret))))
		goto out;
	snprintf(r->sigv4, sizeof(r->sigv4), "aws:amz:%s:s3", c->region);
	if (!add_header(&r->hdr_open, "x-amz-content-sha256", EMPTY_SHA256) ||
	    (c->token[0] && !add_header(&r->hdr_open, "x-amz-security-token", c->token)))
		goto out;
	err = AFS_OK;
out:
	if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
	if (c)
		memset(c, 0, sizeof(*c)); /* no secret left behind in freed memory */
	free(c);
	free(key);
	free(addr);
	return err;
}

/* The headers of a read: the open's, and If-Match with the ETag seen then
 * (If-Unmodified-Since with a weak or no ETag). */
static bool read_headers(struct afs_remote *r)
{
	for (struct curl_slist *l = r->hdr_open; l; l = l->next) {
		struct curl_slist *grown = curl_slist_append(r->hdr_read, l->data);

		if (!grown)
			return false;
		r->hdr_read = grown;
	}
	if (r->etag[0] && strncmp(r->etag, "W/", 2) != 0)
		return add_header(&r->hdr_read, "If-Match", r->etag);
	if (r->lastmod[0])
		return add_header(&r->hdr_read, "If-Unmodified-Since", r->lastmod);
	return true;
}

/* ------------------------------------------------------------ reads */

/* Marks r changed (mu held): every read from now on fails; said once. */
static enum afs_err changed_locked(struct afs_remote *r, const char *why)
{
	if (!r->gone)
		afs_log(AFS_LOG_ERR, "%s: the object changed since it was opened%s", r->shown, why);
	r->gone = true;
	return AFS_E_IO;
}

static enum afs_err changed(struct afs_remote *r, const char *why)
{
	enum afs_err err;

	pthread_mutex_lock(&r->mu);
	err = changed_locked(r, why);
	pthread_mutex_unlock(&r->mu);
	return err;
}

/* Checks a read's answer p for [off, off + len): the range asked for, of
 * the object seen at open. */
static enum afs_err check_answer(struct afs_remote *r, const struct resp *p, uint64_t off, size_t len)
{
	uint64_t first, last, total;
	char msg[160];

	if (p->status == 412 || p->status == 416)
		return changed(r, "");
	if (p->status == 404 || p->status == 410)
		return changed(r, " (it is gone)");
	if (p->status != 206) {
		if (p->status == 200)
			snprintf(msg, sizeof(msg), "the server ignored a range request (HTTP 200)");
		else
			status_error(p, msg, sizeof(msg));
		afs_log(AFS_LOG_ERR, "%s: %s", r->shown, msg);
		return AFS_E_IO;
	}
	if ((r->etag[0] && p->etag[0] && strcmp(r->etag, p->etag) != 0) ||
	    (r->lastmod[0] && p->lastmod[0] && strcmp(r->lastmod, p->lastmod) != 0))
		return changed(r, "");
	if (!afs_remote_parse_content_range(p->crange, &first, &last, &total) || total != r->size)
		return changed(r, "");
	if (first != off || last - first + 1 != len || p->got != len) {
		afs_log(AFS_LOG_ERR, "%s: the server's answer does not hold the range asked for", r->shown);
		return AFS_E_IO;
	}
	return AFS_OK;
}

/* Fetches [off, off + len) into buf. */
static enum afs_err fetch(struct afs_remote *r, unsigned char *buf, size_t len, uint64_t off)
{
	struct resp *p = calloc(1, sizeof(*p));
	char range[64], msg[CURL_ERROR_SIZE + 64];
	enum afs_err err;

	if (!p)
		return AFS_E_NOMEM;
	p->buf = buf;
	p->cap = len;
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
	err = request(r, range, r->hdr_read, p, msg, sizeof(msg));
	if (err == AFS_E_IO)
		afs_log(AFS_LOG_ERR, "%s: %s", r->shown, msg);
	else if (err == AFS_OK)
		err = check_answer(r, p, off, len);
	free(p);
	return err;
}

static uint64_t block_len(const struct afs_remote *r, uint64_t k)
{
	uint64_t start = k * AFS_REMOTE_BLOCK;

	return r->size - start < AFS_REMOTE_BLOCK ? r->size - start : AFS_REMOTE_BLOCK;
}

static bool in_flight(const struct afs_remote *r, uint64_t k)
{
	for (size_t i = 0; i < r->ninflight; i++)
		if (k >= r->inflight[i][0] && k - r->inflight[i][0] < r->inflight[i][1])
			return true;
	return false;
}

/* How many blocks from k on to fetch now (mu held): 1, or for a reader
 * going on block after block 2, 4, then RA_MAX; never past the end, nor
 * over a block held or in flight. */
static uint64_t ahead(const struct afs_remote *r, const struct stream *s, uint64_t k)
{
	uint64_t want = s->streak ? (uint64_t)1 << (s->streak < 3 ? s->streak : 3) : 1, n = 1;
	uint64_t blocks = (r->size + AFS_REMOTE_BLOCK - 1) / AFS_REMOTE_BLOCK;

	if (want > RA_MAX)
		want = RA_MAX;
	while (n < want && k + n < blocks && !afs_bcache_has(r->cache, k + n) && !in_flight(r, k + n))
		n++;
	return n;
}

/* Notes a read of block k (mu held), for ahead(): the stream whose last
 * block is k or k - 1 (its streak grows then), else the least recently
 * used one, started again at k.  Readers going on block after block in
 * different parts of the object (cat of one file beside another, or
 * beside sqlite3's random reads) keep their own streaks. */
static struct stream *note_read(struct afs_remote *r, uint64_t k)
{
	struct stream *s = NULL, *old = &r->streams[0];

	for (size_t i = 0; i < STREAMS && !s; i++) {
		struct stream *t = &r->streams[i];

		if (t->last == k || t->last + 1 == k)
			s = t;
		else if (t->used < old->used)
			old = t;
	}
	if (!s) {
		s = old;
		s->streak = 0;
	} else if (s->last + 1 == k) {
		s->streak++;
	}
	s->last = k;
	s->used = ++r->ticks;
	return s;
}

/* Fetches blocks [k, k + n) in one range (mu not held) and adds them to
 * the cache (mu taken), k last so that it is the most recent. */
static enum afs_err fill(struct afs_remote *r, uint64_t k, uint64_t n)
{
	uint64_t off = k * AFS_REMOTE_BLOCK, len = 0;
	unsigned char *buf;
	enum afs_err err;

	for (uint64_t i = 0; i < n; i++)
		len += block_len(r, k + i);
	if (!(buf = malloc((size_t)len)))
		return AFS_E_NOMEM;
	err = fetch(r, buf, (size_t)len, off);
	pthread_mutex_lock(&r->mu);
	for (uint64_t i = n; i-- > 0 && err == AFS_OK;) {
		size_t bl = (size_t)block_len(r, k + i);
		void *copy = malloc(bl);

		if (!copy) {
			err = AFS_E_NOMEM;
			break;
		}
		memcpy(copy, buf + i * AFS_REMOTE_BLOCK, bl);
		err = afs_bcache_put(r->cache, k + i, copy, bl);
	}
	pthread_mutex_unlock(&r->mu);
	free(buf);
	return err;
}

/* Takes the in-flight mark of blocks from k (mu held) and wakes waiters. */
static void unmark(struct afs_remote *r, uint64_t k)
{
	for (size_t i = 0; i < r->ninflight; i++) {
		if (r->inflight[i][0] == k) {
			r->inflight[i][0] = r->inflight[--r->ninflight][0];
			r->inflight[i][1] = r->inflight[r->ninflight][1];
			break;
		}
	}
	pthread_cond_broadcast(&r->cv);
}

struct prefetch {
	struct afs_remote *r;
	uint64_t k, n;
};

static void *prefetch_run(void *ud)
{
	struct prefetch *p = ud;
	struct afs_remote *r = p->r;

	fill(r, p->k, p->n); /* a failure is the next read's to find and say */
	pthread_mutex_lock(&r->mu);
	unmark(r, p->k);
	r->prefetching--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	free(p);
	if (g.prefetch_end)
		g.prefetch_end();
	return NULL;
}

/* Joins the last background fetch (mu held, none running).  Its thread
 * has left mu for good, so the join is short.  Joined, not detached: a
 * thread that used TLS ends before the process does, or OpenSSL's exit
 * handler can delete its per-thread state's key first and the state leaks. */
static void join_prefetch(struct afs_remote *r)
{
	if (r->prefetch_joinable)
		pthread_join(r->prefetch_th, NULL);
	r->prefetch_joinable = false;
}

/* Background read-ahead (mu held), after a cache hit on block k by a
 * reader going block after block: when fewer than RA_MAX / 2 blocks after
 * k are held, fetches the next RA_MAX on a thread of its own, so that the
 * transfer overlaps the reader's work (inflating).  One at a time per
 * object, and only with a cache that holds several windows. */
static void prefetch(struct afs_remote *r, struct stream *s, uint64_t k)
{
	uint64_t blocks = (r->size + AFS_REMOTE_BLOCK - 1) / AFS_REMOTE_BLOCK, nk = k + 1;
	struct prefetch *p;

	if (!g.background || s->streak < 2 || r->prefetching || r->ninflight == INFLIGHT_MAX ||
	    r->cache_cap < 4 * (size_t)RA_MAX * AFS_REMOTE_BLOCK)
		return;
	while (nk < blocks && nk - k <= RA_MAX / 2 && afs_bcache_has(r->cache, nk))
		nk++;
	if (nk >= blocks || nk - k > RA_MAX / 2 || in_flight(r, nk) || !(p = malloc(sizeof(*p))))
		return;
	s->streak = 3; /* ahead() then asks RA_MAX */
	*p = (struct prefetch){ r, nk, ahead(r, s, nk) };
	join_prefetch(r);
	if (pthread_create(&r->prefetch_th, NULL, prefetch_run, p) == 0) {
		r->prefetch_joinable = true;
		r->inflight[r->ninflight][0] = nk;
		r->inflight[r->ninflight++][1] = p->n;
		r->prefetching++;
	} else {
		free(p);
	}
}

/* Copies n bytes at bo of block k into out, fetching the block (and
 * read-ahead) when the cache does not hold it. */
static enum afs_err read_block(struct afs_remote *r, uint64_t k, size_t bo, unsigned char *out, size_t n)
{
	enum afs_err err = AFS_OK;
	const unsigned char *d;
	struct stream *s;
	size_t dlen;

	pthread_mutex_lock(&r->mu);
	s = note_read(r, k);
	for (;;) {
		if (r->gone) {
			err = AFS_E_IO;
			break;
		}
		if ((d = afs_bcache_get(r->cache, k, &dlen))) {
			if (dlen >= bo + n)
				memcpy(out, d + bo, n);
			else
				err = AFS_E_IO;
			prefetch(r, s, k);
			break;
		}
		if (in_flight(r, k) || r->ninflight == INFLIGHT_MAX) {
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		uint64_t cnt = ahead(r, s, k);

		r->inflight[r->ninflight][0] = k;
		r->inflight[r->ninflight++][1] = cnt;
		pthread_mutex_unlock(&r->mu);
		err = fill(r, k, cnt);
		pthread_mutex_lock(&r->mu);
		unmark(r, k);
		if (err != AFS_OK)
			break;
	}
	pthread_mutex_unlock(&r->mu);
	return err;
}

enum afs_err afs_remote_pread(struct afs_remote *r, void *buf, size_t len, uint64_t off)
{
	unsigned char *out = buf;
	enum afs_err err = AFS_OK;

	if (off > r->size || len > r->size - off)
		return AFS_E_INVAL;
	while (len > 0 && err == AFS_OK) {
		uint64_t k = off / AFS_REMOTE_BLOCK;
		size_t bo = (size_t)(off % AFS_REMOTE_BLOCK), n = AFS_REMOTE_BLOCK - bo < len ? AFS_REMOTE_BLOCK - bo : len;

		if (off >= r->tail_off && off + n <= r->tail_off + r->tail_len) /* the open's bytes: set once, read only */
			memcpy(out, r->tail + (off - r->tail_off), n);
		else
			err = read_block(r, k, bo, out, n);
		out += n;
		off += n;
		len -= n;
	}
	if (err != AFS_OK) {
		pthread_mutex_lock(&r->mu);
		r->failures++;
		pthread_mutex_unlock(&r->mu);
	}
	return err;
}

/* ------------------------------------------------------------ open */

/* Takes the open's answer p: size, ETag, Last-Modified, and the tail when
 * the answer holds it (*exact; a server may answer the suffix range with
 * another one, as s3rver does: its size and ETag still count). */
static enum afs_err take_tail(struct afs_remote *r, struct resp *p, bool *exact, char *msg, size_t msglen)
{
	uint64_t first, last = 0, total;

	if (p->status == 416) {
		snprintf(msg, msglen, "empty object, not a ZIP archive");
		return AFS_E_NOTZIP;
	}
	if (p->status == 200 && p->overflow) {
		snprintf(msg, msglen, "the server does not answer range requests");
		return AFS_E_IO;
	}
	if (p->status == 200) {
		first = 0;
		total = p->got;
	} else if (p->status != 206) {
		return status_error(p, msg, msglen);
	} else if (!afs_remote_parse_content_range(p->crange, &first, &last, &total)) {
		snprintf(msg, msglen, "the server's answer to a range request states no range");
		return AFS_E_IO;
	}
	if (total == 0) {
		snprintf(msg, msglen, "empty object, not a ZIP archive");
		return AFS_E_NOTZIP;
	}
	r->size = total;
	*exact = !p->overflow && (p->status == 200 || (last + 1 == total && last - first + 1 == p->got));
	if (*exact) {
		r->tail = p->buf;
		r->tail_len = p->got;
		r->tail_off = first;
		p->buf = NULL;
	}
	snprintf(r->etag, sizeof(r->etag), "%s", p->etag);
	snprintf(r->lastmod, sizeof(r->lastmod), "%s", p->lastmod);
	r->mtime = p->lastmod[0] ? (int64_t)curl_getdate(p->lastmod, NULL) : 0;
	if (r->mtime < 0)
		r->mtime = 0;
	return AFS_OK;
}

/* Sets up r for url: its address and headers. */
static enum afs_err setup(struct afs_remote *r, const char *url, char *msg, size_t msglen)
{
	afs_remote_redact(url, r->shown, sizeof(r->shown));
	if (strncmp(url, "s3://", 5) == 0)
		return setup_s3(r, url, false, msg, msglen);
	if (strcspn(url, " \t\r\n") != strlen(url) || !url[strcspn(url, ":") + 3]) {
		snprintf(msg, msglen, "not a URL");
		return AFS_E_INVAL;
	}
	if (!(r->url = strdup(url))) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	return AFS_OK;
}

/* Reads the object's last AFS_REMOTE_TAIL bytes (or all of it) as its
 * tail, with a range the server cannot take for another. */
static enum afs_err fetch_tail(struct afs_remote *r, char *msg, size_t msglen)
{
	size_t n = r->size < AFS_REMOTE_TAIL ? (size_t)r->size : AFS_REMOTE_TAIL;
	enum afs_err err;

	if (!(r->tail = malloc(n))) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	err = fetch(r, r->tail, n, r->size - n);
	if (err != AFS_OK) {
		snprintf(msg, msglen, "reading the object's end failed");
		free(r->tail);
		r->tail = NULL;
		return err;
	}
	r->tail_len = n;
	r->tail_off = r->size - n;
	return AFS_OK;
}

enum afs_err afs_remote_open(const char *url, struct afs_remote **out, char *msg, size_t msglen)
{
	struct afs_remote *r = calloc(1, sizeof(*r));
	struct resp *p = calloc(1, sizeof(*p));
	enum afs_err err;
	bool exact = false;

	*out = NULL;
	if (!g.curl_ready)
		afs_remote_init_process(NULL);
	if (!r || !p || !(p->buf = malloc(AFS_REMOTE_TAIL))) {
		free(p);
		free(r);
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (size_t i = 0; i < STREAMS; i++)
		r->streams[i].last = UINT64_MAX;
	p->cap = AFS_REMOTE_TAIL;
	err = setup(r, url, msg, msglen);
	if (err == AFS_OK)
		err = request(r, "-" "65536", r->hdr_open, p, msg, msglen);
	if (err == AFS_OK)
		err = take_tail(r, p, &exact, msg, msglen);
	r->cache_cap = g.cache_bytes;
	if (err == AFS_OK && (!read_headers(r) || !(r->cache = afs_bcache_new(g.cache_bytes)))) {
		snprintf(msg, msglen, "out of memory");
		err = AFS_E_NOMEM;
	}
	if (err == AFS_OK && !exact)
		err = fetch_tail(r, msg, msglen);
	free(p->buf);
	free(p);
	if (err != AFS_OK) {
		afs_remote_free(r);
		return err;
	}
	*out = r;
	return AFS_OK;
}

/* curl_slist_free_all() of headers that may hold a secret, wiped first. */
static void slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		memset(p->data, 0, strlen(p->data));
	curl_slist_free_all(l);
}

void afs_remote_free(struct afs_remote *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	while (r->prefetching) /* a background fetch uses r until it ends */
		pthread_cond_wait(&r->cv, &r->mu);
	join_prefetch(r);
	pthread_mutex_unlock(&r->mu);
	afs_bcache_free(r->cache);
	slist_free_wiped(r->hdr_open); /* x-amz-security-token */
	slist_free_wiped(r->hdr_read);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	if (r->pass)
		memset(r->pass, 0, strlen(r->pass));
	free(r->user);
	free(r->pass);
	free(r->url);
	free(r->prefix);
	free(r->tail);
	free(r);
}

uint64_t afs_remote_size(const struct afs_remote *r)
{
	return r->size;
}

int64_t afs_remote_mtime(const struct afs_remote *r)
{
	return r->mtime;
}

const char *afs_remote_etag(const struct afs_remote *r)
{
	return r->etag;
}

const char *afs_remote_shown(const struct afs_remote *r)
{
	return r->shown;
}

uint64_t afs_remote_failures(const struct afs_remote *r)
{
	uint64_t n;

	pthread_mutex_lock((pthread_mutex_t *)&r->mu);
	n = r->failures;
	pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
	return n;
}

void afs_remote_stats(const struct afs_remote *r, uint64_t *requests, uint64_t *bytes)
{
	pthread_mutex_lock((pthread_mutex_t *)&r->mu);
	*requests = r->requests;
	*bytes = r->bytes;
	pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
}

/* ------------------------------------------------------------ listings */

#define LIST_MAX (64 * 1024 * 1024) /* of one page's XML (1000 keys) */

/* What the parser of one ListObjectsV2 page keeps. */
struct lparse {
	afs_remote_list_fn fn;
	void *ctx;
	size_t plen;               /* of the prefix, cut from every key */
	char text[1100];           /* the current element's text */
	size_t tlen;
	bool in_contents, truncated;
	char key[1100], lastmod[64], etag[256], size[32];
	char token[1100];          /* NextContinuationToken */
};

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct lparse *l = ud;

	l->tlen = 0;
	if (strcmp(name, "Contents") == 0) {
		l->in_contents = true;
		l->key[0] = l->lastmod[0] = l->etag[0] = l->size[0] = '\0';
	}
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct lparse *l = ud;
	size_t n = (size_t)len < sizeof(l->text) - 1 - l->tlen ? (size_t)len : sizeof(l->text) - 1 - l->tlen;

	memcpy(l->text + l->tlen, s, n);
	l->tlen += n;
	l->text[l->tlen] = '\0';
}

/* An ISO 8601 time as S3 gives it (2025-11-20T10:15:02.000Z), or 0. */
static int64_t iso_time(const char *s)
{
	struct tm tm = { 0 };

	if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Copies the element's text into dst (size n), cut to fit. */
static void take_text(const struct lparse *l, char *dst, size_t n)
{
	size_t len = l->tlen < n - 1 ? l->tlen : n - 1;

	memcpy(dst, l->text, len);
	dst[len] = '\0';
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct lparse *l = ud;
	struct afs_remote_obj o;

	if (l->in_contents && strcmp(name, "Key") == 0)
		take_text(l, l->key, sizeof(l->key));
	else if (l->in_contents && strcmp(name, "LastModified") == 0)
		take_text(l, l->lastmod, sizeof(l->lastmod));
	else if (l->in_contents && strcmp(name, "ETag") == 0)
		take_text(l, l->etag, sizeof(l->etag));
	else if (l->in_contents && strcmp(name, "Size") == 0)
		take_text(l, l->size, sizeof(l->size));
	else if (strcmp(name, "IsTruncated") == 0)
		l->truncated = strcmp(l->text, "true") == 0;
	else if (strcmp(name, "NextContinuationToken") == 0)
		take_text(l, l->token, sizeof(l->token));
	if (strcmp(name, "Contents") != 0)
		return;
	l->in_contents = false;
	if (strlen(l->key) <= l->plen || strchr(l->key + l->plen, '/'))
		return; /* the prefix itself, or deeper */
	o = (struct afs_remote_obj){ .name = l->key + l->plen, .size = strtoull(l->size, NULL, 10),
				     .mtime = iso_time(l->lastmod), .etag = l->etag };
	l->fn(l->ctx, &o);
}

/* Appends "&name=value" (the first without '&') to q at *len, value
 * percent-encoded whole. */
static bool add_param(char *q, size_t qlen, size_t *len, const char *name, const char *value)
{
	int n = snprintf(q + *len, qlen - *len, "%s%s=", *len ? "&" : "", name);

	if (n < 0 || (size_t)n >= qlen - *len)
		return false;
	*len += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*len + 4 >= qlen)
			return false;
		if (isalnum(*p) || strchr("-._~", *p))
			q[(*len)++] = (char)*p;
		else
			*len += (size_t)snprintf(q + *len, 4, "%%%02X", *p);
	}
	q[*len] = '\0';
	return true;
}

/* Requests one page (after token, "" for the first) of r's listing into p. */
static enum afs_err list_page(struct afs_remote *r, const char *base, const char *token, struct resp *p, char *msg,
			      size_t msglen)
{
	size_t qlen = strlen(base) + 3 * (strlen(r->prefix) + strlen(token)) + 128, len = 0;
	char *q = malloc(qlen), *url;
	enum afs_err err = AFS_E_NOMEM;

	if (!q)
		return err;
	/* parameters in the order SigV4 sorts them */
	if ((!token[0] || add_param(q, qlen, &len, "continuation-token", token)) &&
	    add_param(q, qlen, &len, "delimiter", "/") && add_param(q, qlen, &len, "list-type", "2") &&
	    add_param(q, qlen, &len, "prefix", r->prefix) && asprintf(&url, "%s?%s", base, q) >= 0) {
		free(r->url);
		r->url = url;
		err = request(r, NULL, r->hdr_open, p, msg, msglen);
	}
	free(q);
	return err;
}

/* Parses one page; *more when another follows (l->token). */
static enum afs_err list_parse(struct lparse *l, const struct resp *p, bool *more, char *msg, size_t msglen)
{
	XML_Parser xp = XML_ParserCreate(NULL);
	enum afs_err err = AFS_OK;

	if (!xp) {
		snprintf(msg, msglen, "out of memory");
		return AFS_E_NOMEM;
	}
	l->truncated = false;
	l->token[0] = '\0';
	XML_SetUserData(xp, l);
	XML_SetElementHandler(xp, on_start, on_end);
	XML_SetCharacterDataHandler(xp, on_text);
	if (XML_Parse(xp, (const char *)p->buf, (int)p->got, 1) != XML_STATUS_OK) {
		snprintf(msg, msglen, "the listing is not well-formed XML: %s", XML_ErrorString(XML_GetErrorCode(xp)));
		err = AFS_E_IO;
	}
	XML_ParserFree(xp);
	*more = err == AFS_OK && l->truncated && l->token[0];
	return err;
}

bool afs_remote_is_prefix(const char *url)
{
	char bucket[256], key[8];

	return strncmp(url, "s3://", 5) == 0 &&
	       afs_remote_parse_s3(url, bucket, sizeof(bucket), key, sizeof(key)) == AFS_E_UNSUPPORTED;
}

enum afs_err afs_remote_list(const char *url, afs_remote_list_fn fn, void *ctx, char *msg, size_t msglen)
{
	struct afs_remote *r = calloc(1, sizeof(*r));
	struct resp *p = calloc(1, sizeof(*p));
	struct lparse *l = calloc(1, sizeof(*l));
	enum afs_err err = AFS_E_NOMEM;
	char *base = NULL;
	bool more = true;

	if (!g.curl_ready)
		afs_remote_init_process(NULL);
	if (r) { /* afs_remote_free() at the end needs them */
		pthread_mutex_init(&r->mu, NULL);
		pthread_cond_init(&r->cv, NULL);
	}
	if (!r || !p || !l)
		goto out;
	afs_remote_redact(url, r->shown, sizeof(r->shown));
	err = setup_s3(r, url, true, msg, msglen);
	if (err != AFS_OK || !(base = strdup(r->url)))
		goto out;
	*l = (struct lparse){ .fn = fn, .ctx = ctx, .plen = strlen(r->prefix) };
	while (more && err == AFS_OK) {
		p->grow_max = LIST_MAX;
		if (!p->buf && !(p->buf = malloc(p->cap = 64 * 1024))) {
			err = AFS_E_NOMEM;
			break;
		}
		err = list_page(r, base, l->token, p, msg, msglen);
		if (err == AFS_OK && p->status != 200)
			err = status_error(p, msg, msglen);
		else if (err == AFS_OK && p->overflow)
			err = AFS_E_RANGE;
		if (err == AFS_E_RANGE)
			snprintf(msg, msglen, "a page of the listing is larger than %d MiB", LIST_MAX >> 20);
		if (err == AFS_OK)
			err = list_parse(l, p, &more, msg, msglen);
	}
out:
	if (err == AFS_E_NOMEM)
		snprintf(msg, msglen, "out of memory");
	if (p)
		free(p->buf);
	free(p);
	free(l);
	free(base);
	afs_remote_free(r);
	return err;
}
