/* SPDX-License-Identifier: MIT */
/* Fuzz target: the database URL as --database or DATABASE_URL gives it,
 * through afs_target_from_options() (with the real backend table, so that
 * the PostgreSQL backend's mask runs libpq's own parser) and the masking
 * of argv items (afs_target_mask_password, afs_target_display).
 *
 * Input: the URL, then optionally a NUL and a --lock-wait value.
 * Checks, for every secret libpq finds in the URL (password, sslpassword,
 * passfile, sslkey; read as archfs connects: PQconnectdbParams with
 * expand_dbname): the form .status shows, the refusal message, the masked
 * argv item and the display form hold the text that spells it in the URL
 * (the value itself, or with key=value escapes or %XX) fewer times than
 * the URL does, or no more than they do for the URL with that text
 * overwritten (so not as the secret; the same bytes elsewhere, say in a
 * database name or a message's fixed words, may stay), and libpq reading
 * them finds no secret but masks (in .status's form, which the
 * PostgreSQL backend checks so). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "db.h"
#include "fuzzutil.h"
#include "target.h"

#define MAX_SECRETS 16

static const char *const secret_keys[] = { "password", "sslpassword", "passfile", "sslkey" };

/* What pg.c hands libpq: a SQLAlchemy "postgresql+driver://" scheme
 * becomes "postgresql://". */
static char *libpq_url(const char *url)
{
	size_t scheme = strspn(url, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
	char *out;

	if (memchr(url, '+', scheme) && strncmp(url + scheme, "://", 3) == 0)
		return asprintf(&out, "postgresql%s", url + scheme) < 0 ? NULL : out;
	return strdup(url);
}

static bool is_secret(const char *keyword)
{
	for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++)
		if (strcmp(keyword, secret_keys[i]) == 0)
			return true;
	return false;
}

/* The non-empty secret values libpq reads in s (malloc'd copies). */
static size_t secrets(const char *s, char **out)
{
	char *u = libpq_url(s);
	PQconninfoOption *opts = u ? PQconninfoParse(u, NULL) : NULL;
	size_t n = 0;

	for (PQconninfoOption *o = opts; o && o->keyword && n < MAX_SECRETS; o++)
		if (o->val && o->val[0] && is_secret(o->keyword))
			out[n++] = strdup(o->val);
	PQconninfoFree(opts);
	free(u);
	return n;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* A value that a mask could make (masks are 'x's), or too short to tell
 * from other text: the fixed words of a message ("scheme"), the text a
 * removed password's neighbours make ("u" + "@h"). */
static bool weak(const char *v)
{
	return strlen(v) < 4 || strspn(v, "x") == strlen(v);
}

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The length of the text at s that spells v as libpq reads a value
 * (key=value: a backslash takes the next byte as it is; a URI: %XX is
 * one byte), or 0 when it does not. */
static size_t spells(const char *s, const char *v, bool url_form)
{
	size_t i = 0;

	for (; *v; v++) {
		if (url_form && s[i] == '%' && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
			if ((char)(hex(s[i + 1]) * 16 + hex(s[i + 2])) != *v)
				return 0;
			i += 3;
		} else if (!url_form && s[i] == '\\' && s[i + 1]) {
			if (s[i + 1] != *v)
				return 0;
			i += 2;
		} else if (s[i] == *v) {
			i++;
		} else {
			return 0;
		}
	}
	return i;
}

/* How many of libpq's secrets in s equal v. */
static size_t secret_count(const char *s, const char *v)
{
	char *found[MAX_SECRETS];
	size_t n = secrets(s, found), same = 0;

	for (size_t i = 0; i < n; i++) {
		same += strcmp(found[i], v) == 0;
		free(found[i]);
	}
	return same;
}

#define MAX_SPELLINGS 16

/* A secret libpq reads in the URL, the texts that spell it there, and
 * the URL with them all overwritten with 'x's. */
struct secret {
	char *value;
	char *sp[MAX_SPELLINGS];
	size_t nsp;
	char *url_x;
};

/* True when libpq reads s as a URI (%XX escapes) rather than as
 * key=value pairs (backslash escapes). */
static bool uri_form(const char *s)
{
	char *u = libpq_url(s);
	bool uri = u && (strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0);

	free(u);
	return uri;
}

/* Finds the spellings of the secret sec->value in url: the places that
 * spell it (literally, or with the escapes of url's form) where writing
 * 'x's over the text makes libpq read that many 'x's as a secret in its
 * place, that is where it is the secret and not, say, a database name
 * that holds the same bytes (nor text whose overwriting breaks the URL:
 * libpq then reads no secret at all).  Leaves none when there are too
 * many places to try (nothing is checked then) or the value is weak(). */
static void find_spellings(const char *url, struct secret *sec)
{
	size_t tried = 0, len = strlen(url), base;
	bool uri = uri_form(url);
	char *copy, *xs;

	if (weak(sec->value))
		return;
	base = secret_count(url, sec->value);
	copy = strdup(url);
	xs = strdup(url);
	sec->url_x = strdup(url);
	FZ_ASSERT(copy && xs && sec->url_x, "out of memory");
	for (size_t at = 0; at < len; at++) {
		size_t sl = spells(url + at, sec->value, uri), k;

		if (!sl)
			continue;
		if (++tried > 4 * MAX_SPELLINGS) {
			while (sec->nsp)
				free(sec->sp[--sec->nsp]);
			break;
		}
		memset(copy + at, 'x', sl);
		memset(xs, 'x', sl);
		xs[sl] = '\0';
		if (secret_count(copy, sec->value) < base && secret_count(copy, xs) > secret_count(url, xs)) {
			memset(sec->url_x + at, 'x', sl);
			for (k = 0; k < sec->nsp && !(strlen(sec->sp[k]) == sl && !memcmp(sec->sp[k], url + at, sl)); k++)
				;
			if (k == sec->nsp && sec->nsp < MAX_SPELLINGS) {
				sec->sp[sec->nsp] = strndup(url + at, sl);
				FZ_ASSERT(sec->sp[sec->nsp], "out of memory");
				sec->nsp++;
			}
		}
		memcpy(copy + at, url + at, sl);
	}
	free(xs);
	free(copy);
}

/* The forms of a URL made for people. */
enum form { STATUS, REFUSAL, MASKED, DISPLAY };

/* The form f of url (lock: the --lock-wait value, or NULL), malloc'd;
 * NULL when url has no such form (STATUS: it is refused, or shown as a
 * description; REFUSAL: it is taken). */
static char *form_of(enum form f, const char *url, const char *lock)
{
	struct afs_target_opts o = { .backends = afs_db_backends, .database = url, .lock_wait = lock };
	struct afs_target t;
	char msg[2048], *out = NULL;

	if (f == MASKED) {
		out = strdup(url);
		FZ_ASSERT(out, "out of memory");
		afs_target_mask_password(out);
	} else if (f == DISPLAY) {
		out = afs_target_display(url);
		FZ_ASSERT(out, "out of memory");
	} else if (afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK) {
		/* "(a PostgreSQL connection string that ...)": no URL */
		if (f == STATUS && t.display_url && t.display_url[0] != '(')
			out = strdup(t.display_url);
		afs_target_release(&t);
	} else if (f == REFUSAL) {
		out = strdup(msg);
	}
	return out;
}

/* shown (form f of url, lock the --lock-wait value or NULL) keeps none of
 * url's secrets: it holds each spelling of each secret (see
 * find_spellings()) fewer times than the input does (url, and the lock
 * value, which a refusal may quote), or no more times than the same form
 * of the URL with the secret's spellings overwritten holds it: text that
 * does not depend on the secret is not it (the fixed words of a message,
 * "postgresql://", hold a secret "postgr"; a database name the same bytes
 * as a password). */
static void check_shown(const char *what, enum form f, const char *url, const char *lock, const char *shown,
			const struct secret *sec, size_t nsec)
{
	for (size_t i = 0; i < nsec; i++) {
		char *shown_x = NULL;
		bool made = false;

		for (size_t k = 0; k < sec[i].nsp; k++) {
			const char *sp = sec[i].sp[k];
			size_t n = count(shown, sp);

			if (n < count(url, sp) + (lock ? count(lock, sp) : 0))
				continue;
			if (!made) {
				shown_x = form_of(f, sec[i].url_x, lock);
				made = true;
			}
			FZ_ASSERT(shown_x && n <= count(shown_x, sp), "%s shows the secret '%s' (spelt '%s'): %s", what,
				  sec[i].value, sp, shown);
		}
		free(shown_x);
	}
}

/* libpq reading the .status form finds no secret but masks (what the
 * PostgreSQL backend's mask promises; target.c's display form alone may
 * change the string's structure where it masks, so this holds only here). */
static void check_status_url(const char *shown)
{
	char *found[MAX_SECRETS];
	size_t nfound = secrets(shown, found);

	for (size_t i = 0; i < nfound; i++) {
		FZ_ASSERT(strcmp(found[i], AFS_TARGET_MASK) == 0, "libpq reads a secret '%s' in .status's URL: %s",
			  found[i], shown);
		free(found[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 2), *url, *lock, *masked, *shown, *val[MAX_SECRETS], msg[2048];
	struct secret sec[MAX_SECRETS] = { 0 };
	struct afs_target_opts o = { .backends = afs_db_backends };
	struct afs_target t;
	size_t nsec;

	FZ_ASSERT(in, "out of memory");
	memcpy(in, data, size);
	in[size] = in[size + 1] = '\0';
	url = in;
	lock = in + strlen(in) + 1;
	if (lock <= in + size)
		o.lock_wait = lock;
	else
		lock = in + size + 1; /* "" */
	o.database = url;
	unsetenv("DATABASE_URL");
	unsetenv("UPLOAD_FOLDER");
	nsec = secrets(url, val);
	for (size_t i = 0; i < nsec; i++) {
		sec[i].value = val[i];
		find_spellings(url, &sec[i]);
	}
	if (afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK) {
		FZ_ASSERT(!url[0] || (t.url && strcmp(t.url, url) == 0 && t.display_url), "the URL is not kept");
		if (t.display_url && t.display_url[0] != '(') { /* "(a PostgreSQL connection string that ...)" */
			check_shown(".status's URL", STATUS, url, o.lock_wait, t.display_url, sec, nsec);
			if (t.kind == AFS_DB_POSTGRESQL)
				check_status_url(t.display_url);
		}
		afs_target_release(&t);
	} else {
		FZ_ASSERT(msg[0] != '\0', "a refusal without a reason");
		if (strncmp(msg, "--lock-wait", 11) != 0) /* quotes only the value given for it */
			check_shown("the refusal", REFUSAL, url, o.lock_wait, msg, sec, nsec);
	}
	masked = form_of(MASKED, url, NULL);
	FZ_ASSERT(strlen(masked) == strlen(url), "masking changed the length");
	for (size_t i = 0; url[i]; i++)
		FZ_ASSERT(masked[i] == url[i] || masked[i] == 'x', "masking wrote '%c'", masked[i]);
	check_shown("the masked argv item", MASKED, url, NULL, masked, sec, nsec);
	shown = form_of(DISPLAY, url, NULL);
	check_shown("the display form", DISPLAY, url, NULL, shown, sec, nsec);
	free(shown);
	free(masked);
	for (size_t i = 0; i < nsec; i++) {
		while (sec[i].nsp)
			free(sec[i].sp[--sec[i].nsp]);
		free(sec[i].url_x);
		free(sec[i].value);
	}
	free(in);
	return 0;
}
